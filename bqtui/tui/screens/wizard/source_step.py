"""Step 3: the ClickHouse to read from (embedded by default), with a connection test."""

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Static

from ....errors import SourceError
from ....source import ClickHouseSource, split_password
from ...messages import ConnectionTested
from ...widgets.form_field import FormField
from .draft import WizardDraft
from .step import WizardStep


class SourceStep(WizardStep):
    TITLE = "Source"

    def __init__(self, dsn: str, **kwargs):
        super().__init__(**kwargs)
        self.initial_dsn = dsn
        self.team_id = 1

    def compose(self) -> ComposeResult:
        yield Static(
            "Where bqtui reads events, persons and sessions: the embedded ClickHouse by default, "
            "or a ClickHouse server, e.g. http://user@clickhouse.internal:8123/posthog.",
            classes="step-intro",
        )
        yield FormField(
            "ClickHouse DSN",
            Input(self.initial_dsn, id="source-dsn"),
            "A password in the DSN is moved to the keyring, never stored in bqtui's database.",
            id="field-source-dsn",
        )
        yield FormField(
            "Password (optional)",
            Input(password=True, placeholder="kept in the keyring", id="source-password"),
            id="field-source-password",
        )
        with Horizontal(id="connection-row"):
            yield Button("Test connection", id="test-connection")
            yield Static("", id="connection-result")

    def enter(self, draft: WizardDraft) -> None:
        self.team_id = draft.team_id

    def dsn_and_password(self) -> tuple[str, str | None]:
        """The DSN without a password; a password typed in the DSN moves to its own field."""
        dsn_input = self.query_one("#source-dsn", Input)
        password_input = self.query_one("#source-password", Input)
        dsn, password = split_password(dsn_input.value.strip())
        if password is not None:
            dsn_input.value, password_input.value = dsn, password
        return dsn, password_input.value or None

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "test-connection":
            return
        event.stop()
        dsn, password = self.dsn_and_password()
        if not self.check_dsn(dsn):
            return
        result = self.query_one("#connection-result", Static)
        result.set_class(False, "error")
        result.update(Text(f"Connecting… (counting team {self.team_id}'s events)", "italic"))
        self.query_one("#test-connection", Button).disabled = True
        self.count_events(dsn, password, self.team_id)

    @work(thread=True, exclusive=True, group="source", exit_on_error=False,
          description="The connection test")  # fmt: skip
    def count_events(self, dsn: str, password: str | None, team_id: int) -> None:
        try:
            # Closed at once: an open embedded engine would keep cron's runner out.
            with ClickHouseSource(dsn, password, busy_wait=5) as source:
                rows = source.count_events(team_id)
        except SourceError as error:
            self.post_message(ConnectionTested(None, str(error)))
            return
        self.post_message(ConnectionTested(rows))

    def on_connection_tested(self, message: ConnectionTested) -> None:
        self.query_one("#test-connection", Button).disabled = False
        result = self.query_one("#connection-result", Static)
        result.set_class(message.error is not None, "error")
        if message.error:
            result.update(Text(message.error))
        else:
            result.update(
                Text(f"✓ Connected: {message.rows:,} events of team {self.team_id}.", "green")
            )

    def check_dsn(self, dsn: str) -> bool:
        error = (
            None if dsn else "A ClickHouse DSN is required, e.g. chdb:///path or http://host:8123."
        )
        self.query_one("#field-source-dsn", FormField).show_error(error)
        return error is None

    def commit(self, draft: WizardDraft) -> bool:
        dsn, password = self.dsn_and_password()
        if not self.check_dsn(dsn):
            return False
        draft.source_dsn, draft.source_password = dsn, password
        return True
