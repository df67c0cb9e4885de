"""Freshness: how far each export has exported, how far behind now that is, and whether that
is healthy — for `bqtui status`, monitoring and the TUI's home table."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from bqtui.core.config import ExportConfig
from bqtui.core.cost import DEFAULT_PRICE_PER_TIB, bytes_text, projected_month_usd
from bqtui.state.costs import CostBook
from bqtui.state.store import Store
from bqtui.state.windows import STEP, floor_to_interval

# Behind by more than this (past the settle delay) and an export is lagging: two missed
# windows, and ten minutes for a slow run.
ALERT_MARGIN = timedelta(minutes=10)
WAITING = ("failed", "cancelled", "interrupted")


def alert_after(export: ExportConfig) -> timedelta:
    """How far behind now an export may be before `bqtui status` calls it lagging."""
    if export.alert_after_seconds is not None:
        return timedelta(seconds=export.alert_after_seconds)
    return 2 * STEP[export.interval] + export.settle + ALERT_MARGIN


@dataclass(frozen=True)
class ExportStatus:
    name: str
    enabled: bool
    exported_through: datetime | None  # every row ingested before this is exported
    lag: timedelta | None
    alert_after: timedelta
    windows_waiting: int  # failed, cancelled or interrupted, not done since
    last_run_status: str | None
    last_run_error: str | None
    cost: "ExportCost | None" = None

    @property
    def problems(self) -> list[str]:
        if not self.enabled:
            return []
        found = []
        if self.lag is not None and self.lag > self.alert_after:
            found.append(f"{lag_text(self.lag)} behind (alert after {lag_text(self.alert_after)})")
        if self.last_run_status in ("failed", "interrupted"):
            first = (self.last_run_error or "").splitlines()[0] if self.last_run_error else ""
            found.append(f"last run {self.last_run_status}: {first}".rstrip(": "))
        return found

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "enabled": self.enabled,
            "exported_through": self.exported_through.isoformat()
            if self.exported_through
            else None,
            "lag_seconds": round(self.lag.total_seconds()) if self.lag is not None else None,
            "alert_after_seconds": round(self.alert_after.total_seconds()),
            "windows_waiting": self.windows_waiting,
            "last_run_status": self.last_run_status,
            "last_run_error": self.last_run_error,
            "healthy": self.healthy,
            "problems": self.problems,
            **(self.cost or ExportCost()).to_dict(),
        }


@dataclass(frozen=True)
class ExportCost:
    """What BigQuery billed an export's query jobs, and a month at that rate."""

    bytes_billed_24h: int = 0
    bytes_billed_30d: int = 0
    slot_ms_30d: int = 0
    projected_month_usd: float = 0.0
    price_per_tib: float = DEFAULT_PRICE_PER_TIB
    reservation: bool = False  # some jobs ran on a reservation: slot time, not bytes
    jobs_30d: int = 0

    def to_dict(self) -> dict:
        return {
            "bytes_billed_24h": self.bytes_billed_24h,
            "bytes_billed_30d": self.bytes_billed_30d,
            "slot_ms_30d": self.slot_ms_30d,
            "projected_month_usd": self.projected_month_usd,
            "billing": "reservation" if self.reservation else "on_demand",
        }

    def line(self) -> str:
        if self.reservation:
            return (
                f"{self.slot_ms_30d / 3_600_000:.2f} slot-hours in 30 days on a reservation "
                f"(billed as slot time); {bytes_text(self.bytes_billed_30d)} billed on demand"
            )
        return (
            f"billed {bytes_text(self.bytes_billed_24h)} in 24 h, "
            f"{bytes_text(self.bytes_billed_30d)} in 30 days; about "
            f"${self.projected_month_usd:,.2f} a month at ${self.price_per_tib:g}/TiB"
        )


def export_cost(store: Store, export: ExportConfig, now: datetime) -> ExportCost:
    costs = CostBook(store)
    day = costs.totals(export.saved_id, now - timedelta(days=1))
    month = costs.totals(export.saved_id, now - timedelta(days=30))
    recorded_days = (now - month.first_at).total_seconds() / 86400 if month.first_at else 1.0
    price = DEFAULT_PRICE_PER_TIB if export.price_per_tib is None else export.price_per_tib
    return ExportCost(
        bytes_billed_24h=day.bytes_billed,
        bytes_billed_30d=month.bytes_billed,
        slot_ms_30d=month.slot_ms,
        projected_month_usd=projected_month_usd(month.bytes_billed, recorded_days, price),
        price_per_tib=price,
        reservation=month.reservation_jobs > 0,
        jobs_30d=month.jobs,
    )


def export_status(store: Store, export: ExportConfig, now: datetime) -> ExportStatus:
    """Exported through = the end of the unbroken run of done windows from the export's start
    (a window that failed in between holds the mark back until it is done)."""
    if export.start_at is None:  # every saved export has one (set when it is created)
        raise ValueError(f"export {export.name!r} has no start time")
    step = STEP[export.interval]
    first = floor_to_interval(export.start_at, export.interval)  # windows are aligned
    done = sorted(s for s in store.done_window_starts(export.saved_id) if s >= first)
    through = None
    expected = first
    for start in done:
        if start != expected:
            break
        expected = start + step
        through = expected
    waiting = store.db.conn.execute(
        "SELECT count(*) FROM windows WHERE export_id = ? AND status IN (?, ?, ?)",
        [export.id, *WAITING],
    ).fetchone()[0]
    last = store.last_run(export.saved_id)
    since = through or first
    lag = max(now - since, timedelta(0)) if now > since else timedelta(0)
    return ExportStatus(
        name=export.name,
        enabled=export.enabled,
        exported_through=through,
        lag=lag,
        alert_after=alert_after(export),
        windows_waiting=waiting,
        last_run_status=last.status if last else None,
        last_run_error=last.error if last else None,
        cost=export_cost(store, export, now),
    )


def lag_text(lag: timedelta) -> str:
    seconds = lag.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
