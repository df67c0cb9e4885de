"""What a backfill will bill at most, said before it runs: from the table's metadata (free),
since the MERGEs' dry runs need stage tables that do not exist yet."""

import math
from dataclasses import dataclass

from bqtui.core.config import ExportConfig
from bqtui.core.cost import WriteMode, bytes_text, usd
from bqtui.destination.bigquery import BigQueryDestination
from bqtui.pipeline.group import GROUP_MAX_WINDOWS

# BigQuery bills at least 10 MB for each table a query reads (the stage and the table).
MIN_BILLED_PER_TABLE = 10 * 1024 * 1024


@dataclass(frozen=True)
class BackfillEstimate:
    merges: int
    bytes_per_merge: int  # at most
    basis: str  # where the figure comes from

    @property
    def total(self) -> int:
        return self.merges * self.bytes_per_merge

    def line(self, export: ExportConfig) -> str:
        if self.merges == 0:
            return f"Estimate: nothing billed ({self.basis})."
        cost = usd(self.total, export.price_per_tib)
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
    export: ExportConfig, windows: int, destination: BigQueryDestination
) -> BackfillEstimate:
    if export.model.is_mutable and export.write_mode == WriteMode.APPEND:
        return BackfillEstimate(0, 0, "append mode: load jobs only, which are free")
    merges = math.ceil(windows / GROUP_MAX_WINDOWS) if windows else 0
    size = destination.table_size(destination.table_ref(export.dataset_id, export.table_id))
    if size is None:
        return BackfillEstimate(
            merges, 2 * MIN_BILLED_PER_TABLE, "the table does not exist yet (BigQuery's minimum)"
        )
    per_merge = max(size.num_bytes, MIN_BILLED_PER_TABLE) + MIN_BILLED_PER_TABLE
    basis = (
        f"from the table's size now ({bytes_text(size.num_bytes)}); partition pruning reads "
        f"only the days each MERGE touches"
        if size.partition_field
        else f"from the table's size now ({bytes_text(size.num_bytes)}, not partitioned: "
        "every MERGE reads all of it)"
    )
    return BackfillEstimate(merges, per_merge, basis)
