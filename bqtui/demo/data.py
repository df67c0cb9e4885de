"""Demo data for the ClickHouse source tables (`events`, `person`, `person_distinct_id2`).

`generate` writes a small, realistic product-analytics dataset from Python: several teams, users
who browse anonymously and later identify, sessions with UTM and click ids, person version bumps,
merges and deletions, late, duplicated and legacy (NULL `inserted_at`) events, unicode
everywhere and a few malformed-but-possible property strings. Same seed and arguments give
byte-identical rows.

`generate_bulk_events` fills `events` with millions of rows inside ClickHouse, for benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from bqtui.demo.catalog import _SITES
from bqtui.demo.people import DemoWriter
from bqtui.demo.rows import distinct_id_table, events_table, person_table
from bqtui.source.clickhouse import Client, quote_identifier

SOURCE_DDL: dict[str, str] = {
    "events": """
CREATE TABLE IF NOT EXISTS {table} (
    uuid UUID,
    event String,
    properties String,              -- JSON object text; may hold $set, $set_once, $ip, $session_id,
                                    -- $current_url, $pathname, $host, $referring_domain, utm_* ...
    timestamp DateTime64(6, 'UTC'),
    team_id Int64,
    distinct_id String,
    elements_chain String,
    created_at DateTime64(6, 'UTC'),
    person_id UUID,
    inserted_at Nullable(DateTime64(6, 'UTC')),   -- when the row reached ClickHouse
    _timestamp DateTime                           -- ingestion time, second precision
) ENGINE = ReplacingMergeTree(_timestamp)
ORDER BY (team_id, toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))
""",
    "person": """
CREATE TABLE IF NOT EXISTS {table} (
    id UUID,
    created_at DateTime64(3, 'UTC'),
    team_id Int64,
    properties String,
    is_identified Int8,
    is_deleted Int8,
    version UInt64,
    _timestamp DateTime
) ENGINE = ReplacingMergeTree(version) ORDER BY (team_id, id)
""",
    "person_distinct_id2": """
CREATE TABLE IF NOT EXISTS {table} (
    team_id Int64,
    distinct_id String,
    person_id UUID,
    is_deleted Int8,
    version Int64,
    _timestamp DateTime
) ENGINE = ReplacingMergeTree(version) ORDER BY (team_id, distinct_id)
""",
}
"""CREATE TABLE statements of the source tables; `{table}` is the (qualified) table name."""


def qualified_table(table: str, database: str | None = None) -> str:
    """`table`, or `database`.`table` when a database is given, quoted for ClickHouse SQL."""
    if database is None:
        return quote_identifier(table)
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


def create_source_tables(client: Client, database: str | None = None) -> None:
    """Create the source tables (and the database) unless they exist."""
    if database is not None:
        client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    for table, ddl in SOURCE_DDL.items():
        client.command(ddl.format(table=qualified_table(table, database)))


@dataclass(frozen=True)
class DemoSummary:
    """What `generate` wrote."""

    team_ids: tuple[int, ...]
    start: datetime
    end: datetime
    event_rows: int
    person_rows: int
    person_distinct_id_rows: int
    persons: int
    sessions: int


_MIN_RANGE = timedelta(hours=1)

# Row versions and retried inserts must stay visible as separate rows, as they do in production
# where they arrive in different inserts; ClickHouse would otherwise collapse them per block.
_KEEP_ROW_VERSIONS = {"optimize_on_insert": 0}


def _insert_in_batches(
    client: Client, table: str, rows: pa.Table, database: str | None, batch_rows: int
) -> None:
    for offset in range(0, rows.num_rows, batch_rows):
        client.insert_arrow(
            table, rows.slice(offset, batch_rows), database=database, settings=_KEEP_ROW_VERSIONS
        )


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def generate(
    client: Client,
    *,
    start: datetime,
    end: datetime,
    seed: int = 42,
    team_ids: tuple[int, ...] = (1, 2, 3),
    users_per_team: int = 200,
    sessions_per_user: float = 3.0,
    database: str | None = None,
    batch_rows: int = 10_000,
) -> DemoSummary:
    """Write a realistic demo dataset, ingested over [start, end), into the source tables.

    Creates the tables if needed. Rows are a function of the arguments only: the same seed and
    arguments give identical rows, uuids included.
    """
    start, end = _as_utc(start), _as_utc(end)
    if end - start < _MIN_RANGE:
        raise ValueError(f"the demo time range must span at least {_MIN_RANGE}")
    writer = DemoWriter(seed, start, end)
    for index, team_id in enumerate(team_ids):
        writer.simulate_team(
            team_id, _SITES[index % len(_SITES)], users_per_team, sessions_per_user
        )
    writer.add_quirks()
    # Insert in arrival order, as the ingestion pipeline would.
    events = sorted(writer.events, key=lambda event: event.ingested_at)
    person_rows = sorted(writer.person_rows, key=lambda row: row.written_at)
    distinct_id_rows = sorted(writer.distinct_id_rows, key=lambda row: row.written_at)

    create_source_tables(client, database)
    _insert_in_batches(client, "events", events_table(events), database, batch_rows)
    _insert_in_batches(client, "person", person_table(person_rows), database, batch_rows)
    _insert_in_batches(
        client, "person_distinct_id2", distinct_id_table(distinct_id_rows), database, batch_rows
    )
    return DemoSummary(
        team_ids=tuple(team_ids),
        start=start,
        end=end,
        event_rows=len(events),
        person_rows=len(person_rows),
        person_distinct_id_rows=len(distinct_id_rows),
        persons=writer.persons,
        sessions=writer.sessions,
    )
