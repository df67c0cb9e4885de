"""An export's Cloud Storage stage: ClickHouse writes each window's Parquet into its attempt's
folder (``INSERT INTO FUNCTION s3(…)``), BigQuery loads the folders by wildcard URI. bqtui's
process sends SQL and reads Parquet footers (a few kilobytes per object), never the rows.

Layout: ``gs://BUCKET/PREFIX/<export uid>/<window>/attempt_<n>/part_<k>.parquet``. An attempt
writes only into its own folder and the load names only the folders of the attempts that
wrote successfully. A window's folder (every attempt) is deleted once the window is recorded
done; folders of windows done by a runner that died before deleting them go at the end of the
next run (``sweep_done_windows``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow.parquet as pq

from bqtui.core.config import ExportConfig
from bqtui.destination.bigquery import TablePlan
from bqtui.models import ExportModel
from bqtui.models.load_ready import PARQUET_SETTINGS
from bqtui.pipeline.attempt import Attempt
from bqtui.pipeline.encode import (
    LoadFile,
    added_reads,
    footer_nulls,
    footer_range,
    window_load_ready_select,
)
from bqtui.stage.clickhouse_sql import insert_statement
from bqtui.stage.endpoints import xml_api_base
from bqtui.stage.errors import StageError
from bqtui.stage.footers import object_metadata
from bqtui.stage.hmac_key import HmacKey
from bqtui.stage.location import StageAttempt, StageLocation, window_of_label
from bqtui.stage.xml_client import PROBE_NAME, StageClient, StoredObject
from bqtui.state import secrets

# Objects per window: ClickHouse writes them with parallel writers (a cluster's nodes, or one
# server's threads); BigQuery loads them in parallel.
DEFAULT_PARTS = 4
# Footers read at once (a few kilobytes each: latency, not bandwidth, is their cost).
FOOTER_READS = 4
# A retried attempt with the same object names overwrites them instead of failing.
WRITE_SETTINGS: dict[str, int | str] = {**PARQUET_SETTINGS, "s3_truncate_on_insert": 1}


# Below this many rows one object is cheaper than several: each part is a writer in ClickHouse,
# a footer to read and a file for BigQuery (measured: 720 windows of 20 rows, 4 parts each,
# spent 9 s on footers alone).
SPLIT_FROM_ROWS = 250_000


def parts_for(previous_rows: int | None, most: int) -> int:
    """Objects for the next window: split (``most``) unless the window before it in the run
    was small; the first window is split, as it may be large."""
    return most if previous_rows is None or previous_rows >= SPLIT_FROM_ROWS else 1


def parts_from_env() -> int:
    """``BQTUI_STAGE_PARTS``: Parquet objects per window (default 4)."""
    try:
        return max(int(os.environ.get("BQTUI_STAGE_PARTS", DEFAULT_PARTS)), 1)
    except ValueError:
        return DEFAULT_PARTS


@dataclass(frozen=True)
class StagedWindow:
    """What one attempt wrote into its folder, from the objects' footers."""

    rows: int
    bytes: int
    names: tuple[str, ...]  # the objects that hold rows (deleted once the window is done)
    low: Any = None  # the partition column's lowest and highest values
    high: Any = None
    nulls: int = 0  # NULLs in the model's full-history column (see ExportModel)
    read: Any = None  # what ClickHouse read (ReadStats), where it says


@dataclass(frozen=True)
class ExportStage:
    """One export's stage: where, and the HMAC key that ClickHouse and bqtui write with."""

    location: StageLocation
    key: HmacKey
    client: StageClient
    endpoint: str
    parts: int

    @classmethod
    def of(cls, export: ExportConfig) -> ExportStage | None:
        """The export's stage (None without one); the secret comes from the keyring."""
        if not export.stage:
            return None
        location = StageLocation.parse(export.stage)
        secret = secrets.load_stage_hmac_secret(export.uid, export.name)
        key = HmacKey(export.stage_hmac_id or "", secret)
        endpoint = xml_api_base()
        client = StageClient(location.bucket, key, endpoint=endpoint)
        return cls(location, key, client, endpoint, parts_from_env())

    def __repr__(self) -> str:
        return f"ExportStage({self.location.uri!r}, key={self.key!r})"

    def folder(self, export: ExportConfig, attempt: Attempt) -> StageAttempt:
        return self.location.attempt(export.uid, attempt.window.start, attempt.number)

    def check_can_write(self, export: ExportConfig) -> None:
        """Before ClickHouse writes: its s3() errors do not say why Cloud Storage refused,
        this probe does (wrong secret, no bucket, no permission)."""
        self.client.check_can_write(self.location.export_prefix(export.uid))

    # -- writing --------------------------------------------------------------------------

    def write_window(
        self,
        source: Any,
        model: ExportModel,
        plan: TablePlan,
        query: str,
        parameters: dict,
        folder: StageAttempt,
        parts: int | None = None,
    ) -> StagedWindow:
        """Have ClickHouse write the window's load-ready Parquet into ``folder`` as ``parts``
        objects (default: the stage's most) (raises ``TooManyHostRows`` where the host must
        encode the window)."""
        sql, read = window_load_ready_select(source, model, plan, query, parameters)
        statement = insert_statement(
            folder, self.key, sql, parts=parts or self.parts, endpoint=self.endpoint
        )
        inserted = source.run_insert(
            statement.sql, parameters, WRITE_SETTINGS, hidden=self.key.secret
        )
        staged = self.read_folder(folder, model.partition_field, model.full_history_null_column)
        return dataclasses.replace(staged, read=added_reads(read, inserted))

    def put_files(
        self, files: Iterable[LoadFile], folder: StageAttempt, on_put: Callable[[LoadFile], None]
    ) -> list[str]:
        """Upload files the host encoded into ``folder`` (``host_<n>.parquet``); return their
        object names. Each local file is removed once it is up."""
        names = []
        for number, load_file in enumerate(files):
            names.append(f"{folder.prefix}host_{number}.parquet")
            self.client.put_file(names[-1], load_file.path)
            load_file.path.unlink(missing_ok=True)
            on_put(load_file)
        return names

    def read_folder(
        self, folder: StageAttempt, partition_field: str | None, null_column: str | None = None
    ) -> StagedWindow:
        """Rows, bytes and the partition column's range of the folder's Parquet objects, from
        their footers. Objects with no rows are deleted: BigQuery gets only rows to load."""
        stored = [o for o in self.client.list_objects(folder.prefix) if o.name.endswith(".parquet")]
        with ThreadPoolExecutor(FOOTER_READS, thread_name_prefix="bqtui-footers") as pool:
            footers = list(pool.map(functools.partial(self._footer, folder), stored))
        rows = size = nulls = 0
        names, lows, highs, empty = [], [], [], []
        for stored_object, metadata in zip(stored, footers, strict=True):
            if metadata.num_rows == 0:
                empty.append(stored_object.name)
                continue
            rows += metadata.num_rows
            size += stored_object.size
            names.append(stored_object.name)
            nulls += footer_nulls(metadata, null_column)
            low, high = footer_range(metadata, partition_field)
            if low is not None:
                lows.append(low)
                highs.append(high)
        if empty:
            self.client.delete_objects(empty)
        return StagedWindow(
            rows,
            size,
            tuple(names),
            min(lows) if lows else None,
            max(highs) if highs else None,
            nulls,
        )

    def _footer(self, folder: StageAttempt, stored: StoredObject) -> pq.FileMetaData:
        try:
            return object_metadata(self.client, stored)
        except ValueError as error:
            raise StageError(
                f"ClickHouse's INSERT succeeded but {folder.uri} holds an object that is "
                f"not whole Parquet ({error}); the window is exported again."
            ) from None

    # -- cleaning up ----------------------------------------------------------------------

    def delete_objects(self, names: Iterable[str]) -> int:
        return self.client.delete_objects(names)

    def delete_window(self, export: ExportConfig, window_start: datetime) -> int:
        """Delete every attempt's objects of a window that is recorded done."""
        return self.client.delete_prefix(self.location.window_prefix(export.uid, window_start))

    def delete_folder(self, folder: StageAttempt) -> int:
        return self.client.delete_prefix(folder.prefix)

    def sweep_done_windows(self, export: ExportConfig, done: set[datetime]) -> int:
        """Delete the folders of windows recorded done that are still in the bucket (a runner
        died between recording and deleting); return how many objects went. Folders of
        windows not done are left: a runner may be writing them, or will export them again."""
        export_prefix = self.location.export_prefix(export.uid)
        names = []
        for stored in self.client.iter_objects(export_prefix):
            label = stored.name.removeprefix(export_prefix).split("/", 1)[0]
            if PROBE_NAME in stored.name:
                continue
            start = window_of_label(label)
            if start is not None and start in done:
                names.append(stored.name)
        return self.client.delete_objects(names) if names else 0
