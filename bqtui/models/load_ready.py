"""The model's query as ClickHouse's own Parquet, loadable into BigQuery as it is.

``load_ready_select`` wraps the model's query in an outer SELECT that gives exactly the
destination's columns, in order, typed as the host path's Arrow schema would be: Parquet
TIMESTAMP (microseconds, UTC), INT64, DOUBLE, BOOLEAN, UTF-8 strings and LISTs for repeated
fields. It stays self-contained SQL with server-side parameters ({name:Type}), so the same text
can be streamed back (FORMAT Parquet) or written by ClickHouse elsewhere (INSERT INTO FUNCTION).

What ClickHouse cannot reproduce exactly: the repair of JSON text with raw control characters
or unpaired surrogate escapes (the host re-serialises such a document with Python's parser,
and events re-extract $set, $set_once and $ip from it). Those rows are rare: a window is split
into the rows ClickHouse writes as they are (``load_ready_select``) and the few that the host
path (``conform_batch`` and the model's ``repair_batch``) still encodes (``host_rows_select``).
The host path leaves every other value as it is, so the split is exact.
"""

from collections.abc import Iterable

from bqtui.models.base import ExportModel, ModelField

# The settings that make ClickHouse's Parquet what BigQuery loads: strings as UTF-8 strings
# (not binary), DateTime64 as TIMESTAMP (not UInt32), zstd like the host writer.
PARQUET_SETTINGS: dict[str, int | str] = {
    "output_format_parquet_string_as_string": 1,
    "output_format_parquet_datetime_as_uint32": 0,
    "output_format_parquet_compression_method": "zstd",
    # Row groups of 64k rows, like the host writer's batches: ClickHouse holds a row group in
    # memory until it is written (1M rows: ~2 GB of RSS for events).
    "output_format_parquet_row_group_size": 65536,
}

# The values that the host's JSON repair would touch (json_text.SUSPICIOUS_JSON), as a
# ClickHouse regular expression: a raw control character, or a high/low surrogate escape.


def settings_clause(settings: dict[str, int | str] = PARQUET_SETTINGS) -> str:
    """The settings as a SQL SETTINGS clause (for a query that carries its own settings, such
    as an INSERT INTO FUNCTION that writes the SELECT's Parquet elsewhere)."""
    listed = ", ".join(
        f"{name} = {value!r}" if isinstance(value, str) else f"{name} = {value}"
        for name, value in settings.items()
    )
    return f"SETTINGS {listed}"


SUSPICIOUS_JSON_SQL = r"'[\x00-\x1f]|\\\\u[dD][89a-fA-F]'"

CLICKHOUSE_TYPES = {
    "STRING": "String",
    "JSON": "String",  # JSON travels as text, parsed by BigQuery in the MERGE
    "INT64": "Int64",
    "FLOAT64": "Float64",
    "BOOL": "Bool",
    "TIMESTAMP": "DateTime64(6, 'UTC')",
}


def clickhouse_type(model_field: ModelField) -> str:
    """The column's type in the outer SELECT: every scalar may be NULL (the table's fields
    are NULLABLE); a repeated field is an array of non-NULL values (BigQuery refuses NULL
    elements)."""
    value_type = CLICKHOUSE_TYPES[model_field.bq_type]
    return f"Array({value_type})" if model_field.repeated else f"Nullable({value_type})"


def quoted(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def host_repaired_fields(model: ExportModel) -> list[str]:
    """Columns of the model's query whose suspicious text the host changes: the JSON-capable
    ones (JSON columns are repaired; a model's repair_batch re-reads the JSON text it extracts
    from, e.g. events' properties). Every such column of the query is tested, whether the
    table has it or not: a superset only sends a few more rows to the host path, which is
    exact for any row."""
    return [f.name for f in model.fields if f.from_source and f.json_capable and not f.repeated]


def host_rows_condition(model: ExportModel) -> str | None:
    """True for the rows the host must encode; None when no row can need the host."""
    names = host_repaired_fields(model)
    if not names:
        return None
    return " OR ".join(_suspicious(f"ifNull({quoted(name)}, '')") for name in names)


def _suspicious(text: str) -> str:
    """SUSPICIOUS_JSON_SQL, written so that the common clean text costs less: the surrogate
    test runs only where a backslash-u is (measured: 0.36 s instead of 0.6 s per 1M events)."""
    return (
        rf"(match({text}, '[\x00-\x1f]') OR (position({text}, '\\u') > 0 "
        rf"AND match({text}, '\\\\u[dD][89a-fA-F]')))"
    )


def load_ready_select(
    model: ExportModel,
    fields: Iterable[ModelField],
    query: str,
    host_rows: str | None = None,
) -> str:
    """The outer SELECT over the model's query: the destination's source fields, in order,
    with exact types. Rows that only the host encodes exactly (``host_rows_select``) are left
    out, and ``host_rows`` (their encoding, as JSONEachRow text) is written in their place."""
    fields = list(fields)
    columns = ",\n    ".join(
        f"CAST({quoted(f.name)} AS {clickhouse_type(f)}) AS {quoted(f.name)}" for f in fields
    )
    condition = host_rows_condition(model)
    where = f"\nWHERE NOT ({condition})" if condition else ""
    select = f"SELECT\n    {columns}\nFROM (\n{query.strip()}\n) AS model_rows{where}"
    if not host_rows:
        return select
    names = ", ".join(quoted(f.name) for f in fields)
    structure = ", ".join(f"{quoted(f.name)} {clickhouse_type(f)}" for f in fields)
    return (
        f"{select}\nUNION ALL\nSELECT {names}\n"
        f"FROM format(JSONEachRow, {sql_string(structure)}, {sql_string(host_rows)})"
    )


def sql_string(text: str) -> str:
    """A ClickHouse string literal (the text is inlined: no URL or parameter size limit)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def host_rows_select(model: ExportModel, query: str) -> str | None:
    """The model's query limited to the rows only the host encodes exactly (every column of
    the query, as the host path and the model's repair_batch expect); None when there are
    none by construction."""
    condition = host_rows_condition(model)
    if condition is None:
        return None
    return f"SELECT *\nFROM (\n{query.strip()}\n) AS model_rows\nWHERE {condition}"


def clickhouse_encodes(model: ExportModel, fields: Iterable[ModelField]) -> bool:
    """Whether ClickHouse can write the model's rows to the table's ``fields``: a model that
    counts something in every row (sessions' ids without UUIDv7) needs the column whose NULLs
    the footers count; a table without it keeps the host path."""
    if model.full_history_rows is None:
        return True
    column = model.full_history_null_column
    return column is not None and any(f.name == column for f in fields)
