"""Edit an export: destination, interval, filters, team, source and paused state, via the
core's checks (a ClickHouse password goes to the keyring, as with `bqtui set-source`). How it
authenticates is shown, not edited: `bqtui set-auth` switches it."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from textual import on, work
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
from bqtui.state.store import Store
from bqtui.state.windows import STEP, first_window_start, next_boundary
from bqtui.tui.context import Clock, Period
from bqtui.tui.credentials_text import auth_text, set_auth_hint
from bqtui.tui.formatting import time_text
from bqtui.tui.messages import ExportSaved
from bqtui.tui.screens.base import ExportScreen
from bqtui.tui.screens.wizard.destination_step import (
    INTERVAL_CHOICES,
    SETTLE_HELP,
    selected_interval,
)
from bqtui.tui.widgets.form_field import ErrorLine, FormField


def restart_for_interval(
    export: ExportConfig, done: set[datetime], interval: Interval, now: datetime
) -> tuple[datetime, Period | None]:
    """Where windows of a new interval start, so they never overlap windows already exported.

    Returns the new start and, when the switch leaves data between the last exported window
    and that start, the range to backfill.
    """
    if not done:
        return first_window_start(now, interval, export.start_at), None
    exported_until = max(done) + STEP[export.interval]
    start = next_boundary(exported_until, interval)
    return start, ((exported_until, start) if exported_until < start else None)


@dataclass(frozen=True)
class EditedFields:
    """What the form holds once every field parsed: the changes to save."""

    changes: dict[str, object]  # ExportConfig fields, but the interval's start
    interval: Interval
    credentials: dict[str, str]  # typed now: they replace what the keyring holds


def save_export(db_path: Path, export_id: int, edited: EditedFields, clock: Clock) -> ExportSaved:
    """Validate and store the edited export and its secrets (worker thread: the keyring and
    SQLite may block). The notice to show, or the problem."""
    store = Store(db_path)  # this thread's own connection
    try:
        export = store.get_export(export_id)
        interval = edited.interval
        start_at, gap = export.start_at, None
        if interval != export.interval:
            done = store.done_window_starts(export.saved_id)
            start_at, gap = restart_for_interval(export, done, interval, clock())
        try:
            changed = validate_export(
                export.with_changes(**edited.changes, interval=interval, start_at=start_at)
            )
            if edited.credentials:
                secrets.store_clickhouse_secrets(export.uid, edited.credentials)
        except BqtuiError as problem:
            return ExportSaved("", error=str(problem))
        store.update_export(changed)
    finally:
        store.close()
    notice = f'Export "{changed.name}" saved.'
    if gap:
        notice += (
            f" Windows of {interval.value} start at {time_text(start_at)} UTC; backfill "
            f"{time_text(gap[0])} → {time_text(gap[1])} to export the data in between."
        )
    return ExportSaved(notice, long_notice=gap is not None)


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
                "Credentials",
                Static(auth_text(export), id="auth", markup=False),
                set_auth_hint(export),
                id="field-auth",
            )
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

    @on(Button.Pressed, "#save")
    def save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def cancel_pressed(self) -> None:
        self.app.pop_screen()

    def edited_fields(self) -> EditedFields | None:
        """The form's values, each field's error shown; None while something is wrong."""
        parsers = {
            "dataset-id": ("dataset_id", validate_dataset_id),
            "table-id": ("table_id", validate_table_id),
            "team-id": ("team_id", parse_team_id),
            "settle": ("settle_seconds", parse_settle_seconds),
            "include-events": ("include_events", parse_event_names),
            "exclude-events": ("exclude_events", parse_event_names),
        }
        changes: dict[str, object] = {}
        for input_id, (name, parse) in parsers.items():
            error = None
            try:
                changes[name] = parse(self.query_one(f"#{input_id}", Input).value)
            except ConfigError as problem:
                error = str(problem)
            self.query_one(f"#field-{input_id}", FormField).show_error(error)
        credentials: dict[str, str] = {}
        dsn_error = None
        try:
            changes["source_dsn"], credentials = split_secrets(
                self.query_one("#source-dsn", Input).value
            )
        except ConfigError as problem:
            dsn_error = str(problem)
        self.query_one("#field-source-dsn", FormField).show_error(dsn_error)
        if len(changes) < len(parsers) + 1:
            return None
        password = self.query_one("#source-password", Input).value
        if password:
            credentials = {k: v for k, v in credentials.items() if k != "access_token"}
            credentials["password"] = password
        changes["enabled"] = self.query_one("#enabled", Switch).value
        interval = selected_interval(self.query_one("#interval", Select))
        return EditedFields(changes, interval, credentials)

    def action_save(self) -> None:
        edited = self.edited_fields()
        if edited is not None:
            self.save_in_thread(edited)

    @work(thread=True, exclusive=True, group="save", exit_on_error=False, description="Saving")
    def save_in_thread(self, edited: EditedFields) -> None:
        self.post_message(
            save_export(self.bqtui.store.path, self.export_id, edited, self.bqtui.clock)
        )

    def on_export_saved(self, message: ExportSaved) -> None:
        if message.error is not None:
            self.query_one("#edit-error", ErrorLine).show(message.error)
            return
        self.notify(message.notice, timeout=10 if message.long_notice else 4)
        self.app.pop_screen()
