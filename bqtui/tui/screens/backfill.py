"""Backfill dialog: a date range, checked by the core's parser, then the Run screen runs it."""

from datetime import datetime

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from bqtui.core.config import ExportConfig, parse_timestamp
from bqtui.core.errors import ConfigError
from bqtui.state.windows import STEP, backfill_windows
from bqtui.tui.context import Period, bqtui_context
from bqtui.tui.widgets.form_field import FormField


class BackfillDialog(ModalScreen[Period | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, export: ExportConfig):
        super().__init__(classes="dialog-screen")
        self.export = export

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Backfill {self.export.name}", classes="dialog-title")
            yield Static(
                "Export every window in a date range again (or for the first time). Windows "
                "already exported are replaced without duplicates.",
                classes="step-intro",
            )
            yield FormField(
                "Start", Input(placeholder="2024-05-01", id="backfill-start"), id="field-start"
            )
            yield FormField(
                "End (exclusive)",
                Input(placeholder="2024-05-08", id="backfill-end"),
                id="field-end",
            )
            yield Static("", id="backfill-windows")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Backfill", id="backfill", variant="primary")

    def period(self) -> Period | None:
        """The parsed range, with each field's error shown; None while something is wrong."""
        parsed: dict[str, datetime] = {}
        for name in ("start", "end"):
            value = self.query_one(f"#backfill-{name}", Input).value
            error = None
            try:
                parsed[name] = parse_timestamp(value, name)
            except ConfigError as problem:
                error = str(problem) if value.strip() else f"The {name} is required."
            self.query_one(f"#field-{name}", FormField).show_error(error)
        if len(parsed) < 2:
            return None
        if parsed["end"] <= parsed["start"]:
            self.query_one("#field-end", FormField).show_error("The end must be after the start.")
            return None
        return parsed["start"], parsed["end"]

    def on_input_changed(self, event: Input.Changed) -> None:
        """How much work the range is, as the user types (silent until both parse)."""
        try:
            start = parse_timestamp(self.query_one("#backfill-start", Input).value, "start")
            end = parse_timestamp(self.query_one("#backfill-end", Input).value, "end")
        except ConfigError:
            self.query_one("#backfill-windows", Static).update("")
            return
        due, later = (
            backfill_windows(self.export, start, end, bqtui_context(self.app).clock())
            if end > start
            else ([], [])
        )
        step = STEP[self.export.interval]
        text = f"{len(due)} window(s) of {step} ({self.export.interval.value})"
        if later:
            text += f"; {len(later)} not yet ended and settled are left for the schedule"
        self.query_one("#backfill-windows", Static).update(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit()

    @on(Button.Pressed, "#backfill")
    def backfill_pressed(self) -> None:
        self.submit()

    @on(Button.Pressed, "#cancel")
    def cancel_pressed(self) -> None:
        self.dismiss(None)

    def submit(self) -> None:
        period = self.period()
        if period is not None:
            self.dismiss(period)
