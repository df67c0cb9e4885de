"""The export lock and the fencing of window records (store + locks), on a real SQLite file."""

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from bqtui.core.config import ExportConfig
from bqtui.core.errors import ExportBusy, LockLost
from bqtui.state.locks import ExportLock, current_holder, live_holder, request_cancel
from bqtui.state.store import SCHEMA_VERSION, Store

START, END = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "bqtui.db"


def new_export(store: Store):
    return store.add_export(ExportConfig(name="ev", dataset_id="ds", table_id="t", uid="u" * 32))


def test_window_attempts_increase_under_the_lock(db_path):
    store = Store(db_path)
    export = new_export(store)
    lock = ExportLock(store, export.id).acquire()
    assert store.begin_window(export.id, START, END, None, lock.owner) == 1
    store.finish_window(export.id, START, "failed", owner=lock.owner, attempt=1, error="boom")
    assert store.begin_window(export.id, START, END, None, lock.owner) == 2
    store.finish_window(export.id, START, "done", owner=lock.owner, attempt=2, rows=5)
    assert store.done_window_starts(export.id) == {START}
    assert store.get_window(export.id, START).rows == 5


def test_a_second_runner_is_refused_while_the_first_lives(db_path):
    first, second = Store(db_path), Store(db_path)
    export = new_export(first)
    held = ExportLock(first, export.id).acquire()
    with pytest.raises(ExportBusy, match=rf"Another bqtui runner \(pid {os.getpid()} on "):
        ExportLock(second, export.id).acquire()
    held.release()
    assert ExportLock(second, export.id).acquire().taken_over is None
    # Reading the lock leaves no transaction open (it would hide this runner's later writes
    # from every other process until it ends).
    assert live_holder(first, export.id) is not None
    assert not first.db.conn.in_transaction and not second.db.conn.in_transaction


def test_a_lost_lock_fences_every_record(db_path):
    store = Store(db_path)
    export = new_export(store)
    old = ExportLock(store, export.id, ttl=timedelta(milliseconds=1)).acquire()
    store.begin_window(export.id, START, END, None, old.owner)
    time.sleep(0.01)  # expired: a frozen runner
    new = ExportLock(store, export.id).acquire()
    assert new.taken_over.owner == old.owner
    with pytest.raises(LockLost, match="lost the export's lock"):
        store.finish_window(export.id, START, "done", owner=old.owner, attempt=1, rows=1)
    with pytest.raises(LockLost):
        store.begin_window(export.id, START, END, None, old.owner)
    assert old.renew() == (False, False)
    # The new holder's attempt supersedes the old one: the old attempt cannot record either.
    assert store.begin_window(export.id, START, END, None, new.owner) == 2
    with pytest.raises(LockLost, match="Attempt 1 of this window was superseded"):
        store.finish_window(export.id, START, "done", owner=new.owner, attempt=1)
    assert store.done_window_starts(export.id) == set()


def _hold_lock_and_die(db_path: str, export_id: int, ready) -> None:
    ExportLock(Store(db_path), export_id).acquire()
    ready.set()
    os._exit(0)  # dies holding the lock, like kill -9


def test_a_dead_holder_on_this_host_is_taken_over_at_once(db_path):
    store = Store(db_path)
    export = new_export(store)
    ready = multiprocessing.get_context("fork").Event()
    child = multiprocessing.get_context("fork").Process(
        target=_hold_lock_and_die, args=(str(db_path), export.id, ready)
    )
    child.start()
    child.join()
    holder = current_holder(store, export.id)
    assert holder.pid == child.pid and holder.expires_at > datetime.now(UTC)
    assert live_holder(store, export.id) is None
    lock = ExportLock(store, export.id).acquire()
    assert lock.taken_over.pid == child.pid


def test_a_reused_pid_is_not_mistaken_for_the_holder(db_path):
    store = Store(db_path)
    export = new_export(store)
    ExportLock(store, export.id).acquire()
    # Same pid (ours, alive) but another start time: the holder is a different process.
    store.db.execute("UPDATE locks SET pid_started = pid_started - 1000")
    assert live_holder(store, export.id) is None
    assert ExportLock(store, export.id).acquire().taken_over is not None


def test_heartbeat_keeps_a_short_lock_alive_and_reports_cancel(db_path):
    store = Store(db_path)
    export = new_export(store)
    lock = ExportLock(store, export.id, ttl=timedelta(milliseconds=200)).acquire()
    lost, cancelled = [], []
    lock.start_heartbeat(lambda: lost.append(1), lambda: cancelled.append(1))
    time.sleep(0.6)  # three TTLs
    other = Store(db_path)
    with pytest.raises(ExportBusy):
        ExportLock(other, export.id).acquire()
    assert request_cancel(other, export.id).owner == lock.owner
    time.sleep(0.2)
    assert cancelled and not lost
    lock.release()
    assert current_holder(other, export.id) is None


class _NoWaitStore(Store):
    """The heartbeat's connection fails at once on a locked database (instead of waiting)."""

    def sibling(self) -> Store:
        twin = Store(self.path)
        twin.db.conn.execute("PRAGMA busy_timeout = 0")
        return twin


def test_repeated_heartbeat_failures_are_reported_and_the_lock_survives_them(db_path):
    store = _NoWaitStore(db_path)
    export = new_export(store)
    lock = ExportLock(store, export.id, ttl=timedelta(milliseconds=400)).acquire()
    lost, troubles = [], []
    lock.start_heartbeat(lambda: lost.append(1), lambda: None, troubles.append)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process writing for a second
    time.sleep(1.0)
    blocker.execute("COMMIT")
    time.sleep(0.3)
    lock.release()
    assert troubles and not lost
    assert troubles[0].startswith(
        "The lock's heartbeat failed 3 times in a row (database is locked); if it cannot "
        "renew the lock within 0.4 s, another runner may take this export over"
    )


def test_migrations_are_atomic(db_path):
    """A crash inside a migration leaves the previous version, and the next open succeeds."""
    conn = sqlite3.connect(db_path)
    conn.close()
    code = (
        "import os, bqtui.state.store as s\n"
        "def crash(db):\n"
        "    os._exit(9)\n"
        "s.MIGRATIONS[-1] = crash\n"
        f"s.Store({str(db_path)!r})\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()
    assert Store(db_path).schema_version == SCHEMA_VERSION


def _open_store(db_path: str) -> int:
    return Store(db_path).schema_version


def test_two_processes_opening_a_fresh_database_at_once(tmp_path):
    for attempt in range(5):
        path = str(tmp_path / f"fresh{attempt}.db")
        with multiprocessing.get_context("spawn").Pool(4) as pool:
            assert pool.map(_open_store, [path] * 4) == [SCHEMA_VERSION] * 4
