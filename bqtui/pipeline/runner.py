"""Runs exports: due windows → extract → encode → load → merge → record.

The one place that knows the order of things. The TUI and the CLI start it and render the
events it emits through ``on_event``; ``CancelToken`` stops it at the next safe point.

``ExportRunner`` decides what runs and holds the export's lock; ``ExportRun``
(export_run.py) runs the windows group by group (``WindowGroup``, group.py), recording
everything through the run's ``RunBook`` (run_book.py).
"""

import functools
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bqtui.core.config import ExportConfig
from bqtui.core.errors import (
    BqtuiError,
    ExportBusy,
    SourceBusy,
    SourceError,
)
from bqtui.destination.bigquery import DEFAULT_RETRY_DEADLINE, BigQueryDestination
from bqtui.models import get_model
from bqtui.pipeline.cloud_stage import ExportStage
from bqtui.pipeline.encode import write_parquet_files
from bqtui.pipeline.events import (
    CancelToken,
    LogEvent,
    ProgressEvent,
    RunFinished,
    RunResult,
    WindowFinished,
    duration_words,
)
from bqtui.pipeline.export_credentials import export_credentials
from bqtui.pipeline.export_run import ExportRun
from bqtui.pipeline.group import GROUP_MAX_WINDOWS, work_dir_prefix
from bqtui.pipeline.lock_watch import LockWatch
from bqtui.pipeline.ports import Destination, Source
from bqtui.pipeline.run_book import RunBook
from bqtui.source.clickhouse import ClickHouseSource, is_embedded, remove_dead_engine_dirs
from bqtui.state import secrets
from bqtui.state.locks import ExportLock
from bqtui.state.store import Store, utcnow
from bqtui.state.windows import Window, backfill_windows, due_windows

# The CLI, the TUI and ops import the events, the result and the token from here.
__all__ = [
    "GROUP_MAX_WINDOWS",
    "CancelToken",
    "ExportRunner",
    "LogEvent",
    "ProgressEvent",
    "RunFinished",
    "RunResult",
    "WindowFinished",
    "bigquery_destination",
    "clickhouse_source",
    "duration_words",
    "retry_deadline_from_env",
]

log = logging.getLogger(__name__)


def retry_deadline_from_env() -> float:
    return float(os.environ.get("BQTUI_RETRY_DEADLINE", DEFAULT_RETRY_DEADLINE))


def clickhouse_source(export: ExportConfig) -> ClickHouseSource:
    credentials = secrets.load_clickhouse_secrets(export.uid, export.name)
    return ClickHouseSource(export.source_dsn, credentials)


def bigquery_destination(export: ExportConfig, retry_deadline: float) -> BigQueryDestination:
    """The export's destination, as the principal its credentials name."""
    return BigQueryDestination(
        export_credentials(export),
        project_id=export.project_id,
        endpoint=export.bigquery_endpoint,
        location=export.location,
        retry_deadline=retry_deadline,
        max_bytes_billed=export.max_bytes_billed,
    )


def start_of_windows(export: ExportConfig) -> datetime:
    if export.start_at is None:  # set when the export is created
        raise ValueError(f"export {export.name!r} has no first window")
    return export.start_at


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
        source_factory: Callable[[ExportConfig], Source] | None = None,
        destination_factory: Callable[[ExportConfig, float], Destination] | None = None,
    ):
        self.store = store
        # ClickHouse and BigQuery by default; in-memory fakes in the runner's unit tests.
        self.source_factory = source_factory or clickhouse_source
        self.destination_factory = destination_factory or bigquery_destination
        self.on_event = on_event or (lambda event: None)
        self.cancel = cancel or CancelToken()
        self.now = now
        self.retry_deadline = retry_deadline or retry_deadline_from_env()
        self.work_dir = Path(work_dir or tempfile.gettempdir())

    # -- what to run ------------------------------------------------------------------------

    def due(self, export: ExportConfig) -> list[Window]:
        """Windows that have ended and settled, and are not done (oldest first)."""
        done = self.store.done_window_starts(export.saved_id)
        settled_until = self.now() - export.settle
        return due_windows(start_of_windows(export), settled_until, export.interval, done)

    def run_all(self) -> list[RunResult]:
        """Every due window of every enabled export; one export's failure never stops the
        others."""
        results = []
        for export in self.store.list_exports():
            if not export.enabled or self.cancel.cancelled:
                continue
            try:
                results.append(self.run_export(export, trigger="schedule"))
            except Exception as error:  # a bug: report it, and run the other exports
                log.exception("export %s failed unexpectedly", export.name)
                message = f"Internal error ({type(error).__name__}): {error}. Please report it."
                self._emit_log(export.name, "error", message)
                results.append(RunResult(export.name, "failed", error=message))
        return results

    def backfill(self, export: ExportConfig, start: datetime, end: datetime) -> RunResult:
        windows, later = backfill_windows(export, start, end, self.now())
        if later:
            due_at = later[0].end + export.settle
            self._emit_log(
                export.name,
                "info",
                f"Left for later: {len(later)} window(s) from {later[0].start:%Y-%m-%d %H:%M} "
                f"UTC that have not ended and settled yet; the schedule exports them when due "
                f"(the first at {due_at:%Y-%m-%d %H:%M:%S} UTC).",
            )
        if not windows:
            self._emit_log(export.name, "info", "Nothing of that range is due yet.")
            return self._finish(
                RunResult(export.name, "nothing_due", windows_left=len(later)), time.monotonic()
            )
        result = self.run_export(export, windows=windows, trigger="backfill")
        result.windows_left = len(later)
        return result

    # -- running ----------------------------------------------------------------------------

    def run_export(
        self,
        export: ExportConfig,
        *,
        windows: list[Window] | None = None,
        trigger: str = "manual",
    ) -> RunResult:
        started = time.monotonic()
        lock = ExportLock(self.store, export.saved_id)
        try:
            lock.acquire()
        except ExportBusy as busy:
            self._emit_log(export.name, "warning", str(busy))
            return self._finish(RunResult(export.name, "busy", error=str(busy)), started)
        watch = LockWatch(lock)  # renewed from now on, however long the engine makes us wait
        try:
            self._clean_up_after_dead_runner(export, lock)
            windows = self.due(export) if windows is None else windows
            if not windows:
                self._emit_log(export.name, "info", "Nothing due.")
                return self._finish(RunResult(export.name, "nothing_due"), started)
            try:
                source = self.source_factory(export)
                source.open()  # before any window begins: a busy engine uses no attempt
            except SourceBusy as busy:
                self._emit_log(export.name, "warning", str(busy))
                return self._finish(RunResult(export.name, "busy", error=str(busy)), started)
            except SourceError:
                pass  # the run records it as failed (see ExportRun.execute)
            except BqtuiError as error:  # the keyring, stored credentials: before any window
                result = self._record_setup_failure(export, trigger, windows, error)
                return self._finish(result, started)
            with source:
                run = self._start_run(export, windows, trigger, lock, watch, source)
                return self._finish(run.execute(), started)
        finally:
            lock.release()

    def _start_run(
        self,
        export: ExportConfig,
        windows: list[Window],
        trigger: str,
        lock: ExportLock,
        watch: LockWatch,
        source: Source,
    ) -> ExportRun:
        model = get_model(export.model)
        book = RunBook(
            self.store,
            export,
            trigger=trigger,
            windows_total=len(windows),
            lock=lock,
            watch=watch,
            on_event=self.on_event,
            cancel=self.cancel,
        )
        return ExportRun(
            book,
            model,
            windows,
            source,
            open_destination=functools.partial(self._open_destination, export, book),
            work_dir=self.work_dir,
            # Looked up at each run, not at import: the unit tests swap it for smaller files.
            write_files=write_parquet_files,
        )

    def _open_destination(self, export: ExportConfig, book: RunBook) -> Destination:
        destination = self.destination_factory(export, self.retry_deadline)
        if isinstance(destination, BigQueryDestination):  # test doubles bill nothing
            destination.on_query_done = book.record_query_job
        return destination

    def _record_setup_failure(
        self, export: ExportConfig, trigger: str, windows: list[Window], error: BqtuiError
    ) -> RunResult:
        """A run that failed before its first window, recorded with what to do (for the run
        history and ``bqtui status``)."""
        result = RunResult(export.name, "failed", windows_total=len(windows), error=str(error))
        run_id = result.run_id = self.store.start_run(export.saved_id, trigger, len(windows))
        at = datetime.now(UTC)
        self.store.add_logs(run_id, [(at, "error", str(error))])
        self.store.update_run(run_id, status="failed", finished_at=utcnow(), error=str(error))
        self.on_event(LogEvent(export.name, "error", str(error), at))
        return result

    def _clean_up_after_dead_runner(self, export: ExportConfig, lock: ExportLock) -> None:
        """Holding the lock, whatever is still "running" for this export is a dead runner's."""
        dead = lock.taken_over
        reason = (
            f"Interrupted: its runner ({dead.describe()}) stopped without finishing."
            if dead
            else "Interrupted: its runner stopped without finishing."
        )
        runs, windows = self.store.interrupt_stale(export.saved_id, reason)
        removed = 0
        for leftover in self.work_dir.glob(f"{work_dir_prefix(export)}*"):
            shutil.rmtree(leftover, ignore_errors=True)
            removed += 1
        if is_embedded(export.source_dsn):  # the dead runner's engine left its folder too
            removed += remove_dead_engine_dirs(self.work_dir)
        if dead or runs or windows or removed:
            objects = self._clean_stage_after_dead_runner(export)
            self._emit_log(
                export.name,
                "warning",
                f"Took over from a runner that stopped without finishing"
                f"{f' ({dead.describe()})' if dead else ''}: marked {runs} run(s) and "
                f"{windows} window(s) interrupted, removed {removed} temporary folder(s)"
                f"{f' and {objects} Cloud Storage object(s) of windows it had done' if objects else ''}"
                ". Its windows are exported again.",
            )

    def _clean_stage_after_dead_runner(self, export: ExportConfig) -> int:
        """The objects of windows a dead runner recorded done but had not deleted yet (those of
        windows not done go when the windows are exported again)."""
        try:
            stage = ExportStage.of(export)
            if stage is None:
                return 0
            return stage.sweep_done_windows(export, self.store.done_window_starts(export.saved_id))
        except BqtuiError as error:
            self._emit_log(
                export.name, "warning", f"Could not clean the Cloud Storage stage: {error}"
            )
            return 0

    def _finish(self, result: RunResult, started: float) -> RunResult:
        result.seconds = time.monotonic() - started
        self.on_event(RunFinished(result))
        return result

    def _emit_log(self, export_name: str, level: str, message: str) -> None:
        self.on_event(LogEvent(export_name, level, message, datetime.now(UTC)))
