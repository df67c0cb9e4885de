"""verify on the demo data (late events, nasty properties, person merges, deletions): an
export of each model verifies equal, on both paths to ClickHouse.

verify counts ClickHouse's side with the exporter's own SQL (its ingestion time, its way of
reading properties): an error there would be on both sides and verify would say equal. So
the expected rows are also worked out here, in Python from the raw rows, sharing no SQL with
bqtui, and BigQuery's table and verify's report are held against them."""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bqtui.source.clickhouse import ClickHouseSource
from tests.integration.conftest import PROJECT, add_export, run_cli

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The export starts at START; at BQTUI_NOW the day windows up to THROUGH are done.
START, THROUGH = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 4, tzinfo=UTC)
TEAM = 1


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def raw_rows(dsn: str, sql: str) -> list[tuple]:
    with ClickHouseSource(dsn) as source:
        return source.client.query(sql).result_rows


def in_done_windows(ingested_micros: int) -> bool:
    return micros(START) <= ingested_micros < micros(THROUGH)


def expected_events(dsn: str) -> dict[str, int]:
    """Each event of the team ingested in the done windows (its ``inserted_at``, or the
    legacy ``_timestamp`` without one), with its earliest timestamp: several rows of a uuid
    (retried inserts) are one event."""
    first: dict[str, int] = {}
    for uuid, team, inserted_at, legacy, timestamp in raw_rows(
        dsn,
        "SELECT toString(uuid), team_id, toUnixTimestamp64Micro(inserted_at), "
        "toUnixTimestamp(_timestamp), toUnixTimestamp64Micro(timestamp) FROM events",
    ):
        ingested = inserted_at if inserted_at is not None else legacy * 1_000_000
        if team == TEAM and in_done_windows(ingested):
            first[uuid] = min(timestamp, first.get(uuid, timestamp))
    return first


def expected_persons(dsn: str) -> dict[str, tuple]:
    """distinct_id → (person_id, mapping version, person version, is_deleted): the latest
    mapping of each distinct_id whose mapping or person changed in the done windows, and the
    latest version of its person."""
    mappings: dict[str, list[tuple]] = {}
    for distinct_id, team, person_id, deleted, version, at in raw_rows(
        dsn,
        "SELECT distinct_id, team_id, toString(person_id), is_deleted, version, "
        "toUnixTimestamp(_timestamp) FROM person_distinct_id2",
    ):
        if team == TEAM and at * 1_000_000 < micros(THROUGH):
            mappings.setdefault(distinct_id, []).append((version, person_id, deleted, at))
    persons: dict[str, list[tuple]] = {}
    for person_id, team, deleted, version, at in raw_rows(
        dsn,
        "SELECT toString(id), team_id, is_deleted, version, toUnixTimestamp(_timestamp) "
        "FROM person",
    ):
        if team == TEAM and at * 1_000_000 < micros(THROUGH):
            persons.setdefault(person_id, []).append((version, deleted, at))
    expected = {}
    for distinct_id, rows in mappings.items():
        version, person_id, mapping_deleted, _ = max(rows)
        person_rows = persons.get(person_id, [])
        touched = [at for *_, at in rows] + [
            at for p in {r[1] for r in rows} for *_, at in persons.get(p, [])
        ]
        if not any(in_done_windows(at * 1_000_000) for at in touched):
            continue
        person_version, person_deleted, _ = max(person_rows) if person_rows else (None, 0, 0)
        expected[distinct_id] = (
            person_id,
            version,
            person_version,
            bool(mapping_deleted or person_deleted),
        )
    return expected


def session_of(properties: str) -> str:
    """The event's $session_id ('' when it has none, or its properties are not JSON)."""
    try:
        parsed = json.loads(properties, strict=False)
    except ValueError:
        return ""
    value = parsed.get("$session_id") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else ""


def expected_sessions(dsn: str) -> dict[str, tuple]:
    """session_id → (end µs, pageviews, autocaptures, screens) of the team's sessions whose
    last event was ingested in the done windows; each uuid counted once."""
    events: dict[str, tuple] = {}
    last_ingested: dict[str, int] = {}
    for uuid, team, event, properties, timestamp, inserted_at, legacy in raw_rows(
        dsn,
        "SELECT toString(uuid), team_id, event, properties, "
        "toUnixTimestamp64Micro(timestamp), toUnixTimestamp64Micro(inserted_at), "
        "toUnixTimestamp(_timestamp) FROM events",
    ):
        session = session_of(properties)
        if team != TEAM or not session:
            continue
        ingested = inserted_at if inserted_at is not None else legacy * 1_000_000
        last_ingested[session] = max(ingested, last_ingested.get(session, ingested))
        events[uuid] = (session, event, timestamp)
    sessions: dict[str, list[tuple]] = {}
    for session, event, timestamp in events.values():
        sessions.setdefault(session, []).append((event, timestamp))
    return {
        session: (
            max(timestamp for _, timestamp in rows),
            sum(event == "$pageview" for event, _ in rows),
            sum(event == "$autocapture" for event, _ in rows),
            sum(event == "$screen" for event, _ in rows),
        )
        for session, rows in sessions.items()
        if in_done_windows(last_ingested[session])
    }


def bigquery_rows(destination, model: str) -> list[dict]:
    columns = {
        "events": ("uuid", "timestamp"),
        "persons": (
            "distinct_id",
            "person_id",
            "person_distinct_id_version",
            "person_version",
            "is_deleted",
        ),
        "sessions": (
            "session_id",
            "end_timestamp",
            "pageview_count",
            "autocapture_count",
            "screen_count",
        ),
    }[model]
    return destination.query(
        f"SELECT {', '.join(columns)} FROM `{PROJECT}.{destination.dataset}.{model}` "
        f"WHERE team_id = {TEAM}"
    )


def assert_as_worked_out(destination, dsn: str, model: str, report: dict) -> None:
    """BigQuery's rows and verify's counts against what the raw rows say."""
    rows = bigquery_rows(destination, model)
    if model == "events":
        expected = expected_events(dsn)
        assert Counter(r["uuid"] for r in rows) == dict.fromkeys(expected, 1)  # each once
        assert {r["uuid"]: micros(r["timestamp"]) for r in rows} == expected
        per_day = Counter(
            (EPOCH + timedelta(microseconds=first)).date().isoformat()
            for first in expected.values()
        )
        assert [(d["day"], d["source"], d["bigquery"]) for d in report["days"]] == [
            (day, n, n) for day, n in sorted(per_day.items())
        ]
    elif model == "persons":
        expected = expected_persons(dsn)
        landed = {
            r["distinct_id"]: (
                r["person_id"],
                r["person_distinct_id_version"],
                r["person_version"],
                r["is_deleted"],
            )
            for r in rows
        }
        assert len(rows) == len(landed) and landed == expected
    else:
        expected = expected_sessions(dsn)
        landed = {
            r["session_id"]: (
                micros(r["end_timestamp"]),
                r["pageview_count"],
                r["autocapture_count"],
                r["screen_count"],
            )
            for r in rows
        }
        assert len(rows) == len(landed) and landed == expected
    assert report["source_rows"] == report["bigquery_rows"] == len(expected) > 0


@pytest.mark.parametrize("model", ["events", "persons", "sessions"])
def test_a_fresh_export_of_the_demo_data_verifies_equal(
    db_path, destination, demo_dsn, model, capsys, monkeypatch
):
    monkeypatch.setenv("BQTUI_NOW", "2024-05-04T00:05:00Z")
    add_export(db_path, destination, demo_dsn, name=model, model=model, table=model)
    assert run_cli("run", model, "--db", str(db_path)) == 0
    capsys.readouterr()
    code = run_cli("verify", model, "--db", str(db_path), "--json")
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["ok"] is True and report["source_rows"] > 0
    assert report["source_rows"] == report["bigquery_rows"]
    assert report["compared_through"] == THROUGH.isoformat()
    assert_as_worked_out(destination, demo_dsn, model, report)
