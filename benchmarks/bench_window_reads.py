"""What one 5-minute window costs ClickHouse as the history grows: rows read, bytes read and
time of bqtui's own events query, for each layout a user can add to the events table (none, a
skip index on inserted_at, projections sorted by ingestion time), and the disk each adds.

    .venv/bin/python benchmarks/bench_window_reads.py [--base 1000000] [--factors 1 30]

Histories of ``base × factor`` events at the same rate (``base`` events every two days) of one
team, so a longer history is more days, as it grows in production; PostHog's layout (ORDER BY
team_id, toDate(timestamp), …; ingestion a few seconds after the event), in the embedded
ClickHouse. The window is the same 5 minutes on the last day. Rows and bytes read are
the engine's own statistics (chdb's progress callback: what the query read from storage).
Each layout is added to the same table, measured, checked to return exactly the rows the
table returns without it, and dropped before the next.
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import chdb
import pyarrow as pa
from clickhouse_connect.driver.binding import bind_query

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bqtui.core.config import ExportConfig  # noqa: E402
from bqtui.demo.data import SOURCE_DDL  # noqa: E402
from bqtui.models import get_model  # noqa: E402
from bqtui.source.check import WINDOW_PROJECTION, projection_statements  # noqa: E402
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


def measure(connection, runs: int = 5, keep: bool = False) -> dict:
    export = ExportConfig(name="bench", dataset_id="d", table_id="t")
    model = get_model("events")
    parameters = model.query_parameters(export, *WINDOW)
    return read_stats(connection, model.build_query(export), parameters, runs, keep)


@dataclass(frozen=True)
class Layout:
    name: str
    add: tuple[str, ...]  # statements; a MATERIALIZE waits for its mutation
    drop: tuple[str, ...]


REBUILD_ON_MERGE = "ALTER TABLE events MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'"
PROJECTION_KEY = "team_id, inserted_at, _timestamp"


def projection_layout(name: str, projection: str, select: str) -> Layout:
    return Layout(
        name,
        (
            REBUILD_ON_MERGE,
            f"ALTER TABLE events ADD PROJECTION {projection} (SELECT {select} "
            f"ORDER BY ({PROJECTION_KEY}))",
            f"ALTER TABLE events MATERIALIZE PROJECTION {projection}",
        ),
        (f"ALTER TABLE events DROP PROJECTION {projection}",),
    )


SKIP_INDEX = (
    "ALTER TABLE events ADD INDEX bqtui_inserted_at inserted_at TYPE minmax GRANULARITY 1",
    "ALTER TABLE events MATERIALIZE INDEX bqtui_inserted_at",
)
# What `bqtui check` prints, as it prints it.
CHECKS_PROJECTION = tuple(
    statement.strip()
    for statement in projection_statements("events").split(";")
    if statement.strip()
)
LAYOUTS = (
    Layout("none", (), ()),
    Layout(
        "skip index (minmax on inserted_at)",
        SKIP_INDEX,
        ("ALTER TABLE events DROP INDEX bqtui_inserted_at",),
    ),
    projection_layout("part-offset projection", "bench_offsets", "_part_offset"),
    Layout(
        "projection of the columns read (`bqtui check`)",
        CHECKS_PROJECTION,
        (f"ALTER TABLE events DROP PROJECTION {WINDOW_PROJECTION}",),
    ),
    Layout(
        "skip index + projection of the columns read",
        SKIP_INDEX + CHECKS_PROJECTION,
        (
            "ALTER TABLE events DROP INDEX bqtui_inserted_at",
            f"ALTER TABLE events DROP PROJECTION {WINDOW_PROJECTION}",
        ),
    ),
    projection_layout("full projection (SELECT *)", "bench_all", "*"),
)


def run_statements(connection, statements: tuple[str, ...]) -> None:
    for statement in statements:
        waits = " MATERIALIZE " in statement or " DROP " in statement
        connection.query(statement + (" SETTINGS mutations_sync = 2" if waits else ""))


def storage(connection) -> dict:
    """Bytes on disk of the table's parts, of its skip indexes and of its projections."""

    def total(sql: str) -> int:
        return int(connection.query(sql, "TSV").data().strip() or 0)

    where = "database = currentDatabase() AND table = 'events'"
    return {
        "table": total(f"SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND {where}"),
        "added": total(
            "SELECT sum(data_compressed_bytes + marks_bytes) FROM system.data_skipping_indices "
            f"WHERE {where}"
        )
        + total(f"SELECT sum(bytes_on_disk) FROM system.projection_parts WHERE active AND {where}"),
    }


def as_sorted_table(batches: list) -> pa.Table:
    return pa.Table.from_batches(batches).sort_by("uuid")


def measure_layouts(connection, label: str) -> None:
    """Each layout in turn on the same table: its reads, its disk, the same rows as none."""
    expected = None
    table_bytes = storage(connection)["table"]
    for layout in LAYOUTS:
        started = time.monotonic()
        run_statements(connection, layout.add)
        built = time.monotonic() - started
        m = measure(connection, keep=True)
        rows = as_sorted_table(m["batches"])
        expected = rows if expected is None else expected
        assert rows.equals(expected), f"{layout.name}: the window's rows differ from none's"
        added = storage(connection)["added"]
        shown = f"{added / 1e6:.1f} MB" if added >= 100_000 else f"{added / 1e3:.0f} kB"
        print(
            f"| {label} | {layout.name} | {m['exported']:,} | {m['read_rows']:,} "
            f"| {m['read_rows'] / m['exported']:.0f}× | {m['read_bytes'] / 1e6:.1f} MB "
            f"| {shown} ({added / table_bytes:.1%}) | {built:.0f} s "
            f"| {m['ms']:.1f} ms |",
            flush=True,
        )
        run_statements(connection, layout.drop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=int, default=1_000_000)
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 30])
    args = parser.parse_args()
    print(
        "| history | layout | exported | rows read | read / exported | bytes read "
        "| disk added (of the table) | build | median time |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for factor in args.factors:
        path = Path(tempfile.mkdtemp(prefix="bqtui-bench-reads-"))
        connection = chdb.connect(str(path))
        try:
            rows = args.base * factor
            started = time.monotonic()
            generate(connection, rows, DAYS_PER_BASE * factor)
            optimize(connection)
            table_bytes = storage(connection)["table"]
            print(
                f"<!-- {rows:,} rows generated in {time.monotonic() - started:.0f} s, "
                f"{table_bytes / 1e6:.0f} MB on disk -->",
                file=sys.stderr,
            )
            measure_layouts(connection, f"{rows:,} ({factor}×, {DAYS_PER_BASE * factor} days)")
        finally:
            connection.close()
            shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
