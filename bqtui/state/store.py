"""Config and run state in SQLite (sqlite-utils): schema, migrations and queries.

Secrets never reach this database: exports hold only a reference (their ``uid``) to the
keyring entries.
"""

import json
import os
import sqlite3
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from bqtui.core.config import DEFAULT_SETTLE_SECONDS, ExportConfig, Interval, Model
from bqtui.core.errors import ConfigError, LockLost


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value else None


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _migration_1(db: sqlite_utils.Database) -> None:
    db["exports"].create(
        {
            "id": int,
            "uid": str,
            "name": str,
            "model": str,
            "dataset_id": str,
            "table_id": str,
            "project_id": str,
            "interval": str,
            "json_type": int,
            "team_id": int,
            "source_dsn": str,
            "bigquery_endpoint": str,
            "include_events": str,
            "exclude_events": str,
            "start_at": str,
            "enabled": int,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"uid", "name", "model", "dataset_id", "table_id", "interval"},
    )
    db["exports"].create_index(["name"], unique=True)
    db["exports"].create_index(["uid"], unique=True)
    db["windows"].create(
        {
            "export_id": int,
            "window_start": str,
            "window_end": str,
            "status": str,  # running | done | failed | cancelled
            "attempt": int,
            "rows": int,
            "bytes": int,
            "job_ids": str,
            "error": str,
            "started_at": str,
            "finished_at": str,
            "run_id": int,
        },
        pk=("export_id", "window_start"),
        foreign_keys=[("export_id", "exports", "id")],
    )
    db["runs"].create(
        {
            "id": int,
            "export_id": int,
            "trigger": str,  # schedule | manual | backfill
            "status": str,  # running | succeeded | failed | cancelled
            "started_at": str,
            "finished_at": str,
            "windows_total": int,
            "windows_done": int,
            "rows": int,
            "bytes": int,
            "error": str,
        },
        pk="id",
        foreign_keys=[("export_id", "exports", "id")],
    )
    db["runs"].create_index(["export_id", "started_at"])
    db["run_logs"].create(
        {"id": int, "run_id": int, "logged_at": str, "level": str, "message": str},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["run_logs"].create_index(["run_id"])
    db["locks"].create(
        {"export_id": int, "owner": str, "acquired_at": str, "expires_at": str},
        pk="export_id",
    )


def _migration_2(db: sqlite_utils.Database) -> None:
    db["exports"].add_column("location", str)


def _migration_3(db: sqlite_utils.Database) -> None:
    db["exports"].add_column("settle_seconds", int)
    # Who holds a lock, precisely enough to tell a dead holder on this host from a live one,
    # and a request from another process (bqtui remove --force) to stop at a safe point.
    for column, kind in (
        ("host", str),
        ("pid", int),
        ("pid_started", float),
        ("run_id", int),
        ("cancel_requested", int),
    ):
        db["locks"].add_column(column, kind)
    # The MERGE job an attempt submitted and has not seen finish: the next attempt asks
    # BigQuery about it before running its own.
    db["windows"].add_column("pending_merge_job", str)


def _migration_4(db: sqlite_utils.Database) -> None:
    # What each window read from ClickHouse (from the engine's own statistics).
    db["windows"].add_column("rows_read", int)
    db["windows"].add_column("bytes_read", int)


def _migration_5(db: sqlite_utils.Database) -> None:
    # How far behind now an export may be before `bqtui status` alerts (NULL: the default).
    db["exports"].add_column("alert_after_seconds", int)


# Each migration takes the schema from version N-1 to N; never edit one that has shipped.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class WindowState:
    export_id: int
    window_start: datetime
    window_end: datetime
    status: str
    attempt: int
    rows: int
    bytes: int
    job_ids: list
    error: str | None
    pending_merge_job: str | None = None
    rows_read: int | None = None
    bytes_read: int | None = None


@dataclass(frozen=True)
class RunRecord:
    id: int
    export_id: int
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    windows_total: int
    windows_done: int
    rows: int
    bytes: int
    error: str | None


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
            conn.execute("PRAGMA journal_mode=WAL")
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
        row = self._export_row(config.with_changes(uid=uid, created_at=now))
        row["created_at"] = row["updated_at"] = to_iso(now)
        with self.db.conn:
            export_id = self.db["exports"].insert(row).last_pk
        return self.get_export(export_id)

    def update_export(self, config: ExportConfig) -> ExportConfig:
        row = self._export_row(config)
        row["updated_at"] = to_iso(utcnow())
        with self.db.conn:
            self.db["exports"].update(config.id, row)
        return self.get_export(config.id)

    def set_enabled(self, export_id: int, enabled: bool) -> None:
        with self.db.conn:
            self.db["exports"].update(
                export_id, {"enabled": int(enabled), "updated_at": to_iso(utcnow())}
            )

    def remove_export(self, export_id: int) -> None:
        with self.transaction():
            self.db.execute(
                "DELETE FROM run_logs WHERE run_id IN (SELECT id FROM runs WHERE export_id = ?)",
                [export_id],
            )
            for table in ("runs", "windows", "locks"):
                self.db.execute(f"DELETE FROM {table} WHERE export_id = ?", [export_id])
            self.db.execute("DELETE FROM exports WHERE id = ?", [export_id])

    def list_exports(self) -> list[ExportConfig]:
        return [self._export_from_row(r) for r in self.db["exports"].rows_where(order_by="name")]

    def find_export(self, name: str) -> ExportConfig | None:
        rows = list(self.db["exports"].rows_where("name = ?", [name]))
        return self._export_from_row(rows[0]) if rows else None

    def get_export(self, export_id: int) -> ExportConfig:
        return self._export_from_row(self.db["exports"].get(export_id))

    def require_export(self, name: str) -> ExportConfig:
        export = self.find_export(name)
        if export is None:
            known = ", ".join(e.name for e in self.list_exports()) or "none yet"
            raise ConfigError(f'No export named "{name}". Exports: {known}.')
        return export

    @staticmethod
    def _export_row(config: ExportConfig) -> dict:
        return {
            "uid": config.uid,
            "name": config.name,
            "model": config.model.value,
            "dataset_id": config.dataset_id,
            "table_id": config.table_id,
            "project_id": config.project_id,
            "location": config.location,
            "interval": config.interval.value,
            "json_type": int(config.json_type),
            "team_id": config.team_id,
            "source_dsn": config.source_dsn,
            "bigquery_endpoint": config.bigquery_endpoint,
            "include_events": json.dumps(list(config.include_events)),
            "exclude_events": json.dumps(list(config.exclude_events)),
            "start_at": to_iso(config.start_at),
            "enabled": int(config.enabled),
            "settle_seconds": config.settle_seconds,
            "alert_after_seconds": config.alert_after_seconds,
        }

    @staticmethod
    def _export_from_row(row: dict) -> ExportConfig:
        return ExportConfig(
            id=row["id"],
            uid=row["uid"],
            name=row["name"],
            model=Model(row["model"]),
            dataset_id=row["dataset_id"],
            table_id=row["table_id"],
            project_id=row["project_id"],
            location=row.get("location"),
            interval=Interval(row["interval"]),
            json_type=bool(row["json_type"]),
            team_id=row["team_id"],
            source_dsn=row["source_dsn"] or "",
            bigquery_endpoint=row["bigquery_endpoint"],
            include_events=tuple(json.loads(row["include_events"] or "[]")),
            exclude_events=tuple(json.loads(row["exclude_events"] or "[]")),
            start_at=from_iso(row["start_at"]),
            enabled=bool(row["enabled"]),
            created_at=from_iso(row["created_at"]),
            settle_seconds=DEFAULT_SETTLE_SECONDS
            if row.get("settle_seconds") is None
            else row["settle_seconds"],
            alert_after_seconds=row.get("alert_after_seconds"),
        )

    # -- windows --------------------------------------------------------------------------

    def done_window_starts(self, export_id: int) -> set[datetime]:
        rows = self.db.conn.execute(
            "SELECT window_start FROM windows WHERE export_id = ? AND status = 'done'",
            [export_id],
        ).fetchall()
        return {from_iso(r[0]) for r in rows}

    def get_window(self, export_id: int, window_start: datetime) -> WindowState | None:
        rows = list(
            self.db["windows"].rows_where(
                "export_id = ? AND window_start = ?", [export_id, to_iso(window_start)]
            )
        )
        return self._window_from_row(rows[0]) if rows else None

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
            rows = previous.rows if pending else 0  # the rows that MERGE was to merge
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
        rows = self.db["windows"].rows_where(
            "export_id = ?", [export_id], order_by="window_start desc", limit=limit
        )
        return [self._window_from_row(r) for r in rows]

    @staticmethod
    def _window_from_row(row: dict) -> WindowState:
        return WindowState(
            export_id=row["export_id"],
            window_start=from_iso(row["window_start"]),
            window_end=from_iso(row["window_end"]),
            status=row["status"],
            attempt=row["attempt"],
            rows=row["rows"] or 0,
            bytes=row["bytes"] or 0,
            job_ids=json.loads(row["job_ids"] or "[]"),
            error=row["error"],
            pending_merge_job=row.get("pending_merge_job"),
            rows_read=row.get("rows_read"),
            bytes_read=row.get("bytes_read"),
        )

    # -- runs and logs ----------------------------------------------------------------------

    def start_run(self, export_id: int, trigger: str, windows_total: int) -> int:
        with self.db.conn:
            return (
                self.db["runs"]
                .insert(
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
                .last_pk
            )

    def update_run(self, run_id: int, **fields) -> None:
        if "finished_at" in fields:
            fields["finished_at"] = to_iso(fields["finished_at"])
        with self.db.conn:
            self.db["runs"].update(run_id, fields)

    def list_runs(self, export_id: int | None = None, limit: int = 50) -> list[RunRecord]:
        where, args = ("export_id = ?", [export_id]) if export_id is not None else (None, None)
        rows = self.db["runs"].rows_where(where, args, order_by="id desc", limit=limit)
        return [self._run_from_row(r) for r in rows]

    def last_run(self, export_id: int) -> RunRecord | None:
        runs = self.list_runs(export_id, limit=1)
        return runs[0] if runs else None

    @staticmethod
    def _run_from_row(row: dict) -> RunRecord:
        return RunRecord(
            id=row["id"],
            export_id=row["export_id"],
            trigger=row["trigger"],
            status=row["status"],
            started_at=from_iso(row["started_at"]),
            finished_at=from_iso(row["finished_at"]),
            windows_total=row["windows_total"] or 0,
            windows_done=row["windows_done"] or 0,
            rows=row["rows"] or 0,
            bytes=row["bytes"] or 0,
            error=row["error"],
        )

    def add_logs(self, run_id: int, entries: list[tuple[datetime, str, str]]) -> None:
        with self.db.conn:
            self.db["run_logs"].insert_all(
                {"run_id": run_id, "logged_at": to_iso(t), "level": level, "message": message}
                for t, level, message in entries
            )

    def run_logs(self, run_id: int) -> list[tuple[datetime, str, str]]:
        rows = self.db["run_logs"].rows_where("run_id = ?", [run_id], order_by="id")
        return [(from_iso(r["logged_at"]), r["level"], r["message"]) for r in rows]
