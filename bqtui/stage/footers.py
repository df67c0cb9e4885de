"""What a Parquet object holds, read from its footer alone: a few kilobytes per object over
the XML API, never its rows (the row count and a column's lowest and highest values)."""

from __future__ import annotations

import io
import struct

import pyarrow.parquet as pq

from bqtui.stage.xml_client import StageClient, StoredObject

# Parquet ends with the footer's length (4 bytes, little-endian) and "PAR1".
TAIL = 8
MAGIC = b"PAR1"
FIRST_READ = 64 * 1024  # most footers fit: one request per object


def object_metadata(client: StageClient, stored: StoredObject) -> pq.FileMetaData:
    """The Parquet footer of ``stored`` (raises ``ValueError`` for an object that is not
    Parquet, such as one cut short by a cancelled write)."""
    size = stored.size
    if size < 2 * len(MAGIC) + 4:
        raise ValueError(f"{stored.name} is too short to be a Parquet file ({size} bytes)")
    start = max(size - FIRST_READ, 0)
    tail = client.read_range(stored.name, start, size - 1)
    if tail[-4:] != MAGIC:
        raise ValueError(f"{stored.name} does not end like a Parquet file")
    (footer_length,) = struct.unpack("<I", tail[-TAIL:-4])
    needed = footer_length + TAIL
    if needed > len(tail):
        if needed > size:
            raise ValueError(f"{stored.name} has a footer longer than the object")
        tail = client.read_range(stored.name, size - needed, size - 1)
    footer = tail[-needed:]
    # A stand-in file: the magic at the start, then the footer where the reader seeks it.
    return pq.read_metadata(io.BytesIO(MAGIC + footer))
