"""`bqtui check` on the ClickHouse side: server, database, tables and columns the model reads,
and the skip index that keeps a window from reading the team's whole history."""

import json

from tests.faults.conftest import World


def test_check_reports_the_server_the_tables_and_a_missing_skip_index(events_world: World):
    world = events_world
    checked = world.bqtui("check", "ev")
    assert checked.code == 0, checked.out + checked.err
    assert f"ClickHouse source {world.source_dsn}" in checked.out
    assert "  ✓ server 26." in checked.out and ", database default" in checked.out
    assert "  ✓ table events (11 columns)" in checked.out
    assert (
        "Note: events.inserted_at has no skip index, so every window reads that column for the "
        "team's whole history. Add one once (a metadata change, then a background build): "
        "ALTER TABLE events ADD INDEX bqtui_inserted_at inserted_at TYPE minmax GRANULARITY 1; "
        "ALTER TABLE events MATERIALIZE INDEX bqtui_inserted_at;" in checked.out
    )
    world.chdb(
        "command",
        "ALTER TABLE events ADD INDEX bqtui_inserted_at inserted_at TYPE minmax GRANULARITY 1",
    )
    world.chdb(
        "command",
        "ALTER TABLE events ADD INDEX bqtui_timestamp _timestamp TYPE minmax GRANULARITY 1",
    )
    indexed = world.bqtui("check", "ev", "--json")
    assert indexed.code == 0, indexed.err
    source = json.loads(indexed.out)["source"]
    assert source["ok"] is True and source["notes"] == [] and source["problems"] == []
    assert source["tables"]["events"][:3] == ["uuid", "event", "properties"]


def test_check_names_a_missing_table_and_a_missing_column(world: World):
    world.add("people", model="persons", table="people")
    world.chdb("command", "DROP TABLE person")
    world.chdb("command", "ALTER TABLE person_distinct_id2 DROP COLUMN is_deleted")
    checked = world.bqtui("check", "people")
    assert checked.code == 1
    assert (
        "  ✗ table person is missing in database default: the persons model reads it (check "
        "the DSN's database)" in checked.out
    )
    assert (
        "  ✗ table person_distinct_id2 lacks column(s) is_deleted, which the persons model reads"
        in checked.out
    )


# A day of team 1's events ending now, ingested 0–19 s after each: a window of it, without a
# projection sorted by ingestion time, reads every granule of the day (over a million rows).
_DAY_OF_EVENTS = (
    "INSERT INTO events SELECT generateUUIDv4(), '$pageview', '{}', t, 1, "
    "toString(number % 5000), '', t, generateUUIDv4(), t + toIntervalSecond(number % 20), "
    "toDateTime(t + toIntervalSecond(number % 20)) FROM (SELECT number, now64(6, 'UTC') - "
    "toIntervalMicrosecond(intDiv(number * 86400000000, 1200000)) AS t FROM numbers(1200000))"
)
_PROJECTION = (
    "ALTER TABLE events MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'; "
    "ALTER TABLE events ADD PROJECTION bqtui_window (SELECT uuid, event, properties, timestamp, "
    "team_id, distinct_id, inserted_at, _timestamp, elements_chain ORDER BY (team_id, "
    "inserted_at, _timestamp)); ALTER TABLE events MATERIALIZE PROJECTION bqtui_window;"
)


def test_check_advises_the_window_projection_until_the_table_has_it(events_world: World):
    world = events_world
    world.chdb("command", _DAY_OF_EVENTS)
    checked = world.bqtui("check", "ev")
    assert checked.code == 0, checked.out + checked.err
    assert "Note: events.inserted_at has no skip index" in checked.out
    assert "Note: events: each hourly window reads about 1,200,120 rows, at best the granules" in (
        checked.out
    )
    assert (
        "of its whole day: the sort key (team_id, toDate(timestamp), event, "
        "cityHash64(distinct_id), cityHash64(uuid)) spreads a day's ingestion times over all of "
        "them. A projection of the columns bqtui reads, sorted by ingestion time, keeps a window "
        "to its own rows (it stores those columns once more). Add it once (a metadata change, "
        f"then a background build): {_PROJECTION}\n" in checked.out
    )
    for statement in _PROJECTION.split("; "):
        world.chdb("command", statement.rstrip(";"))
    projected = world.bqtui("check", "ev", "--json")
    assert projected.code == 0, projected.err
    notes = json.loads(projected.out)["source"]["notes"]
    assert [note.split(" has ")[0] for note in notes] == ["events.inserted_at", "events._timestamp"]
