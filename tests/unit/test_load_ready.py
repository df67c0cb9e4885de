"""The load-ready SELECT: ClickHouse's Parquet has the host writer's columns, types and values."""

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bqtui.models import MODELS
from bqtui.models.base import ExportModel, ModelField
from bqtui.models.load_ready import (
    PARQUET_SETTINGS,
    SUSPICIOUS_JSON_SQL,
    host_rows_condition,
    host_rows_select,
    load_ready_select,
    settings_clause,
    sql_string,
)
from bqtui.pipeline.encode import clickhouse_parquet_file, conform_batch, host_rows_json
from bqtui.source.clickhouse import ClickHouseSource

# Source values of other types than the destination's, as a model's query may give them.
LOOSE_VALUES = {
    "STRING": "'text'",
    "INT64": "toUInt8(7)",
    "FLOAT64": "toFloat32(1.5)",
    "BOOL": "toUInt8(1)",
    "TIMESTAMP": "toDateTime('2024-05-01 10:00:00', 'UTC')",
}


@pytest.fixture(scope="module")
def source():
    with ClickHouseSource("chdb://") as source:
        yield source


def loose_query(fields: list[ModelField]) -> str:
    columns = []
    for f in fields:
        value = LOOSE_VALUES[f.bq_type]
        columns.append(f"[{value}] AS `{f.name}`" if f.repeated else f"{value} AS `{f.name}`")
    return "SELECT " + ", ".join(columns) + " WHERE {team_id:Int64} = 1"


def write(source, sql: str, path: Path) -> pa.Table:
    source.write_parquet(sql, {"team_id": 1}, PARQUET_SETTINGS, path)
    return pq.read_table(path)


@pytest.mark.parametrize("model", MODELS.values(), ids=lambda m: m.model.value)
def test_columns_come_in_order_with_the_host_writers_types(source, model, tmp_path):
    fields = [f for f in model.fields if f.from_source]
    table = write(source, load_ready_select(model, fields, loose_query(fields)), tmp_path / "f")
    assert table.column_names == [f.name for f in fields]
    for f in fields:
        got, want = table.schema.field(f.name).type, f.arrow_type()
        if f.repeated:  # a Parquet LIST of non-NULL values, as BigQuery's REPEATED needs
            assert pa.types.is_list(got) and not got.value_field.nullable, f.name
            got, want = got.value_type, want.value_type
        assert got == want, f.name
    metadata = pq.read_metadata(tmp_path / "f")
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    timestamp = next(f.name for f in fields if f.bq_type == "TIMESTAMP" and not f.repeated)
    assert table.column(timestamp)[0].as_py() == datetime(2024, 5, 1, 10, tzinfo=UTC)


NASTY_TEXTS = [
    '{"a":"x\\ud83dy"}',
    '{"d":"tab\there\x01\x1f end"}',
    '{"big":123456789012345678901234567890,"bad":"\\udc00","f":1.0E+2}',
    "not json \x02 \\udfff",
    '{"emoji":"🌸😀","quote":"\'","backslash":"\\\\"}',
    '{"ctl":"\x7f\x00"}',
]


def test_host_rows_come_back_from_clickhouse_exactly(source, tmp_path):
    """JSONEachRow text of the host's rows, written by ClickHouse, is the host's Parquet."""
    model = MODELS[next(iter(MODELS))]
    fields = [
        ModelField("properties", "STRING", json_capable=True),
        ModelField("plain", "STRING"),
        ModelField("n", "INT64"),
        ModelField("ok", "BOOL"),
        ModelField("at", "TIMESTAMP"),
        ModelField("tags", "STRING", repeated=True),
    ]
    n = len(NASTY_TEXTS)
    batch = pa.RecordBatch.from_pydict(
        {
            "properties": NASTY_TEXTS,
            "plain": ["a\x01'b\\", None, "🌸", "", "\n", "x"],
            "n": [-(2**63), 2**63 - 1, None, 0, 1, -1],
            "ok": [True, False, None, True, False, True],
            "at": [datetime(1970, 1, 1, tzinfo=UTC), None]
            + [datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)] * (n - 2),
            "tags": [["a", "b\x01"], [], ["🌸"], ["'"], ["\\"], ["x"]],
        }
    )
    for json_fields in (set(), {"properties"}):
        expected = pa.Table.from_batches([conform_batch(batch, fields, json_fields)])
        rows = host_rows_json([batch], fields, json_fields)
        assert rows.isascii()
        no_rows = loose_query(fields).replace("{team_id:Int64} = 1", "{team_id:Int64} = 0")
        table = write(
            source, load_ready_select(_bare(model), fields, no_rows, rows), tmp_path / "h"
        )
        assert table.to_pylist() == expected.to_pylist()


def _bare(model: ExportModel) -> ExportModel:
    """The model with no JSON-capable field: every row goes through ClickHouse."""
    from dataclasses import replace

    return replace(model, fields=())


def test_only_suspicious_text_goes_to_the_host(source):
    model = MODELS[next(iter(MODELS))]
    assert host_rows_condition(model) is not None
    cases = {
        '{"a":"\\ud83d"}': True,
        '{"a":"\\uDFFF"}': True,
        '{"a":"\x01"}': True,
        '{"a":"\\u00e9 and \\n"}': False,
        '{"a":"Zürich 🌸"}': False,
        '{"a":"\\\\ud83d"}': True,  # the host's regex matches here too (it re-serialises)
    }
    for text, suspicious in cases.items():
        direct = source.scalar(f"SELECT match({sql_string(text)}, {SUSPICIOUS_JSON_SQL})")
        matched = source.scalar(
            f"SELECT {host_rows_condition(model)} FROM (SELECT {sql_string(text)} AS properties,"
            " CAST(NULL AS Nullable(String)) AS set, '' AS set_once)"
        )
        assert bool(matched) is bool(direct) is suspicious, text


def test_host_rows_select_and_settings_are_plain_sql():
    model = MODELS[next(iter(MODELS))]
    sql = host_rows_select(model, "SELECT * FROM events WHERE team_id = {team_id:Int64}")
    assert sql is not None and sql.startswith("SELECT *\nFROM (\nSELECT * FROM events")
    clause = settings_clause()
    assert "output_format_parquet_compression_method = 'zstd'" in clause
    assert "output_format_parquet_string_as_string = 1" in clause


def test_a_file_without_rows_is_removed_and_the_footer_gives_rows_and_range(source, tmp_path):
    def nothing(path):
        source.write_parquet("SELECT 1 AS x WHERE {team_id:Int64} = 0", {"team_id": 1}, {}, path)

    assert clickhouse_parquet_file(nothing, tmp_path, "x") is None
    assert list(tmp_path.iterdir()) == []

    def some(path):
        source.write_parquet(
            "SELECT number AS n, toDateTime64(1714557600 + number, 6, 'UTC') AS at "
            "FROM numbers(100000) WHERE {team_id:Int64} = 1",
            {"team_id": 1},
            {**PARQUET_SETTINGS, "output_format_parquet_row_group_size": 30000},
            path,
        )

    written = clickhouse_parquet_file(some, tmp_path, "at")
    assert written is not None
    assert written.load_file.rows == 100000
    assert pq.read_metadata(written.load_file.path).num_row_groups > 1
    assert written.low == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert written.high == datetime(2024, 5, 1, 10, tzinfo=UTC).fromtimestamp(
        1714557600 + 99999, UTC
    )
