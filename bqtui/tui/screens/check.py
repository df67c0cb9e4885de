"""Check permissions of an existing export: its credentials (configuration and keyring), who it
runs as, the checklist, re-run."""

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Static

from bqtui.core.errors import BqtuiError, CredentialProblem
from bqtui.pipeline.export_credentials import export_credentials
from bqtui.state.store import Store
from bqtui.tui.credentials_text import auth_text
from bqtui.tui.messages import CredentialsLoaded
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
        yield Static(
            f"Authenticates with {auth_text(export)}.",
            id="check-auth",
            classes="screen-note",
            markup=False,
        )
        with VerticalScroll():
            yield PermissionReport()
        with Horizontal(classes="buttons"):
            yield Button("Re-run check", id="recheck")
            yield Button("Back", id="back")
        yield Footer()

    def on_mount(self) -> None:
        self.action_recheck()

    def action_recheck(self) -> None:
        self.load_credentials()

    @work(
        thread=True,
        exclusive=True,
        group="credentials",
        exit_on_error=False,
        description="Reading the credentials",
    )
    def load_credentials(self) -> None:
        # The keyring may block (a locked keyring asks to be unlocked) and finding ADC may wait
        # for a metadata server: not on the UI thread.
        store = Store(self.bqtui.store.path)  # this thread's own connection
        try:
            export = store.get_export(self.export_id)
        finally:
            store.close()
        try:
            credentials = export_credentials(export)
        except BqtuiError as error:
            self.post_message(CredentialsLoaded(export, None, error))
            return
        self.post_message(CredentialsLoaded(export, credentials))

    def on_credentials_loaded(self, message: CredentialsLoaded) -> None:
        report = self.query_one(PermissionReport)
        if isinstance(message.error, CredentialProblem):  # no ADC here, say: a finding
            report.show_unusable(message.export, str(message.error))
        elif message.error is not None:
            self.bqtui.show_error("Cannot check this export", message.error)
        elif message.credentials is not None:
            report.start_check(message.export, message.credentials)

    @on(Button.Pressed, "#recheck")
    def recheck_pressed(self) -> None:
        self.action_recheck()

    @on(Button.Pressed, "#back")
    def back_pressed(self) -> None:
        self.app.pop_screen()
