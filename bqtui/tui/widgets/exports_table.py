"""The home screen's table of exports: one row each, keyed by the export's id."""

from datetime import datetime

from rich.text import Text
from textual.widgets import DataTable

from bqtui.core.config import ExportConfig
from bqtui.ops.status import export_status, lag_text
from bqtui.state.store import Store
from bqtui.state.windows import next_run_at
from bqtui.tui.formatting import relative_text, rows_text

STATUS_STYLES = {
    "succeeded": "green",
    "running": "cyan",
    "failed": "bold red",
    "cancelled": "yellow",
    "interrupted": "bold red",
}
# What matters most comes first: at 80 columns the destination scrolls out of view.
COLUMNS = (
    "Name",
    "State",
    "Last run",
    "Rows",
    "When",
    "Lag",
    "Next run",
    "Model",
    "Every",
    "Destination",
)


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def lag_cell(store: Store, export: ExportConfig, now: datetime) -> Text:
    """How far behind now the export is: red past its alert threshold (as `bqtui status`)."""
    status = export_status(store, export, now)
    if status.lag is None:  # nothing exported yet: no lag to speak of
        return Text("—", style="dim")
    if not export.enabled:
        return Text(lag_text(status.lag), style="dim")
    late = status.lag > status.alert_after
    return Text(lag_text(status.lag), style="bold red" if late else "")


class ExportsTable(DataTable):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns(*COLUMNS)

    def show(self, store: Store, now: datetime) -> None:
        """Fill the table from the store, keeping the cursor on the same export."""
        selected = self.selected_export_id()
        self.clear()
        for export in store.list_exports():
            self.add_row(*self._cells(store, export, now), key=str(export.id))
        if selected is not None and str(selected) in self.rows:
            self.move_cursor(row=self.get_row_index(str(selected)))

    def selected_export_id(self) -> int | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return None if row_key.value is None else int(row_key.value)

    @staticmethod
    def _cells(store: Store, export: ExportConfig, now: datetime) -> list:
        last = store.last_run(export.saved_id)
        if export.enabled:
            done = store.done_window_starts(export.saved_id)
            next_at = next_run_at(export, now, done)
            next_text = (
                Text("due now", style="cyan") if next_at <= now else relative_text(next_at, now)
            )
            state = Text("enabled", style="green")
        else:
            next_text, state = Text("—", style="dim"), Text("paused", style="yellow")
        return [
            export.name,
            state,
            status_text(last.status) if last else Text("never", style="dim"),
            rows_text(last.rows) if last else "",
            relative_text(last.started_at, now) if last else "",
            lag_cell(store, export, now),
            next_text,
            export.model.value,
            export.interval.value,
            export.destination_label,
        ]
