"""The names one attempt at one window uses in BigQuery: its stage table, job ids, labels."""

from dataclasses import dataclass
from datetime import UTC, datetime

from bqtui.core.config import ExportConfig
from bqtui.destination.bigquery import job_labels
from bqtui.state.windows import Window

WINDOW_KEY = "%Y%m%dT%H%M%S"  # in job ids, stage tables and the bqtui_window label


def window_of_label(label: str | None) -> datetime | None:
    """The window start a job's bqtui_window label names (labels are lowercase)."""
    try:
        return datetime.strptime((label or "").upper(), WINDOW_KEY).replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class Attempt:
    """The names one attempt at one window uses: its own stage table and job ids."""

    window: Window
    number: int
    job_prefix: str
    stage_id: str
    labels: dict[str, str]

    @classmethod
    def of(cls, export: ExportConfig, window: Window, number: int) -> "Attempt":
        window_key = f"{window.start:{WINDOW_KEY}}"
        return cls(
            window,
            number,
            job_prefix=f"bqtui_{export.uid[:12]}_{window_key}_a{number}",
            stage_id=stage_table_id(export, window_key, number),
            labels=job_labels(export.name, export.uid, window_key),
        )

    @property
    def merge_job_id(self) -> str:
        return f"{self.job_prefix}_merge"

    def load_job_id(self, number: int) -> str:
        return f"{self.job_prefix}_load{number}"


def stage_table_id(export: ExportConfig, window_key: str, attempt: int) -> str:
    """Each attempt its own stage: a second runner can never truncate a stage in use."""
    suffix = f"_bqtui_stage_{export.uid[:8]}_{window_key}_a{attempt}"
    # Table IDs are at most 1,024 UTF-8 bytes: shorten the user's part, never the suffix.
    room = 1024 - len(suffix.encode())
    prefix = export.table_id.encode()[:room].decode("utf-8", errors="ignore")
    return prefix + suffix
