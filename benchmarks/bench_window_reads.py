"""What one 5-minute window costs ClickHouse as the history grows: rows read, bytes read and
time of bqtui's own events query, with and without a skip index on inserted_at.

    .venv/bin/python benchmarks/bench_window_reads.py [--base 1000000] [--factors 1 30]

Histories of ``base × factor`` events at the same rate (``base`` events every two days) of one
team, so a longer history is more days, as it grows in production; PostHog's layout (ORDER BY
team_id, toDate(timestamp), …; ingestion a few seconds after the event), in the embedded
ClickHouse. The window is the same 5 minutes on the last day. Rows and bytes read are
the engine's own statistics (chdb's progress callback: what the query read from storage).
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import chdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bqtui.config import ExportConfig  # noqa: E402
from bqtui.demo_data import SOURCE_DDL  # noqa: E402
from bqtui.models import get_model  # noqa: E402
from bqtui.source import STREAM_SETTINGS, with_settings  # noqa: E402

WINDOW = (datetime(2024, 4, 29, 12, 0, tzinfo=UTC), datetime(2024, 4, 29, 12, 5, tzinfo=UTC))
HISTORY_END = datetime(2024, 4, 30, tzinfo=UTC)
DAYS_PER_BASE = 2


def generate(connection, rows: int, days: int) -> None:
    connection.query(SOURCE_DDL["events"].format(table="events"))
    seconds = days * 86400
    first = (HISTORY_END - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")
    connection.query(
        "INSERT INTO events SELECT generateUUIDv4(), if(number % 5 = 0, 'signed_up', "
        "'$pageview'), concat('{\"$current_url\": \"https://example.com/', toString(number % "
        "1000), '\"}'), t, 1, toString(number % 5000), '', t, generateUUIDv4(), "
        "t + toIntervalSecond(number % 20), toDateTime(t + toIntervalSecond(number % 20)) "
        f"FROM (SELECT number, toDateTime64('{first}', 6, 'UTC') + "
        f"toIntervalSecond(intDiv(number * {seconds}, {rows})) AS t FROM numbers({rows}))"
    )
    connection.query("OPTIMIZE TABLE events FINAL")


def measure(connection, runs: int = 5) -> dict:
    export = ExportConfig(name="bench", dataset_id="d", table_id="t")
    # The query condition cache would remember the first run's granules and hide the scan.
    settings = {**STREAM_SETTINGS, "use_query_condition_cache": 0}
    sql = with_settings(get_model("events").build_query(export), settings)
    parameters = {
        "team_id": 1,
        "window_start": WINDOW[0].strftime("%Y-%m-%d %H:%M:%S"),
        "window_end": WINDOW[1].strftime("%Y-%m-%d %H:%M:%S"),
    }
    seen: list[dict] = []
    connection.set_progress_callback(seen.append)
    times, rows = [], 0
    try:
        for _ in range(runs):
            started = time.perf_counter()
            result = connection.send_query(sql, "Arrow", params=parameters)
            rows = sum(b.num_rows for b in result.record_batch(rows_per_batch=65536))
            result.close()
            times.append(time.perf_counter() - started)
    finally:
        connection.set_progress_callback(None)
    return {
        "exported": rows,
        "read_rows": seen[-1]["read_rows"],
        "read_bytes": seen[-1]["read_bytes"],
        "ms": statistics.median(times) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=int, default=1_000_000)
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 30])
    args = parser.parse_args()
    print("| history | index on inserted_at | exported | rows read | bytes read | median time |")
    print("|---:|---|---:|---:|---:|---:|")
    for factor in args.factors:
        path = Path(tempfile.mkdtemp(prefix="bqtui-bench-reads-"))
        connection = chdb.connect(str(path))
        try:
            rows = args.base * factor
            started = time.monotonic()
            generate(connection, rows, DAYS_PER_BASE * factor)
            print(f"<!-- {rows:,} rows generated in {time.monotonic() - started:.0f} s -->",
                  file=sys.stderr)  # fmt: skip
            for indexed in (False, True):
                if indexed:
                    connection.query(
                        "ALTER TABLE events ADD INDEX bqtui_inserted_at inserted_at "
                        "TYPE minmax GRANULARITY 1"
                    )
                    connection.query(
                        "ALTER TABLE events MATERIALIZE INDEX bqtui_inserted_at "
                        "SETTINGS mutations_sync = 2"
                    )
                m = measure(connection)
                print(f"| {rows:,} ({factor}×, {DAYS_PER_BASE * factor} days) | "
                      f"{'yes' if indexed else 'no'} | "
                      f"{m['exported']:,} | {m['read_rows']:,} | {m['read_bytes'] / 1e6:.1f} MB "
                      f"| {m['ms']:.1f} ms |", flush=True)  # fmt: skip
        finally:
            connection.close()
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
