"""What the runner needs of a source and of a destination: two small protocols.

The runner is written against these, so it runs unchanged on ClickHouse and BigQuery
(``ClickHouseSource``, ``BigQueryDestination``) and on in-memory fakes in unit tests.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import pyarrow as pa


class Source(Protocol):
    last_read: object  # ReadStats of the last stream, or None where the engine does not say

    def open(self) -> "Source": ...

    def close(self) -> None: ...

    def __enter__(self) -> "Source": ...

    def __exit__(self, *exc_info) -> None: ...

    def stream(
        self, sql: str, parameters: dict
    ) -> AbstractContextManager[Iterator[pa.RecordBatch]]: ...


class Destination(Protocol):
    def table_ref(self, dataset_id: str, table_id: str) -> str: ...

    def prepare_table(self, dataset_id: str, table_id: str, model, json_type: bool): ...

    def create_stage_table(self, plan, stage_table_id: str) -> str: ...

    def load_file(self, path: Path, stage_ref: str, job_id: str, labels: dict, *, first: bool): ...

    def submit_merge(
        self, plan, stage_ref: str, model, job_id: str, labels: dict, timestamp_range=None
    ): ...

    def wait_for(self, job, doing: str, dataset_id: str): ...

    def job_outcome(self, job_id: str, dataset_id: str | None = None): ...

    def drop_table(self, ref: str) -> Exception | None: ...

    def close(self) -> None: ...
