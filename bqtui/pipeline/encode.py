"""Arrow batches from ClickHouse → load-ready Parquet files.

Parquet keeps types exact (microsecond UTC timestamps, INT64, BOOL, REPEATED) and is compact
to upload; pyarrow writes it at memory speed. NDJSON would have to be serialised row by row in
Python, several times slower, and loses nothing we need. JSON columns travel as text and are
parsed by BigQuery in the MERGE, so one file format serves STRING and JSON exports alike.
"""

import functools
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bqtui.destination.table_plan import TablePlan
from bqtui.models.base import ExportModel, ModelField
from bqtui.models.json_text import repair_json_column
from bqtui.models.load_ready import PARQUET_SETTINGS, host_rows_select, load_ready_select

# A file per ~256 MB of Arrow data bounds local disk use and makes each load job retryable.
FILE_MAX_BYTES = 256 * 1024 * 1024
PARQUET_COMPRESSION = "zstd"
# Rows that only the host encodes exactly are inlined into ClickHouse's SELECT up to this size
# (the rare nasty JSON text); a window with more is encoded here whole, as before.
HOST_ROWS_MAX_CHARS = 64 * 1024 * 1024


def host_rows_max_chars() -> int:
    """``BQTUI_HOST_ROWS_MAX_CHARS`` overrides the limit (0: every such window on the host)."""
    return int(os.environ.get("BQTUI_HOST_ROWS_MAX_CHARS", HOST_ROWS_MAX_CHARS))


@dataclass(frozen=True)
class LoadFile:
    path: Path
    rows: int
    bytes: int


def conform_batch(
    batch: pa.RecordBatch, fields: list[ModelField], json_fields: set[str]
) -> pa.RecordBatch:
    """Select and cast the destination's columns, in order, repairing JSON text."""
    arrays = []
    for model_field in fields:
        column = batch.column(model_field.name)
        target = model_field.arrow_type()
        if column.type != target:
            column = column.cast(target)
        if model_field.name in json_fields:
            column = repair_json_column(column)
        arrays.append(column)
    schema = pa.schema([pa.field(f.name, f.arrow_type()) for f in fields])
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def write_parquet_files(
    batches: Iterable[pa.RecordBatch],
    fields: list[ModelField],
    json_fields: set[str],
    directory: Path | None = None,
    max_file_bytes: int = FILE_MAX_BYTES,
) -> Iterator[LoadFile]:
    """Write batches into Parquet files, yielding each file as soon as it is complete."""
    directory = Path(directory or tempfile.gettempdir())
    schema = pa.schema([pa.field(f.name, f.arrow_type()) for f in fields])
    writer: pq.ParquetWriter | None = None
    path = Path()  # set with each new writer; only used while a writer is open
    rows = size = 0
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if writer is None:
                handle, name = tempfile.mkstemp(prefix="bqtui-", suffix=".parquet", dir=directory)
                os.close(handle)
                path = Path(name)
                writer = pq.ParquetWriter(
                    str(path),
                    schema,
                    compression=PARQUET_COMPRESSION,
                    # Dictionaries only pay off for repetitive columns (not uuids, JSON, times).
                    use_dictionary=[f.name for f in fields if f.repetitive],
                )
                rows = size = 0
            conformed = conform_batch(batch, fields, json_fields)
            writer.write_batch(conformed)
            rows += conformed.num_rows
            size += conformed.nbytes
            if size >= max_file_bytes:
                writer.close()
                writer = None
                yield LoadFile(path, rows, path.stat().st_size)
        if writer is not None:
            writer.close()
            writer = None
            yield LoadFile(path, rows, path.stat().st_size)
    finally:
        if writer is not None:  # interrupted: remove the partial file
            writer.close()
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class ClickHouseFile:
    """A Parquet file that ClickHouse wrote; its rows and partition range from the footer."""

    load_file: LoadFile
    low: Any = None
    high: Any = None
    nulls: int = 0  # NULLs in the model's full-history column (see ExportModel)


def clickhouse_parquet_file(
    write: Callable[[Path], None],
    directory: Path,
    partition_field: str | None,
    null_column: str | None = None,
) -> ClickHouseFile | None:
    """Have ClickHouse write one load file (``write(path)``), reading back only its footer:
    the row count and the partition column's min and max; None (and no file) for no rows."""
    handle, name = tempfile.mkstemp(prefix="bqtui-", suffix=".parquet", dir=directory)
    os.close(handle)
    path = Path(name)
    try:
        write(path)
        metadata = pq.read_metadata(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if metadata.num_rows == 0:
        path.unlink(missing_ok=True)
        return None
    low, high = footer_range(metadata, partition_field)
    nulls = footer_nulls(metadata, null_column)
    return ClickHouseFile(LoadFile(path, metadata.num_rows, path.stat().st_size), low, high, nulls)


def _column_statistics(metadata: pq.FileMetaData, column: str | None) -> list[Any]:
    """The column's statistics in each row group ([] where the file has no such column)."""
    if column is None or metadata.num_row_groups == 0:
        return []
    first = metadata.row_group(0)
    leaves = [first.column(i).path_in_schema for i in range(first.num_columns)]
    if column not in leaves:
        return []
    index = leaves.index(column)
    statistics = [
        metadata.row_group(group).column(index).statistics
        for group in range(metadata.num_row_groups)
    ]
    if any(stats is None for stats in statistics):
        raise ValueError(f"The Parquet file has no statistics for {column}.")
    return statistics


def footer_nulls(metadata: pq.FileMetaData, column: str | None) -> int:
    """How many values of the column are NULL, from the row groups' statistics."""
    statistics = _column_statistics(metadata, column)
    if not all(stats.has_null_count for stats in statistics):
        raise ValueError(f"The Parquet file has no null count for {column}.")
    return sum(stats.null_count for stats in statistics)


def footer_range(metadata: pq.FileMetaData, column: str | None) -> tuple[Any, Any]:
    """The column's lowest and highest values from the row groups' statistics."""
    # A row group without min and max holds only NULLs in the column.
    bounded = [s for s in _column_statistics(metadata, column) if s.has_min_max]
    if not bounded:
        return None, None
    return min(s.min for s in bounded), max(s.max for s in bounded)


def host_rows_json(
    batches: Iterable[pa.RecordBatch],
    fields: list[ModelField],
    json_fields: set[str],
    max_chars: int | None = None,
) -> str:
    """Rows encoded here (conformed, their JSON text repaired) as ASCII JSONEachRow text, for
    ClickHouse to write into the window's Parquet beside its own rows."""
    lines, size = [], 0
    for batch in batches:
        for row in conform_batch(batch, fields, json_fields).to_pylist():
            values = {name: _json_value(value) for name, value in row.items()}
            lines.append(json.dumps(values, ensure_ascii=True, allow_nan=False))
            size += len(lines[-1]) + 1
            if max_chars is not None and size > max_chars:
                raise TooManyHostRows(f"{size:,} characters of rows only the host repairs")
    return "\n".join(lines)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):  # timestamp[us, UTC]: ClickHouse's basic text form
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    return value


class TooManyHostRows(Exception):
    """A window holds more text that only the host repairs than is worth inlining into SQL:
    the host encodes the whole window instead."""


def clickhouse_window_file(
    source: Any,
    model: ExportModel,
    plan: TablePlan,
    query: str,
    parameters: dict,
    work_dir: Path,
) -> tuple[ClickHouseFile | None, Any]:
    """A window's load file written by ClickHouse (None for no rows), with what its queries
    read. The few rows whose JSON text only the host repairs exactly are encoded here first
    and written by ClickHouse in their place; raises ``TooManyHostRows`` past the limit."""
    sql, read = window_load_ready_select(source, model, plan, query, parameters)
    written = clickhouse_parquet_file(
        functools.partial(source.write_parquet, sql, parameters, PARQUET_SETTINGS),
        work_dir,
        model.partition_field,
        model.full_history_null_column,
    )
    return written, added_reads(read, source.last_read)


def window_load_ready_select(
    source: Any, model: ExportModel, plan: TablePlan, query: str, parameters: dict
) -> tuple[str, Any]:
    """The window's load-ready SELECT, with the few rows whose JSON text only the host
    repairs exactly encoded here and inlined (raises ``TooManyHostRows`` past the limit),
    and what finding those rows read."""
    fields, json_fields = plan.source_fields, plan.json_fields
    host_rows, read = None, None
    host_sql = host_rows_select(model, query)
    if host_sql is not None:
        with source.stream(host_sql, parameters) as stream:
            batches: Iterable[pa.RecordBatch] = stream
            if model.repair_batch:
                batches = map(model.repair_batch, batches)
            host_rows = host_rows_json(batches, fields, json_fields, host_rows_max_chars())
        read = source.last_read
    return load_ready_select(model, fields, query, host_rows or None), read


def added_reads(first: Any, second: Any) -> Any:
    """What two queries of a window read together (None where the engine said nothing)."""
    if first is None or second is None:
        return second or first
    return type(first)(first.rows + second.rows, first.bytes + second.bytes)
