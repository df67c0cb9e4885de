"""Carries a run's events from the runner's thread to the Run screen without flooding it.

The runner calls ``on_event`` from its worker thread, as often as it likes. Events are only
gathered here; the screen's timer calls ``flush`` (at most ~10 times a second) on the UI thread,
which posts one message per kind: all new log lines together, the latest progress only (older
progress is stale and dropped), finished windows, and finally the run's result.
"""

import threading

from textual.message_pump import MessagePump

from bqtui.pipeline.runner import LogEvent, ProgressEvent, RunFinished, RunResult, WindowFinished
from bqtui.tui.messages import RunCompleted, RunLogLines, RunProgressed, RunWindowsFinished

FLUSH_INTERVAL = 0.1  # seconds: a live log without re-rendering for every line


class RunRelay:
    def __init__(self, target: MessagePump):
        self.target = target
        self._lock = threading.Lock()
        self._lines: list[LogEvent] = []
        self._windows: list[WindowFinished] = []
        self._progress: ProgressEvent | None = None
        self._result: RunResult | None = None
        self._completed = False

    def on_event(self, event: object) -> None:
        """The runner's callback (worker thread)."""
        with self._lock:
            if isinstance(event, LogEvent):
                self._lines.append(event)
            elif isinstance(event, ProgressEvent):
                self._progress = event
            elif isinstance(event, WindowFinished):
                self._windows.append(event)
            elif isinstance(event, RunFinished):
                self._result = event.result

    def flush(self) -> bool:
        """Post what gathered since the last flush (UI thread). True once the run is over."""
        with self._lock:
            lines, self._lines = self._lines, []
            windows, self._windows = self._windows, []
            progress, self._progress = self._progress, None
            result = None if self._completed else self._result
            self._completed = self._completed or result is not None
        if lines:
            self.target.post_message(RunLogLines(lines))
        if windows:
            self.target.post_message(RunWindowsFinished(windows))
        if progress:
            self.target.post_message(RunProgressed(progress))
        if result:
            self.target.post_message(RunCompleted(result))
        return self._completed
