"""What each query job was billed, kept in the store and said in one line."""

from collections.abc import Callable

from bqtui.core.cost import bytes_text
from bqtui.destination.job_stats import QueryJobStats
from bqtui.pipeline.attempt import window_of_label
from bqtui.state.costs import ON_DEMAND, RESERVATION, CostBook, JobCost
from bqtui.state.store import Store, utcnow


def job_cost(stats: QueryJobStats, run_id: int | None = None) -> JobCost:
    return JobCost(
        kind=stats.kind,
        job_id=stats.job_id,
        finished_at=utcnow(),
        bytes_processed=stats.bytes_processed,
        bytes_billed=stats.bytes_billed,
        slot_ms=stats.slot_ms,
        billing=RESERVATION if stats.reservation else ON_DEMAND,
        run_id=run_id,
        window_start=window_of_label(stats.window),
    )


def cost_line(stats: QueryJobStats) -> str:
    """'MERGE billed 1.2 GB (processed 1.1 GB, 3.4 slot-seconds).'"""
    what = stats.kind.upper() if stats.kind in ("merge", "delete") else stats.kind.capitalize()
    slots = f"{(stats.slot_ms or 0) / 1000:.1f} slot-seconds"
    if stats.reservation:
        return f"{what} ran on a reservation: {slots} (billed as slot time, not bytes)."
    return (
        f"{what} billed {bytes_text(stats.bytes_billed)} (processed "
        f"{bytes_text(stats.bytes_processed)}, {slots})."
    )


def record_job_costs(store: Store, export_id: int) -> Callable[[QueryJobStats], None]:
    """For query jobs outside a run (verify, repair): kept with the export."""

    def record(stats: QueryJobStats) -> None:
        CostBook(store).record(export_id, job_cost(stats))

    return record
