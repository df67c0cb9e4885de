"""What `bqtui check` and the wizard's "Test connection" say about the ClickHouse side: the
server, the database, whether the tables and columns the model reads exist, and whether a skip
index keeps each window from reading the team's whole history."""

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bqtui.core.config import ExportConfig, Model
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


def check_source(export: ExportConfig, secrets: dict | None = None) -> SourceReport:
    """Connect, and report; never raises for a finding (a failed connection is one)."""
    with ClickHouseSource(export.source_dsn, secrets, busy_wait=5) as source:
        report = SourceReport(source=_redacted(export.source_dsn))
        try:
            report.server_version, report.database = _first_row(
                source, "SELECT version(), currentDatabase()"
            )
            _check_tables(source, export, report)
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
