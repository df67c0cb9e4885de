"""What a finished query job read and was billed, from BigQuery's job statistics."""

from dataclasses import dataclass

from google.cloud import bigquery


@dataclass(frozen=True)
class QueryJobStats:
    kind: str  # merge | verify | repair | delete …
    job_id: str
    bytes_processed: int | None
    bytes_billed: int | None
    slot_ms: int | None
    reservation: bool  # billed as slot time of a reservation, not by bytes
    window: str | None  # the job's bqtui_window label, if any


def query_job_stats(kind: str, job: bigquery.QueryJob) -> QueryJobStats:
    statistics = job._properties.get("statistics", {})  # reservation fields have no accessor
    reservation = bool(statistics.get("reservation_id") or statistics.get("reservationUsage"))
    return QueryJobStats(
        kind=kind,
        job_id=job.job_id or "",
        bytes_processed=_int(job.total_bytes_processed),
        bytes_billed=_int(job.total_bytes_billed),
        slot_ms=_int(job.slot_millis),
        reservation=reservation,
        window=(job.labels or {}).get("bqtui_window"),
    )


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None
