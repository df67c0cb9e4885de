"""Export windows: half-open [start, end) intervals aligned in UTC, and which are due."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bqtui.core.config import Interval

STEP = {
    Interval.FIVE_MINUTES: timedelta(minutes=5),
    Interval.HOUR: timedelta(hours=1),
    Interval.DAY: timedelta(days=1),
    Interval.WEEK: timedelta(weeks=1),
}
EPOCH_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)  # weeks start on Monday 00:00 UTC


@dataclass(frozen=True, order=True)
class Window:
    start: datetime
    end: datetime

    def label(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}–{self.end:%Y-%m-%d %H:%M} UTC"


def floor_to_interval(moment: datetime, interval: Interval) -> datetime:
    moment = moment.astimezone(UTC)
    step = STEP[Interval(interval)]
    origin = EPOCH_MONDAY if interval == Interval.WEEK else datetime(1970, 1, 1, tzinfo=UTC)
    return origin + ((moment - origin) // step) * step


def next_boundary(moment: datetime, interval: Interval) -> datetime:
    floor = floor_to_interval(moment, interval)
    return floor if floor == moment.astimezone(UTC) else floor + STEP[Interval(interval)]


def first_window_start(created: datetime, interval: Interval, start: datetime | None) -> datetime:
    """A new export starts at the next period boundary unless the user gave a start."""
    if start is not None:
        return floor_to_interval(start, interval)
    return next_boundary(created, interval)


def windows_between(start: datetime, end: datetime, interval: Interval) -> Iterator[Window]:
    """Aligned windows covering [start, end); the first and last may reach outside it."""
    step = STEP[Interval(interval)]
    cursor = floor_to_interval(start, interval)
    while cursor < end:
        yield Window(cursor, cursor + step)
        cursor += step


def due_windows(
    start: datetime, now: datetime, interval: Interval, done: set[datetime]
) -> list[Window]:
    """Windows that have ended by ``now`` and are not done, oldest first (catch-up)."""
    last_end = floor_to_interval(now, interval)
    return [w for w in windows_between(start, last_end, interval) if w.start not in done]


def next_run_at(export, now: datetime, done: set[datetime]) -> datetime:
    """When the export next has work: now if windows are due, else when the current window
    has ended and settled. Counts, never lists, the windows since the start: O(windows done)."""
    settled_until = now - export.settle
    step = STEP[Interval(export.interval)]
    last_end = floor_to_interval(settled_until, export.interval)
    ended = max((last_end - export.start_at) // step, 0)
    done_in_range = sum(1 for start in done if export.start_at <= start < last_end)
    if ended > done_in_range:
        return now
    return max(next_boundary(settled_until, export.interval), export.start_at + step) + (
        export.settle
    )


def backfill_windows(export, start: datetime, end: datetime, now: datetime):
    """A backfill's windows that are due now, and those left for later (not yet ended and
    settled: exporting them now would miss the rows that arrive until then)."""
    settled_until = now - export.settle
    windows = list(windows_between(start, end, export.interval))
    due = [w for w in windows if w.end <= settled_until]
    return due, windows[len(due) :]
