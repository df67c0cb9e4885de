"""Counting a window's rows as its batches stream from the source to the Parquet files."""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


class BatchCounter:
    """Counts rows as batches stream by, and the range of the partition column."""

    def __init__(
        self,
        partition_field: str | None,
        full_history_rows: Callable[[pa.RecordBatch], int] | None = None,
    ):
        self.partition_field = partition_field
        self.full_history_rows = full_history_rows
        self.full_history = 0
        self.rows = 0
        self.batches = 0
        # The partition column's lowest and highest values (timestamps, for every model).
        self.low: Any = None
        self.high: Any = None

    @property
    def range(self) -> tuple[Any, Any] | None:
        return (self.low, self.high) if self.low is not None else None

    def count(
        self, batches: Iterable[pa.RecordBatch], on_rows: Callable[[int], None]
    ) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self.rows += batch.num_rows
            self.batches += 1
            if self.full_history_rows and batch.num_rows:
                self.full_history += self.full_history_rows(batch)
            if self.partition_field and batch.num_rows:
                bounds = pc.min_max(batch.column(self.partition_field)).as_py()
                if bounds["min"] is not None:
                    self.low = min(self.low or bounds["min"], bounds["min"])
                    self.high = max(self.high or bounds["max"], bounds["max"])
            on_rows(self.rows)
            yield batch
