"""What BigQuery billed, as the TUI's tables and panels say it: per window, per run, per export,
and the wizard's advice when a table is too large to MERGE into on every window."""

from datetime import timedelta

from rich.text import Text

from bqtui.core.config import ExportConfig, Interval, Model
from bqtui.core.cost import DEFAULT_PRICE_PER_TIB, WriteMode, bytes_text, usd
from bqtui.destination.bigquery import TableSize
from bqtui.state.costs import RESERVATION, JobCost
from bqtui.state.windows import STEP

# From this size on, a MERGE on every window costs enough that append deserves a look.
LARGE_TABLE_BYTES = 10 * 10**9
WRITE_MODE_TRADES = {
    WriteMode.MERGE: "merge: one row per key in the table; each window's MERGE is billed for "
    "the table it reads (small tables: cents)",
    WriteMode.APPEND: "append: loads only, free; readers use the view TABLE_latest (the newest "
    "version per key) and pay when they query it",
}
INTERVAL_WORDS = {
    Interval.FIVE_MINUTES: "5-minute",
    Interval.HOUR: "hourly",
    Interval.DAY: "daily",
    Interval.WEEK: "weekly",
}


def slot_text(slot_ms: int | None) -> str:
    return f"{(slot_ms or 0) / 1000:.1f} slot-seconds"


def billed_text(costs: list[JobCost]) -> str:
    """A window's jobs: the sum of what they billed, "-" when none was recorded."""
    billed = [c.bytes_billed for c in costs if c.bytes_billed is not None]
    return bytes_text(sum(billed)) if billed else "-"


def job_line(cost: JobCost) -> str:
    what = cost.kind.upper() if cost.kind in ("merge", "delete") else cost.kind.capitalize()
    if cost.billing == RESERVATION:
        return f"{what:<7} reservation: {slot_text(cost.slot_ms)} (billed as slot time)"
    return (
        f"{what:<7} billed {bytes_text(cost.bytes_billed):>8}, processed "
        f"{bytes_text(cost.bytes_processed):>8}, {slot_text(cost.slot_ms)}"
    )


def run_cost_text(run_id: int, costs: list[JobCost], export: ExportConfig) -> Text:
    """A run's query jobs, one line each, and their total (loads are free and not listed)."""
    if not costs:
        return Text(f"Run {run_id} ran no billed query job (loads are free).", style="dim")
    text = Text.assemble((f"BigQuery jobs of run {run_id}\n", "bold"))
    for cost in costs:
        text.append(job_line(cost) + "\n")
    billed = sum(c.bytes_billed or 0 for c in costs)
    processed = sum(c.bytes_processed or 0 for c in costs)
    slot_ms = sum(c.slot_ms or 0 for c in costs)
    price = f" (about ${usd(billed, export.price_per_tib):,.2f})" if billed else ""
    total = (
        f"Total: {len(costs)} job(s) billed {billed_text(costs)}{price}, processed "
        f"{bytes_text(processed)}, {slot_text(slot_ms)}"
    )
    if any(c.billing == RESERVATION for c in costs):
        total += "; reservation jobs are billed as slot time"
    text.append(total, style="bold")
    return text


def run_billed_sentence(costs: list[JobCost], export: ExportConfig) -> str:
    """' BigQuery billed 1.2 GB (about $0.01) for 2 query job(s).', or '' when none ran."""
    if not costs:
        return ""
    billed = sum(c.bytes_billed or 0 for c in costs)
    if all(c.bytes_billed is None for c in costs):
        sentence = f" BigQuery ran {len(costs)} query job(s) and reported no bytes billed"
    else:
        sentence = (
            f" BigQuery billed {bytes_text(billed)} (about "
            f"${usd(billed, export.price_per_tib):,.2f}) for {len(costs)} query job(s)"
        )
    reserved = [c for c in costs if c.billing == RESERVATION]
    if reserved:
        slot_ms = sum(c.slot_ms or 0 for c in reserved)
        sentence += f"; {len(reserved)} on a reservation: {slot_text(slot_ms)}"
    return sentence + "."


def cost_settings_rows(export: ExportConfig) -> list[tuple[str, str]]:
    """The export's cost settings, as the configuration tab lists them."""
    mode = export.write_mode.value
    if not export.model.is_mutable:
        mode += " (events: inserts each new uuid once)"
    if export.model.is_mutable and export.write_mode == WriteMode.APPEND:
        mode += f" (readers use the view {export.table_id}_latest)"
    guard = (
        "none"
        if export.max_bytes_billed is None
        else f"{bytes_text(export.max_bytes_billed)} per query job"
    )
    price = DEFAULT_PRICE_PER_TIB if export.price_per_tib is None else export.price_per_tib
    default = " (on-demand default)" if export.price_per_tib is None else ""
    return [
        ("Write mode", mode),
        ("Bytes guard", guard),
        ("Price per TiB", f"${price:g}{default}"),
    ]


def suggests_append(model: Model, size: TableSize | None) -> bool:
    """Large tables, and sessions tables a MERGE cannot prune (not partitioned)."""
    if size is None or not model.is_mutable:
        return False
    if size.num_bytes >= LARGE_TABLE_BYTES:
        return True
    return model == Model.SESSIONS and size.partition_field is None


def merge_cost_advice(
    size: TableSize, interval: Interval, price_per_tib: float | None = None
) -> str:
    """ "each MERGE would bill about 12.3 GB ≈ $0.07; 288 a day at 5-minute intervals ≈ $20/day" """
    per_merge = usd(size.num_bytes, price_per_tib)
    step = STEP[interval]
    if step <= timedelta(days=1):
        count, period = round(timedelta(days=1) / step), "day"
    else:
        count, period = round(timedelta(weeks=1) / step), "week"
    return (
        f"each MERGE would bill about {bytes_text(size.num_bytes)} ≈ {money(per_merge)}; "
        f"{count} a {period} at {INTERVAL_WORDS[interval]} intervals ≈ "
        f"{money(per_merge * count)}/{period}"
    )


def money(dollars: float) -> str:
    """$20, $1.25: whole dollars once the cents no longer matter."""
    return f"${dollars:,.0f}" if dollars >= 10 else f"${dollars:,.2f}"


def append_advice(export: ExportConfig, size: TableSize, mode: WriteMode) -> str:
    """Why the wizard suggests append for this table, from its size and layout."""
    cost = merge_cost_advice(size, export.interval, export.price_per_tib)
    if size.num_bytes >= LARGE_TABLE_BYTES:
        advice = f"The table {export.table_id} holds {bytes_text(size.num_bytes)}: {cost}."
    else:
        advice = (
            f"The table {export.table_id} is not partitioned: every MERGE reads all of it, so "
            f"each window costs more as the table grows (now {cost})."
        )
    view = f"{export.table_id}_latest"
    if mode == WriteMode.APPEND:
        return f"{advice} Append is chosen: loads only, free; readers use the view {view}."
    return (
        f"{advice} Append loads only (free) and readers use the view {view}: choose Use "
        "append, or go on to keep merge."
    )
