"""Runs exports: due windows → extract → encode → load → merge → record.

The one place that knows the order of things. The TUI and the CLI start it and render the
events it emits through ``on_event``; ``CancelToken`` stops it at the next safe point.
"""

import contextlib
import functools
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from bqtui.core import checkpoints
from bqtui.core.config import ExportConfig
from bqtui.core.errors import (
    BqtuiError,
    Cancelled,
    DestinationError,
    ExportBusy,
    KeyFileError,
    LockLost,
    PermissionProblem,
    SecretsError,
    SourceBusy,
    SourceError,
    TransientJobFailure,
)
from bqtui.destination.bigquery import (
    DEFAULT_RETRY_DEADLINE,
    BigQueryDestination,
    TablePlan,
    job_labels,
)
from bqtui.destination.keyfile import parse_key_text
from bqtui.models import ExportModel, get_model
from bqtui.pipeline.encode import write_parquet_files
from bqtui.pipeline.ports import Destination, Source
from bqtui.source.clickhouse import ClickHouseSource, is_embedded, remove_dead_engine_dirs
from bqtui.state import secrets
from bqtui.state.locks import ExportLock
from bqtui.state.store import Store, utcnow
from bqtui.state.windows import Window, backfill_windows, due_windows

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.25  # seconds between progress events: enough for a live bar


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
    eta_seconds: float | None = None  # from the pace of the windows done so far

    def text(self) -> str:
        """One line: windows, rows and time left, for the CLI and the TUI alike."""
        line = f"{self.windows_done}/{self.windows_total} windows · {self.rows:,} rows"
        if self.eta_seconds is not None and self.windows_done < self.windows_total:
            line += f" · about {duration_words(self.eta_seconds)} left"
        return line


def duration_words(seconds: float) -> str:
    if seconds < 90:
        return f"{max(round(seconds), 1)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


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
    status: str  # succeeded | failed | interrupted | cancelled | busy | nothing_due
    run_id: int | None = None
    windows_total: int = 0
    windows_done: int = 0
    rows: int = 0
    bytes: int = 0
    error: str | None = None
    missing_fields: list[str] = field(default_factory=list)
    seconds: float = 0.0
    windows_left: int = 0  # of a backfill: not yet due, left for the schedule

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "interrupted")


@dataclass(frozen=True)
class RunFinished:
    result: RunResult


class CancelToken:
    """Set from any thread; the runner checks it between batches, files and windows."""

    def __init__(self):
        self._event = threading.Event()
        self._error: BqtuiError | None = None

    def cancel(self, error: BqtuiError | None = None) -> None:
        """Stop at the next safe point, raising ``error`` there (default: ``Cancelled``)."""
        if not self._event.is_set():
            self._error = error
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once on a cancel; returns whether cancelled."""
        return self._event.wait(seconds)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise self._error or Cancelled("Cancelled by the user; the window was not written.")


def retry_deadline_from_env() -> float:
    return float(os.environ.get("BQTUI_RETRY_DEADLINE", DEFAULT_RETRY_DEADLINE))


# A job that failed for a transient reason (backendError …) is retried as a new attempt
# within the run, this many attempts in all; then the window waits for the next run.
JOB_ATTEMPTS_PER_RUN = 3
# Consecutive small windows share one stage and one MERGE, up to these limits.
GROUP_MAX_WINDOWS = 168  # a week of hourly windows
GROUP_MAX_ROWS = 1_000_000
LOAD_PARALLELISM = 3  # a group's Parquet files uploaded at once (each ~256 MB)


def clickhouse_source(export: ExportConfig) -> ClickHouseSource:
    credentials = secrets.load_clickhouse_secrets(export.uid, export.name)
    return ClickHouseSource(export.source_dsn, credentials)


def bigquery_destination(export: ExportConfig, retry_deadline: float) -> BigQueryDestination:
    text = secrets.load_service_account_key(export.uid, export.name)
    try:
        key = parse_key_text(text)
    except KeyFileError as error:
        reason = str(error).split(". ")[0]
        raise SecretsError(
            f'The service-account key stored in the keyring for export "{export.name}" no '
            f"longer reads as a key ({reason}). Set it again: bqtui set-key {export.name} "
            "--key-file KEY.json"
        ) from None
    return BigQueryDestination(
        key,
        project_id=export.project_id,
        endpoint=export.bigquery_endpoint,
        location=export.location,
        retry_deadline=retry_deadline,
    )


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
        done = self.store.done_window_starts(export.id)
        return due_windows(export.start_at, self.now() - export.settle, export.interval, done)

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
        lock = ExportLock(self.store, export.id)
        try:
            lock.acquire()
        except ExportBusy as busy:
            self._emit_log(export.name, "warning", str(busy))
            return self._finish(RunResult(export.name, "busy", error=str(busy)), started)
        watch = _LockWatch(lock)  # renewed from now on, however long the engine makes us wait
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
                pass  # the run records it as failed (see _Run.execute)
            except BqtuiError as error:  # the keyring, stored credentials: before any window
                result = self._record_setup_failure(export, trigger, windows, error)
                return self._finish(result, started)
            with source:
                run = _Run(self, export, windows, trigger, lock, source, watch)
                return self._finish(run.execute(), started)
        finally:
            lock.release()

    def _record_setup_failure(
        self, export: ExportConfig, trigger: str, windows: list[Window], error: BqtuiError
    ) -> RunResult:
        """A run that failed before its first window, recorded with what to do (for the run
        history and ``bqtui status``)."""
        result = RunResult(export.name, "failed", windows_total=len(windows), error=str(error))
        result.run_id = self.store.start_run(export.id, trigger, len(windows))
        at = datetime.now(UTC)
        self.store.add_logs(result.run_id, [(at, "error", str(error))])
        self.store.update_run(
            result.run_id, status="failed", finished_at=utcnow(), error=str(error)
        )
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
        runs, windows = self.store.interrupt_stale(export.id, reason)
        removed = 0
        for leftover in self.work_dir.glob(f"{_work_dir_prefix(export)}*"):
            shutil.rmtree(leftover, ignore_errors=True)
            removed += 1
        if is_embedded(export.source_dsn):  # the dead runner's engine left its folder too
            removed += remove_dead_engine_dirs(self.work_dir)
        if dead or runs or windows or removed:
            self._emit_log(
                export.name,
                "warning",
                f"Took over from a runner that stopped without finishing"
                f"{f' ({dead.describe()})' if dead else ''}: marked {runs} run(s) and "
                f"{windows} window(s) interrupted, removed {removed} temporary folder(s). "
                "Its windows are exported again.",
            )

    def _finish(self, result: RunResult, started: float) -> RunResult:
        result.seconds = time.monotonic() - started
        self.on_event(RunFinished(result))
        return result

    def _emit_log(self, export_name: str, level: str, message: str) -> None:
        self.on_event(LogEvent(export_name, level, message, datetime.now(UTC)))


class _LockWatch:
    """What the lock's heartbeat tells the run: stop (the lock was lost, or `bqtui remove
    --force` asked) and warnings, kept until the run's thread logs them."""

    def __init__(self, lock: ExportLock):
        self.stop = CancelToken()
        self.warnings: queue.SimpleQueue[str] = queue.SimpleQueue()
        lock.start_heartbeat(
            on_lost=lambda: self.stop.cancel(
                LockLost(
                    "Another runner took this export's lock over (was this process frozen?); "
                    "this runner stopped and recorded nothing more."
                )
            ),
            on_cancel_requested=lambda: self.stop.cancel(
                Cancelled("Stopped at a safe point: another bqtui asked (bqtui remove --force).")
            ),
            on_trouble=self.warnings.put,
        )

    def pending_warnings(self) -> list[str]:
        found = []
        while not self.warnings.empty():
            found.append(self.warnings.get_nowait())
        return found


def _work_dir_prefix(export: ExportConfig) -> str:
    return f"bqtui-{export.uid[:12]}-"


@dataclass(frozen=True)
class _Attempt:
    """The names one attempt at one window uses: its own stage table and job ids."""

    window: Window
    number: int
    job_prefix: str
    stage_id: str
    labels: dict

    @classmethod
    def of(cls, export: ExportConfig, window: Window, number: int) -> "_Attempt":
        window_key = f"{window.start:%Y%m%dT%H%M%S}"
        return cls(
            window,
            number,
            job_prefix=f"bqtui_{export.uid[:12]}_{window_key}_a{number}",
            stage_id=stage_table_id(export, window_key, number),
            labels=job_labels(export.name, export.uid, window_key),
        )

    @property
    def merge_job_id(self) -> str:
        return f"{self.job_prefix}_merge"


def stage_table_id(export: ExportConfig, window_key: str, attempt: int) -> str:
    """Each attempt its own stage: a second runner can never truncate a stage in use."""
    suffix = f"_bqtui_stage_{export.uid[:8]}_{window_key}_a{attempt}"
    # Table IDs are at most 1,024 UTF-8 bytes: shorten the user's part, never the suffix.
    room = 1024 - len(suffix.encode())
    prefix = export.table_id.encode()[:room].decode("utf-8", errors="ignore")
    return prefix + suffix


class _Run:
    """One run of one export over a list of windows, recorded in the store."""

    def __init__(self, runner: ExportRunner, export, windows, trigger, lock, source, watch):
        self.runner = runner
        self.store = runner.store
        self.export: ExportConfig = export
        self.model: ExportModel = get_model(export.model)
        self.windows: list[Window] = windows
        self.lock: ExportLock = lock
        self.source: Source = source
        self.watch: _LockWatch = watch
        self.stop = watch.stop  # the lock's heartbeat: lost lock, or remove --force
        self.result = RunResult(export.name, "running", windows_total=len(windows))
        self.result.run_id = self.store.start_run(export.id, trigger, len(windows))
        self._in_flight: _Group | None = None  # staged and merging while the next is staged
        self.done_in_run: set[datetime] = set()
        # Windows whose MERGE failed for a transient reason after the next group was staged:
        # exported again, as new attempts, at the end of the run.
        self._retry_windows: list[Window] = []
        self._retry_error: TransientJobFailure | None = None
        lock.set_run(self.result.run_id)
        # Fencing checks come from upload threads too: their own connection, one at a time.
        self._fence_store: Store | None = None
        self._fence_lock = threading.Lock()
        self._last_progress = 0.0
        self._started = time.monotonic()

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
        done, total = self.result.windows_done, self.result.windows_total
        elapsed = now - self._started
        eta = elapsed / done * (total - done) if done else None
        self.runner.on_event(
            ProgressEvent(
                self.export.name,
                done,
                total,
                self.result.rows + window_rows,
                window,
                window_rows,
                eta,
            )
        )

    def fence(self, attempts: list[_Attempt]) -> None:
        """Right before BigQuery is asked to change anything: raise ``LockLost`` unless this
        runner still holds the lock and the attempts are still their windows' latest (a
        runner that was frozen and lost its lock submits nothing)."""
        with self._fence_lock:
            if self._fence_store is None:
                self._fence_store = self.store.sibling()
            self._fence_store.require_attempts(
                self.export.id, self.lock.owner, [(a.window.start, a.number) for a in attempts]
            )

    def _close_fence_store(self) -> None:
        if self._fence_store is not None and self._fence_store is not self.store:
            self._fence_store.close()
        self._fence_store = None

    def check_stop(self) -> None:
        """A safe point: stop here if the user cancelled or the lock says so."""
        for warning in self.watch.pending_warnings():
            self.log("warning", warning)
        self.stop.raise_if_cancelled()
        self.runner.cancel.raise_if_cancelled()

    def pause(self, seconds: float) -> None:
        """A retry's back-off: woken at once by a cancel, SIGTERM or SIGINT, or a lost lock."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.runner.cancel.wait(min(left, 0.05)) or self.stop.cancelled:
                break
        self.check_stop()

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
        destination = None
        try:
            self.source.open()
            destination = self.runner.destination_factory(export, self.runner.retry_deadline)
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
            pending = list(self.windows)
            for retry in range(JOB_ATTEMPTS_PER_RUN):
                try:
                    while pending:
                        self.check_stop()
                        exported = self._export_group_with_retries(pending, destination, plan)
                        pending = pending[exported:]
                finally:
                    self._settle_in_flight()  # the last MERGE: awaited and recorded, whatever
                if not self._retry_windows:
                    break
                if retry == JOB_ATTEMPTS_PER_RUN - 1:
                    raise self._retry_error
                pending, self._retry_windows = sorted(self._retry_windows), []
                self.pause(min(2.0 ** (retry + 1), 30.0))
            self.result.status = "succeeded"
        except LockLost as lost:
            self.result.status = "interrupted"
            self.result.error = str(lost)
            self.log("error", str(lost))
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
        finally:
            if destination is not None:
                destination.close()
            self._close_fence_store()
        self.store.update_run(
            self.result.run_id,
            status=self.result.status,
            finished_at=utcnow(),
            windows_done=self.result.windows_done,
            rows=self.result.rows,
            bytes=self.result.bytes,
            error=self.result.error,
        )
        for warning in self.watch.pending_warnings():
            self.log("warning", warning)
        self.progress(None, 0, force=True)
        if self.result.status == "succeeded":
            self.log(
                "info",
                f"Done: {self.result.windows_done} window(s), {self.result.rows:,} rows.",
            )
        return self.result

    def _export_group_with_retries(self, windows, destination, plan) -> int:
        """Export the first windows of ``windows`` as one group; return how many it took."""
        for tries in range(1, JOB_ATTEMPTS_PER_RUN + 1):
            try:
                return self._export_group(windows, destination, plan)
            except TransientJobFailure as failure:
                if tries == JOB_ATTEMPTS_PER_RUN:
                    raise
                self.log("warning", f"{failure} Trying the window(s) again as a new attempt.")
                self.pause(min(2.0**tries, 30.0))
        raise AssertionError("unreachable")

    def _on_batch(self, window: Window, window_rows: int) -> None:
        self.check_stop()  # a long extraction stops between batches
        self.progress(window, window_rows)

    # -- a group of windows: resolve → select → encode → stage → merge → record -------------
    #
    # Consecutive due windows are exported through one stage table and one MERGE while they
    # are small (a backfill of 720 hourly windows then waits on BigQuery for a few dozen jobs,
    # not thousands); a run with one due window is a group of one. Each window keeps its own
    # attempt, row count and record, and is recorded done only after the group's MERGE.

    def _export_group(self, windows: list[Window], destination, plan: TablePlan) -> int:
        """Stage the next group while the previous group's MERGE runs in BigQuery, then wait
        for that MERGE (one DML on the table at a time) and submit this group's."""
        group = _Group(self, destination, plan)
        try:
            taken = group.fill(windows)
            self._settle_in_flight()
            if group.rows:
                if group.cancelled is None:
                    # The last safe point: the MERGE is atomic, so cancel waits for it.
                    self.check_stop()
                group.submit_merge()
        except BaseException as error:
            for member in group.members:
                self._record_failure(member.attempt, group, error, group.merge_submitted)
            if group.cancelled is not None:
                self._record_failure(group.cancelled_attempt, group, group.cancelled, False)
            raise
        if group.merge_submitted and group.cancelled is None:
            self._in_flight = group  # awaited before the next MERGE, or at the run's end
        else:
            try:
                self._finish_group(group)
            except BaseException:
                if group.cancelled is not None:
                    self._record_failure(group.cancelled_attempt, group, group.cancelled, False)
                raise
        if group.cancelled is not None:
            # Cancelled as a window began: the windows before it are exported, it is not.
            self._record_failure(group.cancelled_attempt, group, group.cancelled, False)
            raise group.cancelled
        return taken

    def _settle_in_flight(self) -> None:
        group, self._in_flight = self._in_flight, None
        if group is None:
            return
        try:
            self._finish_group(group)
        except TransientJobFailure as failure:  # recorded failed; tried again at the end
            self.log("warning", f"{failure} Its window(s) are tried again as a new attempt.")
            self._retry_windows.extend(m.attempt.window for m in group.members)
            self._retry_error = failure

    def _finish_group(self, group: "_Group") -> None:
        """Wait for the group's MERGE (if it has one), then record each of its windows."""
        try:
            if group.merge_submitted:
                group.wait_for_merge()
        except BaseException as error:
            for member in group.members:
                self._record_failure(member.attempt, group, error, True)
            raise
        group.drop()
        for member in group.members:
            self._record_done(
                member.attempt,
                member.counter.rows,
                group.bytes_for(member),
                group.job_ids,
                member.read,
            )

    def _resolve_earlier_merge(self, attempt: _Attempt, job_id: str, destination) -> bool:
        """Before anything else: what became of the MERGE an earlier attempt submitted?

        Done: the window is done (recorded, nothing run or billed). Still running: awaited.
        Failed or never created: this attempt starts over.
        """
        window, export = attempt.window, self.export
        # A lookup that fails raises: the window waits for the next run, its job still noted.
        outcome = destination.job_outcome(job_id, export.dataset_id)
        if outcome.state == "running":
            self.log(
                "info",
                f"Window {window.label()}: an earlier attempt's MERGE ({job_id}) is still "
                "running in BigQuery; waiting for it before anything else.",
            )
            # What the job says afterwards decides, not how the wait ended.
            with contextlib.suppress(BqtuiError):
                destination.wait_for(outcome.job, f"waiting for {job_id}", export.dataset_id)
            outcome = destination.job_outcome(job_id, export.dataset_id)
            if outcome.state == "running":
                raise DestinationError(
                    f"Window {window.label()}: the earlier attempt's MERGE ({job_id}) is still "
                    "running in BigQuery; the window is exported after it ends (next run)."
                )
        if outcome.state == "done":
            rows = self.store.get_window(export.id, window.start).rows  # noted with the job
            self.log(
                "info",
                f"Window {window.label()}: the earlier attempt's MERGE ({job_id}) had "
                "succeeded; recorded the window as done without running it again.",
            )
            self._record_done(attempt, rows, 0, [job_id])
            return True
        detail = f" ({outcome.error})" if outcome.error else ""
        self.log(
            "info",
            f"Window {window.label()}: the earlier attempt's MERGE ({job_id}) "
            f"{'never started' if outcome.state == 'missing' else 'failed'}{detail}; "
            "exporting the window again.",
        )
        self.store.set_pending_merge(export.id, window.start, self.lock.owner, attempt.number, None)
        return False

    def _record_done(
        self, attempt: _Attempt, rows: int, uploaded: int, job_ids: list, read=None
    ) -> None:
        export, window = self.export, attempt.window
        self.store.finish_window(
            export.id,
            window.start,
            "done",
            owner=self.lock.owner,
            attempt=attempt.number,
            rows=rows,
            bytes_=uploaded,
            job_ids=job_ids,
            rows_read=read.rows if read else None,
            bytes_read=read.bytes if read else None,
        )
        checkpoints.reached("recorded")
        self.done_in_run.add(window.start)
        self.result.windows_done += 1
        self.result.rows += rows
        self.result.bytes += uploaded
        self.runner.on_event(
            WindowFinished(export.name, window, "done", rows, uploaded, tuple(job_ids), None)
        )
        self.log("info", f"Window {window.label()}: done, {rows:,} rows.")
        self.progress(window, 0, force=True)

    def _record_failure(self, attempt, group, error: BaseException, merge_unresolved: bool):
        """Record a failed or cancelled attempt, unless another runner owns the window now."""
        export, window = self.export, attempt.window
        status = "cancelled" if isinstance(error, Cancelled) else "failed"
        if isinstance(error, LockLost):
            return  # fenced: the window belongs to the new holder
        if not merge_unresolved:
            group.drop(quiet=True)  # a MERGE that may still run keeps its stage (it expires)
        try:
            self.store.finish_window(
                export.id,
                window.start,
                status,
                owner=self.lock.owner,
                attempt=attempt.number,
                job_ids=group.job_ids,
                error=str(error),
                keep_pending_merge=merge_unresolved,
            )
        except LockLost:
            return
        self.runner.on_event(
            WindowFinished(export.name, window, status, 0, 0, tuple(group.job_ids), str(error))
        )


def group_limits_from_env() -> tuple[int, int]:
    """How many windows and rows one group may hold (``BQTUI_GROUP_WINDOWS=1``: one window
    per stage and MERGE, as before coalescing)."""
    windows = int(os.environ.get("BQTUI_GROUP_WINDOWS", GROUP_MAX_WINDOWS))
    rows = int(os.environ.get("BQTUI_GROUP_ROWS", GROUP_MAX_ROWS))
    return max(windows, 1), max(rows, 1)


@dataclass
class _Member:
    attempt: _Attempt
    counter: "_BatchCounter"
    read: object = None  # ReadStats, where the engine reports them


class _Group:
    """Select → encode → stage for consecutive windows: their rows from ClickHouse, window by
    window, as Parquet files loaded into one expiring stage table of the first window's
    attempt; then one MERGE."""

    def __init__(self, run: _Run, destination, plan: TablePlan):
        self.run = run
        self.destination = destination
        self.plan = plan
        self.members: list[_Member] = []
        self.first: _Attempt | None = None
        self.ref: str | None = None
        self.job_ids: list[str] = []
        self.uploaded = 0
        self.merge_submitted = False
        self.merge_job = None
        self._bookkeeping = threading.Lock()  # parallel loads report here
        self.cancelled: Cancelled | None = None  # a cancel that arrived as a window began
        self.cancelled_attempt: _Attempt | None = None

    @property
    def rows(self) -> int:
        return sum(m.counter.rows for m in self.members)

    def bytes_for(self, member: _Member) -> int:
        """The uploaded bytes, shared among the windows by their rows."""
        return round(self.uploaded * member.counter.rows / self.rows) if self.rows else 0

    # -- select and encode ------------------------------------------------------------------

    def fill(self, windows: list[Window]) -> int:
        """Extract and load windows until the group is full; return how many were taken."""
        run = self.run
        self.taken = 0
        work_dir = tempfile.mkdtemp(prefix=_work_dir_prefix(run.export), dir=run.runner.work_dir)
        try:
            batches = self._batches(windows)
            if run.model.repair_batch:
                batches = map(run.model.repair_batch, batches)
            files = write_parquet_files(
                batches, self.plan.source_fields, self.plan.json_fields, Path(work_dir)
            )
            # The first file replaces the stage's contents; the others are appended, several
            # uploads at once, while the next file is written.
            with ThreadPoolExecutor(LOAD_PARALLELISM, thread_name_prefix="bqtui-load") as pool:
                loads = []
                for number, load_file in enumerate(files):
                    if self.cancelled is None:  # after a cancel between windows: finish them
                        run.check_stop()
                    if number == 0:
                        run.log("info", self._load(number, load_file))
                    else:
                        loads.append(pool.submit(self._load, number, load_file))
                for load in loads:  # logged here: the store is this thread's alone
                    run.log("info", load.result())
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        return self.taken

    def _batches(self, windows: list[Window]) -> Iterator[pa.RecordBatch]:
        run = self.run
        max_windows, max_rows = group_limits_from_env()
        for window in windows:
            if self.taken and (self.taken >= max_windows or self.rows >= max_rows):
                return
            self.taken += 1
            if window.start in run.done_in_run:
                continue  # recorded done earlier in this run (before a retry)
            attempt = self._begin(window)
            if attempt is None:
                continue  # recorded done from an earlier attempt's MERGE
            member = _Member(
                attempt, _BatchCounter(run.model.partition_field, run.model.full_history_rows)
            )
            self.members.append(member)
            run.log("info", f"Window {window.label()}: extracting (attempt {attempt.number}).")
            with run.source.stream(
                run.model.build_query(run.export),
                run.model.query_parameters(run.export, window.start, window.end),
            ) as stream:
                counted = member.counter.count(stream, functools.partial(self._on_rows, member))
                try:
                    first = next(counted, None)
                except Cancelled as cancelled:
                    # Nothing of this window was written yet: the windows before it in the
                    # group are complete, and are merged; this one is left for the next run.
                    self.members.remove(member)
                    self.cancelled, self.cancelled_attempt = cancelled, attempt
                    return
                if first is not None:
                    yield first
                    yield from counted
            member.read = run.source.last_read
            if member.counter.full_history and run.model.full_history_note:
                note = run.model.full_history_note(member.counter.full_history, member.counter.rows)
                run.log("info", f"Window {window.label()}: {note}")
            if member.read is not None:
                run.log(
                    "info",
                    f"Window {window.label()}: ClickHouse read {member.read.rows:,} rows "
                    f"({member.read.bytes / 1e6:.1f} MB) for {member.counter.rows:,} exported.",
                )

    def _begin(self, window: Window) -> _Attempt | None:
        run, export = self.run, self.run.export
        number = run.store.begin_window(
            export.id, window.start, window.end, run.result.run_id, run.lock.owner
        )
        attempt = _Attempt.of(export, window, number)
        pending = run.store.get_window(export.id, window.start).pending_merge_job
        try:
            if pending and run._resolve_earlier_merge(attempt, pending, self.destination):
                return None
        except BaseException as error:
            run._record_failure(attempt, self, error, merge_unresolved=True)
            raise
        if self.first is None:
            self.first = attempt
        return attempt

    def _on_rows(self, member: _Member, rows: int) -> None:
        if rows and member.counter.batches == 1:
            checkpoints.reached("extracted")
        self.run._on_batch(member.attempt.window, rows)

    # -- stage ------------------------------------------------------------------------------

    def _load(self, number: int, load_file) -> str:
        """Upload one file into the stage (from an upload thread but the first: no store
        access here); return the line to log."""
        run = self.run
        if self.ref is None:
            self.ref = self.destination.create_stage_table(self.plan, self.first.stage_id)
            if self.first.number > 1:  # an earlier attempt's stage, if still there
                earlier = _Attempt.of(run.export, self.first.window, self.first.number - 1)
                run.fence([self.first])  # the earlier attempt is not another runner's now
                self.destination.drop_table(
                    self.destination.table_ref(run.export.dataset_id, earlier.stage_id)
                )
        job_id = f"{self.first.job_prefix}_load{number}"
        checkpoints.reached("uploading")
        run.fence([m.attempt for m in list(self.members)])  # a copy: the main thread appends
        self.destination.load_file(
            load_file.path, self.ref, job_id, self.first.labels, first=number == 0
        )
        with self._bookkeeping:
            self.job_ids.append(job_id)
            self.uploaded += load_file.bytes
        load_file.path.unlink(missing_ok=True)
        return (
            f"{self.label()}: loaded {load_file.rows:,} rows ({load_file.bytes / 1e6:.1f} MB) "
            "into the stage table."
        )

    def label(self) -> str:
        windows = [m.attempt.window for m in self.members]
        if len(windows) == 1:
            return f"Window {windows[0].label()}"
        return (
            f"Windows {windows[0].start:%Y-%m-%d %H:%M}–{windows[-1].end:%Y-%m-%d %H:%M} UTC "
            f"({len(windows)} windows)"
        )

    # -- merge ------------------------------------------------------------------------------

    def submit_merge(self) -> None:
        run, export = self.run, self.run.export
        job_id = self.first.merge_job_id
        for member in self.members:  # noted before submitting: a crash leaves it findable
            run.store.set_pending_merge(
                export.id,
                member.attempt.window.start,
                run.lock.owner,
                member.attempt.number,
                job_id,
                rows=member.counter.rows,
            )
        # Before submitting: a submit that fails after BigQuery created the job (a lost
        # answer) leaves a MERGE that may run; the stage must stay and the job be looked up.
        run.fence([m.attempt for m in self.members])
        self.merge_submitted = True
        self.merge_job = self.destination.submit_merge(
            self.plan, self.ref, run.model, job_id, self.first.labels, self._range()
        )
        checkpoints.reached("merge_submitted")

    def wait_for_merge(self) -> None:
        job = self.destination.wait_for(
            self.merge_job, f"merging into {self.plan.table_ref}", self.run.export.dataset_id
        )
        self.job_ids.append(self.first.merge_job_id)
        checkpoints.reached("merge_done")
        self._check_merge_counts(job)

    def _check_merge_counts(self, job) -> None:
        """Log what the MERGE changed beside what was staged; more rows inserted than staged
        means something else wrote through this MERGE: the window fails, loudly."""
        counts = merge_counts(job)
        if counts is None:
            return
        inserted, updated = counts
        staged = self.rows
        changed = (
            f"inserted {inserted:,}" + (f" and updated {updated:,}" if updated is not None else "")
            if inserted is not None
            else f"changed {updated:,}"  # BigQuery gave only the total of rows affected
        )
        self.run.log("info", f"{self.label()}: the MERGE {changed} of {staged:,} staged rows.")
        if inserted is not None and inserted > staged:
            raise DestinationError(
                f"{self.label()}: BigQuery reports {inserted:,} rows inserted by MERGE job "
                f"{self.first.merge_job_id}, more than the {staged:,} staged. The window is "
                "recorded failed; run `bqtui verify` on this export before trusting its rows."
            )

    def _range(self):
        ranges = [m.counter.range for m in self.members if m.counter.range]
        if not ranges:
            return None
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def drop(self, quiet: bool = False) -> None:
        """Drop the stage once (it expires anyway): not once per window of the group."""
        if not self.ref:
            return
        ref, self.ref = self.ref, None
        drop_error = self.destination.drop_table(ref)
        if drop_error and not quiet:
            self.run.log(
                "warning",
                f"The stage table {ref} was not dropped and will expire by itself "
                f"within 12 hours: {drop_error}",
            )


def merge_counts(job) -> tuple[int | None, int | None] | None:
    """(inserted, updated) from a MERGE job's DML statistics; where BigQuery gives only the
    total of rows affected: (None, total); None when it gives nothing."""
    stats = getattr(job, "dml_stats", None)
    if stats is not None:
        return int(stats.inserted_row_count or 0), int(stats.updated_row_count or 0)
    affected = getattr(job, "num_dml_affected_rows", None)
    return None if affected is None else (None, int(affected))


class _BatchCounter:
    """Counts rows as batches stream by, and the range of the partition column."""

    def __init__(self, partition_field: str | None, full_history_rows=None):
        self.partition_field = partition_field
        self.full_history_rows = full_history_rows
        self.full_history = 0
        self.rows = 0
        self.batches = 0
        self.low = self.high = None

    @property
    def range(self):
        return (self.low, self.high) if self.low is not None else None

    def count(self, batches, on_rows: Callable[[int], None]) -> Iterator[pa.RecordBatch]:
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
