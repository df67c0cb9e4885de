"""ClickHouse's own Parquet (the default path) against the host encoding (BQTUI_ENCODE=host):
what BigQuery holds must be the same, field by field, for every model, both source paths
(embedded and HTTP), STRING and JSON tables, nasty JSON text included."""

import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from bqtui.models.json_text import SUSPICIOUS_JSON
from bqtui.pipeline import encode
from bqtui.source.clickhouse import ClickHouseSource
from tests.conftest import DEMO_END, DEMO_START
from tests.integration.conftest import add_export, run_cli
from tests.integration.test_events_export import NASTY, insert_events

EXPORTED: dict[str, tuple[int, int]] = {}  # the last export's rows by ClickHouse, by the host
KEYS = {"events": "uuid", "persons": "person_id, distinct_id", "sessions": "session_id"}
PREFIX = "00000000-0000-4000-8000-0000000001"

# Beyond test_events_export's NASTY: numbers no double holds, text that is not JSON, emoji,
# escapes of every kind, an empty document.
MORE_NASTY = {
    "01": '{"big":123456789012345678901234567890,"neg":-9223372036854775809,"f":1e400}',
    "02": "not json at all \x01 \\ud83d",
    "03": '{"emoji":"🌸😀👩‍👩‍👧","flag":"🇩🇪"}',
    "04": '{"esc":"\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000 \\u001f"}',
    "05": '{"dup":1,"dup":2,"sp" :  [ 1 , 2 ]}',
    "06": "",
    "07": '{"big":123456789012345678901234567890,"bad":"\\udc00","f":1.0E+2}',
    "08": '{"ctl":"\x7f\x00"}',
    "09": '["top","level","\\ud83d"]',
    "10": '"just a string \\udfff"',
}


def export_both_ways(db_path, destination, dsn, model, monkeypatch, *extra, start, end):
    """The same windows exported by the host encoding and by ClickHouse's Parquet."""
    tables = {}
    written: list[int] = []  # rows of each file ClickHouse wrote
    inlined: list[int] = []  # rows the host encoded for ClickHouse to write

    def spied_file(*args, **kwargs):
        result = original_file(*args, **kwargs)
        written.append(0 if result is None else result.load_file.rows)
        return result

    def spied_rows(*args, **kwargs):
        text = original_rows(*args, **kwargs)
        inlined.append(len(text.splitlines()))
        return text

    original_file, original_rows = encode.clickhouse_parquet_file, encode.host_rows_json
    monkeypatch.setattr(encode, "clickhouse_parquet_file", spied_file)
    monkeypatch.setattr(encode, "host_rows_json", spied_rows)
    for encoding in ("host", "clickhouse"):
        name = f"{model[:3]}_{encoding}"
        add_export(db_path, destination, dsn, *extra, name=name, table=name, model=model)
        monkeypatch.setenv("BQTUI_ENCODE", encoding)
        # ClickHouse writes a file per window: groups of one window (a backfill's groups of
        # several windows are encoded on the host, a load job per ~256 MB)
        monkeypatch.setenv("BQTUI_GROUP_WINDOWS", "1" if encoding == "clickhouse" else "168")
        code = run_cli(
            "run",
            name,
            "--db",
            str(db_path),
            "--start",
            start.isoformat(),
            "--end",
            end.isoformat(),
        )
        assert code == 0
        tables[encoding] = name
        if encoding == "host":
            assert written == inlined == []
    EXPORTED[model] = (sum(written), sum(inlined))
    return [
        [without_load_time(r) for r in destination.rows(tables[e], KEYS[model])]
        for e in ("host", "clickhouse")
    ]


def without_load_time(row: dict) -> dict:
    row.pop("bq_ingested_timestamp", None)  # filled by BigQuery at load time
    return row


def assert_same_rows(host_rows, clickhouse_rows):
    assert len(clickhouse_rows) == len(host_rows) > 0
    for host, native in zip(host_rows, clickhouse_rows, strict=True):
        assert native.keys() == host.keys()
        for name in host:
            assert native[name] == host[name], (name, host)
            assert type(native[name]) is type(host[name]), name


@pytest.mark.parametrize("model", ["events", "persons", "sessions"])
@pytest.mark.parametrize("json_type", [False, True], ids=["string", "json"])
def test_every_model_loads_the_same_rows(
    db_path, destination, demo_dsn, model, json_type, monkeypatch
):
    extra = ("--json-type",) if json_type else ()
    host_rows, clickhouse_rows = export_both_ways(
        db_path, destination, demo_dsn, model, monkeypatch, *extra, start=DEMO_START, end=DEMO_END
    )
    assert_same_rows(host_rows, clickhouse_rows)
    by_clickhouse, by_host = EXPORTED[model]
    # every staged row was in ClickHouse's files (the table merges repeated keys); sessions'
    # ids without UUIDv7 are counted from the footers' NULLs of session_id_time
    assert by_clickhouse >= len(clickhouse_rows) > by_host


@pytest.mark.parametrize("json_type", [False, True], ids=["string", "json"])
def test_nasty_properties_load_the_same(db_path, destination, fresh_source, json_type, monkeypatch):
    handmade = {f"{PREFIX[:-1]}0{k}": text for k, (text, _) in NASTY.items()}
    handmade |= {f"{PREFIX}{k}": text for k, text in MORE_NASTY.items()}
    insert_events(fresh_source, handmade)
    extra = ("--json-type",) if json_type else ()
    one_day = {"start": DEMO_START, "end": DEMO_START + timedelta(days=1)}
    host_rows, clickhouse_rows = export_both_ways(
        db_path, destination, fresh_source, "events", monkeypatch, *extra, **one_day
    )
    assert len(host_rows) == len(handmade)
    assert_same_rows(host_rows, clickhouse_rows)
    suspicious = [t for t in handmade.values() if re.search(SUSPICIOUS_JSON, t)]
    assert EXPORTED["events"] == (len(handmade), len(suspicious))


@pytest.mark.parametrize("json_type", [False, True], ids=["string", "json"])
def test_persons_with_nasty_properties_load_the_same(
    db_path, destination, fresh_source, json_type, monkeypatch
):
    client = ClickHouseSource(fresh_source).client
    at = datetime(2024, 5, 1, 9, tzinfo=UTC)
    texts = [*MORE_NASTY.values(), *(text for text, _ in NASTY.values())]
    people = [f"11111111-1111-4111-8111-{n:012d}" for n in range(len(texts))]
    client.insert(
        "person",
        [[UUID(p), at, 1, text, 1, 0, 1, at] for p, text in zip(people, texts, strict=True)],
        column_names=[
            "id",
            "created_at",
            "team_id",
            "properties",
            "is_identified",
            "is_deleted",
            "version",
            "_timestamp",
        ],
    )
    client.insert(
        "person_distinct_id2",
        [[1, f"d{n}", UUID(p), 0, 0, at] for n, p in enumerate(people)],
        column_names=["team_id", "distinct_id", "person_id", "is_deleted", "version", "_timestamp"],
    )
    extra = ("--json-type",) if json_type else ()
    host_rows, clickhouse_rows = export_both_ways(
        db_path,
        destination,
        fresh_source,
        "persons",
        monkeypatch,
        *extra,
        start=DEMO_START,
        end=DEMO_START + timedelta(days=1),
    )
    assert len(host_rows) == len(texts)
    assert_same_rows(host_rows, clickhouse_rows)
    suspicious = [t for t in texts if re.search(SUSPICIOUS_JSON, t)]
    assert EXPORTED["persons"] == (len(texts), len(suspicious))
