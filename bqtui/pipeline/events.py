"""What a run tells its caller: the events it emits through ``on_event``, the result it
returns, and ``CancelToken``, the way a caller stops it."""

import threading
from dataclasses import dataclass, field
from datetime import datetime

from bqtui.core.errors import BqtuiError, Cancelled
from bqtui.state.windows import Window


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

    def __init__(self) -> None:
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
