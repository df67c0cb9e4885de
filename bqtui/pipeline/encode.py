"""Arrow batches from ClickHouse → load-ready Parquet files.

Parquet keeps types exact (microsecond UTC timestamps, INT64, BOOL, REPEATED) and is compact
to upload; pyarrow writes it at memory speed. NDJSON would have to be serialised row by row in
Python, several times slower, and loses nothing we need. JSON columns travel as text and are
parsed by BigQuery in the MERGE, so one file format serves STRING and JSON exports alike.
"""

import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bqtui.models.base import ModelField
from bqtui.models.json_text import repair_json_column

# A file per ~256 MB of Arrow data bounds local disk use and makes each load job retryable.
FILE_MAX_BYTES = 256 * 1024 * 1024
PARQUET_COMPRESSION = "zstd"


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
