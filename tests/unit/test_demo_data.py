"""Demo and bulk data generation against a real embedded ClickHouse (chdb)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import clickhouse_connect
import pytest

from benchmarks.bulk_data import generate_bulk_events
from bqtui.demo.data import (
    SOURCE_DDL,
    DemoSummary,
    create_source_tables,
    generate,
    qualified_table,
)

START = datetime(2024, 5, 1, tzinfo=UTC)
END = datetime(2024, 5, 8, tzinfo=UTC)
DEMO_DB = "demo_data_first"
INGESTED_AT = "coalesce(inserted_at, _timestamp)"


@pytest.fixture(scope="module")
def client(chdb_path):
    """A client of the session's embedded ClickHouse; every database here is named demo_data_*."""
    chdb = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")
    yield chdb
    chdb.close()


def _generate_unmerged(client, database: str, **arguments) -> DemoSummary:
    # Background merges would collapse row versions and duplicates at random moments; stopping
    # them keeps what the generator wrote, so runs are comparable.
    create_source_tables(client, database)
    for table in SOURCE_DDL:
        client.command(f"SYSTEM STOP MERGES {qualified_table(table, database)}")
    return generate(client, start=START, end=END, database=database, **arguments)


@pytest.fixture(scope="module")
def demo(client) -> DemoSummary:
    return _generate_unmerged(client, DEMO_DB)


def _value(client, sql: str):
    return client.query(sql).result_rows[0][0]


def _all_rows(client, database: str, table: str):
    return client.query_arrow(f"SELECT * FROM {qualified_table(table, database)} ORDER BY ALL")


def test_summary_matches_the_tables(client, demo):
    assert demo.team_ids == (1, 2, 3)
    assert (demo.start, demo.end) == (START, END)
    counts = {
        table: _value(client, f"SELECT count() FROM {qualified_table(table, DEMO_DB)}")
        for table in SOURCE_DDL
    }
    assert counts == {
        "events": demo.event_rows,
        "person": demo.person_rows,
        "person_distinct_id2": demo.person_distinct_id_rows,
    }
    assert demo.event_rows > 10_000
    assert demo.persons >= 3 * 200
    assert demo.sessions >= 3 * 200


def test_same_seed_gives_identical_rows(client, demo):
    second_db = "demo_data_second"
    assert _generate_unmerged(client, second_db) == demo
    for table in SOURCE_DDL:
        assert _all_rows(client, second_db, table).equals(_all_rows(client, DEMO_DB, table)), table


def test_another_seed_gives_other_rows(client, demo):
    other_db = "demo_data_other_seed"
    _generate_unmerged(client, other_db, seed=43, users_per_team=20)
    shared = _value(
        client,
        f"SELECT count() FROM {other_db}.events WHERE uuid IN (SELECT uuid FROM {DEMO_DB}.events)",
    )
    assert shared == 0


EVENTS_WITH = {
    "several teams": "uniqExact(team_id) = 3",
    "late arrival (over an hour)": f"countIf(dateDiff('second', timestamp, {INGESTED_AT}) > 3600) > 0",
    "NULL inserted_at": "countIf(inserted_at IS NULL) > 0",
    "duplicate uuid": "count() > uniqExact(uuid)",
    "microseconds": "countIf(toUnixTimestamp64Micro(timestamp) % 1000000 != 0) > 0",
    "pageview with url": "countIf(event = '$pageview' AND JSONExtractString(properties, '$current_url') LIKE 'https://%') > 0",
    "pathname": "countIf(JSONExtractString(properties, '$pathname') != '') > 0",
    "referring domain": "countIf(JSONExtractString(properties, '$referring_domain') = 'www.google.com') > 0",
    "autocapture with elements": "countIf(event = '$autocapture' AND elements_chain LIKE '%nth-child=%') > 0",
    "screen": "countIf(event = '$screen' AND JSONExtractString(properties, '$screen_name') != '') > 0",
    "pageleave": "countIf(event = '$pageleave') > 0",
    "signed up": "countIf(event = 'signed_up') > 0",
    "purchase amount": "countIf(event = 'purchase' AND JSONExtractFloat(properties, 'amount') > 0) > 0",
    "LCP": "countIf(JSONExtractFloat(properties, '$web_vitals_LCP_value') > 0) > 0",
    "external click": "countIf(JSONExtractString(properties, '$external_click_url') != '') > 0",
    "identify with $set and $set_once": "countIf(event = '$identify' AND JSONHas(properties, '$set') AND JSONHas(properties, '$set_once')) > 0",
    "$ip and $session_id on every event": "countIf(position(properties, '\"$ip\":') = 0 OR position(properties, '\"$session_id\":') = 0) = 0",
    "gclid": "countIf(JSONExtractString(properties, 'gclid') != '') > 0",
    "fbclid": "countIf(JSONExtractString(properties, 'fbclid') != '') > 0",
    "msclkid": "countIf(JSONExtractString(properties, 'msclkid') != '') > 0",
    "gad_source": "countIf(JSONExtractString(properties, 'gad_source') != '') > 0",
    "utm_term and utm_content": "countIf(JSONExtractString(properties, 'utm_term') != '') > 0 AND countIf(JSONExtractString(properties, 'utm_content') != '') > 0",
    "unicode distinct_id": "countIf(lengthUTF8(distinct_id) != length(distinct_id)) > 0",
    "unicode url": "countIf(JSONExtractString(properties, '$current_url') LIKE '%🚀%') > 0",
    "lone surrogate escape": "countIf(position(properties, concat(char(92), 'ud83d')) > 0) > 0",
    "raw control character": "countIf(position(properties, char(1)) > 0 AND position(properties, char(9)) > 0) > 0",
    "value of several KB": "countIf(length(properties) > 5000) > 0",
    "realistic property size": "avg(length(properties)) BETWEEN 300 AND 1500",
    "ingestion inside the range": f"min({INGESTED_AT}) >= '{START:%F %T}' AND max({INGESTED_AT}) < '{END:%F %T}'",
    "ingestion over most hours": f"uniqExact(toStartOfHour({INGESTED_AT})) > 0.9 * 7 * 24",
}


@pytest.mark.parametrize("condition", EVENTS_WITH.values(), ids=EVENTS_WITH.keys())
def test_events_are_realistic(client, demo, condition):
    sql = f"SELECT {condition} FROM {DEMO_DB}.events"
    assert _value(client, sql) == 1


def test_some_sessions_start_with_campaigns(client, demo):
    sessions_with_utm = _value(
        client,
        f"""
        SELECT uniqExactIf(JSONExtractString(properties, '$session_id'),
                           JSONExtractString(properties, 'utm_source') != '')
        FROM {DEMO_DB}.events
        """,
    )
    assert sessions_with_utm > 0


PERSONS_WITH = {
    "several versions": f"SELECT count() FROM (SELECT id FROM {DEMO_DB}.person GROUP BY id HAVING count() >= 2)",
    "a deletion": f"SELECT uniqExactIf(id, is_deleted = 1) FROM {DEMO_DB}.person",
    "identification": f"SELECT uniqExactIf(id, is_identified = 1) FROM {DEMO_DB}.person",
    "a deleted mapping": f"SELECT countIf(is_deleted = 1) FROM {DEMO_DB}.person_distinct_id2",
    "a re-pointed mapping": f"SELECT count() FROM (SELECT distinct_id FROM {DEMO_DB}.person_distinct_id2 GROUP BY team_id, distinct_id HAVING uniqExact(person_id) > 1)",
    "several distinct ids": f"SELECT count() FROM (SELECT person_id FROM {DEMO_DB}.person_distinct_id2 GROUP BY person_id HAVING uniqExact(distinct_id) >= 2)",
}


@pytest.mark.parametrize("sql", PERSONS_WITH.values(), ids=PERSONS_WITH.keys())
def test_persons_are_realistic(client, demo, sql):
    assert _value(client, sql) > 0


def test_person_versions_are_written_in_order(client, demo):
    write_times = defaultdict(list)
    rows = client.query(f"SELECT id, _timestamp FROM {DEMO_DB}.person ORDER BY id, version")
    for person_id, written_at in rows.result_rows:
        write_times[person_id].append(written_at)
    assert all(times == sorted(times) for times in write_times.values())


def test_events_point_at_known_persons_and_distinct_ids(client, demo):
    unknown_persons = _value(
        client,
        f"SELECT count() FROM {DEMO_DB}.events WHERE person_id NOT IN (SELECT id FROM {DEMO_DB}.person)",
    )
    unmapped_distinct_ids = _value(
        client,
        f"""
        SELECT count() FROM {DEMO_DB}.events
        WHERE (team_id, distinct_id) NOT IN
            (SELECT team_id, distinct_id FROM {DEMO_DB}.person_distinct_id2)
        """,
    )
    assert (unknown_persons, unmapped_distinct_ids) == (0, 0)


def test_a_short_range_is_refused(client):
    with pytest.raises(ValueError, match="at least"):
        generate(client, start=START, end=START.replace(minute=30), database="demo_data_refused")


BULK_START = datetime(2024, 6, 1)  # naive: taken as UTC
BULK_END = datetime(2024, 6, 3)
BULK_ROWS = 200_000


def _generate_bulk(client, database: str, seed: int) -> int:
    return generate_bulk_events(
        client,
        n=BULK_ROWS,
        seed=seed,
        team_id=5,
        start=BULK_START,
        end=BULK_END,
        database=database,
        batch_rows=64_000,  # the last batch is partial
    )


@pytest.fixture(scope="module")
def bulk(client) -> str:
    database = "demo_data_bulk"
    assert _generate_bulk(client, database, seed=7) == BULK_ROWS
    return database


def _bulk_fingerprint(client, database: str) -> tuple:
    return client.query(
        f"SELECT count(), sum(cityHash64(*)) FROM {qualified_table('events', database)}"
    ).result_rows[0]


def test_bulk_events_are_deterministic_and_counted(client, bulk):
    _generate_bulk(client, "demo_data_bulk_same_seed", seed=7)
    _generate_bulk(client, "demo_data_bulk_other_seed", seed=8)
    first = _bulk_fingerprint(client, bulk)
    assert first[0] == BULK_ROWS
    assert _bulk_fingerprint(client, "demo_data_bulk_same_seed") == first
    assert _bulk_fingerprint(client, "demo_data_bulk_other_seed") != first


def test_bulk_events_are_realistic(client, bulk):
    stats = client.query(
        f"""
        SELECT
            uniqExact(uuid) = count(),
            countIf(isValidJSON(properties)) = count(),
            avg(length(properties)) BETWEEN 300 AND 1000,
            countIf(inserted_at IS NULL) > 0,
            countIf(dateDiff('second', timestamp, {INGESTED_AT}) > 3600) > 0,
            min({INGESTED_AT}) >= {{start:DateTime64(6, 'UTC')}},
            max({INGESTED_AT}) < {{end:DateTime64(6, 'UTC')}},
            uniqExact(JSONExtractString(properties, '$session_id')) > 1000,
            countIf(JSONExtractString(properties, 'utm_source') != '') > 0,
            countIf(event = '$autocapture' AND elements_chain != '') > 0,
            uniqExact(team_id) = 1 AND any(team_id) = 5
        FROM {bulk}.events
        """,
        parameters={"start": BULK_START.replace(tzinfo=UTC), "end": BULK_END.replace(tzinfo=UTC)},
    ).result_rows[0]
    assert all(stats), stats
