"""`bqtui verify`: a clean export verifies equal; rows deleted, duplicated, made stale or
dropped in BigQuery are named exactly, by day and by key, and `--repair` makes it equal."""

import json

from tests.faults.conftest import PROJECT, T0, World, iso


def bq(world: World, sql: str) -> list[dict]:
    return [dict(r) for r in world.google.admin_client(PROJECT).query(sql).result()]


def test_events_verify_names_missing_and_duplicated_rows_and_repair_fixes_them(
    events_world: World,
):
    world = events_world
    assert world.bqtui("run", "ev").code == 0
    clean = world.bqtui("verify", "ev")
    assert clean.code == 0, clean.err
    assert clean.out.splitlines()[-1] == (
        "OK: BigQuery holds exactly what ClickHouse holds (120 events, through 2024-05-01 "
        "03:00 UTC)."
    )
    table = f"`{PROJECT}.{world.dataset}.events_export`"
    uuids = sorted(r["uuid"] for r in bq(world, f"SELECT uuid FROM {table}"))
    gone, doubled = uuids[:2], uuids[5]
    bq(world, f"DELETE FROM {table} WHERE uuid IN ('{gone[0]}', '{gone[1]}')")
    bq(
        world,
        f"INSERT INTO {table} SELECT * REPLACE (TIMESTAMP_ADD(bq_ingested_timestamp, "
        f"INTERVAL 1 HOUR) AS bq_ingested_timestamp) FROM {table} WHERE uuid = '{doubled}'",
    )

    found = world.bqtui("verify", "ev", "--json")
    assert found.code == 1
    report = json.loads(found.out)
    assert report["missing"]["count"] == 2 and sorted(report["missing"]["listed"]) == gone
    assert report["duplicated"] == {"count": 1, "listed": [f"{doubled} ×2"]}
    assert report["extra"]["count"] == 0
    assert [
        (d["day"], d["source"], d["bigquery"], d["missing"], d["duplicated"], d["ok"])
        for d in report["days"]
    ] == [("2024-05-01", 120, 119, 2, 1, False)]
    assert report["verdict"] == "DIFFERS: 2 missing, 1 duplicated."

    refused = world.bqtui("verify", "ev", "--repair")  # no terminal, no --yes
    assert refused.code == 2
    assert refused.err.strip().endswith(
        "--repair changes BigQuery: confirm on a terminal, or pass --yes."
    )
    repaired = world.bqtui("verify", "ev", "--repair", "--yes")
    assert repaired.code == 0, repaired.err
    assert "Repair plan:" in repaired.out
    assert f"keeping the first loaded copy of each of: {doubled}" in repaired.out
    assert "re-export window 2024-05-01 " in repaired.out
    assert repaired.out.splitlines()[-1].startswith("OK: BigQuery holds exactly")
    world.assert_exactly_once_and_clean()


def test_verify_says_what_it_will_scan_and_refuses_above_max_bytes(events_world: World):
    world = events_world
    assert world.bqtui("run", "ev").code == 0
    world.google.proxy.dry_run_bytes = 12_345_678
    shown = world.bqtui("verify", "ev")
    assert "BigQuery will scan about 12,345,678 bytes (dry run)." in shown.out
    refused = world.bqtui("verify", "ev", "--max-bytes", "1000")
    assert refused.code == 2
    assert refused.err.strip() == (
        f"bqtui: Verify would scan about 12,345,678 bytes of {PROJECT}.{world.dataset}."
        "events_export, over --max-bytes 1,000. Narrow it with --start/--end (days), or "
        "raise --max-bytes."
    )


PERSON_ROWS = """
INSERT INTO person (id, created_at, team_id, properties, is_identified, is_deleted, version,
    _timestamp) VALUES
  ('00000000-0000-0000-0000-000000000001', '2024-05-01 00:00:00', 1, '{"a":1}', 1, 0, 3,
   '2024-05-01 00:10:00'),
  ('00000000-0000-0000-0000-000000000002', '2024-05-01 00:00:00', 1, '{"b":2}', 1, 0, 1,
   '2024-05-01 01:10:00')
"""
DISTINCT_ROWS = """
INSERT INTO person_distinct_id2 (team_id, distinct_id, person_id, is_deleted, version,
    _timestamp) VALUES
  (1, 'anna', '00000000-0000-0000-0000-000000000001', 0, 1, '2024-05-01 00:10:00'),
  (1, 'anna-phone', '00000000-0000-0000-0000-000000000001', 0, 2, '2024-05-01 00:20:00'),
  (1, 'bob', '00000000-0000-0000-0000-000000000002', 0, 1, '2024-05-01 01:10:00')
"""


def test_persons_verify_names_missing_and_stale_keys_and_repair_fixes_them(world: World):
    world.chdb("command", PERSON_ROWS)
    world.chdb("command", DISTINCT_ROWS)
    world.add("people", model="persons", table="people")
    assert world.bqtui("run", "people").code == 0
    assert world.bqtui("verify", "people").code == 0
    table = f"`{PROJECT}.{world.dataset}.people`"
    bq(world, f"DELETE FROM {table} WHERE distinct_id = 'bob'")
    bq(world, f"UPDATE {table} SET person_version = 2 WHERE distinct_id = 'anna'")
    found = json.loads(world.bqtui("verify", "people", "--json").out)
    assert (found["missing"], found["stale"]) == (
        {"count": 1, "listed": ["bob"]},
        {"count": 1, "listed": ["anna"]},
    )
    repaired = world.bqtui("verify", "people", "--repair", "--yes")
    assert repaired.code == 0, repaired.out + repaired.err
    rows = bq(world, f"SELECT distinct_id, person_version FROM {table} ORDER BY distinct_id")
    assert [(r["distinct_id"], r["person_version"]) for r in rows] == [
        ("anna", 3),
        ("anna-phone", 3),
        ("bob", 1),
    ]


SESSION_EVENTS = """
INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, elements_chain,
    created_at, person_id, inserted_at, _timestamp)
SELECT generateUUIDv4(), '$pageview',
    concat('{"$session_id": "s', toString(number % 3), '", "$current_url": "https://x/"}'),
    t, 1, 'u', '', t, generateUUIDv4(), t, toDateTime(t)
FROM (SELECT number, toDateTime64('2024-05-01 00:00:00', 6, 'UTC')
    + toIntervalSecond(number * 60) AS t FROM numbers(90))
"""


def test_sessions_verify_names_a_dropped_session_and_repair_brings_it_back(world: World):
    world.chdb("command", SESSION_EVENTS)
    world.add("sess", model="sessions", table="sessions")
    assert (
        world.bqtui("run", "sess", "--start", iso(T0), "--end", iso(T0.replace(hour=3))).code == 0
    )
    assert world.bqtui("verify", "sess").code == 0
    table = f"`{PROJECT}.{world.dataset}.sessions`"
    bq(world, f"DELETE FROM {table} WHERE session_id = 's1'")
    bq(world, f"UPDATE {table} SET pageview_count = 1 WHERE session_id = 's2'")
    found = world.bqtui("verify", "sess")
    assert found.code == 1
    assert "Missing (1): s1" in found.out and "Stale (1): s2" in found.out
    assert world.bqtui("verify", "sess", "--repair", "--yes").code == 0
    rows = bq(world, f"SELECT session_id, pageview_count FROM {table} ORDER BY session_id")
    assert [(r["session_id"], r["pageview_count"]) for r in rows] == [
        ("s0", 30),
        ("s1", 30),
        ("s2", 30),
    ]


def test_inserted_at_is_filled_where_the_table_has_it_and_verify_counts_by_it(world: World):
    from google.cloud import bigquery as bq_api

    from bqtui.models import get_model

    world.insert_hours(T0, 3)
    world.add(table="with_inserted_at")
    schema = get_model("events").schema(False) + [bq_api.SchemaField("_inserted_at", "TIMESTAMP")]
    world.google.admin_client(PROJECT).create_table(
        bq_api.Table(f"{PROJECT}.{world.dataset}.with_inserted_at", schema=schema)
    )
    ran = world.bqtui("run", "ev")
    assert ran.code == 0 and "lacks model fields" not in ran.err
    table = f"`{PROJECT}.{world.dataset}.with_inserted_at`"
    rows = bq(world, f"SELECT uuid, timestamp, _inserted_at FROM {table}")
    assert len(rows) == 120
    assert all(r["_inserted_at"] == r["timestamp"] for r in rows)  # the seed ingests at once
    # A row of a window bqtui has not recorded done (ingested later) is not counted.
    bq(
        world,
        f"INSERT INTO {table} (uuid, timestamp, _inserted_at) VALUES ('late', "
        "TIMESTAMP '2024-05-01 02:30:00', TIMESTAMP '2024-05-01 05:00:00')",
    )
    report = json.loads(world.bqtui("verify", "ev", "--json").out)
    assert report["by_ingestion_window"] is True and report["ok"] is True, report


def test_repair_removes_exact_copies_in_one_statement_limited_to_their_days(
    events_world: World,
):
    """Copies made at the same instant (a file loaded twice, INSERT … SELECT) are identical:
    repair leaves one of each, touching only the days that hold them."""
    world = events_world
    assert world.bqtui("run", "ev").code == 0
    table = f"`{PROJECT}.{world.dataset}.events_export`"
    before = bq(world, f"SELECT * FROM {table}")
    copied = sorted(r["uuid"] for r in before)[10:13]
    listed = ", ".join(f"'{u}'" for u in copied)
    bq(world, f"INSERT INTO {table} SELECT * FROM {table} WHERE uuid IN ({listed})")

    found = json.loads(world.bqtui("verify", "ev", "--json").out)
    assert found["duplicated"] == {"count": 3, "listed": [f"{u} ×2" for u in copied]}
    world.google.proxy.reset_calls()
    repaired = world.bqtui("verify", "ev", "--repair", "--yes")
    assert repaired.code == 0, repaired.out + repaired.err
    assert f"keeping the first loaded copy of each of: {', '.join(copied)}" in repaired.out
    assert repaired.out.splitlines()[-1].startswith("OK: BigQuery holds exactly")

    after = bq(world, f"SELECT * FROM {table}")
    key = lambda r: r["uuid"]  # noqa: E731
    assert sorted(after, key=key) == sorted(before, key=key)  # every row as it was, once
    statements = [
        c.json["configuration"]["query"]["query"]
        for c in world.google.proxy.calls_to("jobs.insert")
        if isinstance(c.json, dict) and "query" in c.json.get("configuration", {})
    ]
    dedupe = [s for s in statements if s.startswith("MERGE") and "NOT MATCHED BY SOURCE" in s]
    assert len(dedupe) == 1, statements
    # The copies are read and deleted within their day's partition, and nowhere else.
    day = (
        "timestamp >= TIMESTAMP '2024-05-01T00:00:00.000000+00:00' AND {t}timestamp < "
        "TIMESTAMP '2024-05-02T00:00:00.000000+00:00'"
    )
    assert day.format(t="") in dedupe[0] and day.format(t="t.") in dedupe[0]
    assert dedupe[0].count("TIMESTAMP '") == 4
    world.assert_exactly_once_and_clean()
