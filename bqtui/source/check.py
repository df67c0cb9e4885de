"""What `bqtui check` and the wizard's "Test connection" say about the ClickHouse side: the
server, the database, whether the tables and columns the model reads exist, whether a skip
index keeps each window from reading the team's whole history, and whether a projection keeps
an events window from reading its whole day."""

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bqtui.core.config import ExportConfig, Interval, Model
from bqtui.core.errors import BqtuiError
from bqtui.source.clickhouse import ClickHouseSource

# The columns each model reads, by table (extra columns are ignored).
EVENT_COLUMNS = (
    "uuid",
    "event",
    "properties",
    "timestamp",
    "team_id",
    "distinct_id",
    "inserted_at",
    "_timestamp",
)
READS: dict[Model, dict[str, tuple[str, ...]]] = {
    Model.EVENTS: {"events": (*EVENT_COLUMNS, "elements_chain")},
    Model.SESSIONS: {"events": EVENT_COLUMNS},
    Model.PERSONS: {
        "person": (
            "id",
            "created_at",
            "team_id",
            "properties",
            "is_deleted",
            "version",
            "_timestamp",
        ),
        "person_distinct_id2": (
            "team_id",
            "distinct_id",
            "person_id",
            "is_deleted",
            "version",
            "_timestamp",
        ),
    },
}
# The column each table is selected by per window, and the skip index that prunes it.
WINDOW_COLUMNS = {
    "events": ("inserted_at", "_timestamp"),
    "person": ("_timestamp",),
    "person_distinct_id2": ("_timestamp",),
}
# The events projection that keeps a window to its own rows: the columns the events model
# reads, sorted by ingestion time (_timestamp last, for rows without inserted_at). PostHog's
# sort key spreads a day's ingestion times over all of that day's granules, so an index on the
# table itself can at best bring a window down to its day (benchmarks/README.md).
WINDOW_PROJECTION = "bqtui_window"
WINDOW_PROJECTION_KEY = ("team_id", "inserted_at", "_timestamp")
# Below this many rows read per window, reading the window's day is cheaper than the
# projection's disk (it stores the columns bqtui reads once more).
PROJECTION_ADVICE_ROWS = 1_000_000
# Windows shorter than a day, which the projection shrinks (a day's window reads its day).
SHORT_WINDOWS = {Interval.FIVE_MINUTES: ("5-minute", 300), Interval.HOUR: ("hourly", 3600)}


@dataclass
class SourceReport:
    source: str  # the DSN, without credentials
    server_version: str | None = None
    database: str | None = None
    tables: dict[str, list[str]] = field(default_factory=dict)  # found: table → columns
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def lines(self) -> list[str]:
        out = [f"ClickHouse source {self.source}"]
        if self.server_version:
            out.append(f"  ✓ server {self.server_version}, database {self.database}")
        for table, columns in self.tables.items():
            out.append(f"  ✓ table {table} ({len(columns)} columns)")
        out.extend(f"  ✗ {problem}" for problem in self.problems)
        out.extend(f"Note: {note}" for note in self.notes)
        return out


def index_statements(table: str, column: str) -> str:
    name = f"bqtui_{column.strip('_')}"
    return (
        f"ALTER TABLE {table} ADD INDEX {name} {column} TYPE minmax GRANULARITY 1; "
        f"ALTER TABLE {table} MATERIALIZE INDEX {name};"
    )


def projection_statements(table: str, dedupes: bool = True) -> str:
    """The statements that add the window projection to ``table`` and build it for the parts
    it already has. Tables whose merges drop rows (ReplacingMergeTree…) must rebuild it."""
    columns = ", ".join(READS[Model.EVENTS]["events"])
    statements = []
    if dedupes:
        statements.append(
            f"ALTER TABLE {table} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';"
        )
    statements += [
        f"ALTER TABLE {table} ADD PROJECTION {WINDOW_PROJECTION} (SELECT {columns} "
        f"ORDER BY ({', '.join(WINDOW_PROJECTION_KEY)}));",
        f"ALTER TABLE {table} MATERIALIZE PROJECTION {WINDOW_PROJECTION};",
    ]
    return " ".join(statements)


def check_source(export: ExportConfig, secrets: dict | None = None) -> SourceReport:
    """Connect, and report; never raises for a finding (a failed connection is one)."""
    with ClickHouseSource(export.source_dsn, secrets, busy_wait=5) as source:
        report = SourceReport(source=_redacted(export.source_dsn))
        try:
            report.server_version, report.database = _first_row(
                source, "SELECT version(), currentDatabase()"
            )
            _check_tables(source, export, report)
            _window_projection_note(source, export, report)
            if Model(export.model) == Model.SESSIONS and "events" in report.tables:
                _sessions_note(source, export, report)
        except BqtuiError as error:
            report.problems.append(str(error))
        except Exception as error:  # noqa: BLE001 - a driver error is a finding, not a crash
            report.problems.append(f"ClickHouse query failed: {str(error).splitlines()[0]}")
        return report


def _first_row(source: ClickHouseSource, sql: str, parameters: dict | None = None) -> Sequence[Any]:
    """The query's first row; driver errors are left to ``check_source``, which reports them."""
    row = source.client.query(sql, parameters=parameters or {}).first_row
    if row is None:  # never for the aggregates asked here
        raise ValueError(f"no row for {sql.split(' FROM ')[0]}")
    return row


def _sessions_note(source: ClickHouseSource, export: ExportConfig, report: SourceReport) -> None:
    """What a sessions window reads depends on the kind of session ids (see models.sessions)."""
    from bqtui.models.sessions import UUID7_CLOCK_MARGIN_HOURS, UUID7_PATTERN

    uuid7, sessions = _first_row(
        source,
        "SELECT countIf(match(s, {pattern:String})), count() FROM (SELECT DISTINCT "
        "JSONExtractString(properties, '$session_id') AS s FROM events WHERE team_id = "
        "{team:Int64} AND toDate(timestamp) >= (SELECT max(toDate(timestamp)) FROM events "
        "WHERE team_id = {team:Int64}) - 1 AND s != '')",
        {"pattern": UUID7_PATTERN, "team": export.team_id},
    )
    if not sessions:
        return
    if uuid7 == sessions:
        report.notes.append(
            f"sessions: all {sessions:,} sessions of the team's last day have UUIDv7 ids, so "
            "a window reads the events since its sessions' starts (less "
            f"{UUID7_CLOCK_MARGIN_HOURS} h for client clocks), whatever their length."
        )
        return
    report.notes.append(
        f"sessions: {sessions - uuid7:,} of {sessions:,} sessions of the team's last day have "
        "ids that are not UUIDv7 (an SDK or app that sets its own $session_id). Such ids carry "
        "no start time, so a window that holds one reads the team's events from the start of "
        "its history (up to the window's end: the inserted_at skip index bounds that for "
        "backfills). No skip index bounds it exactly; UUIDv7 session ids (PostHog's SDKs make "
        "them) keep each window to the sessions' own days."
    )


def _redacted(dsn: str) -> str:
    from bqtui.source.dsn import redact_dsn

    return redact_dsn(dsn)


def _check_tables(source: ClickHouseSource, export: ExportConfig, report: SourceReport) -> None:
    needed = READS[Model(export.model)]
    rows = source.client.query(
        "SELECT table, name FROM system.columns WHERE database = currentDatabase() "
        "AND table IN {tables:Array(String)}",
        parameters={"tables": list(needed)},
    ).result_rows
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    for table, columns in needed.items():
        if table not in found:
            report.problems.append(
                f"table {table} is missing in database {report.database}: the "
                f"{export.model} model reads it (check the DSN's database)"
            )
            continue
        report.tables[table] = found[table]
        lacking = [c for c in columns if c not in found[table]]
        if lacking:
            report.problems.append(
                f"table {table} lacks column(s) {', '.join(lacking)}, which the "
                f"{export.model} model reads"
            )
    indexed = {
        (table, expression.strip("`() "))
        for table, expression in source.client.query(
            "SELECT table, expr FROM system.data_skipping_indices "
            "WHERE database = currentDatabase()"
        ).result_rows
    }
    for table in report.tables:
        for column in WINDOW_COLUMNS.get(table, ()):
            if (table, column) not in indexed and column in found.get(table, []):
                report.notes.append(
                    f"{table}.{column} has no skip index, so every window reads that column "
                    f"for the team's whole history. Add one once (a metadata change, then a "
                    f"background build): {index_statements(table, column)}"
                )


def _window_projection_note(
    source: ClickHouseSource, export: ExportConfig, report: SourceReport
) -> None:
    """Advise the window projection where an events window reads many more rows than it holds:
    at least PROJECTION_ADVICE_ROWS by the engine's own estimate of the latest window."""
    window = SHORT_WINDOWS.get(Interval(export.interval))
    columns = READS[Model.EVENTS]["events"]
    found = report.tables.get("events", [])
    if Model(export.model) != Model.EVENTS or window is None or set(columns) - set(found):
        return
    try:  # system.projections lists projections since ClickHouse 24.x; older: no advice
        projections = source.client.query(
            "SELECT sorting_key, query FROM system.projections "
            "WHERE database = currentDatabase() AND table = 'events'"
        ).result_rows
    except Exception:  # noqa: BLE001 - advice only, never a finding
        return
    if any(_serves_windows(list(key), text, columns) for key, text in projections):
        return
    label, seconds = window
    rows = _window_rows_estimate(source, export, seconds)
    if rows < PROJECTION_ADVICE_ROWS:
        return
    engine, sorting_key = _first_row(
        source,
        "SELECT engine, sorting_key FROM system.tables "
        "WHERE database = currentDatabase() AND name = 'events'",
    )
    dedupes = engine.removeprefix("Replicated").removeprefix("Shared") != "MergeTree"
    report.notes.append(
        f"events: each {label} window reads about {rows:,} rows, at best the granules of its "
        f"whole day: the sort key ({sorting_key}) spreads a day's ingestion times over all of "
        "them. A projection of the columns bqtui reads, sorted by ingestion time, keeps a "
        "window to its own rows (it stores those columns once more). Add it once (a metadata "
        f"change, then a background build): {projection_statements('events', dedupes)}"
    )


def _serves_windows(key: list[str], query: str, columns: Sequence[str]) -> bool:
    """A projection sorted by team then ingestion time that holds every column read."""
    selected = query.split(" ORDER BY ")[0]
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", selected))
    holds = "*" in selected or set(columns) <= names
    return key[:2] == list(WINDOW_PROJECTION_KEY[:2]) and holds


def _window_rows_estimate(source: ClickHouseSource, export: ExportConfig, seconds: int) -> int:
    """The rows the export's latest window reads (ClickHouse's estimate from its indexes and
    projections: whole granules, nothing read), 0 where the server cannot say."""
    from bqtui.models import get_model

    model = get_model(export.model)
    end = datetime.now(UTC)
    parameters = model.query_parameters(export, end - timedelta(seconds=seconds), end)
    try:
        estimates = source.client.query(
            f"EXPLAIN ESTIMATE {model.build_query(export)}", parameters=parameters
        ).result_rows
    except Exception:  # noqa: BLE001 - advice only, never a finding
        return 0
    return sum(int(row[3]) for row in estimates)  # database, table, parts, rows, marks
