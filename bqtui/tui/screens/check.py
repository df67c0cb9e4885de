"""Check permissions of an existing export: the key from the keyring, the checklist, re-run."""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Static

from bqtui.core.errors import BqtuiError
from bqtui.destination.keyfile import parse_key_text
from bqtui.state import secrets
from bqtui.tui.screens.base import ExportScreen
from bqtui.tui.widgets.permission_report import PermissionReport


class PermissionCheckScreen(ExportScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+r", "recheck", "Re-run check"),
    ]

    def compose(self) -> ComposeResult:
        export = self.bqtui.store.get_export(self.export_id)
        yield Header()
        yield Static(f"[b]Permission check[/b] of {export.name}", classes="screen-title")
        with VerticalScroll():
            yield PermissionReport()
        with Horizontal(classes="buttons"):
            yield Button("Re-run check", id="recheck")
            yield Button("Back", id="back")
        yield Footer()

    def on_mount(self) -> None:
        self.action_recheck()

    def action_recheck(self) -> None:
        export = self.bqtui.store.get_export(self.export_id)
        try:
            key = parse_key_text(secrets.load_service_account_key(export.uid, export.name))
        except BqtuiError as error:
            self.bqtui.show_error("Cannot check this export", error)
            return
        self.query_one(PermissionReport).start_check(export, key)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "recheck":
            self.action_recheck()
        elif event.button.id == "back":
            self.app.pop_screen()
