"""What the store keeps, as Python objects, and the rows they map to (no SQL here)."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from bqtui.core.config import DEFAULT_SETTLE_SECONDS, AuthKind, ExportConfig, Interval, Model
from bqtui.core.cost import WriteMode


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value else None


def from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def from_iso_required(value: str) -> datetime:
    """A timestamp from a NOT NULL column."""
    return datetime.fromisoformat(value)


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


def export_row(config: ExportConfig) -> dict:
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
        "auth": config.auth.value,
        "impersonate": config.impersonate,
        "credential_config": config.credential_config,
        "write_mode": config.write_mode.value,
        "max_bytes_billed": config.max_bytes_billed,
        "price_per_tib": config.price_per_tib,
        "stage": config.stage,
        "stage_hmac_id": config.stage_hmac_id,
    }


def export_from_row(row: dict) -> ExportConfig:
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
        auth=AuthKind(row.get("auth") or AuthKind.KEY),
        impersonate=row.get("impersonate"),
        credential_config=row.get("credential_config"),
        write_mode=WriteMode(row.get("write_mode") or WriteMode.MERGE),
        max_bytes_billed=row.get("max_bytes_billed"),
        price_per_tib=row.get("price_per_tib"),
        stage=row.get("stage"),
        stage_hmac_id=row.get("stage_hmac_id"),
    )


def window_from_row(row: dict) -> WindowState:
    return WindowState(
        export_id=row["export_id"],
        window_start=from_iso_required(row["window_start"]),
        window_end=from_iso_required(row["window_end"]),
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


def run_from_row(row: dict) -> RunRecord:
    return RunRecord(
        id=row["id"],
        export_id=row["export_id"],
        trigger=row["trigger"],
        status=row["status"],
        started_at=from_iso_required(row["started_at"]),
        finished_at=from_iso(row["finished_at"]),
        windows_total=row["windows_total"] or 0,
        windows_done=row["windows_done"] or 0,
        rows=row["rows"] or 0,
        bytes=row["bytes"] or 0,
        error=row["error"],
    )
