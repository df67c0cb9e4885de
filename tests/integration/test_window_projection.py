"""The projection that keeps an events window to its own rows (issue 19, item 4), on both paths
to ClickHouse: `bqtui check` advises it where a window reads a day of rows, stops once it is
there, and the window's query returns exactly the same rows with it as without it."""

from datetime import UTC, datetime, timedelta

from bqtui.core.config import ExportConfig, Interval, Model
from bqtui.models import get_model
from bqtui.source.check import (
    PROJECTION_ADVICE_ROWS,
    WINDOW_PROJECTION,
    check_source,
    projection_statements,
)
from bqtui.source.clickhouse import ClickHouseSource

# A day of one team's events, the last ending now: more than a window may read unadvised.
DAY_ROWS = 1_200_000
LEGACY_EVERY = 50  # every 50th event has no inserted_at (only _timestamp), as old rows do


def insert_day(source: ClickHouseSource, end: datetime) -> None:
    """DAY_ROWS events over the day before ``end`` in PostHog's layout, each ingested 0–19 s
    after its timestamp."""
    source.client.command(
        "INSERT INTO events SELECT generateUUIDv4(), if(number % 5 = 0, 'signed_up', "
        "'$pageview'), concat('{\"$current_url\": \"https://example.com/', "
        "toString(number % 1000), '\"}'), t, 1, toString(number % 5000), '', t, "
        "generateUUIDv4(), if(number % {legacy:UInt32} = 0, NULL, ingested), "
        "toDateTime(ingested) FROM (SELECT number, {end:DateTime64(6, 'UTC')} - "
        "toIntervalMicrosecond(intDiv(number * 86400000000, {rows:UInt64})) AS t, "
        "t + toIntervalSecond(number % 20) AS ingested FROM numbers({rows:UInt64}))",
        parameters={"end": end, "rows": DAY_ROWS, "legacy": LEGACY_EVERY},
    )


def window_rows(source: ClickHouseSource, export: ExportConfig, start: datetime) -> list:
    model = get_model(Model.EVENTS)
    parameters = model.query_parameters(export, start, start + timedelta(minutes=5))
    rows = source.client.query(model.build_query(export), parameters=parameters).result_rows
    return sorted(rows)


def estimated_reads(source: ClickHouseSource, export: ExportConfig, start: datetime) -> int:
    model = get_model(Model.EVENTS)
    parameters = model.query_parameters(export, start, start + timedelta(minutes=5))
    sql = f"EXPLAIN ESTIMATE {model.build_query(export)}"
    return sum(row[3] for row in source.client.query(sql, parameters=parameters).result_rows)


def projection_notes(export: ExportConfig) -> list[str]:
    return [note for note in check_source(export).notes if note.startswith("events: each ")]


def test_check_advises_the_window_projection_and_the_window_keeps_its_rows(fresh_source):
    export = ExportConfig(
        name="w",
        dataset_id="d",
        table_id="t",
        interval=Interval.FIVE_MINUTES,
        source_dsn=fresh_source,
    )
    end = datetime.now(UTC).replace(microsecond=0)
    window_start = end - timedelta(minutes=30)
    with ClickHouseSource(fresh_source) as source:
        insert_day(source, end)
        without = window_rows(source, export, window_start)
        assert len(without) > 1000
        legacy = source.client.query(
            "SELECT count() FROM events WHERE inserted_at IS NULL "
            "AND _timestamp >= {start:DateTime} AND _timestamp < {end:DateTime}",
            parameters={"start": window_start, "end": window_start + timedelta(minutes=5)},
        ).first_row[0]
        assert legacy > 0  # rows without inserted_at too: both branches of the predicate

        [note] = projection_notes(export)
        assert note.startswith("events: each 5-minute window reads about ")
        assert int(note.split("about ")[1].split(" rows")[0].replace(",", "")) >= (
            PROJECTION_ADVICE_ROWS
        )
        assert "the sort key (team_id, toDate(timestamp), event, cityHash64(distinct_id), " in note
        assert note.endswith(
            "Add it once (a metadata change, then a background build): "
            + projection_statements("events")
        )
        # A projection that holds only row offsets cannot keep a window to its rows.
        source.client.command(
            "ALTER TABLE events MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'"
        )
        source.client.command(
            "ALTER TABLE events ADD PROJECTION offsets (SELECT _part_offset "
            "ORDER BY team_id, inserted_at)"
        )
        assert len(projection_notes(export)) == 1

        for statement in projection_statements("events").split(";"):
            if statement.strip():
                source.client.command(statement, settings={"mutations_sync": 2})
        assert projection_notes(export) == []
        assert WINDOW_PROJECTION in str(
            source.client.query("SELECT name FROM system.projections").result_rows
        )
        with_projection = window_rows(source, export, window_start)
        assert with_projection == without
        assert estimated_reads(source, export, window_start) <= 10 * len(without)
