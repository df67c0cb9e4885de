"""What a headless run shows: logs and progress on stderr, the summary of results on stdout."""

import sys
import time
from typing import TextIO

from bqtui.pipeline.runner import LogEvent, ProgressEvent, RunFinished, RunResult


class RunConsole:
    """Logs on stderr; during a run of several windows, progress with the time left: a bar
    redrawn in place on a terminal, a plain line every ``PLAIN_EVERY`` seconds otherwise."""

    PLAIN_EVERY = 10.0
    BAR = 24

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.bar_shown = False
        self.last_plain = 0.0

    def __call__(self, event: object) -> None:
        if isinstance(event, LogEvent):
            self._clear_bar()
            stamp = event.at.strftime("%Y-%m-%dT%H:%M:%SZ")
            print(
                f"{stamp} [{event.export_name}] {event.level.upper()} {event.message}",
                file=self.stream,
                flush=True,
            )
        elif isinstance(event, ProgressEvent) and event.windows_total > 1:
            self._progress(event)
        elif isinstance(event, RunFinished):
            self._clear_bar()

    def _progress(self, event: ProgressEvent) -> None:
        if self.terminal:
            filled = self.BAR * event.windows_done // event.windows_total
            bar = "█" * filled + "·" * (self.BAR - filled)
            self.stream.write(f"\r\033[K[{event.export_name}] {bar} {event.text()}")
            self.stream.flush()
            self.bar_shown = True
        elif time.monotonic() - self.last_plain >= self.PLAIN_EVERY:
            self.last_plain = time.monotonic()
            print(f"[{event.export_name}] progress: {event.text()}", file=self.stream, flush=True)

    def _clear_bar(self) -> None:
        if self.bar_shown:
            self.stream.write("\r\033[K")
            self.bar_shown = False


def print_run_summary(results: list[RunResult]) -> None:
    """One line per export run, on stdout."""
    for r in results:
        line = (
            f"{r.export_name}: {r.status}, {r.windows_done}/{r.windows_total} windows, "
            f"{r.rows:,} rows, {r.seconds:.1f}s"
        )
        if r.windows_left:
            line += f", {r.windows_left} window(s) left for later (not yet due)"
        if r.error and r.status != "succeeded":
            line += f" — {r.error.splitlines()[0]}"
        print(line)
