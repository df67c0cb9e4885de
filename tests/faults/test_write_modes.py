"""Cost grows with the window, not the table: sessions MERGEs name only the partitions their
stage touches, and append mode (persons, sessions) runs no query job at all, its `_latest`
view returning exactly the newest version per key. Through the real CLI, in subprocesses."""

import json
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

from google.cloud import bigquery

from bqtui.core.config import Model
from bqtui.models import get_model
from tests.faults.conftest import PROJECT, T0, World, iso
from tests.faults.test_long_sessions import END, MIDWAY, build_events, expected_sessions, insert
from tests.integration.test_mutable_exports import SESSION_COLUMNS

NOW_1, NOW_2 = MIDWAY + timedelta(minutes=5), END + timedelta(minutes=5)
TIMESTAMP_LITERAL = re.compile(r"TIMESTAMP '([^']+)'")


# Runs in a subprocess, as the fault suite's World does: only subprocesses open the engine.
_QUERY_SCRIPT = """
import json, sys
from bqtui.source.clickhouse import ClickHouseSource
with ClickHouseSource(sys.argv[1]) as source:
    result = source.client.query(sys.argv[2])
    print(json.dumps([dict(zip(result.column_names, row)) for row in result.result_rows],
                     default=str))
"""


def source_rows(world: World, sql: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-c", _QUERY_SCRIPT, world.source_dsn, sql],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def id_time(session_id: str) -> datetime | None:
    """The instant in a UUIDv7 id (its first 48 bits, in ms); None for any other id."""
    try:
        parsed = uuid.UUID(session_id)
    except ValueError:
        return None
    if parsed.version != 7 or str(parsed) != session_id.lower():
        return None
    return datetime.fromtimestamp((parsed.int >> 80) / 1000, UTC)


def query_jobs(world: World) -> list[dict]:
    """Every query the proxy was asked to run since its calls were last reset."""
    queries = []
    for call in world.google.proxy.calls_to("jobs.insert"):
        body = call.json if isinstance(call.json, dict) else {}
        query = body.get("configuration", {}).get("query")
        if query:
            queries.append({"sql": query.get("query", ""), "labels": body["configuration"]})
    for call in world.google.proxy.calls_to("jobs.query"):
        body = call.json if isinstance(call.json, dict) else {}
        queries.append({"sql": body.get("query", ""), "labels": body})
    return queries


def rows_of(world: World, table: str) -> list[dict]:
    sql = f"SELECT * FROM `{PROJECT}.{world.dataset}.{table}`"
    return [dict(r) for r in world.google.admin_client(PROJECT).query(sql).result()]


def run(world: World, name: str, now: datetime, **env) -> str:
    result = world.bqtui("run", name, BQTUI_NOW=iso(now), **env)
    assert result.code == 0, result.out + result.err
    return result.out + result.err


# -- sessions in merge mode: a constant partition filter on every MERGE ---------------------


def test_every_sessions_merge_names_only_the_days_of_its_stage(world: World):
    events = build_events()
    world.add("sess", model="sessions", table="sessions")
    insert(world, [e for e in events if e["ingested"] < MIDWAY])
    world.google.proxy.reset_calls()
    run(world, "sess", NOW_1, BQTUI_GROUP_WINDOWS=24)  # five groups of a day's windows
    insert(world, [e for e in events if e["ingested"] >= MIDWAY])
    run(world, "sess", NOW_2)  # six days of hourly windows: one group, one MERGE
    merges = [q["sql"] for q in query_jobs(world) if q["sql"].startswith("MERGE")]
    assert len(merges) >= 3

    expected = expected_sessions(events)
    id_times = {t for t in map(id_time, expected) if t is not None}
    assert len(id_times) == 4 and len(expected) - len(id_times) == 3  # UUIDv7 and others
    ranges = 0
    for sql in merges:
        on = sql.split("\nON ", 1)[1].split("\n", 1)[0]
        literals = TIMESTAMP_LITERAL.findall(on)
        if not literals:  # a stage of sessions whose ids carry no time: the NULL partition
            assert on.endswith(" AND final.`session_id_time` IS NULL"), on
            continue
        ranges += 1
        low, high = (datetime.fromisoformat(t) for t in literals)
        assert on.endswith(
            f"AND (final.`session_id_time` BETWEEN TIMESTAMP '{low.isoformat(timespec='microseconds')}' "
            f"AND TIMESTAMP '{high.isoformat(timespec='microseconds')}' "
            "OR final.`session_id_time` IS NULL)"
        ), on
        # Exactly the stage's own days: both ends are times of sessions it merged.
        assert low in id_times and high in id_times and low <= high
    assert ranges >= 3

    table = world.google.admin_client(PROJECT).get_table(f"{PROJECT}.{world.dataset}.sessions")
    assert table.time_partitioning.field == "session_id_time"
    assert table.clustering_fields == ["team_id", "session_id"]
    rows = rows_of(world, "sessions")
    assert sorted(r["session_id"] for r in rows) == sorted(expected)  # once each
    for row in rows:
        want = expected[row["session_id"]]
        for column in sorted(SESSION_COLUMNS):
            assert row[column] == want[column], (row["session_id"], column)
        assert row["session_id_time"] == id_time(row["session_id"])
    verified = world.bqtui("verify", "sess", BQTUI_NOW=iso(NOW_2))
    assert verified.code == 0, verified.out + verified.err


# -- append mode: loads only, and a view of the newest version per key ----------------------


def to_json_string(value) -> str:
    """BigQuery's TO_JSON_STRING for the values these tables hold."""
    if isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
        return json.dumps(text + "Z")
    return json.dumps(value, separators=(",", ":"))


def newest_per_key(rows: list[dict], key: tuple, versions: tuple, tie_breakers: tuple) -> dict:
    """The oracle: per key, versions descending, then the tie-breakers' JSON text ascending
    (a missing version is oldest)."""

    by_ties = sorted(rows, key=lambda r: tuple(to_json_string(r[n]) for n in tie_breakers))
    # Stable, also reversed: among equal versions the tie-breakers' order stays.
    ranked = sorted(
        by_ties,
        key=lambda r: tuple((r[v] is not None, r[v] if r[v] is not None else 0) for v in versions),
        reverse=True,
    )
    best: dict = {}
    for row in ranked:
        best.setdefault(tuple(row[n] for n in key), row)
    return best


PERSON_KEY = ("team_id", "distinct_id")
PERSON_VERSIONS = ("person_distinct_id_version", "person_version")
PERSON_TIES = ("person_id", "properties", "created_at")


def insert_person(world: World, person: str, version: int, name: str, at: datetime) -> None:
    world.chdb(
        "command",
        "INSERT INTO person (id, created_at, team_id, properties, is_identified, is_deleted, "
        f"version, _timestamp) VALUES ('{person}', '2024-05-01 00:30:00', 1, "
        f"'{json.dumps({'name': name})}', 1, {int(name == 'deleted')}, {version}, "
        f"'{at:%Y-%m-%d %H:%M:%S}')",
    )


def map_distinct_id(world: World, distinct_id: str, person: str, version: int, at) -> None:
    world.chdb(
        "command",
        "INSERT INTO person_distinct_id2 (team_id, distinct_id, person_id, is_deleted, version, "
        f"_timestamp) VALUES (1, '{distinct_id}', '{person}', 0, {version}, "
        f"'{at:%Y-%m-%d %H:%M:%S}')",
    )


def source_persons(world: World) -> dict[str, dict]:
    """Every distinct_id's latest mapping and person, from the source rows, in Python."""
    mappings = source_rows(
        world,
        "SELECT distinct_id, toString(person_id) AS person_id, version "
        "FROM person_distinct_id2 WHERE team_id = 1",
    )
    persons = source_rows(
        world,
        "SELECT toString(id) AS id, properties, is_deleted, version FROM person WHERE team_id = 1",
    )
    newest_mapping: dict = {}
    for m in sorted(mappings, key=lambda m: int(m["version"])):
        newest_mapping[m["distinct_id"]] = m
    newest_person: dict = {}
    for p in sorted(persons, key=lambda p: int(p["version"])):
        newest_person[p["id"]] = p
    expected = {}
    for distinct_id, mapping in newest_mapping.items():
        person = newest_person[mapping["person_id"]]
        expected[distinct_id] = {
            "person_id": mapping["person_id"],
            "properties": person["properties"],
            "person_version": int(person["version"]),
            "person_distinct_id_version": int(mapping["version"]),
            "is_deleted": bool(int(person["is_deleted"])),
        }
    return expected


def persons_view(world: World) -> dict[str, dict]:
    columns = ("person_id", "properties", "person_version", "person_distinct_id_version")
    return {
        r["distinct_id"]: {c: r[c] for c in (*columns, "is_deleted")}
        for r in rows_of(world, "persons_latest")
    }


def assert_no_query_job(world: World, export: str) -> None:
    assert query_jobs(world) == [], f"{export} ran query jobs in append mode"
    loads = [
        c.json["configuration"]
        for c in world.google.proxy.calls_to("jobs.insert")
        if isinstance(c.json, dict) and "load" in c.json.get("configuration", {})
    ]
    assert loads and all(load["labels"]["bqtui_export"] == export for load in loads)
    created = [
        c.json["tableReference"]["tableId"]
        for c in world.google.proxy.calls_to("tables.insert")
        if isinstance(c.json, dict)
    ]
    assert not [t for t in created if "_bqtui_stage_" in t], "append mode made a stage table"


def test_persons_in_append_mode_run_no_query_and_the_view_is_the_newest_version(world: World):
    ada, bob = (str(uuid.UUID(int=n, version=4)) for n in (1, 2))
    hour = timedelta(hours=1)
    insert_person(world, ada, 1, "Ada", T0)
    insert_person(world, bob, 1, "Bob", T0)
    map_distinct_id(world, "ada@example.com", ada, 1, T0)
    map_distinct_id(world, "bob@example.com", bob, 1, T0)
    map_distinct_id(world, "bob-phone", bob, 1, T0 + hour)
    world.add("people", "--write-mode", "append", model="persons", table="persons")

    world.google.proxy.reset_calls()
    first = run(world, "people", T0 + 2 * hour + timedelta(minutes=2))
    assert "Created view" in first
    assert_no_query_job(world, "people")
    views = [
        c.json
        for c in world.google.proxy.calls_to("tables.insert")
        if isinstance(c.json, dict) and c.json["tableReference"]["tableId"] == "persons_latest"
    ]
    assert [v["view"]["useLegacySql"] for v in views] == [False]  # through the tables API
    assert persons_view(world) == source_persons(world)

    # Later windows: Ada changes twice, Bob's phone moves to Ada, Bob is deleted.
    insert_person(world, ada, 2, "Ada L", T0 + 2 * hour)
    insert_person(world, ada, 3, "Ada Lovelace", T0 + 3 * hour)
    map_distinct_id(world, "bob-phone", ada, 2, T0 + 3 * hour)
    insert_person(world, bob, 7, "deleted", T0 + 4 * hour)
    later = T0 + 5 * hour + timedelta(minutes=2)
    world.google.proxy.reset_calls()
    run(world, "people", later)
    assert_no_query_job(world, "people")
    raw = rows_of(world, "persons")
    assert len(raw) > len(source_persons(world))  # every version is kept in the table
    assert persons_view(world) == source_persons(world)

    # Ties: versions equal to the newest, other fields not (a re-export that raced a change):
    # the view takes the first by the MERGE's tie-breakers, as the oracle does.
    table = f"`{PROJECT}.{world.dataset}.persons`"
    world.google.admin_client(PROJECT).query(
        f"INSERT INTO {table} (team_id, distinct_id, person_id, properties, person_version, "
        "person_distinct_id_version, created_at, is_deleted) VALUES "
        "(1, 'ada@example.com', '00000000-0000-0000-tie-first', '{}', 3, 1, NULL, FALSE), "
        "(1, 'ada@example.com', 'ffffffff-tie-last', '{}', 3, 1, NULL, FALSE)"
    ).result()
    raw = rows_of(world, "persons")
    oracle = newest_per_key(raw, PERSON_KEY, PERSON_VERSIONS, PERSON_TIES)
    view = {(r["team_id"], r["distinct_id"]): r for r in rows_of(world, "persons_latest")}
    assert view == oracle
    assert view[(1, "ada@example.com")]["person_id"] == "00000000-0000-0000-tie-first"

    # A re-run of the same time exports nothing again; the view is unchanged.
    world.google.proxy.reset_calls()
    run(world, "people", later)
    assert query_jobs(world) == []
    assert len(rows_of(world, "persons")) == len(raw)
    assert {(r["team_id"], r["distinct_id"]): r for r in rows_of(world, "persons_latest")} == view
    verified = world.bqtui("verify", "people", "--json", BQTUI_NOW=iso(later))
    assert verified.code == 0, verified.out + verified.err
    assert json.loads(verified.out)["table"].endswith(".persons_latest")


def test_append_mode_with_json_columns_loads_properties_as_json(world: World):
    ada = str(uuid.UUID(int=1, version=4))
    nasty = {"name": "Ada", "nested": {"list": [1, 2.5, None]}, "emoji": "🚀", "big": 2**70}
    world.chdb(
        "command",
        "INSERT INTO person (id, created_at, team_id, properties, is_identified, is_deleted, "
        f"version, _timestamp) VALUES ('{ada}', '2024-05-01 00:30:00', 1, "
        f"'{json.dumps(nasty)}', 1, 0, 1, '{T0:%Y-%m-%d %H:%M:%S}')",
    )
    map_distinct_id(world, "ada@example.com", ada, 1, T0)
    world.add("people", "--write-mode", "append", "--json-type", model="persons", table="persons")
    world.google.proxy.reset_calls()
    run(world, "people", T0 + timedelta(hours=2))
    assert_no_query_job(world, "people")
    table = world.google.admin_client(PROJECT).get_table(f"{PROJECT}.{world.dataset}.persons")
    assert {f.name: f.field_type for f in table.schema}["properties"] == "JSON"
    [row] = rows_of(world, "persons_latest")
    properties = row["properties"]
    if isinstance(properties, str):
        properties = json.loads(properties)
    assert properties["name"] == "Ada" and properties["emoji"] == "🚀"
    assert properties["nested"] == {"list": [1, 2.5, None]}
    checked = world.bqtui("verify", "people", BQTUI_NOW=iso(T0 + timedelta(hours=2)))
    assert checked.code == 0, checked.out + checked.err


SESSION_KEY = ("team_id", "session_id")
SESSION_VERSIONS = ("end_timestamp", "max_inserted_at")
SESSION_TIES = ("distinct_id", "start_timestamp", "urls")


def test_sessions_in_append_mode_run_no_query_and_the_view_equals_the_oracle(world: World):
    events = build_events()
    world.add("sess", "--write-mode", "append", model="sessions", table="sessions")
    insert(world, [e for e in events if e["ingested"] < MIDWAY])
    world.google.proxy.reset_calls()
    run(world, "sess", NOW_1)
    assert_no_query_job(world, "sess")
    insert(world, [e for e in events if e["ingested"] >= MIDWAY])
    world.google.proxy.reset_calls()
    run(world, "sess", NOW_2)
    assert_no_query_job(world, "sess")

    raw = rows_of(world, "sessions")
    view = rows_of(world, "sessions_latest")
    expected = expected_sessions(events)
    assert len(raw) > len(expected)  # sessions re-exported as they grew: every version kept
    # Two sessions were re-exported with the same end (late events moved their starts
    # earlier): ties in end_timestamp, decided by what each row knows (max_inserted_at).
    ends = [(r["session_id"], r["end_timestamp"]) for r in raw]
    assert len(ends) - len(set(ends)) >= 2
    oracle = newest_per_key(raw, SESSION_KEY, SESSION_VERSIONS, SESSION_TIES)
    assert {(r["team_id"], r["session_id"]): r for r in view} == oracle
    assert sorted(r["session_id"] for r in view) == sorted(expected)
    for row in view:
        want = expected[row["session_id"]]
        for column in sorted(SESSION_COLUMNS):
            assert row[column] == want[column], (row["session_id"], column)

    world.google.proxy.reset_calls()
    run(world, "sess", NOW_2)  # nothing due: nothing loaded, nothing queried
    assert query_jobs(world) == []
    assert len(rows_of(world, "sessions")) == len(raw)
    # verify compares what readers see: the view, one row per session (the table has more).
    verified = world.bqtui("verify", "sess", "--json", BQTUI_NOW=iso(NOW_2))
    assert verified.code == 0, verified.out + verified.err
    report = json.loads(verified.out)
    assert report["table"].endswith(".sessions_latest")
    assert report["duplicated"]["count"] == 0 and report["bigquery_rows"] == len(expected)

    # Same end, the newer row sorting last by every tie-breaker: the later ingestion wins,
    # as a MERGE (which updates on an equal end) leaves it.
    table = f"`{PROJECT}.{world.dataset}.sessions`"
    world.google.admin_client(PROJECT).query(
        f"INSERT INTO {table} (team_id, session_id, distinct_id, end_timestamp, "
        "max_inserted_at) VALUES "
        "(1, 'tied', 'zzz-newer', TIMESTAMP '2024-05-09 10:00:00', TIMESTAMP '2024-05-09 12:00:00'),"
        "(1, 'tied', 'aaa-older', TIMESTAMP '2024-05-09 10:00:00', TIMESTAMP '2024-05-09 11:00:00')"
    ).result()
    [tied] = [r for r in rows_of(world, "sessions_latest") if r["session_id"] == "tied"]
    assert tied["distinct_id"] == "zzz-newer"


def test_an_existing_unpartitioned_sessions_table_is_left_as_it_is_and_check_says_how_to_migrate(
    world: World,
):
    old_schema = [f for f in get_model(Model.SESSIONS).schema(False) if f.name != "session_id_time"]
    ref = f"{PROJECT}.{world.dataset}.sessions"
    world.google.admin_client(PROJECT).create_table(bigquery.Table(ref, schema=old_schema))
    events = build_events()
    world.add("sess", model="sessions", table="sessions")
    insert(world, [e for e in events if e["ingested"] < MIDWAY])
    world.google.proxy.reset_calls()
    out = run(world, "sess", NOW_1)
    assert "lacks model fields session_id_time" in out
    merges = [q["sql"] for q in query_jobs(world) if q["sql"].startswith("MERGE")]
    assert merges and not [m for m in merges if "session_id_time" in m]
    table = world.google.admin_client(PROJECT).get_table(ref)
    assert table.time_partitioning is None and not table.clustering_fields
    assert "session_id_time" not in {f.name for f in table.schema}

    checked = world.bqtui("check", "sess", "--json", BQTUI_NOW=iso(NOW_1))
    notes = json.loads(checked.out)["notes"]
    [advice] = [n for n in notes if "every MERGE reads (and bills) the whole table" in n]
    assert f"CREATE TABLE `{ref}_partitioned` PARTITION BY TIMESTAMP_TRUNC(" in advice
    assert "ALTER TABLE" in advice and "RENAME TO `sessions`" in advice
