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
from clickhouse_connect.driver.binding import bind_query

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bqtui.core.config import ExportConfig  # noqa: E402
from bqtui.demo.data import SOURCE_DDL  # noqa: E402
from bqtui.models import get_model  # noqa: E402
from bqtui.source.clickhouse import STREAM_SETTINGS, with_settings  # noqa: E402

WINDOW = (datetime(2024, 4, 29, 12, 0, tzinfo=UTC), datetime(2024, 4, 29, 12, 5, tzinfo=UTC))
HISTORY_END = datetime(2024, 4, 30, tzinfo=UTC)
DAYS_PER_BASE = 2


# Event properties, an SQL expression over ``number`` (the event's index) and ``t`` (its time).
PROPERTIES = "concat('{\"$current_url\": \"https://example.com/', toString(number % 1000), '\"}')"
USERS = 5000  # distinct ids: event ``number`` is of user ``number % USERS``


def generate(
    connection, rows: int, days: int, *, team_id: int = 1, properties: str = PROPERTIES
) -> None:
    """``rows`` events of ``team_id`` at an even rate over the ``days`` before HISTORY_END,
    each ingested 0–19 s after its timestamp. Call ``optimize`` once all teams are in."""
    connection.query(SOURCE_DDL["events"].format(table="events"))
    connection.query(
        "INSERT INTO events SELECT generateUUIDv4(), if(number % 5 = 0, 'signed_up', "
        f"'$pageview'), {properties}, t, {team_id}, toString(number % {USERS}), '', t, "
        "generateUUIDv4(), t + toIntervalSecond(number % 20), "
        "toDateTime(t + toIntervalSecond(number % 20)) "
        f"FROM (SELECT number, {event_time('number', rows, days)} AS t FROM numbers({rows}))"
    )


def event_time(number: str, rows: int, days: int) -> str:
    """The timestamp ``generate`` gives event ``number`` of ``rows`` over ``days``."""
    first = (HISTORY_END - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"toDateTime64('{first}', 6, 'UTC') + "
        f"toIntervalSecond(intDiv({number} * {days * 86400}, {rows}))"
    )


def optimize(connection) -> None:
    connection.query("OPTIMIZE TABLE events FINAL")


def add_inserted_at_index(connection) -> None:
    """The minmax skip index on inserted_at that ``bqtui check`` suggests, materialised."""
    connection.query(
        "ALTER TABLE events ADD INDEX bqtui_inserted_at inserted_at TYPE minmax GRANULARITY 1"
    )
    connection.query(
        "ALTER TABLE events MATERIALIZE INDEX bqtui_inserted_at SETTINGS mutations_sync = 2"
    )


def read_stats(connection, sql: str, parameters: dict, runs: int = 5, keep: bool = False) -> dict:
    """Run a model's query (its build_query text, its query_parameters) ``runs`` times as the
    embedded source does (parameters bound server-side, Arrow batches): rows exported, what
    the last run read from storage by the engine's own count, and (``keep``) its batches."""
    # The query condition cache would remember the first run's granules and hide the scan.
    settings = {**STREAM_SETTINGS, "use_query_condition_cache": 0}
    bound, bound_parameters = bind_query(sql, parameters, UTC)
    chdb_parameters = {k.removeprefix("param_"): v for k, v in bound_parameters.items()}
    seen: list[dict] = []
    connection.set_progress_callback(seen.append)
    times, batches = [], []
    try:
        for _ in range(runs):
            seen.clear()
            started = time.perf_counter()
            result = connection.send_query(
                with_settings(bound, settings), "Arrow", params=chdb_parameters
            )
            batches = list(result.record_batch(rows_per_batch=65536))
            result.close()
            times.append(time.perf_counter() - started)
    finally:
        connection.set_progress_callback(None)
    last = seen[-1] if seen else {}
    return {
        "exported": sum(b.num_rows for b in batches),
        "read_rows": int(last.get("read_rows") or 0),
        "read_bytes": int(last.get("read_bytes") or 0),
        "ms": statistics.median(times) * 1000,
        "batches": batches if keep else None,
    }


def measure(connection, runs: int = 5) -> dict:
    export = ExportConfig(name="bench", dataset_id="d", table_id="t")
    model = get_model("events")
    parameters = model.query_parameters(export, *WINDOW)
    return read_stats(connection, model.build_query(export), parameters, runs)


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
            optimize(connection)
            print(
                f"<!-- {rows:,} rows generated in {time.monotonic() - started:.0f} s -->",
                file=sys.stderr,
            )
            for indexed in (False, True):
                if indexed:
                    add_inserted_at_index(connection)
                m = measure(connection)
                print(
                    f"| {rows:,} ({factor}×, {DAYS_PER_BASE * factor} days) | "
                    f"{'yes' if indexed else 'no'} | "
                    f"{m['exported']:,} | {m['read_rows']:,} | {m['read_bytes'] / 1e6:.1f} MB "
                    f"| {m['ms']:.1f} ms |",
                    flush=True,
                )
        finally:
            connection.close()
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
