"""Arrow batches from ClickHouse → load-ready Parquet files.

Parquet keeps types exact (microsecond UTC timestamps, INT64, BOOL, REPEATED) and is compact
to upload; pyarrow writes it at memory speed. NDJSON would have to be serialised row by row in
Python, several times slower, and loses nothing we need. JSON columns travel as text and are
parsed by BigQuery in the MERGE, so one file format serves STRING and JSON exports alike.
"""

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .models.base import ModelField

# A file per ~256 MB of Arrow data bounds local disk use and makes each load job retryable.
FILE_MAX_BYTES = 256 * 1024 * 1024
PARQUET_COMPRESSION = "zstd"
# Raw control characters and \uD800-\uDFFF escapes make BigQuery's JSON parser reject a value.
SUSPICIOUS_JSON = r"[\x00-\x1f]|\\u[dD][89abcdefABCDEF]"


@dataclass(frozen=True)
class LoadFile:
    path: Path
    rows: int
    bytes: int


def repair_json_text(text: str) -> str:
    """Make JSON text acceptable to BigQuery without losing its content.

    Raw control characters inside strings are re-escaped; unpaired surrogates become U+FFFD.
    Text that is not JSON at all is returned unchanged (BigQuery then keeps it as a JSON string).
    """
    try:
        value = json.loads(text, strict=False)
    except ValueError:
        return text
    return json.dumps(_fix_surrogates(value), ensure_ascii=False, separators=(",", ":"))


def _fix_surrogates(value):
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_fix_surrogates(k): _fix_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_surrogates(v) for v in value]
    return value


def repair_json_column(column: pa.Array) -> pa.Array:
    """Repair only the rare suspicious values; the vectorised scan keeps the common case fast."""
    suspicious = pc.fill_null(pc.match_substring_regex(column, SUSPICIOUS_JSON), False)
    if not pc.any(suspicious).as_py():
        return column
    values = column.to_pylist()
    for index in pc.indices_nonzero(suspicious).to_pylist():
        values[index] = repair_json_text(values[index])
    return pa.array(values, type=pa.string())


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
    writer = None
    path = None
    rows = size = 0
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if writer is None:
                handle, name = tempfile.mkstemp(prefix="bqtui-", suffix=".parquet", dir=directory)
                os.close(handle)
                path = Path(name)
                writer = pq.ParquetWriter(str(path), schema, compression=PARQUET_COMPRESSION)
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
