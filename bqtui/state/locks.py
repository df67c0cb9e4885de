"""One runner per export: a lock row in SQLite with an owner, a heartbeat and fencing.

- The holder renews the lock from a heartbeat thread, so it never expires under a live runner,
  however long ClickHouse or a BigQuery job makes it wait.
- A holder that died on this host (its pid is gone, or now belongs to another process) is
  taken over at once; a holder on another host is trusted until its lock expires.
- Writes that record a window check ownership in the same transaction (``Store``'s fencing),
  so a runner that lost its lock never records anything.
- Another process may ask the holder to stop at its next safe point (``request_cancel``).
"""

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psutil

from bqtui.core.errors import ExportBusy
from bqtui.state.store import Store, from_iso_required, utcnow

log = logging.getLogger(__name__)

DEFAULT_LOCK_TTL = timedelta(minutes=5)
HEARTBEAT_MAX = 1.0  # seconds between renewals at most
HEARTBEAT_WARN_AFTER = 3  # consecutive failed renewals that make a warning in the run's log


def lock_ttl_from_env() -> timedelta:
    """``BQTUI_LOCK_TTL`` (seconds) shortens the TTL, for tests of expiry and takeover."""
    value = os.environ.get("BQTUI_LOCK_TTL")
    return timedelta(seconds=float(value)) if value else DEFAULT_LOCK_TTL


def process_started(pid: int) -> float | None:
    """The start time of a live process, None when there is none with that pid."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


@dataclass(frozen=True)
class LockHolder:
    owner: str
    host: str | None
    pid: int | None
    pid_started: float | None
    acquired_at: datetime
    expires_at: datetime
    run_id: int | None
    cancel_requested: bool

    def describe(self) -> str:
        where = f"pid {self.pid} on {self.host}" if self.pid else self.owner
        return f"{where}, since {self.acquired_at:%Y-%m-%d %H:%M:%S} UTC"

    def is_dead(self, now: datetime) -> bool:
        """Expired, or a process of this host that no longer runs (pid reuse included)."""
        if self.expires_at <= now:
            return True
        if self.host != socket.gethostname() or not self.pid:
            return False  # another host: only its expiry tells
        started = process_started(self.pid)
        return started is None or (
            self.pid_started is not None and abs(started - self.pid_started) > 1.0
        )


def current_holder(store: Store, export_id: int) -> LockHolder | None:
    row = store.lock_holder_row(export_id)
    if row is None:
        return None
    return LockHolder(
        owner=row[0],
        host=row[1],
        pid=row[2],
        pid_started=row[3],
        acquired_at=from_iso_required(row[4]),
        expires_at=from_iso_required(row[5]),
        run_id=row[6],
        cancel_requested=bool(row[7]),
    )


def live_holder(store: Store, export_id: int) -> LockHolder | None:
    """The runner running this export now, None when nobody (or a dead runner) holds it."""
    holder = current_holder(store, export_id)
    return None if holder is None or holder.is_dead(utcnow()) else holder


def request_cancel(store: Store, export_id: int) -> LockHolder | None:
    """Ask the live holder to stop at its next safe point; returns it (None: nobody runs)."""
    with store.transaction():
        holder = live_holder(store, export_id)
        if holder is not None:
            store.request_lock_cancel(export_id, holder.owner)
    return holder


class ExportLock:
    """This process's hold on one export; ``acquire`` it, then ``release`` it in a finally."""

    def __init__(self, store: Store, export_id: int, ttl: timedelta | None = None):
        self.store = store
        self.export_id = export_id
        self.ttl = ttl or lock_ttl_from_env()
        pid = os.getpid()
        self.host = socket.gethostname()
        self.pid = pid
        self.owner = f"{self.host}:{pid}:{uuid.uuid4().hex[:8]}"
        self.taken_over: LockHolder | None = None  # the dead holder this lock replaced
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()

    def acquire(self) -> "ExportLock":
        """Take the lock, or raise ``ExportBusy`` naming the live holder."""
        now = utcnow()
        with self.store.transaction():
            holder = current_holder(self.store, self.export_id)
            if holder is not None and not holder.is_dead(now):
                raise ExportBusy(
                    f"Another bqtui runner ({holder.describe()}) is running this export; it "
                    "was not started twice."
                )
            self.store.insert_lock(
                self.export_id,
                self.owner,
                acquired_at=now,
                expires_at=now + self.ttl,
                host=self.host,
                pid=self.pid,
                pid_started=process_started(self.pid),
            )
        self.taken_over = holder
        return self

    def set_run(self, run_id: int) -> None:
        with self.store.transaction():
            self.store.set_lock_run(self.export_id, self.owner, run_id)

    def renew(self, store: Store | None = None) -> tuple[bool, bool]:
        """Extend the lock; returns (still held, cancel requested)."""
        store = store or self.store
        with store.transaction():
            return store.renew_lock(self.export_id, self.owner, utcnow() + self.ttl)

    def start_heartbeat(
        self,
        on_lost: Callable[[], None],
        on_cancel_requested: Callable[[], None],
        on_trouble: Callable[[str], None] | None = None,
    ) -> None:
        """Renew from a thread with its own connection until released: every quarter TTL, and
        at least every ``HEARTBEAT_MAX`` seconds so a stop request is seen within seconds."""
        interval = max(min(self.ttl.total_seconds() / 4, HEARTBEAT_MAX), 0.05)

        def beat() -> None:
            store = self.store.sibling()
            failures = 0
            try:
                while not self._stop.wait(interval):
                    try:
                        held, cancel = self.renew(store)
                        failures = 0
                    except Exception as error:  # noqa: BLE001 - a busy database: next beat
                        failures += 1
                        log.warning("could not renew the lock of export %s", self.export_id)
                        if on_trouble and failures % HEARTBEAT_WARN_AFTER == 0:
                            on_trouble(
                                f"The lock's heartbeat failed {failures} times in a row "
                                f"({error}); if it cannot renew the lock within "
                                f"{self.ttl.total_seconds():g} s, another runner may take "
                                "this export over and this one stops."
                            )
                        continue
                    if not held:
                        on_lost()
                        return
                    if cancel:
                        on_cancel_requested()
            finally:
                if store is not self.store:
                    store.close()

        self._heartbeat = threading.Thread(target=beat, name="bqtui-lock-heartbeat", daemon=True)
        self._heartbeat.start()

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with self.store.transaction():
            self.store.delete_lock(self.export_id, self.owner)
