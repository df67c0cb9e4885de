"""The SQLite store's schema, as the migrations that build it: version N is MIGRATIONS[:N]."""

from collections.abc import Callable

import sqlite_utils


def _migration_1(db: sqlite_utils.Database) -> None:
    db.table("exports").create(
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
    db.table("exports").create_index(["name"], unique=True)
    db.table("exports").create_index(["uid"], unique=True)
    db.table("windows").create(
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
    db.table("runs").create(
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
    db.table("runs").create_index(["export_id", "started_at"])
    db.table("run_logs").create(
        {"id": int, "run_id": int, "logged_at": str, "level": str, "message": str},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db.table("run_logs").create_index(["run_id"])
    db.table("locks").create(
        {"export_id": int, "owner": str, "acquired_at": str, "expires_at": str},
        pk="export_id",
    )


def _migration_2(db: sqlite_utils.Database) -> None:
    db.table("exports").add_column("location", str)


def _migration_3(db: sqlite_utils.Database) -> None:
    db.table("exports").add_column("settle_seconds", int)
    # Who holds a lock, precisely enough to tell a dead holder on this host from a live one,
    # and a request from another process (bqtui remove --force) to stop at a safe point.
    for column, kind in (
        ("host", str),
        ("pid", int),
        ("pid_started", float),
        ("run_id", int),
        ("cancel_requested", int),
    ):
        db.table("locks").add_column(column, kind)
    # The MERGE job an attempt submitted and has not seen finish: the next attempt asks
    # BigQuery about it before running its own.
    db.table("windows").add_column("pending_merge_job", str)


def _migration_4(db: sqlite_utils.Database) -> None:
    # What each window read from ClickHouse (from the engine's own statistics).
    db.table("windows").add_column("rows_read", int)
    db.table("windows").add_column("bytes_read", int)


def _migration_5(db: sqlite_utils.Database) -> None:
    # How far behind now an export may be before `bqtui status` alerts (NULL: the default).
    db.table("exports").add_column("alert_after_seconds", int)


def _migration_6(db: sqlite_utils.Database) -> None:
    # Keyless credentials: how the export authenticates, and whom it impersonates. A
    # credential file without secrets is kept here; one with secrets lives in the keyring.
    db.table("exports").add_column("auth", str)
    db.table("exports").add_column("impersonate", str)
    db.table("exports").add_column("credential_config", str)


def _migration_7(db: sqlite_utils.Database) -> None:
    # Cost: the write mode and bytes guard per export, and what each query job was billed.
    exports = db.table("exports")
    exports.add_column("write_mode", str)
    exports.add_column("max_bytes_billed", int)
    exports.add_column("price_per_tib", float)
    db.table("job_costs").create(
        {
            "id": int,
            "export_id": int,
            "run_id": int,
            "window_start": str,  # the group's first window; NULL for verify and repair
            "kind": str,  # merge | verify | delete | dry_run
            "job_id": str,
            "finished_at": str,
            "bytes_processed": int,
            "bytes_billed": int,
            "slot_ms": int,
            "billing": str,  # on_demand | reservation
        },
        pk="id",
    )
    db.table("job_costs").create_index(["export_id", "finished_at"])


def _migration_8(db: sqlite_utils.Database) -> None:
    # The Cloud Storage stage per export and its HMAC key's access ID (the secret is in the
    # keyring); NULL: no stage, rows pass through bqtui.
    exports = db.table("exports")
    exports.add_column("stage", str)
    exports.add_column("stage_hmac_id", str)


# Each migration takes the schema from version N-1 to N; never edit one that has shipped.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
    _migration_7,
    _migration_8,
]
SCHEMA_VERSION = len(MIGRATIONS)
