"""Events, end to end: ClickHouse (chdb) → bqtui → BigQuery (emulator behind the fake Google)."""

import json
import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from bqtui.source.clickhouse import ClickHouseSource
from bqtui.state.store import Store
from tests.conftest import DEMO_END, DEMO_START
from tests.harness.bq_proxy import BACKEND_ERROR, INTERNAL_ERROR
from tests.integration.conftest import PROJECT, add_export, run_cli


def aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def source_events(dsn, start, end, team_id=1, include=(), exclude=()) -> dict[str, dict]:
    """The events a window must export, computed here in Python from the raw rows."""
    result = ClickHouseSource(dsn).client.query(
        "SELECT toString(uuid), event, properties, elements_chain, distinct_id, team_id, "
        "timestamp, inserted_at, _timestamp FROM events WHERE team_id = {t:Int64}",
        parameters={"t": team_id},
    )
    expected = {}
    for (
        uuid,
        event,
        props,
        elements,
        distinct_id,
        team,
        ts,
        inserted_at,
        ingested,
    ) in result.result_rows:
        arrived = aware(inserted_at) or aware(ingested)
        if not (start <= arrived < end) or uuid in expected:
            continue
        if (include and event not in include) or event in exclude:
            continue
        parsed = json.loads(props, strict=False)
        expected[uuid] = {
            "uuid": uuid,
            "event": event,
            "properties": props,
            "elements": elements,
            "set": parsed.get("$set"),
            "set_once": parsed.get("$set_once"),
            "distinct_id": distinct_id,
            "team_id": team,
            "ip": parsed.get("$ip") or None,
            "site_url": "",
            "timestamp": aware(ts),
        }
    return expected


def surrogates_replaced(value):
    """The spec's repair, written from its rule: after decoding, every code point that is a
    UTF-16 surrogate (json.loads already joins escaped pairs) is lone and becomes U+FFFD."""
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {surrogates_replaced(k): surrogates_replaced(v) for k, v in value.items()}
    if isinstance(value, list):
        return [surrogates_replaced(v) for v in value]
    return value


def needs_repair(text: str) -> bool:
    """Raw control characters, or a \\uD800-\\uDFFF escape, anywhere in the JSON text."""
    return any(ord(c) < 0x20 for c in text) or re.search(r"\\u[dD][89a-fA-F]", text) is not None


def backfill(db_path, name="ev", start=DEMO_START, end=DEMO_END) -> int:
    return run_cli(
        "run", name, "--db", str(db_path), "--start", start.isoformat(), "--end", end.isoformat()
    )


def test_string_columns_match_the_source_field_by_field(db_path, destination, demo_dsn):
    add_export(db_path, destination, demo_dsn)
    assert backfill(db_path) == 0

    expected = source_events(demo_dsn, DEMO_START, DEMO_END)
    rows = destination.rows("events_export", "uuid")
    assert len(rows) == len(expected) > 1000
    for row in rows:
        want = expected[row["uuid"]]
        assert row.pop("bq_ingested_timestamp").tzinfo is not None
        for name in ("set", "set_once"):
            value = row.pop(name)
            assert (None if value is None else json.loads(value)) == want[name], row["uuid"]
        assert row == {k: want[k] for k in row}, row["uuid"]


def test_json_columns_hold_parsed_json_and_nasty_properties_survive(db_path, destination, demo_dsn):
    add_export(db_path, destination, demo_dsn, "--json-type")
    assert backfill(db_path) == 0

    expected = source_events(demo_dsn, DEMO_START, DEMO_END)
    schema = {
        f.name: f.field_type
        for f in destination.admin.get_table(
            f"{PROJECT}.{destination.dataset}.events_export"
        ).schema
    }
    assert schema["properties"] == schema["set"] == schema["set_once"] == "JSON"
    rows = destination.rows("events_export", "uuid")
    assert {r["uuid"] for r in rows} == set(expected)
    repaired = truncated_titles = control_texts = 0
    for row in rows:
        want = expected[row["uuid"]]
        source_properties = json.loads(want["properties"], strict=False)
        if needs_repair(want["properties"]):
            repaired += 1
            assert row["properties"] == surrogates_replaced(source_properties), row["uuid"]
        else:
            assert row["properties"] == json.loads(want["properties"]), row["uuid"]
        assert row["set"] == surrogates_replaced(want["set"])
        assert row["set_once"] == surrogates_replaced(want["set_once"])
        # The demo data's two nasty strings, as BigQuery must hold them.
        if "\\ud83d" in want["properties"]:
            truncated_titles += 1
            assert row["properties"]["title"] == (
                "Frühlingsangebote 🌸 bis zu 50 % Rabatt \ufffd"
            ), row["uuid"]
        if "\x01" in want["properties"]:
            control_texts += 1
            assert row["properties"]["$el_text"] == "Weiter\t→\x01", row["uuid"]
    # The demo data does hold the nasty cases.
    assert truncated_titles > 0 and control_texts > 0
    assert repaired == truncated_titles + control_texts


def insert_events(dsn: str, properties: dict[str, str]) -> None:
    """Insert events whose properties are these exact texts (uuid → text), on 2024-05-01."""
    at = datetime(2024, 5, 1, 10, tzinfo=UTC)
    micros = pa.timestamp("us", tz="UTC")
    n = len(properties)
    rows = pa.table(
        {
            "uuid": pa.array(list(properties), pa.string()),
            "event": pa.array(["nasty"] * n, pa.string()),
            "properties": pa.array(list(properties.values()), pa.string()),
            "timestamp": pa.array([at] * n, micros),
            "team_id": pa.array([1] * n, pa.int64()),
            "distinct_id": pa.array(["d"] * n, pa.string()),
            "elements_chain": pa.array([""] * n, pa.string()),
            "created_at": pa.array([at] * n, micros),
            "person_id": pa.array(["00000000-0000-4000-8000-00000000ffff"] * n, pa.string()),
            "inserted_at": pa.array([at] * n, micros),
            "_timestamp": pa.array([at] * n, pa.timestamp("s", tz="UTC")),
        }
    )
    ClickHouseSource(dsn).client.insert_arrow("events", rows)


# uuid suffix → (source properties text, exact Python value BigQuery's JSON must hold).
NASTY = {
    "01": ('{"a":"x\\ud83dy"}', {"a": "x\ufffdy"}),
    "02": ('{"b":"\\uDE00 low"}', {"b": "\ufffd low"}),
    "03": ('{"c":"\\ud83c\\udf38 pair"}', {"c": "🌸 pair"}),
    "04": ('{"d":"tab\there\x01\x1f end"}', {"d": "tab\there\x01\x1f end"}),
    "05": ('{"e":"line1\nline2"}', {"e": "line1\nline2"}),
    "06": ('{"\\ud83d":1,"k\x02ey":2}', {"\ufffd": 1, "k\x02ey": 2}),
    "07": (
        '{"f":["\\udbff",{"g":"\\ud800\\ud800"}],"h":null,"n":1.5}',
        {"f": ["\ufffd", {"g": "\ufffd\ufffd"}], "h": None, "n": 1.5},
    ),
    "08": ('{"escaped":"\\\\ud83d"}', {"escaped": "\\ud83d"}),  # a backslash, then "ud83d"
    "09": ('{"plain":"Zürich 🌸"}', {"plain": "Zürich 🌸"}),
    "10": (
        '{"$set":{"name":"Zo\\ud83d","t":"a\x01"},"$set_once":{"x":"\\udfff"},'
        '"$ip":"10.0.0.1","z":"\x03"}',
        {
            "$set": {"name": "Zo\ufffd", "t": "a\x01"},
            "$set_once": {"x": "\ufffd"},
            "$ip": "10.0.0.1",
            "z": "\x03",
        },
    ),
}


def test_handmade_nasty_properties_in_string_and_json_tables(db_path, destination, fresh_source):
    prefix = "00000000-0000-4000-8000-0000000000"
    insert_events(fresh_source, {prefix + k: text for k, (text, _) in NASTY.items()})
    add_export(db_path, destination, fresh_source, name="str", table="as_string")
    add_export(db_path, destination, fresh_source, "--json-type", name="js", table="as_json")
    one_day = (DEMO_START, DEMO_START + timedelta(days=1))
    assert backfill(db_path, "str", *one_day) == 0
    assert backfill(db_path, "js", *one_day) == 0

    as_string = {r["uuid"][-2:]: r for r in destination.rows("as_string", "uuid")}
    as_json = {r["uuid"][-2:]: r for r in destination.rows("as_json", "uuid")}
    assert set(as_string) == set(as_json) == set(NASTY)
    for key, (text, value) in NASTY.items():
        # STRING keeps the source text byte for byte; JSON holds the repaired value.
        assert as_string[key]["properties"] == text, key
        assert as_json[key]["properties"] == value, key
        for row in (as_string[key], as_json[key]):
            assert row["ip"] == value.get("$ip"), key
            assert row["event"] == "nasty" and row["distinct_id"] == "d", key

    # $set/$set_once of a text ClickHouse cannot parse: STRING holds JSON text that decodes to
    # the source value (escapes kept), JSON holds the repaired value.
    for key in NASTY:
        if key != "10":
            assert [as_string[key][c] for c in ("set", "set_once")] == [None, None], key
            assert [as_json[key][c] for c in ("set", "set_once")] == [None, None], key
    assert json.loads(as_string["10"]["set"]) == {"name": "Zo\ud83d", "t": "a\x01"}
    assert json.loads(as_string["10"]["set_once"]) == {"x": "\udfff"}
    assert as_json["10"]["set"] == {"name": "Zo\ufffd", "t": "a\x01"}
    assert as_json["10"]["set_once"] == {"x": "\ufffd"}


def test_rerunning_a_window_adds_no_duplicates(db_path, destination, demo_dsn):
    add_export(db_path, destination, demo_dsn)
    assert backfill(db_path) == 0
    assert backfill(db_path) == 0  # the same windows again

    counts = destination.query(
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT uuid) AS u FROM `{PROJECT}.{destination.dataset}.events_export`"
    )[0]
    assert counts["n"] == counts["u"] == len(source_events(demo_dsn, DEMO_START, DEMO_END))


def test_lost_responses_and_server_errors_are_retried_without_duplicates(
    db_path, destination, demo_dsn
):
    add_export(db_path, destination, demo_dsn)
    proxy = destination.google.proxy
    # The upload's last request creates the load job and the merge's jobs.insert creates the
    # query job, but both answers are lost: the retries see 409 Already Exists and wait for
    # the jobs instead of running them twice.
    proxy.inject("PUT", r"^/upload/bigquery/v2/projects/[^/]+/jobs$", "drop_after", times=1)
    proxy.inject("POST", r"^/bigquery/v2/projects/[^/]+/jobs$", "drop_after", times=1)
    # And the first upload attempt is refused with a 503.
    proxy.inject("POST", r"^/upload/bigquery/v2/projects/[^/]+/jobs$", BACKEND_ERROR, times=1)
    assert backfill(db_path, end=DEMO_START + timedelta(days=1)) == 0

    starts = [
        (c.path.startswith("/upload"), c.status, c.fault)
        for c in proxy.calls
        if c.operation == "jobs.insert"
    ]
    assert starts == [
        (True, 503, "503 backendError"),
        (True, 200, None),  # the upload session whose last request is answered with nothing
        (True, 409, None),  # the whole upload again: the job exists already
        (False, 200, "drop_after"),
        (False, 409, None),
    ]
    counts = destination.query(
        f"SELECT COUNT(*) AS n, COUNT(DISTINCT uuid) AS u FROM `{PROJECT}.{destination.dataset}.events_export`"
    )[0]
    expected = source_events(demo_dsn, DEMO_START, DEMO_START + timedelta(days=1))
    assert counts["n"] == counts["u"] == len(expected)


def test_a_run_that_dies_before_the_merge_is_completed_exactly_once_later(
    db_path, destination, demo_dsn
):
    export = add_export(db_path, destination, demo_dsn)
    proxy = destination.google.proxy
    # Every query job fails: the stage table is loaded but the MERGE never happens.
    proxy.inject("POST", r"^/bigquery/v2/projects/[^/]+/jobs$", INTERNAL_ERROR, times=1000)
    one_day = DEMO_START + timedelta(days=1)
    assert backfill(db_path, end=one_day) == 1
    proxy.clear_faults()
    window = Store(db_path).get_window(export.id, DEMO_START)
    assert window.status == "failed" and window.attempt == 1
    assert "BigQuery kept failing" in window.error
    assert destination.rows("events_export") == []

    assert backfill(db_path, end=one_day) == 0
    window = Store(db_path).get_window(export.id, DEMO_START)
    assert (window.status, window.attempt) == ("done", 2)
    uuids = [r["uuid"] for r in destination.rows("events_export")]
    assert sorted(uuids) == sorted(source_events(demo_dsn, DEMO_START, one_day))
    assert not [t for t in destination.table_names() if "stage" in t]


def test_late_events_land_in_the_window_they_arrived_in(db_path, destination, fresh_source):
    client = ClickHouseSource(fresh_source).client
    client.command(
        "INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, elements_chain,"
        " created_at, person_id, inserted_at, _timestamp) VALUES"
        " ('00000000-0000-4000-8000-000000000001', 'on_time', '{}', '2024-05-01 10:00:00', 1, 'a', '',"
        "  '2024-05-01 10:00:00', generateUUIDv4(), '2024-05-01 10:00:01', '2024-05-01 10:00:01'),"
        " ('00000000-0000-4000-8000-000000000002', 'late', '{}', '2024-05-01 11:00:00', 1, 'a', '',"
        "  '2024-05-01 11:00:00', generateUUIDv4(), '2024-05-02 09:00:00', '2024-05-02 09:00:00'),"
        " ('00000000-0000-4000-8000-000000000003', 'no_inserted_at', '{}', '2024-04-30 23:00:00', 1,"
        "  'a', '', '2024-04-30 23:00:00', generateUUIDv4(), NULL, '2024-05-02 10:00:00')"
    )
    export = add_export(db_path, destination, fresh_source)
    assert backfill(db_path, end=datetime(2024, 5, 2, tzinfo=UTC)) == 0
    assert [r["event"] for r in destination.rows("events_export")] == ["on_time"]

    assert (
        backfill(
            db_path, start=datetime(2024, 5, 2, tzinfo=UTC), end=datetime(2024, 5, 3, tzinfo=UTC)
        )
        == 0
    )
    rows = destination.rows("events_export", "event")
    assert [r["event"] for r in rows] == ["late", "no_inserted_at", "on_time"]
    windows = {w.window_start.day: w.rows for w in Store(db_path).list_windows(export.id)}
    assert windows == {1: 1, 2: 2}


def test_include_and_exclude_filters(db_path, destination, demo_dsn):
    add_export(
        db_path,
        destination,
        demo_dsn,
        "--include-events",
        "$pageview,$autocapture",
        name="inc",
        table="inc",
    )
    add_export(
        db_path, destination, demo_dsn, "--exclude-events", "$pageview", name="exc", table="exc"
    )
    assert backfill(db_path, "inc") == 0
    assert backfill(db_path, "exc") == 0

    included = {r["uuid"] for r in destination.rows("inc")}
    excluded = {r["uuid"] for r in destination.rows("exc")}
    assert included == set(
        source_events(demo_dsn, DEMO_START, DEMO_END, include=("$pageview", "$autocapture"))
    )
    assert excluded == set(source_events(demo_dsn, DEMO_START, DEMO_END, exclude=("$pageview",)))
    assert {r["event"] for r in destination.rows("inc")} == {"$pageview", "$autocapture"}


def test_a_table_with_fewer_fields_gets_only_those(db_path, destination, demo_dsn, capsys):
    from google.cloud import bigquery

    table = bigquery.Table(
        f"{PROJECT}.{destination.dataset}.narrow",
        schema=[
            bigquery.SchemaField(n, t)
            for n, t in (("uuid", "STRING"), ("event", "STRING"), ("timestamp", "TIMESTAMP"))
        ],
    )
    destination.admin.create_table(table)
    add_export(db_path, destination, demo_dsn, table="narrow")
    assert backfill(db_path) == 0

    assert (
        "lacks model fields properties, elements, set, set_once, distinct_id, team_id, ip, "
        "site_url, bq_ingested_timestamp; they are left out" in capsys.readouterr().err
    )
    rows = destination.rows("narrow", "uuid")
    expected = source_events(demo_dsn, DEMO_START, DEMO_END)
    assert [(r["uuid"], r["event"], r["timestamp"]) for r in rows] == [
        (u, e["event"], e["timestamp"]) for u, e in sorted(expected.items())
    ]


def test_table_stage_and_jobs_are_made_as_bigquery_expects(db_path, destination, demo_dsn):
    export = add_export(db_path, destination, demo_dsn)
    assert backfill(db_path, end=DEMO_START + timedelta(days=1)) == 0

    calls = destination.google.proxy.calls
    created = [c.json for c in calls if c.operation == "tables.insert"]
    final = next(t for t in created if t["tableReference"]["tableId"] == "events_export")
    assert final["timePartitioning"] == {"type": "DAY", "field": "timestamp"}
    stage = next(t for t in created if "_bqtui_stage_" in t["tableReference"]["tableId"])
    assert "timePartitioning" not in stage
    expires = datetime.fromtimestamp(int(stage["expirationTime"]) / 1000, UTC)
    assert timedelta(hours=11) < expires - datetime.now(UTC) <= timedelta(hours=12)
    jobs = [c.json for c in calls if c.operation == "jobs.insert" and c.json]
    prefix = f"bqtui_{export.uid[:12]}_20240501T000000_a1_"
    assert sorted(j["jobReference"]["jobId"] for j in jobs) == [prefix + "load0", prefix + "merge"]
    assert all(j["configuration"]["labels"]["bqtui_export"] == "ev" for j in jobs)
    assert not [t for t in destination.table_names() if "stage" in t]


def test_run_all_exports_every_due_window_and_reports(db_path, destination, fresh_source, capsys):
    from bqtui.demo import data as demo_data

    now = datetime.now(UTC)
    start = (now - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    demo_data.generate(
        ClickHouseSource(fresh_source).client, seed=3, start=start, end=now - timedelta(hours=1)
    )
    add_export(db_path, destination, fresh_source, start=start.isoformat())
    capsys.readouterr()
    assert run_cli("--db", str(db_path), "--run-all") == 0

    out = capsys.readouterr().out
    assert out.startswith("ev: succeeded, 2/2 windows")
    today = start + timedelta(days=2)
    assert len(destination.rows("events_export")) == len(source_events(fresh_source, start, today))
    assert run_cli("--db", str(db_path), "--run-all") == 0  # nothing due now
    assert "ev: nothing_due" in capsys.readouterr().out


def test_cancel_stops_at_a_safe_point_with_nothing_half_written(db_path, destination, demo_dsn):
    from bqtui.pipeline.runner import CancelToken, ExportRunner, LogEvent
    from bqtui.state.windows import windows_between

    export = add_export(db_path, destination, demo_dsn)
    store = Store(db_path)
    cancel = CancelToken()

    def on_event(event):
        # Cancel as the second window's extraction starts; the first window is done by then.
        if isinstance(event, LogEvent) and event.message.startswith("Window 2024-05-02 00:00"):
            cancel.cancel()

    windows = list(windows_between(DEMO_START, DEMO_END, export.interval))
    result = ExportRunner(store, on_event=on_event, cancel=cancel).run_export(
        export, windows=windows
    )

    assert (result.status, result.windows_done) == ("cancelled", 1)
    states = {w.window_start.day: w.status for w in store.list_windows(export.id)}
    assert states == {1: "done", 2: "cancelled"}
    assert store.list_runs(export.id)[0].status == "cancelled"
    exported = {r["uuid"] for r in destination.rows("events_export")}
    assert exported == set(source_events(demo_dsn, DEMO_START, DEMO_START + timedelta(days=1)))
    assert not [t for t in destination.table_names() if "stage" in t]


def test_events_export_with_the_seed_custom_role_leaves_only_an_expiring_stage(
    db_path, destination, demo_dsn, capsys
):
    from tests.harness.google import SEED_CUSTOM_ROLE

    # Events do not require tables.delete: the stage table cannot be dropped and expires.
    account = destination.account
    account.revoke(
        project_permissions={"bigquery.jobs.create"},
        dataset_permissions={
            destination.dataset: {"bigquery.tables.delete", "bigquery.tables.update"}
        },
    )
    account.grant(
        project_permissions={"bigquery.jobs.create"},
        dataset_permissions={destination.dataset: SEED_CUSTOM_ROLE - {"bigquery.jobs.create"}},
    )
    add_export(db_path, destination, demo_dsn)
    one_day = DEMO_START + timedelta(days=1)
    assert backfill(db_path, end=one_day) == 0
    assert backfill(db_path, end=one_day) == 0  # the leftover stage is reused, not duplicated

    assert "will expire by itself within 12 hours" in capsys.readouterr().err
    uuids = [r["uuid"] for r in destination.rows("events_export")]
    assert sorted(uuids) == sorted(source_events(demo_dsn, DEMO_START, one_day))


def test_a_broken_source_fails_its_export_with_a_message_and_run_all_goes_on(
    db_path, destination, demo_dsn, fresh_source, capsys
):
    add_export(db_path, destination, demo_dsn, name="a-good", table="good")
    broken = (  # a database that does not exist, on either path
        fresh_source.replace("?database=", "?database=missing_")
        if "?database=" in fresh_source
        else fresh_source.replace("/src_", "/missing_src_")
    )
    add_export(db_path, destination, broken, name="b-broken", table="broken")
    store = Store(db_path)
    two_days_ago = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=2
    )
    for export in store.list_exports():  # two windows due each
        store.update_export(export.with_changes(start_at=two_days_ago))
    capsys.readouterr()
    assert run_cli("--db", str(db_path), "--run-all") == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("a-good: succeeded")
    assert out[1].startswith("b-broken: failed, 0/2 windows") and "Database missing_src" in out[1]
    assert store.list_runs(store.require_export("b-broken").id)[0].status == "failed"
