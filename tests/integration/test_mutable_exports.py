"""Persons and sessions, end to end: stage table → MERGE on versions → stage dropped."""

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from bqtui.source import ClickHouseSource
from tests.conftest import DEMO_END, DEMO_START
from tests.integration.conftest import PROJECT, add_export, run_cli


def aware(value):
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def backfill(db_path, name, start=DEMO_START, end=DEMO_END) -> int:
    return run_cli(
        "run", name, "--db", str(db_path), "--start", start.isoformat(), "--end", end.isoformat()
    )


def may_day(day: int) -> tuple[datetime, datetime]:
    start = datetime(2024, 5, day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def latest(rows, key, version):
    newest = {}
    for row in rows:
        k = key(row)
        if k not in newest or version(row) > version(newest[k]):
            newest[k] = row
    return newest


def source_persons(dsn, team_id=1) -> dict[str, dict]:
    """Every distinct_id's latest mapping and person, computed here in Python."""
    client = ClickHouseSource(dsn).client
    mappings = client.query(
        "SELECT distinct_id, toString(person_id), is_deleted, version FROM person_distinct_id2 "
        "WHERE team_id = {t:Int64}",
        parameters={"t": team_id},
    ).result_rows
    persons = client.query(
        "SELECT toString(id), properties, created_at, is_deleted, version FROM person "
        "WHERE team_id = {t:Int64}",
        parameters={"t": team_id},
    ).result_rows
    newest_mapping = latest(mappings, key=lambda r: r[0], version=lambda r: r[3])
    newest_person = latest(persons, key=lambda r: r[0], version=lambda r: r[4])
    expected = {}
    for distinct_id, person_id, mapping_deleted, mapping_version in newest_mapping.values():
        person = newest_person.get(person_id)
        expected[distinct_id] = {
            "team_id": team_id,
            "distinct_id": distinct_id,
            "person_id": person_id,
            "properties": person[1] if person else None,
            "person_version": person[4] if person else None,
            "person_distinct_id_version": mapping_version,
            "created_at": aware(person[2]) if person else None,
            "is_deleted": bool(mapping_deleted) or bool(person and person[3]),
        }
    return expected


def test_persons_match_the_latest_versions_in_the_source(db_path, destination, demo_dsn):
    add_export(db_path, destination, demo_dsn, name="people", table="persons", model="persons")
    assert backfill(db_path, "people") == 0

    expected = source_persons(demo_dsn)
    rows = destination.rows("persons", "distinct_id")
    assert len(rows) == len(expected) > 100
    assert {r["distinct_id"]: r for r in rows} == expected
    assert any(r["is_deleted"] for r in rows)
    assert not [t for t in destination.table_names() if "stage" in t]


def test_persons_update_only_when_versions_are_newer(db_path, destination, fresh_source):
    client = ClickHouseSource(fresh_source).client
    person = "11111111-1111-4111-8111-111111111111"

    def person_row(version, name, at):
        client.command(
            "INSERT INTO person (id, created_at, team_id, properties, is_identified, is_deleted,"
            f" version, _timestamp) VALUES ('{person}', '2024-05-01 09:00:00', 1,"
            f" '{json.dumps({'name': name})}', 1, 0, {version}, '{at}')"
        )

    client.command(
        "INSERT INTO person_distinct_id2 (team_id, distinct_id, person_id, is_deleted, version,"
        f" _timestamp) VALUES (1, 'ada@example.com', '{person}', 0, 0, '2024-05-01 09:00:00')"
    )
    person_row(1, "Ada", "2024-05-01 09:00:00")
    add_export(db_path, destination, fresh_source, name="people", table="persons", model="persons")
    assert backfill(db_path, "people", *may_day(1)) == 0
    assert [(r["properties"], r["person_version"]) for r in destination.rows("persons")] == [
        ('{"name": "Ada"}', 1)
    ]

    person_row(2, "Ada Lovelace", "2024-05-02 09:00:00")  # a version bump, a day later
    assert backfill(db_path, "people", *may_day(2)) == 0
    assert [(r["properties"], r["person_version"]) for r in destination.rows("persons")] == [
        ('{"name": "Ada Lovelace"}', 2)
    ]

    # The table holds a newer version than the source offers: re-running must not go back.
    table = f"`{PROJECT}.{destination.dataset}.persons`"
    destination.query(f"UPDATE {table} SET person_version = 5, properties = 'kept' WHERE TRUE")
    assert backfill(db_path, "people", *may_day(2)) == 0
    assert [(r["properties"], r["person_version"]) for r in destination.rows("persons")] == [
        ("kept", 5)
    ]

    # The person is deleted (a higher version with is_deleted) in a later window.
    client.command(
        "INSERT INTO person (id, created_at, team_id, properties, is_identified, is_deleted,"
        f" version, _timestamp) VALUES ('{person}', '2024-05-01 09:00:00', 1, '{{}}', 1, 1, 105,"
        " '2024-05-03 09:00:00')"
    )
    assert backfill(db_path, "people", *may_day(3)) == 0
    assert [(r["person_version"], r["is_deleted"]) for r in destination.rows("persons")] == [
        (105, True)
    ]


def source_sessions(dsn, team_id=1) -> dict[str, dict]:
    """Sessions built in Python from the raw events (all windows of the demo range)."""
    client = ClickHouseSource(dsn).client
    rows = client.query(
        "SELECT toString(uuid), event, properties, timestamp, distinct_id FROM events "
        "WHERE team_id = {t:Int64}",
        parameters={"t": team_id},
    ).result_rows
    by_session = defaultdict(dict)
    for uuid, event, props, ts, distinct_id in rows:
        properties = json.loads(props, strict=False)
        session_id = properties.get("$session_id")
        if session_id:
            by_session[session_id][uuid] = (aware(ts), uuid, event, properties, distinct_id)
    expected = {}
    for session_id, events in by_session.items():
        ordered = sorted(events.values())
        first, last = ordered[0], ordered[-1]
        with_url = [e for e in ordered if e[3].get("$current_url")]
        views = [e for e in ordered if e[2] in ("$pageview", "$screen")]
        urls = list(dict.fromkeys(e[3]["$current_url"] for e in with_url))
        counts = Counter(e[2] for e in ordered)
        duration = int((last[0] - first[0]).total_seconds())
        lcp = [e[3]["$web_vitals_LCP_value"] for e in ordered if "$web_vitals_LCP_value" in e[3]]
        clicks = [e[3]["$external_click_url"] for e in ordered if e[3].get("$external_click_url")]
        entry = first[3]
        expected[session_id] = {
            "session_id": session_id,
            "team_id": team_id,
            "distinct_id": first[4],
            "start_timestamp": first[0],
            "end_timestamp": last[0],
            "urls": urls,
            "num_uniq_urls": len(urls),
            "entry_current_url": with_url[0][3]["$current_url"] if with_url else None,
            "entry_pathname": with_url[0][3].get("$pathname") if with_url else None,
            "end_current_url": with_url[-1][3]["$current_url"] if with_url else None,
            "exit_current_url": views[-1][3].get("$current_url") if views else None,
            "entry_utm_source": entry.get("utm_source") or None,
            "entry_referring_domain": entry.get("$referring_domain") or None,
            "entry_gclid": entry.get("gclid") or None,
            "pageview_count": counts["$pageview"],
            "autocapture_count": counts["$autocapture"],
            "screen_count": counts["$screen"],
            "session_duration": duration,
            "duration": duration,
            "is_bounce": counts["$pageview"] + counts["$screen"] == 1
            and counts["$autocapture"] == 0
            and duration < 10,
            "last_external_click_url": clicks[-1] if clicks else None,
            "vitals_lcp": float(lcp[0]) if lcp else None,
        }
    return expected


def test_sessions_match_the_source_events(db_path, destination, demo_dsn):
    add_export(db_path, destination, demo_dsn, name="visits", table="sessions", model="sessions")
    assert backfill(db_path, "visits") == 0

    expected = source_sessions(demo_dsn)
    rows = destination.rows("sessions", "session_id")
    assert len(rows) == len(expected) > 100
    for row in rows:
        want = expected[row["session_id"]]
        assert {k: row[k] for k in want} == want, row["session_id"]
    assert {r["channel_type"] for r in rows} >= {"Direct", "Paid Search", "Organic Search"}


def test_a_session_that_grows_later_is_updated_not_duplicated(db_path, destination, fresh_source):
    client = ClickHouseSource(fresh_source).client

    def event(uuid, name, ts, arrived, url, extra=None):
        props = {
            "$session_id": "s1",
            "$current_url": url,
            "$pathname": url[18:] or "/",
            **(extra or {}),
        }
        client.command(
            "INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id,"
            " elements_chain, created_at, person_id, inserted_at, _timestamp) VALUES"
            f" ('{uuid}', '{name}', '{json.dumps(props)}', '{ts}', 1, 'd1', '', '{ts}',"
            f" generateUUIDv4(), '{arrived}', '{arrived}')"
        )

    event("00000000-0000-4000-8000-00000000000a", "$pageview", "2024-05-01 10:00:00",
          "2024-05-01 10:00:01", "https://example.com/", {"gclid": "abc", "$referring_domain": "www.google.com"})  # fmt: skip
    add_export(db_path, destination, fresh_source, name="visits", table="sessions", model="sessions", interval="hour")  # fmt: skip
    first_hour = (datetime(2024, 5, 1, 10, tzinfo=UTC), datetime(2024, 5, 1, 11, tzinfo=UTC))
    assert backfill(db_path, "visits", *first_hour) == 0
    [row] = destination.rows("sessions")
    assert (row["pageview_count"], row["is_bounce"], row["channel_type"]) == (
        1,
        True,
        "Paid Search",
    )

    event("00000000-0000-4000-8000-00000000000b", "$pageview", "2024-05-01 11:00:30",
          "2024-05-01 11:00:31", "https://example.com/pricing")  # fmt: skip
    assert backfill(db_path, "visits", first_hour[1], first_hour[1] + timedelta(hours=1)) == 0
    [row] = destination.rows("sessions")
    assert (row["pageview_count"], row["is_bounce"], row["duration"]) == (2, False, 3630)
    assert row["urls"] == ["https://example.com/", "https://example.com/pricing"]
    assert row["exit_current_url"] == "https://example.com/pricing"


def test_the_seeds_example_query_gives_the_same_counts_as_clickhouse(
    db_path, destination, demo_dsn
):
    add_export(db_path, destination, demo_dsn, name="ev", table="events")
    add_export(db_path, destination, demo_dsn, name="people", table="persons", model="persons")
    assert backfill(db_path, "ev") == 0
    assert backfill(db_path, "people") == 0

    in_bigquery = destination.query(
        f"SELECT e.event, COUNT(DISTINCT p.person_id) AS persons "
        f"FROM `{PROJECT}.{destination.dataset}.events` AS e "
        f"LEFT JOIN `{PROJECT}.{destination.dataset}.persons` AS p "
        f"ON e.distinct_id = p.distinct_id AND e.team_id = p.team_id "
        f"GROUP BY e.event ORDER BY e.event"
    )
    in_clickhouse = (
        ClickHouseSource(demo_dsn)
        .client.query(
            "SELECT e.event, uniqExact(m.person_id) FROM "
            "(SELECT event, distinct_id, team_id FROM events WHERE team_id = 1 LIMIT 1 BY uuid) AS e "
            "LEFT JOIN (SELECT team_id, distinct_id, argMax(person_id, version) AS person_id "
            "  FROM person_distinct_id2 WHERE team_id = 1 GROUP BY team_id, distinct_id) AS m "
            "ON e.distinct_id = m.distinct_id AND e.team_id = m.team_id "
            "GROUP BY e.event ORDER BY e.event SETTINGS join_use_nulls = 1"
        )
        .result_rows
    )
    assert [(r["event"], r["persons"]) for r in in_bigquery] == [tuple(r) for r in in_clickhouse]
    assert len(in_clickhouse) > 5
