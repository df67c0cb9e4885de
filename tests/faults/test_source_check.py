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
