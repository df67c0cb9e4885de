"""A run's book: everything one run records in the store and tells its caller.

The one object that writes a run's records (the run, its windows, its logs), emits its
events and answers for its lock; the run and its groups call it, never the store.
"""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bqtui.core import checkpoints
from bqtui.core.config import ExportConfig
from bqtui.core.errors import Cancelled, LockLost
from bqtui.destination.job_stats import QueryJobStats
from bqtui.pipeline.attempt import Attempt
from bqtui.pipeline.events import (
    CancelToken,
    LogEvent,
    ProgressEvent,
    RunResult,
    WindowFinished,
)
from bqtui.pipeline.job_costs import cost_line, job_cost
from bqtui.pipeline.lock_watch import LockWatch
from bqtui.source.clickhouse import ReadStats
from bqtui.state.costs import CostBook
from bqtui.state.locks import ExportLock
from bqtui.state.records import WindowState
from bqtui.state.store import Store, utcnow
from bqtui.state.windows import Window

PROGRESS_INTERVAL = 0.25  # seconds between progress events: enough for a live bar


class RunBook:
    """One run of one export, as the store and the caller see it: started on creation,
    window by window recorded, ended by ``record_end``."""

    def __init__(
        self,
        store: Store,
        export: ExportConfig,
        *,
        trigger: str,
        windows_total: int,
        lock: ExportLock,
        watch: LockWatch,
        on_event: Callable[[object], None],
        cancel: CancelToken,
    ):
        self.store = store
        self.export = export
        self.export_id = export.saved_id
        self.lock = lock
        self.watch = watch  # the lock's heartbeat: lost lock, or remove --force
        self.on_event = on_event
        self.cancel = cancel  # the caller's: the user, SIGTERM or SIGINT
        self.result = RunResult(export.name, "running", windows_total=windows_total)
        self.run_id = store.start_run(self.export_id, trigger, windows_total)
        self.result.run_id = self.run_id
        self.done_in_run: set[datetime] = set()
        lock.set_run(self.run_id)
        # Fencing checks come from upload threads too: their own connection, one at a time.
        self._fence_store: Store | None = None
        self._fence_lock = threading.Lock()
        self._last_progress = 0.0
        self._started = time.monotonic()

    # -- cost -------------------------------------------------------------------------------

    def record_query_job(self, stats: QueryJobStats) -> None:
        """What a query job of this run read and was billed: kept, and said in the log."""
        CostBook(self.store).record(self.export_id, job_cost(stats, self.run_id))
        self.log("info", cost_line(stats))

    # -- events -----------------------------------------------------------------------------

    def log(self, level: str, message: str) -> None:
        at = datetime.now(UTC)
        self.store.add_logs(self.run_id, [(at, level, message)])
        self.on_event(LogEvent(self.export.name, level, message, at))

    def log_lock_warnings(self) -> None:
        for warning in self.watch.pending_warnings():
            self.log("warning", warning)

    def progress(self, window: Window | None, window_rows: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        done, total = self.result.windows_done, self.result.windows_total
        elapsed = now - self._started
        eta = elapsed / done * (total - done) if done else None
        self.on_event(
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

    def on_batch(self, window: Window, window_rows: int) -> None:
        self.check_stop()  # a long extraction stops between batches
        self.progress(window, window_rows)

    # -- stopping ---------------------------------------------------------------------------

    def check_stop(self) -> None:
        """A safe point: stop here if the user cancelled or the lock says so."""
        self.log_lock_warnings()
        self.watch.stop.raise_if_cancelled()
        self.cancel.raise_if_cancelled()

    def pause(self, seconds: float) -> None:
        """A retry's back-off: woken at once by a cancel, SIGTERM or SIGINT, or a lost lock."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.cancel.wait(min(left, 0.05)) or self.watch.stop.cancelled:
                break
        self.check_stop()

    def fence(self, attempts: list[Attempt]) -> None:
        """Right before BigQuery is asked to change anything: raise ``LockLost`` unless this
        runner still holds the lock and the attempts are still their windows' latest (a
        runner that was frozen and lost its lock submits nothing)."""
        with self._fence_lock:
            if self._fence_store is None:
                self._fence_store = self.store.sibling()
            self._fence_store.require_attempts(
                self.export_id, self.lock.owner, [(a.window.start, a.number) for a in attempts]
            )

    def close_fence_store(self) -> None:
        if self._fence_store is not None and self._fence_store is not self.store:
            self._fence_store.close()
        self._fence_store = None

    # -- windows ----------------------------------------------------------------------------

    def begin_attempt(self, window: Window) -> tuple[Attempt, str | None]:
        """Record a new attempt at the window; return it and the MERGE job an earlier
        attempt left pending (its outcome unknown), if any."""
        number = self.store.begin_window(
            self.export_id, window.start, window.end, self.run_id, self.lock.owner
        )
        attempt = Attempt.of(self.export, window, number)
        return attempt, self._window_state(window).pending_merge_job

    def pending_merge_rows(self, window: Window) -> int:
        """The rows the pending MERGE was to merge (noted with the job)."""
        return self._window_state(window).rows

    def note_pending_merge(self, attempt: Attempt, job_id: str | None, rows: int = 0) -> None:
        """Note the MERGE job about to be submitted (``None``: forget an earlier one)."""
        self.store.set_pending_merge(
            self.export_id, attempt.window.start, self.lock.owner, attempt.number, job_id, rows=rows
        )

    def record_done(
        self,
        attempt: Attempt,
        rows: int,
        uploaded: int,
        job_ids: list[str],
        read: ReadStats | None = None,
    ) -> None:
        window = attempt.window
        self.store.finish_window(
            self.export_id,
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
        self.on_event(
            WindowFinished(self.export.name, window, "done", rows, uploaded, tuple(job_ids), None)
        )
        self.log("info", f"Window {window.label()}: done, {rows:,} rows.")
        self.progress(window, 0, force=True)

    def record_failure(
        self, attempt: Attempt, error: BaseException, job_ids: list[str], *, merge_unresolved: bool
    ) -> None:
        """Record a failed or cancelled attempt, unless another runner owns the window now."""
        window = attempt.window
        status = "cancelled" if isinstance(error, Cancelled) else "failed"
        try:
            self.store.finish_window(
                self.export_id,
                window.start,
                status,
                owner=self.lock.owner,
                attempt=attempt.number,
                job_ids=job_ids,
                error=str(error),
                keep_pending_merge=merge_unresolved,
            )
        except LockLost:
            return
        self.on_event(
            WindowFinished(self.export.name, window, status, 0, 0, tuple(job_ids), str(error))
        )

    def _window_state(self, window: Window) -> WindowState:
        state = self.store.get_window(self.export_id, window.start)
        if state is None:  # begun by this runner under its lock: only a bug gets here
            raise RuntimeError(f"Window {window.label()} has no record in the store.")
        return state

    # -- the end ----------------------------------------------------------------------------

    def end(self, status: str, error: str, level: str) -> None:
        """The run stops early: ``status`` and ``error`` are its result; the error is logged."""
        self.result.status = status
        self.result.error = error
        self.log(level, error)

    def record_end(self) -> None:
        result = self.result
        self.store.update_run(
            self.run_id,
            status=result.status,
            finished_at=utcnow(),
            windows_done=result.windows_done,
            rows=result.rows,
            bytes=result.bytes,
            error=result.error,
        )
        self.log_lock_warnings()
        self.progress(None, 0, force=True)
