"""Edit an export: destination, interval, filters, team, source and paused state, via the
core's checks (a ClickHouse password goes to the keyring, as with `bqtui set-source`)."""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, Select, Static, Switch

from bqtui.core.config import (
    ExportConfig,
    Interval,
    parse_event_names,
    parse_settle_seconds,
    parse_team_id,
    validate_export,
)
from bqtui.core.errors import BqtuiError, ConfigError
from bqtui.core.ids import validate_dataset_id, validate_table_id
from bqtui.source.dsn import split_secrets
from bqtui.state import secrets
from bqtui.state.windows import STEP, floor_to_interval, next_boundary
from bqtui.tui.formatting import time_text
from bqtui.tui.screens.base import ExportScreen
from bqtui.tui.screens.wizard.destination_step import INTERVAL_CHOICES, SETTLE_HELP
from bqtui.tui.widgets.form_field import ErrorLine, FormField


def restart_for_interval(export: ExportConfig, done, interval: Interval):
    """Where windows of a new interval start, so they never overlap windows already exported.

    Returns the new start and, when the switch leaves data between the last exported window
    and that start, the range to backfill.
    """
    if not done:
        return floor_to_interval(export.start_at, interval), None
    exported_until = max(done) + STEP[export.interval]
    start = next_boundary(exported_until, interval)
    return start, ((exported_until, start) if exported_until < start else None)


class EditExportScreen(ExportScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def compose(self) -> ComposeResult:
        export = self.bqtui.store.get_export(self.export_id)
        yield Header()
        yield Static(f"[b]Edit {export.name}[/b]  ({export.model.value})", classes="screen-title")
        with VerticalScroll(id="edit-form"):
            with Horizontal(id="enabled-row"):
                yield Switch(export.enabled, id="enabled")
                yield Static("Enabled (off: paused, cron skips it)", id="enabled-label")
            yield FormField(
                "Dataset ID", Input(export.dataset_id, id="dataset-id"), id="field-dataset-id"
            )
            yield FormField("Table ID", Input(export.table_id, id="table-id"), id="field-table-id")
            yield FormField(
                "Interval",
                Select(INTERVAL_CHOICES, value=export.interval, allow_blank=False, id="interval"),
                "Windows of a new interval start after the last exported window.",
                id="field-interval",
            )
            yield FormField("Team ID", Input(str(export.team_id), id="team-id"), id="field-team-id")
            yield FormField(
                "Settle delay (seconds)",
                Input(str(export.settle_seconds), id="settle"),
                SETTLE_HELP,
                id="field-settle",
            )
            yield FormField(
                "ClickHouse source",
                Input(export.source_dsn, id="source-dsn"),
                "A password typed here (user:password@) moves to the keyring.",
                id="field-source-dsn",
            )
            yield FormField(
                "ClickHouse password",
                Input(password=True, placeholder="unchanged", id="source-password"),
                "Empty: keep the one in the keyring.",
                id="field-source-password",
            )
            yield FormField(
                "Only these events",
                Input(", ".join(export.include_events), placeholder="all", id="include-events"),
                id="field-include-events",
            )
            yield FormField(
                "All but these events",
                Input(", ".join(export.exclude_events), placeholder="none", id="exclude-events"),
                id="field-exclude-events",
            )
            yield ErrorLine(id="edit-error")
        with Horizontal(classes="buttons"):
            yield Button("Cancel", id="cancel")
            yield Button("Save (ctrl+s)", id="save", variant="primary")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.app.pop_screen()

    def action_save(self) -> None:
        store = self.bqtui.store
        export = store.get_export(self.export_id)
        parsers = {
            "dataset-id": validate_dataset_id,
            "table-id": validate_table_id,
            "team-id": parse_team_id,
            "settle": parse_settle_seconds,
            "include-events": parse_event_names,
            "exclude-events": parse_event_names,
        }
        values = {}
        for input_id, parse in parsers.items():
            error = None
            try:
                values[input_id] = parse(self.query_one(f"#{input_id}", Input).value)
            except ConfigError as problem:
                error = str(problem)
            self.query_one(f"#field-{input_id}", FormField).show_error(error)
        try:
            source_dsn, credentials = split_secrets(self.query_one("#source-dsn", Input).value)
            dsn_error = None
        except ConfigError as problem:
            dsn_error = str(problem)
        self.query_one("#field-source-dsn", FormField).show_error(dsn_error)
        if len(values) < len(parsers) or dsn_error:
            return
        password = self.query_one("#source-password", Input).value
        if password:
            credentials = {k: v for k, v in credentials.items() if k != "access_token"}
            credentials["password"] = password
        interval = Interval(self.query_one("#interval", Select).value)
        start_at, gap = export.start_at, None
        if interval != export.interval:
            done = store.done_window_starts(export.id)
            start_at, gap = restart_for_interval(export, done, interval)
        try:
            changed = validate_export(
                export.with_changes(
                    dataset_id=values["dataset-id"],
                    table_id=values["table-id"],
                    team_id=values["team-id"],
                    settle_seconds=values["settle"],
                    source_dsn=source_dsn,
                    include_events=values["include-events"],
                    exclude_events=values["exclude-events"],
                    interval=interval,
                    start_at=start_at,
                    enabled=self.query_one("#enabled", Switch).value,
                )
            )
        except ConfigError as problem:
            self.query_one("#edit-error", ErrorLine).show(str(problem))
            return
        if credentials:  # typed now: they replace what the keyring holds
            try:
                secrets.store_clickhouse_secrets(export.uid, credentials)
            except BqtuiError as problem:
                self.query_one("#edit-error", ErrorLine).show(str(problem))
                return
        store.update_export(changed)
        message = f'Export "{changed.name}" saved.'
        if gap:
            message += (
                f" Windows of {interval.value} start at {time_text(start_at)} UTC; backfill "
                f"{time_text(gap[0])} → {time_text(gap[1])} to export the data in between."
            )
        self.notify(message, timeout=10 if gap else 4)
        self.app.pop_screen()
