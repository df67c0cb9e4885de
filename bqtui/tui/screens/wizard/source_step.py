"""Step 3: the ClickHouse to read from (embedded by default), with a connection test."""

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Static

from bqtui.core.config import ExportConfig, Model
from bqtui.core.errors import ConfigError, SourceError
from bqtui.source.check import check_source
from bqtui.source.clickhouse import ClickHouseSource
from bqtui.source.dsn import split_secrets
from bqtui.tui.messages import ConnectionTested
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.step import WizardStep
from bqtui.tui.widgets.form_field import FormField


class SourceStep(WizardStep):
    TITLE = "Source"

    def __init__(self, dsn: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.initial_dsn = dsn
        self.team_id = 1
        self.model = Model.EVENTS
        self.other_secrets: dict[str, str] = {}  # e.g. an access_token from the DSN

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
        self.model = draft.model

    def dsn_and_secrets(self) -> tuple[str, dict[str, str]]:
        """The DSN without credentials, and the credentials (for the keyring); a password
        typed in the DSN moves to its own field. Raises ``ConfigError`` for a bad DSN."""
        dsn_input = self.query_one("#source-dsn", Input)
        password_input = self.query_one("#source-password", Input)
        dsn, credentials = split_secrets(dsn_input.value.strip())
        if credentials.get("password") is not None:
            password_input.value = credentials["password"]
        if dsn != dsn_input.value.strip():
            dsn_input.value = dsn
        self.other_secrets.update({k: v for k, v in credentials.items() if k != "password"})
        if password_input.value:
            return dsn, {**self.other_secrets, "password": password_input.value}
        return dsn, dict(self.other_secrets)

    @on(Button.Pressed, "#test-connection")
    def test_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        checked = self.checked_dsn()
        if checked is None:
            return
        dsn, credentials = checked
        result = self.query_one("#connection-result", Static)
        result.set_class(False, "error")
        result.update(Text(f"Connecting… (counting team {self.team_id}'s events)", "italic"))
        self.query_one("#test-connection", Button).disabled = True
        self.count_events(dsn, credentials, self.team_id)

    @work(
        thread=True,
        exclusive=True,
        group="source",
        exit_on_error=False,
        description="The connection test",
    )
    def count_events(self, dsn: str, credentials: dict, team_id: int) -> None:
        try:
            # Closed at once: an open embedded engine would keep cron's runner out.
            with ClickHouseSource(dsn, credentials, busy_wait=5) as source:
                rows = source.count_events(team_id)
        except SourceError as error:
            self.post_message(ConnectionTested(None, str(error)))
            return
        probe = ExportConfig(
            name="x", dataset_id="x", table_id="x", model=self.model, source_dsn=dsn
        )
        report = check_source(probe, credentials)
        self.post_message(ConnectionTested(rows, details=report.lines()[1:]))

    def on_connection_tested(self, message: ConnectionTested) -> None:
        self.query_one("#test-connection", Button).disabled = False
        result = self.query_one("#connection-result", Static)
        result.set_class(message.error is not None, "error")
        if message.error:
            result.update(Text(message.error))
        else:
            lines = [
                f"✓ Connected: {message.rows:,} events of team {self.team_id}.",
                *message.details,
            ]
            result.update(Text("\n".join(lines), "green"))

    def checked_dsn(self) -> tuple[str, dict[str, str]] | None:
        """The DSN and its credentials, or None with the problem shown under the field."""
        try:
            checked = self.dsn_and_secrets()
        except ConfigError as problem:
            self.query_one("#field-source-dsn", FormField).show_error(str(problem))
            return None
        self.query_one("#field-source-dsn", FormField).show_error(None)
        return checked

    def commit(self, draft: WizardDraft) -> bool:
        checked = self.checked_dsn()
        if checked is None:
            return False
        draft.source_dsn, draft.source_secrets = checked
        return True
