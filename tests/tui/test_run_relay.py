"""The relay between the runner's thread and the Run screen coalesces floods of events."""

from datetime import UTC, datetime

from bqtui.pipeline.runner import LogEvent, ProgressEvent, RunFinished, RunResult
from bqtui.tui.messages import RunCompleted, RunLogLines, RunProgressed
from bqtui.tui.run_relay import RunRelay


class Inbox:
    def __init__(self):
        self.messages = []

    def post_message(self, message) -> bool:
        self.messages.append(message)
        return True


def progress(done: int) -> ProgressEvent:
    return ProgressEvent("ev", done, 100, done * 10, None, 0)


def test_a_flood_becomes_one_message_per_kind_and_only_the_latest_progress():
    inbox = Inbox()
    relay = RunRelay(inbox)
    at = datetime(2024, 5, 1, tzinfo=UTC)
    for number in range(1000):
        relay.on_event(LogEvent("ev", "info", f"line {number}", at))
        relay.on_event(progress(number))
    assert relay.flush() is False
    lines, latest = inbox.messages
    assert isinstance(lines, RunLogLines) and len(lines.lines) == 1000
    assert isinstance(latest, RunProgressed) and latest.progress.windows_done == 999

    inbox.messages.clear()
    assert relay.flush() is False and inbox.messages == []  # nothing new: nothing posted

    relay.on_event(RunFinished(RunResult("ev", "succeeded")))
    assert relay.flush() is True
    assert [type(m) for m in inbox.messages] == [RunCompleted]
    inbox.messages.clear()
    assert relay.flush() is True and inbox.messages == []  # completed once only
