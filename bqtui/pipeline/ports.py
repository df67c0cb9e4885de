"""What the runner needs of a source and of a destination: two small protocols.

The runner is written against these, so it runs unchanged on ClickHouse and BigQuery
(``ClickHouseSource``, ``BigQueryDestination``) and on in-memory fakes in unit tests.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from bqtui.destination.bigquery import JobOutcome, TablePlan
from bqtui.models import ExportModel
from bqtui.source.clickhouse import ReadStats


class Source(Protocol):
    last_read: ReadStats | None  # of the last stream; None where the engine does not say

    def open(self) -> "Source": ...

    def close(self) -> None: ...

    def __enter__(self) -> "Source": ...

    def __exit__(self, *exc_info) -> None: ...

    def stream(
        self, sql: str, parameters: dict
    ) -> AbstractContextManager[Iterator[pa.RecordBatch]]: ...

    def write_parquet(self, sql: str, parameters: dict, settings: dict, path: Path) -> None: ...

    def run_insert(
        self, sql: str, parameters: dict, settings: dict, *, hidden: str = ""
    ) -> ReadStats | None: ...


class Destination(Protocol):
    def table_ref(self, dataset_id: str, table_id: str) -> str: ...

    def prepare_table(
        self, dataset_id: str, table_id: str, model: ExportModel, json_type: bool
    ) -> TablePlan: ...

    def create_stage_table(self, plan: TablePlan, stage_table_id: str) -> str: ...

    # Jobs are the client library's objects (fakes in tests), handed back to wait_for as is:
    # untyped here, so that each destination names its own.
    def load_file(
        self, path: Path, stage_ref: str, job_id: str, labels: dict[str, str], *, first: bool
    ) -> object: ...

    def load_uris(
        self, uris: list[str], target_ref: str, job_id: str, labels: dict[str, str], *, first: bool
    ) -> object: ...

    def submit_merge(
        self,
        plan: TablePlan,
        stage_ref: str,
        model: ExportModel,
        job_id: str,
        labels: dict[str, str],
        timestamp_range: tuple[datetime, datetime] | None = None,
    ) -> object: ...

    def wait_for(self, job, doing: str, dataset_id: str) -> object: ...

    def job_outcome(self, job_id: str, dataset_id: str | None = None) -> JobOutcome: ...

    def drop_table(self, ref: str) -> Exception | None: ...

    def close(self) -> None: ...
