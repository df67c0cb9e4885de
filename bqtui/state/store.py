"""Config and run state in SQLite (sqlite-utils): schema, migrations and queries.

Secrets never reach this database: exports hold only a reference (their ``uid``) to the
keyring entries.
"""

import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import sqlite_utils

from bqtui.core.config import ExportConfig
from bqtui.core.errors import ConfigError, LockLost
from bqtui.state.migrations import MIGRATIONS, SCHEMA_VERSION
from bqtui.state.records import (
    RunRecord,
    WindowState,
    export_from_row,
    export_row,
    from_iso_required,
    run_from_row,
    to_iso,
    utcnow,
    window_from_row,
)


def _inserted_id(table: sqlite_utils.db.Table) -> int:
    """The rowid of the row ``table`` just inserted."""
    last_pk = table.last_pk
    assert isinstance(last_pk, int), last_pk
    return last_pk


def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite opens it.

    An existing file is never opened here: closing any descriptor of a file drops every
    POSIX lock this process holds on it, SQLite's included (a second connection of this
    process, like the lock's heartbeat, would then corrupt the database).
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:  # created meanwhile by another process
        return
    os.close(fd)
    os.chmod(path, 0o600)


def describe_database_error(path: Path, error: sqlite3.Error) -> str:
    """What is wrong with the database file, and what to do; the file is never "repaired"."""
    text = str(error)
    if "not a database" in text or "malformed" in text:
        return (
            f"{path} is not a bqtui database, or it is damaged ({text}). bqtui leaves it as it "
            "is: restore it from a backup, or point --db at another file."
        )
    if "readonly" in text or "read-only" in text:
        return (
            f"The database {path} is read-only for this user ({text}). Make it and its folder "
            "writable (chmod u+w), or use another file with --db."
        )
    if "disk is full" in text or "disk I/O" in text:
        return (
            f"The database {path} could not be written: {text}. Free disk space and try again; "
            "nothing was half written (SQLite rolled the change back)."
        )
    if "unable to open" in text:
        return (
            f"Cannot open the database {path} ({text}). Check that its folder exists and is "
            "writable, or use another file with --db."
        )
    return f"Cannot use the database {path}: {text}."


def _use_write_ahead_log(conn: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch to WAL. The switch needs the file to itself and SQLite answers "database is
    locked" at once, without waiting, when another process opens a new database at the same
    instant (several runners started together): try again for a few seconds."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


class Store:
    """All reads and writes of bqtui's SQLite database."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if str(path) != ":memory:":
            if self.path.exists() and self.path.is_dir():
                raise ConfigError(f"--db {self.path} is a folder; give a file path.")
            try:
                _create_private_file(self.path)
            except OSError as error:
                raise ConfigError(
                    f"Cannot create the database {self.path}: {error.strerror}. Choose a "
                    "writable place with --db (or BQTUI_DB, or BQTUI_DATA_DIR for the folder)."
                ) from None
        try:
            # Autocommit mode: multi-statement writes use explicit BEGIN IMMEDIATE (below).
            conn = sqlite3.connect(
                str(self.path), timeout=30, check_same_thread=False, isolation_level=None
            )
            _use_write_ahead_log(conn)
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self.db = sqlite_utils.Database(conn)
            self._migrate()
        except sqlite3.DatabaseError as error:
            raise ConfigError(describe_database_error(self.path, error)) from None

    def close(self) -> None:
        self.db.conn.close()

    def sibling(self) -> "Store":
        """Another connection to the same file, for another thread (the lock's heartbeat)."""
        return self if str(self.path) == ":memory:" else Store(self.path)

    # -- schema ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Bring the schema up to date in one immediate transaction.

        All or nothing: a crash half way leaves the old version, and of two processes opening
        a fresh file at once, the second waits and then finds the work done.
        """
        if self._read_version() == SCHEMA_VERSION:
            return
        with self.transaction():
            version = self._read_version()
            for number in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[number - 1](self.db)
                self.db.conn.execute(f"PRAGMA user_version = {number}")

    def _read_version(self) -> int:
        version = self.db.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"The database {self.path} was written by a newer bqtui (schema {version}); "
                "upgrade bqtui."
            )
        return version

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def transaction(self):
        """An immediate write transaction: serialises concurrent writers across processes.

        sqlite-utils (4.x) nests its own writes inside it as savepoints.
        """
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT (disk full) leaves it open
                conn.execute("ROLLBACK")
            raise

    # -- exports --------------------------------------------------------------------------

    def add_export(self, config: ExportConfig) -> ExportConfig:
        if self.find_export(config.name):
            raise ConfigError(
                f'An export named "{config.name}" exists already; choose another name or '
                f"remove it first (bqtui remove {config.name})."
            )
        now = utcnow()
        uid = config.uid or uuid.uuid4().hex
        row = export_row(config.with_changes(uid=uid, created_at=now))
        row["created_at"] = row["updated_at"] = to_iso(now)
        with self.db.conn:
            export_id = _inserted_id(self.db.table("exports").insert(row))
        return self.get_export(export_id)

    def update_export(self, config: ExportConfig) -> ExportConfig:
        row = export_row(config)
        row["updated_at"] = to_iso(utcnow())
        with self.db.conn:
            self.db.table("exports").update(config.saved_id, row)
        return self.get_export(config.saved_id)

    def set_enabled(self, export_id: int, enabled: bool) -> None:
        with self.db.conn:
            self.db.table("exports").update(
                export_id, {"enabled": int(enabled), "updated_at": to_iso(utcnow())}
            )

    def remove_export(self, export_id: int) -> None:
        with self.transaction():
            self.db.execute(
                "DELETE FROM run_logs WHERE run_id IN (SELECT id FROM runs WHERE export_id = ?)",
                [export_id],
            )
            for table in ("runs", "windows", "locks", "job_costs"):
                self.db.execute(f"DELETE FROM {table} WHERE export_id = ?", [export_id])
            self.db.execute("DELETE FROM exports WHERE id = ?", [export_id])

    def list_exports(self) -> list[ExportConfig]:
        return [export_from_row(r) for r in self.db.table("exports").rows_where(order_by="name")]

    def find_export(self, name: str) -> ExportConfig | None:
        rows = list(self.db.table("exports").rows_where("name = ?", [name]))
        return export_from_row(rows[0]) if rows else None

    def get_export(self, export_id: int) -> ExportConfig:
        return export_from_row(self.db.table("exports").get(export_id))

    def require_export(self, name: str) -> ExportConfig:
        export = self.find_export(name)
        if export is None:
            known = ", ".join(e.name for e in self.list_exports()) or "none yet"
            raise ConfigError(f'No export named "{name}". Exports: {known}.')
        return export

    # -- windows --------------------------------------------------------------------------

    def done_window_starts(self, export_id: int) -> set[datetime]:
        rows = self.db.conn.execute(
            "SELECT window_start FROM windows WHERE export_id = ? AND status = 'done'",
            [export_id],
        ).fetchall()
        return {from_iso_required(r[0]) for r in rows}

    def get_window(self, export_id: int, window_start: datetime) -> WindowState | None:
        rows = list(
            self.db.table("windows").rows_where(
                "export_id = ? AND window_start = ?", [export_id, to_iso(window_start)]
            )
        )
        return window_from_row(rows[0]) if rows else None

    def begin_window(
        self, export_id: int, start: datetime, end: datetime, run_id: int | None, owner: str
    ) -> int:
        """Record a window as running under the lock ``owner`` holds; return the new attempt.

        The previous attempt's pending MERGE job, if any, is kept: the caller resolves it.
        """
        with self.transaction():
            self._require_lock(export_id, owner)
            previous = self.get_window(export_id, start)
            attempt = (previous.attempt if previous else 0) + 1
            pending = previous.pending_merge_job if previous else None
            rows = previous.rows if previous and pending else 0  # the rows that MERGE was to merge
            self.db.conn.execute(
                "INSERT OR REPLACE INTO windows (export_id, window_start, window_end, status,"
                " attempt, rows, bytes, job_ids, error, started_at, finished_at, run_id,"
                " pending_merge_job)"
                " VALUES (?, ?, ?, 'running', ?, ?, 0, '[]', NULL, ?, NULL, ?, ?)",
                [
                    export_id,
                    to_iso(start),
                    to_iso(end),
                    attempt,
                    rows,
                    to_iso(utcnow()),
                    run_id,
                    pending,
                ],
            )
        return attempt

    def set_pending_merge(
        self,
        export_id: int,
        start: datetime,
        owner: str,
        attempt: int,
        job_id: str | None,
        rows: int = 0,
    ) -> None:
        """Note (before submitting, with the rows it merges) or clear (once resolved) the
        window's MERGE job."""
        with self.transaction():
            self._require_window(export_id, start, owner, attempt)
            self.db.conn.execute(
                "UPDATE windows SET pending_merge_job = ?, rows = ? WHERE export_id = ? AND "
                "window_start = ?",
                [job_id, rows, export_id, to_iso(start)],
            )

    def finish_window(
        self,
        export_id: int,
        start: datetime,
        status: str,
        *,
        owner: str,
        attempt: int,
        rows: int = 0,
        bytes_: int = 0,
        job_ids: list | None = None,
        error: str | None = None,
        keep_pending_merge: bool = False,
        rows_read: int | None = None,
        bytes_read: int | None = None,
    ) -> None:
        """Record the attempt's outcome, only if this runner still holds the lock (fencing)
        and the attempt is still the window's latest; else raise ``LockLost``."""
        with self.transaction():
            self._require_window(export_id, start, owner, attempt)
            self.db.conn.execute(
                "UPDATE windows SET status = ?, rows = ?, bytes = ?, job_ids = ?, error = ?,"
                " finished_at = ?, rows_read = ?, bytes_read = ?"
                # a MERGE that may still run keeps its job and the rows it merges
                + (", rows = rows" if keep_pending_merge else ", pending_merge_job = NULL")
                + " WHERE export_id = ? AND window_start = ?",
                [
                    status,
                    rows,
                    bytes_,
                    json.dumps(job_ids or []),
                    error,
                    to_iso(utcnow()),
                    rows_read,
                    bytes_read,
                    export_id,
                    to_iso(start),
                ],
            )

    def require_attempts(
        self, export_id: int, owner: str, attempts: list[tuple[datetime, int]]
    ) -> None:
        """Raise ``LockLost`` unless this runner holds the lock and each (window start,
        attempt) is still its window's latest: checked right before BigQuery is asked to
        change anything (fencing beyond the store's own records)."""
        self._require_lock(export_id, owner)
        for start, attempt in attempts:
            self._require_window(export_id, start, owner, attempt)

    # -- locks (bqtui/state/locks.py holds them; callers hold the transaction) ---------------

    def lock_holder_row(self, export_id: int) -> tuple | None:
        """(owner, host, pid, pid_started, acquired_at, expires_at, run_id, cancel_requested)."""
        return self.db.conn.execute(
            "SELECT owner, host, pid, pid_started, acquired_at, expires_at, run_id,"
            " cancel_requested FROM locks WHERE export_id = ?",
            [export_id],
        ).fetchone()

    def insert_lock(
        self,
        export_id: int,
        owner: str,
        *,
        acquired_at: datetime,
        expires_at: datetime,
        host: str,
        pid: int,
        pid_started: float | None,
    ) -> None:
        self.db.conn.execute(
            "INSERT OR REPLACE INTO locks (export_id, owner, acquired_at, expires_at, host,"
            " pid, pid_started, run_id, cancel_requested) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 0)",
            [export_id, owner, to_iso(acquired_at), to_iso(expires_at), host, pid, pid_started],
        )

    def set_lock_run(self, export_id: int, owner: str, run_id: int) -> None:
        self.db.conn.execute(
            "UPDATE locks SET run_id = ? WHERE export_id = ? AND owner = ?",
            [run_id, export_id, owner],
        )

    def renew_lock(self, export_id: int, owner: str, expires_at: datetime) -> tuple[bool, bool]:
        """Extend ``owner``'s lock; returns (still held, cancel requested)."""
        held = self.db.conn.execute(
            "UPDATE locks SET expires_at = ? WHERE export_id = ? AND owner = ?",
            [to_iso(expires_at), export_id, owner],
        ).rowcount
        row = self.db.conn.execute(
            "SELECT cancel_requested FROM locks WHERE export_id = ? AND owner = ?",
            [export_id, owner],
        ).fetchone()
        return bool(held), bool(row and row[0])

    def request_lock_cancel(self, export_id: int, owner: str) -> None:
        self.db.conn.execute(
            "UPDATE locks SET cancel_requested = 1 WHERE export_id = ? AND owner = ?",
            [export_id, owner],
        )

    def delete_lock(self, export_id: int, owner: str) -> None:
        self.db.conn.execute(
            "DELETE FROM locks WHERE export_id = ? AND owner = ?", [export_id, owner]
        )

    def _require_lock(self, export_id: int, owner: str) -> None:
        row = self.db.conn.execute(
            "SELECT owner FROM locks WHERE export_id = ?", [export_id]
        ).fetchone()
        if row is None or row[0] != owner:
            holder = f" (now held by {row[0]})" if row else ""
            raise LockLost(
                f"This runner lost the export's lock{holder}: it stopped and recorded nothing; "
                "the runner holding the lock completes the window."
            )

    def _require_window(self, export_id: int, start: datetime, owner: str, attempt: int) -> None:
        self._require_lock(export_id, owner)
        row = self.db.conn.execute(
            "SELECT attempt FROM windows WHERE export_id = ? AND window_start = ?",
            [export_id, to_iso(start)],
        ).fetchone()
        if row is None or row[0] != attempt:
            raise LockLost(
                f"Attempt {attempt} of this window was superseded by another runner; this "
                "runner recorded nothing."
            )

    def interrupt_stale(self, export_id: int, reason: str) -> tuple[int, int]:
        """Mark runs and windows left "running" by a dead runner as interrupted.

        Called by the new lock holder, so nothing else runs this export meanwhile.
        """
        now = to_iso(utcnow())
        with self.transaction():
            runs = self.db.conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, error = ?"
                " WHERE export_id = ? AND status = 'running'",
                [now, reason, export_id],
            ).rowcount
            windows = self.db.conn.execute(
                "UPDATE windows SET status = 'interrupted', finished_at = ?, error = ?"
                " WHERE export_id = ? AND status = 'running'",
                [now, reason, export_id],
            ).rowcount
        return runs, windows

    def list_windows(self, export_id: int, limit: int = 200) -> list[WindowState]:
        rows = self.db.table("windows").rows_where(
            "export_id = ?", [export_id], order_by="window_start desc", limit=limit
        )
        return [window_from_row(r) for r in rows]

    # -- runs and logs ----------------------------------------------------------------------

    def start_run(self, export_id: int, trigger: str, windows_total: int) -> int:
        with self.db.conn:
            return _inserted_id(
                self.db.table("runs").insert(
                    {
                        "export_id": export_id,
                        "trigger": trigger,
                        "status": "running",
                        "started_at": to_iso(utcnow()),
                        "windows_total": windows_total,
                        "windows_done": 0,
                        "rows": 0,
                        "bytes": 0,
                    }
                )
            )

    def update_run(self, run_id: int, **fields) -> None:
        if "finished_at" in fields:
            fields["finished_at"] = to_iso(fields["finished_at"])
        with self.db.conn:
            self.db.table("runs").update(run_id, fields)

    def list_runs(self, export_id: int | None = None, limit: int = 50) -> list[RunRecord]:
        where, args = ("export_id = ?", [export_id]) if export_id is not None else (None, None)
        rows = self.db.table("runs").rows_where(where, args, order_by="id desc", limit=limit)
        return [run_from_row(r) for r in rows]

    def last_run(self, export_id: int) -> RunRecord | None:
        runs = self.list_runs(export_id, limit=1)
        return runs[0] if runs else None

    def add_logs(self, run_id: int, entries: list[tuple[datetime, str, str]]) -> None:
        with self.db.conn:
            self.db.table("run_logs").insert_all(
                {"run_id": run_id, "logged_at": to_iso(t), "level": level, "message": message}
                for t, level, message in entries
            )

    def run_logs(self, run_id: int) -> list[tuple[datetime, str, str]]:
        rows = self.db.table("run_logs").rows_where("run_id = ?", [run_id], order_by="id")
        return [(from_iso_required(r["logged_at"]), r["level"], r["message"]) for r in rows]
