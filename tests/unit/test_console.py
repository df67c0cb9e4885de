"""The CLI's progress: a bar redrawn in place on a terminal, plain lines in a log file."""

import io
from datetime import UTC, datetime

from bqtui.cli.console import RunConsole
from bqtui.pipeline.runner import LogEvent, ProgressEvent, RunFinished, RunResult


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def progress(done: int, eta: float | None) -> ProgressEvent:
    return ProgressEvent("ev", done, 720, done * 10, None, 0, eta)


def test_on_a_terminal_the_bar_is_redrawn_and_cleared_for_log_lines():
    out = Terminal()
    console = RunConsole(out)
    console(progress(180, 600.0))
    console(LogEvent("ev", "info", "Window x: done, 10 rows.", datetime(2024, 5, 1, tzinfo=UTC)))
    console(progress(360, 300.0))
    console(RunFinished(RunResult("ev", "succeeded")))
    text = out.getvalue()
    assert (
        "\r\x1b[K[ev] ██████·················· 180/720 windows · 1,800 rows · about 10 min left"
        in text
    )
    assert "\r\x1b[K2024-05-01T00:00:00Z [ev] INFO Window x: done, 10 rows.\n" in text
    assert text.endswith("3,600 rows · about 5 min left\r\x1b[K")


def test_in_a_log_file_progress_is_a_plain_line_now_and_then():
    out = io.StringIO()
    console = RunConsole(out)
    console(progress(1, 7000.0))
    console(progress(2, 6990.0))  # within 10 s: not repeated
    assert out.getvalue() == "[ev] progress: 1/720 windows · 10 rows · about 1.9 h left\n"
