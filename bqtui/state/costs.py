"""What BigQuery billed each query job of an export (MERGE, verify, DELETE), kept per run and
window so that `status`, the run log and the TUI can show what the exports cost."""

from dataclasses import dataclass
from datetime import datetime

from bqtui.state.records import from_iso, to_iso
from bqtui.state.store import Store

ON_DEMAND, RESERVATION = "on_demand", "reservation"


@dataclass(frozen=True)
class JobCost:
    """One finished query job's statistics, as BigQuery reported them."""

    kind: str  # merge | verify | delete | repair
    job_id: str
    finished_at: datetime
    bytes_processed: int | None
    bytes_billed: int | None
    slot_ms: int | None
    billing: str = ON_DEMAND  # reservation: billed in slot time, not bytes
    run_id: int | None = None
    window_start: datetime | None = None


@dataclass(frozen=True)
class CostTotals:
    """An export's query jobs since some time."""

    jobs: int
    bytes_billed: int
    bytes_processed: int
    slot_ms: int
    reservation_jobs: int
    first_at: datetime | None


class CostBook:
    """The job_costs table, behind methods (the store's connection)."""

    def __init__(self, store: Store):
        self._db = store.db

    def record(self, export_id: int, cost: JobCost) -> None:
        with self._db.conn:
            self._db.table("job_costs").insert(
                {
                    "export_id": export_id,
                    "run_id": cost.run_id,
                    "window_start": to_iso(cost.window_start),
                    "kind": cost.kind,
                    "job_id": cost.job_id,
                    "finished_at": to_iso(cost.finished_at),
                    "bytes_processed": cost.bytes_processed,
                    "bytes_billed": cost.bytes_billed,
                    "slot_ms": cost.slot_ms,
                    "billing": cost.billing,
                }
            )

    def for_run(self, run_id: int) -> list[JobCost]:
        return self._select("run_id = ?", [run_id])

    def for_window(self, export_id: int, window_start: datetime) -> list[JobCost]:
        return self._select("export_id = ? AND window_start = ?", [export_id, to_iso(window_start)])

    def totals(self, export_id: int, since: datetime) -> CostTotals:
        row = self._db.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes_billed), 0), COALESCE(SUM(bytes_processed), 0),"
            " COALESCE(SUM(slot_ms), 0), COALESCE(SUM(billing = ?), 0), MIN(finished_at)"
            " FROM job_costs WHERE export_id = ? AND finished_at >= ?",
            [RESERVATION, export_id, to_iso(since)],
        ).fetchone()
        return CostTotals(row[0], row[1], row[2], row[3], row[4], from_iso(row[5]))

    def _select(self, where: str, args: list) -> list[JobCost]:
        rows = self._db.table("job_costs").rows_where(where, args, order_by="id")
        return [
            JobCost(
                kind=r["kind"],
                job_id=r["job_id"],
                finished_at=from_iso(r["finished_at"]) or datetime.min,
                bytes_processed=r["bytes_processed"],
                bytes_billed=r["bytes_billed"],
                slot_ms=r["slot_ms"],
                billing=r["billing"],
                run_id=r["run_id"],
                window_start=from_iso(r["window_start"]),
            )
            for r in rows
        ]
