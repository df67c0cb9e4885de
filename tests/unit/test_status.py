"""Freshness from the store: exported through the unbroken run of done windows."""

from datetime import UTC, datetime, timedelta

from bqtui.core.config import ExportConfig, Interval
from bqtui.ops.status import export_status
from bqtui.state.locks import ExportLock
from bqtui.state.store import Store

DAY = timedelta(days=1)


def test_exported_through_stops_at_the_first_gap_and_windows_are_aligned(tmp_path):
    store = Store(tmp_path / "bqtui.db")
    start = datetime(2024, 5, 1, 14, tzinfo=UTC)  # not on a day boundary: windows are aligned
    export = store.add_export(
        ExportConfig(name="e", dataset_id="d", table_id="t", interval=Interval.DAY, start_at=start)
    )
    lock = ExportLock(store, export.id).acquire()
    for day, status in ((1, "done"), (2, "done"), (3, "failed"), (4, "done")):
        window = datetime(2024, 5, day, tzinfo=UTC)
        number = store.begin_window(export.id, window, window + DAY, None, lock.owner)
        store.finish_window(export.id, window, status, owner=lock.owner, attempt=number)
    now = datetime(2024, 5, 6, 6, tzinfo=UTC)
    status = export_status(store, export, now)
    assert status.exported_through == datetime(2024, 5, 3, tzinfo=UTC)
    assert status.lag == timedelta(days=3, hours=6) and status.windows_waiting == 1
    assert status.problems == ["3.2 days behind (alert after 2.0 days)"]
