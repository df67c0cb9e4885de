from datetime import UTC, datetime, timedelta

from bqtui.core.config import Interval
from bqtui.state.windows import due_windows, first_window_start, floor_to_interval, windows_between


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_alignment_in_utc():
    moment = t("2024-05-08T13:47:12")  # a Wednesday
    assert floor_to_interval(moment, Interval.FIVE_MINUTES) == t("2024-05-08T13:45:00")
    assert floor_to_interval(moment, Interval.HOUR) == t("2024-05-08T13:00:00")
    assert floor_to_interval(moment, Interval.DAY) == t("2024-05-08T00:00:00")
    assert floor_to_interval(moment, Interval.WEEK) == t("2024-05-06T00:00:00")  # Monday


def test_new_export_starts_at_next_boundary_unless_start_given():
    created = t("2024-05-08T13:47:12")
    assert first_window_start(created, Interval.HOUR, None) == t("2024-05-08T14:00:00")
    assert first_window_start(t("2024-05-08T14:00:00"), Interval.HOUR, None) == t(
        "2024-05-08T14:00:00"
    )
    assert first_window_start(created, Interval.DAY, t("2024-05-01T09:30:00")) == t(
        "2024-05-01T00:00:00"
    )


def test_due_windows_catch_up_in_order_and_skip_done():
    start = t("2024-05-08T10:00:00")
    now = t("2024-05-08T13:10:00")
    done = {t("2024-05-08T11:00:00")}
    due = due_windows(start, now, Interval.HOUR, done)
    assert [(w.start.hour, w.end.hour) for w in due] == [(10, 11), (12, 13)]


def test_nothing_due_before_first_window_ends():
    assert (
        due_windows(t("2024-05-08T14:00:00"), t("2024-05-08T14:59:59"), Interval.HOUR, set()) == []
    )


def test_windows_between_covers_range():
    windows = list(
        windows_between(t("2024-05-08T10:07:00"), t("2024-05-08T10:20:00"), Interval.FIVE_MINUTES)
    )
    assert [w.start.minute for w in windows] == [5, 10, 15]


def test_a_window_is_due_only_once_it_has_ended_and_settled():
    from bqtui.core.config import ExportConfig
    from bqtui.state.windows import backfill_windows, next_run_at

    export = ExportConfig(
        name="e",
        dataset_id="d",
        table_id="t",
        interval=Interval.HOUR,
        start_at=t("2024-05-08T10:00:00"),
        settle_seconds=60,
    )
    boundary = t("2024-05-08T11:00:00")
    assert next_run_at(export, t("2024-05-08T11:00:59"), set()) == t("2024-05-08T11:01:00")
    assert next_run_at(export, t("2024-05-08T11:01:00"), set()) == t("2024-05-08T11:01:00")
    assert next_run_at(export, t("2024-05-08T11:30:00"), {t("2024-05-08T10:00:00")}) == t(
        "2024-05-08T12:01:00"
    )
    due, later = backfill_windows(
        export, t("2024-05-08T08:00:00"), t("2024-05-08T13:00:00"), boundary + timedelta(seconds=30)
    )
    assert [w.start.hour for w in due] == [8, 9]
    assert [w.start.hour for w in later] == [10, 11, 12]


def test_next_run_counts_instead_of_listing_windows():
    """A 5-minute export started in 1970: no list of millions of windows."""
    import tracemalloc

    from bqtui.core.config import ExportConfig
    from bqtui.state.windows import next_run_at

    export = ExportConfig(
        name="e",
        dataset_id="d",
        table_id="t",
        interval=Interval.FIVE_MINUTES,
        start_at=t("1970-01-01T00:00:00"),
    )
    tracemalloc.start()
    assert next_run_at(export, t("2026-12-01T12:00:00"), set()) == t("2026-12-01T12:00:00")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100_000
