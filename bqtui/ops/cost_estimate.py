"""What a backfill will bill at most, said before it runs. An unpartitioned table: from its
metadata (free), every MERGE reads all of it. A partitioned one: dry runs (free) of the days
each MERGE's windows cover, since the MERGEs' own dry runs need stage tables that do not
exist yet."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from bqtui.core.config import ExportConfig
from bqtui.core.cost import WriteMode, bytes_text, usd
from bqtui.destination.bigquery import BigQueryDestination
from bqtui.destination.statements import timestamp_literal
from bqtui.models import get_model
from bqtui.pipeline.group import GROUP_MAX_WINDOWS
from bqtui.state.windows import Window

# BigQuery bills at least 10 MB for each table a query reads (the stage and the table).
MIN_BILLED_PER_TABLE = 10 * 1024 * 1024
# A row's partition day lies near its ingestion: a MERGE's days are its windows' ± this.
PARTITION_SLACK = timedelta(days=1)
MAX_DRY_RUNS = 24  # a longer backfill's other MERGEs are taken to bill as the largest


@dataclass(frozen=True)
class BackfillEstimate:
    merges: int
    bytes_per_merge: int  # at most (partitioned: the largest MERGE)
    basis: str  # where the figure comes from
    total_bytes: int | None = None  # partitioned: the MERGEs' sum (else merges × per MERGE)

    @property
    def total(self) -> int:
        if self.total_bytes is not None:
            return self.total_bytes
        return self.merges * self.bytes_per_merge

    def line(self, export: ExportConfig) -> str:
        if self.merges == 0:
            return f"Estimate: nothing billed ({self.basis})."
        cost = usd(self.total, export.price_per_tib)
        if self.total_bytes is not None:
            return (
                f"Estimate: {self.merges} MERGE(s), {bytes_text(self.total)} billed in all "
                f"(about ${cost:,.2f}; the largest {bytes_text(self.bytes_per_merge)}), "
                f"{self.basis}."
            )
        return (
            f"Estimate: at most {self.merges} MERGE(s) × {bytes_text(self.bytes_per_merge)} = "
            f"{bytes_text(self.total)} billed (about ${cost:,.2f}), {self.basis}."
        )

    def limit_note(self, export: ExportConfig) -> str | None:
        limit = export.max_bytes_billed
        if limit is None or self.bytes_per_merge <= limit:
            return None
        return (
            f"Each MERGE may bill up to {bytes_text(self.bytes_per_merge)}, more than the "
            f"export's --max-bytes-billed of {bytes_text(limit)}: BigQuery refuses any MERGE "
            "over it before it runs (nothing is written), and the backfill stops there."
        )


def estimate_backfill(
    export: ExportConfig, windows: Sequence[Window], destination: BigQueryDestination
) -> BackfillEstimate:
    if export.model.is_mutable and export.write_mode == WriteMode.APPEND:
        return BackfillEstimate(0, 0, "append mode: load jobs only, which are free")
    groups = [windows[i : i + GROUP_MAX_WINDOWS] for i in range(0, len(windows), GROUP_MAX_WINDOWS)]
    table_ref = destination.table_ref(export.dataset_id, export.table_id)
    size = destination.table_size(table_ref)
    if size is None:
        return BackfillEstimate(
            len(groups),
            2 * MIN_BILLED_PER_TABLE,
            "the table does not exist yet (BigQuery's minimum)",
        )
    if size.partition_field is None:
        per_merge = max(size.num_bytes, MIN_BILLED_PER_TABLE) + MIN_BILLED_PER_TABLE
        basis = (
            f"from the table's size now ({bytes_text(size.num_bytes)}, not partitioned: "
            "every MERGE reads all of it)"
        )
        return BackfillEstimate(len(groups), per_merge, basis)
    billed = [
        _partitions_billed(export, destination, table_ref, size.partition_field, group)
        for group in groups[:MAX_DRY_RUNS]
    ]
    largest = max(billed, default=0)
    total = sum(billed) + largest * max(len(groups) - MAX_DRY_RUNS, 0)
    basis = (
        f"from dry runs of the partitions each MERGE names (its windows' days ± 1; rows whose "
        f"{size.partition_field} lies further back add their days)"
    )
    return BackfillEstimate(len(groups), largest, basis, total_bytes=total)


def _partitions_billed(
    export: ExportConfig,
    destination: BigQueryDestination,
    table_ref: str,
    column: str,
    group: Sequence[Window],
) -> int:
    """What one MERGE of these windows bills: the table's partitions of their days (a dry
    run of reading every column of them), and the stage table's minimum."""
    low = timestamp_literal(group[0].start - PARTITION_SLACK)
    high = timestamp_literal(group[-1].end + PARTITION_SLACK)
    days = f"`{column}` BETWEEN {low} AND {high}"
    if get_model(export.model).partition_nullable:
        days = f"({days} OR `{column}` IS NULL)"
    scanned = destination.estimate_bytes(
        f"SELECT * FROM `{table_ref}` WHERE {days}",
        doing=f"estimating the partitions of {table_ref} a MERGE reads",
        dataset_id=export.dataset_id,
    )
    return max(scanned, MIN_BILLED_PER_TABLE) + MIN_BILLED_PER_TABLE
