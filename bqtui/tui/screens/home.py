"""Exports (home): every export with its state, last and next run; the keys to act on one."""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from bqtui.core.config import ExportConfig
from bqtui.tui.screens.base import BqtuiScreen
from bqtui.tui.widgets.exports_table import ExportsTable

DEMO_BANNER = (
    "[b]Demo[/b] — these exports read demo data from an embedded ClickHouse and write to a "
    "[b]local BigQuery emulator[/b]; nothing leaves this machine. To export for real, see the "
    'README section "Set up a real export" (bqtui add, or press n here with your own key).'
)
EMPTY_STATE = (
    "[b]No exports yet.[/b]\n\n"
    "Press [b]n[/b] to create one: a wizard takes you through the service-account key, the "
    "BigQuery destination, the ClickHouse source and a permission check.\n\n"
    "Want to see it work first? Run [b]bqtui demo[/b]: demo data in an embedded ClickHouse, a "
    "local BigQuery emulator and three ready exports."
)
EXPORT_ACTIONS = {"run", "backfill", "check", "edit", "pause", "delete", "detail"}
REFRESH_SECONDS = 10  # next-run times move, and cron may run exports meanwhile


class HomeScreen(BqtuiScreen):
    BINDINGS = [
        Binding("n", "new", "New"),
        Binding("r", "run", "Run"),
        Binding("b", "backfill", "Backfill"),
        Binding("c", "check", "Check"),
        Binding("e", "edit", "Edit"),
        Binding("p", "pause", "Pause"),
        Binding("d", "delete", "Delete"),
        Binding("l", "detail", "Logs"),
        Binding("a", "app.toggle_autorun", "Auto-run"),
        Binding("question_mark", "app.help", "Help", key_display="?"),
        Binding("q", "app.quit", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        if self.bqtui.demo is not None:
            yield Static(DEMO_BANNER, id="demo-banner")
        yield Static(EMPTY_STATE, id="empty-state")
        yield ExportsTable(id="exports")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(REFRESH_SECONDS, self.refresh_exports)

    def on_screen_resume(self) -> None:
        self.refresh_exports()

    def refresh_exports(self) -> None:
        table = self.query_one(ExportsTable)
        table.show(self.bqtui.store, self.bqtui.clock())
        empty = table.row_count == 0
        self.query_one("#empty-state").display = empty
        table.display = not empty
        if not empty:
            table.focus()
        self.refresh_bindings()

    def selected_export(self) -> ExportConfig | None:
        export_id = self.query_one(ExportsTable).selected_export_id()
        return None if export_id is None else self.bqtui.store.get_export(export_id)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in EXPORT_ACTIONS and self.query_one(ExportsTable).row_count == 0:
            return None  # shown greyed out: there is no export to act on
        return True

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_detail()

    def action_new(self) -> None:
        self.bqtui.new_export()

    def action_run(self) -> None:
        if export := self.selected_export():
            self.bqtui.run_export(export)

    def action_backfill(self) -> None:
        if export := self.selected_export():
            self.bqtui.backfill(export)

    def action_check(self) -> None:
        if export := self.selected_export():
            self.bqtui.check_permissions(export)

    def action_edit(self) -> None:
        if export := self.selected_export():
            self.bqtui.edit_export(export)

    def action_pause(self) -> None:
        if export := self.selected_export():
            self.bqtui.toggle_paused(export)  # the app refreshes this screen once it is done

    def action_delete(self) -> None:
        if export := self.selected_export():
            self.bqtui.delete_export(export)

    def action_detail(self) -> None:
        if export := self.selected_export():
            self.bqtui.show_detail(export)
