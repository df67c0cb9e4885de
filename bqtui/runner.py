"""Runs exports: due windows → extract → encode → load → merge → record.

The one place that knows the order of things. The TUI and the CLI start it and render the
events it emits through ``on_event``; ``CancelToken`` stops it at the next safe point.
"""

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from . import secrets
from .bigquery import DEFAULT_RETRY_DEADLINE, BigQueryDestination, TablePlan, job_labels
from .config import ExportConfig
from .encode import write_parquet_files
from .errors import BqtuiError, Cancelled, ExportBusy, PermissionProblem
from .keyfile import parse_key_text
from .models import ExportModel, get_model
from .schedule import Window, due_windows, windows_between
from .source import ClickHouseSource
from .store import Store, utcnow

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.25  # seconds between progress events: enough for a live bar
LOCK_RENEW_INTERVAL = 60.0


@dataclass(frozen=True)
class LogEvent:
    export_name: str
    level: str  # info | warning | error
    message: str
    at: datetime


@dataclass(frozen=True)
class ProgressEvent:
    export_name: str
    windows_done: int
    windows_total: int
    rows: int
    window: Window | None
    window_rows: int


@dataclass(frozen=True)
class WindowFinished:
    export_name: str
    window: Window
    status: str  # done | failed | cancelled
    rows: int
    bytes: int
    job_ids: tuple[str, ...]
    error: str | None


@dataclass
class RunResult:
    export_name: str
    status: str  # succeeded | failed | cancelled | busy | nothing_due
    run_id: int | None = None
    windows_total: int = 0
    windows_done: int = 0
    rows: int = 0
    bytes: int = 0
    error: str | None = None
    missing_fields: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass(frozen=True)
class RunFinished:
    result: RunResult


class CancelToken:
    """Set from any thread; the runner checks it between batches, files and windows."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("Cancelled by the user; the window was not written.")


def retry_deadline_from_env() -> float:
    return float(os.environ.get("BQTUI_RETRY_DEADLINE", DEFAULT_RETRY_DEADLINE))


class ExportRunner:
    def __init__(
        self,
        store: Store,
        *,
        on_event: Callable[[object], None] | None = None,
        cancel: CancelToken | None = None,
        now: Callable[[], datetime] = utcnow,
        retry_deadline: float | None = None,
        work_dir: Path | None = None,
    ):
        self.store = store
        self.on_event = on_event or (lambda event: None)
        self.cancel = cancel or CancelToken()
        self.now = now
        self.retry_deadline = retry_deadline or retry_deadline_from_env()
        self.work_dir = work_dir

    # -- what to run ------------------------------------------------------------------------

    def due(self, export: ExportConfig) -> list[Window]:
        done = self.store.done_window_starts(export.id)
        return due_windows(export.start_at, self.now(), export.interval, done)

    def run_all(self) -> list[RunResult]:
        """Every due window of every enabled export, exports one after another."""
        results = []
        for export in self.store.list_exports():
            if not export.enabled or self.cancel.cancelled:
                continue
            results.append(self.run_export(export, trigger="schedule"))
        return results

    def backfill(self, export: ExportConfig, start: datetime, end: datetime) -> RunResult:
        windows = list(windows_between(start, end, export.interval))
        return self.run_export(export, windows=windows, trigger="backfill")

    # -- running ----------------------------------------------------------------------------

    def run_export(
        self,
        export: ExportConfig,
        *,
        windows: list[Window] | None = None,
        trigger: str = "manual",
    ) -> RunResult:
        started = time.monotonic()
        try:
            lock_owner = self.store.acquire_lock(export.id)
        except ExportBusy as busy:
            self._emit_log(export.name, "warning", str(busy))
            return self._finish(RunResult(export.name, "busy", error=str(busy)), started)
        try:
            windows = self.due(export) if windows is None else windows
            if not windows:
                self._emit_log(export.name, "info", "Nothing due.")
                return self._finish(RunResult(export.name, "nothing_due"), started)
            run = _Run(self, export, windows, trigger, lock_owner)
            return self._finish(run.execute(), started)
        finally:
            self.store.release_lock(export.id, lock_owner)

    def _finish(self, result: RunResult, started: float) -> RunResult:
        result.seconds = time.monotonic() - started
        self.on_event(RunFinished(result))
        return result

    def _emit_log(self, export_name: str, level: str, message: str) -> None:
        self.on_event(LogEvent(export_name, level, message, datetime.now(UTC)))


class _Run:
    """One run of one export over a list of windows, recorded in the store."""

    def __init__(self, runner: ExportRunner, export, windows, trigger, lock_owner):
        self.runner = runner
        self.store = runner.store
        self.export: ExportConfig = export
        self.model: ExportModel = get_model(export.model)
        self.windows: list[Window] = windows
        self.lock_owner = lock_owner
        self.result = RunResult(export.name, "running", windows_total=len(windows))
        self.result.run_id = self.store.start_run(export.id, trigger, len(windows))
        self._last_progress = 0.0
        self._last_lock_renewal = time.monotonic()

    # -- events and records -----------------------------------------------------------------

    def log(self, level: str, message: str) -> None:
        at = datetime.now(UTC)
        self.store.add_logs(self.result.run_id, [(at, level, message)])
        self.runner.on_event(LogEvent(self.export.name, level, message, at))

    def progress(self, window: Window | None, window_rows: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        self.runner.on_event(
            ProgressEvent(
                self.export.name,
                self.result.windows_done,
                self.result.windows_total,
                self.result.rows + window_rows,
                window,
                window_rows,
            )
        )
        if now - self._last_lock_renewal > LOCK_RENEW_INTERVAL:
            self.store.renew_lock(self.export.id, self.lock_owner)
            self._last_lock_renewal = now

    # -- the run ----------------------------------------------------------------------------

    def execute(self) -> RunResult:
        export = self.export
        first, last = self.windows[0], self.windows[-1]
        self.log(
            "info",
            f"Exporting {len(self.windows)} window(s) of {export.model.value} "
            f"({first.start:%Y-%m-%d %H:%M} → {last.end:%Y-%m-%d %H:%M} UTC) "
            f"to {export.destination_label}.",
        )
        try:
            destination, source = self._connect()
            plan = destination.prepare_table(
                export.dataset_id, export.table_id, self.model, export.json_type
            )
            self.result.missing_fields = plan.missing_fields
            if plan.created:
                self.log("info", f"Created table {plan.table_ref} with the {export.model} schema.")
            if plan.missing_fields:
                self.log(
                    "warning",
                    f"Table {plan.table_ref} lacks model fields "
                    f"{', '.join(plan.missing_fields)}; they are left out. Add them to the "
                    "table to export them.",
                )
            for window in self.windows:
                self.runner.cancel.raise_if_cancelled()
                self._export_window(window, destination, source, plan)
            self.result.status = "succeeded"
        except Cancelled as cancelled:
            self.result.status = "cancelled"
            self.result.error = str(cancelled)
            self.log("warning", str(cancelled))
        except BqtuiError as error:
            self.result.status = "failed"
            self.result.error = str(error)
            self.log("error", str(error))
            if isinstance(error, PermissionProblem):
                self.log("error", "Stopped this export: fix the permission and run it again.")
        except Exception as error:  # a bug: record it, and let the other exports run
            log.exception("export %s failed unexpectedly", self.export.name)
            self.result.status = "failed"
            self.result.error = (
                f"Internal error ({type(error).__name__}): {error}. Please report it."
            )
            self.log("error", self.result.error)
        self.store.update_run(
            self.result.run_id,
            status=self.result.status,
            finished_at=utcnow(),
            windows_done=self.result.windows_done,
            rows=self.result.rows,
            bytes=self.result.bytes,
            error=self.result.error,
        )
        self.progress(None, 0, force=True)
        if self.result.status == "succeeded":
            self.log(
                "info",
                f"Done: {self.result.windows_done} window(s), {self.result.rows:,} rows.",
            )
        return self.result

    def _connect(self) -> tuple[BigQueryDestination, ClickHouseSource]:
        export = self.export
        key = parse_key_text(secrets.load_service_account_key(export.uid, export.name))
        destination = BigQueryDestination(
            key,
            project_id=export.project_id,
            endpoint=export.bigquery_endpoint,
            location=export.location,
            retry_deadline=self.runner.retry_deadline,
        )
        password = secrets.load_clickhouse_password(export.uid)
        return destination, ClickHouseSource(export.source_dsn, password)

    def _on_batch(self, window: Window, window_rows: int) -> None:
        self.runner.cancel.raise_if_cancelled()  # a long extraction stops between batches
        self.progress(window, window_rows)

    def _export_window(self, window, destination: BigQueryDestination, source, plan: TablePlan):
        export, model = self.export, self.model
        attempt = self.store.begin_window(export.id, window.start, window.end, self.result.run_id)
        window_key = f"{window.start:%Y%m%dT%H%M%S}"
        job_prefix = f"bqtui_{export.uid[:12]}_{window_key}_a{attempt}"
        labels = job_labels(export.name, export.uid, window_key)
        stage_id = f"{export.table_id}_bqtui_stage_{export.uid[:8]}_{window_key}"
        stage_ref = None
        job_ids: list[str] = []
        counter = _BatchCounter(model.partition_field)
        uploaded = 0
        self.log("info", f"Window {window.label()}: extracting (attempt {attempt}).")
        try:
            with (
                tempfile.TemporaryDirectory(prefix="bqtui-", dir=self.runner.work_dir) as tmp,
                source.stream(
                    model.build_query(export),
                    model.query_parameters(export, window.start, window.end),
                ) as batches,
            ):
                counted = counter.count(batches, lambda rows: self._on_batch(window, rows))
                if model.repair_batch:
                    counted = map(model.repair_batch, counted)
                files = write_parquet_files(
                    counted, plan.source_fields, plan.json_fields, Path(tmp)
                )
                for number, load_file in enumerate(files):
                    self.runner.cancel.raise_if_cancelled()
                    if stage_ref is None:
                        stage_ref = destination.create_stage_table(plan, stage_id)
                    job_id = f"{job_prefix}_load{number}"
                    destination.load_file(
                        load_file.path, stage_ref, job_id, labels, first=number == 0
                    )
                    job_ids.append(job_id)
                    uploaded += load_file.bytes
                    load_file.path.unlink(missing_ok=True)
                    self.log(
                        "info",
                        f"Window {window.label()}: loaded {load_file.rows:,} rows "
                        f"({load_file.bytes / 1e6:.1f} MB) into the stage table.",
                    )
            if counter.rows:
                # The last safe point: the MERGE below is atomic, so cancel waits for it.
                self.runner.cancel.raise_if_cancelled()
                merge_job_id = f"{job_prefix}_merge"
                destination.merge(plan, stage_ref, model, merge_job_id, labels, counter.range)
                job_ids.append(merge_job_id)
        except BaseException as error:
            status = "cancelled" if isinstance(error, Cancelled) else "failed"
            if stage_ref:
                destination.drop_table(stage_ref)
            self.store.finish_window(
                export.id, window.start, status, job_ids=job_ids, error=str(error)
            )
            self.runner.on_event(
                WindowFinished(export.name, window, status, 0, 0, tuple(job_ids), str(error))
            )
            raise
        if stage_ref:
            drop_error = destination.drop_table(stage_ref)
            if drop_error:
                self.log(
                    "warning",
                    f"The stage table {stage_ref} was not dropped and will expire by itself "
                    f"within 12 hours: {drop_error}",
                )
        self.store.finish_window(
            export.id, window.start, "done", rows=counter.rows, bytes_=uploaded, job_ids=job_ids
        )
        self.result.windows_done += 1
        self.result.rows += counter.rows
        self.result.bytes += uploaded
        self.runner.on_event(
            WindowFinished(
                export.name, window, "done", counter.rows, uploaded, tuple(job_ids), None
            )
        )
        self.log("info", f"Window {window.label()}: done, {counter.rows:,} rows.")
        self.progress(window, 0, force=True)


class _BatchCounter:
    """Counts rows as batches stream by, and the range of the partition column."""

    def __init__(self, partition_field: str | None):
        self.partition_field = partition_field
        self.rows = 0
        self.low = self.high = None

    @property
    def range(self):
        return (self.low, self.high) if self.low is not None else None

    def count(self, batches, on_rows: Callable[[int], None]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self.rows += batch.num_rows
            if self.partition_field and batch.num_rows:
                bounds = pc.min_max(batch.column(self.partition_field)).as_py()
                if bounds["min"] is not None:
                    self.low = min(self.low or bounds["min"], bounds["min"])
                    self.high = max(self.high or bounds["max"], bounds["max"])
            on_rows(self.rows)
            yield batch
