"""Backfill dialog: a date range, checked by the core's parser, then the Run screen runs it.
What the range will bill at most is estimated in a worker meanwhile (it never blocks)."""

from datetime import datetime

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Input, Static

from bqtui.core.config import ExportConfig, parse_timestamp
from bqtui.core.errors import ConfigError
from bqtui.state.windows import STEP, Window, backfill_windows
from bqtui.tui.context import Period, bqtui_context
from bqtui.tui.messages import BackfillEstimated
from bqtui.tui.widgets.form_field import FormField

ESTIMATE_DELAY = 0.3  # seconds of no typing before BigQuery is asked (one call per range)
ESTIMATE_RETRY_SECONDS = 15.0  # an unreachable BigQuery says so soon, not after minutes


class BackfillDialog(ModalScreen[Period | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, export: ExportConfig):
        super().__init__(classes="dialog-screen")
        self.export = export
        self.estimating: tuple[Period, list[Window]] | None = None  # range, windows to estimate
        self.estimate_timer: Timer | None = None

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
            yield Static("", id="backfill-estimate")
            yield Static("", id="backfill-limit")
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
            self.estimate_later(None)
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
        self.estimate_later(((start, end), due) if due else None)

    # -- what the range will bill ------------------------------------------------------------

    def estimate_later(self, estimating: tuple[Period, list[Window]] | None) -> None:
        """Estimate once the user stops typing; forget the estimate of another range."""
        if estimating == self.estimating:
            return
        self.estimating = estimating
        if self.estimate_timer is not None:
            self.estimate_timer.stop()
        self.show_estimate("", None)
        if estimating is not None:
            self.query_one("#backfill-estimate", Static).update(Text("Estimating…", "italic"))
            self.estimate_timer = self.set_timer(ESTIMATE_DELAY, self.start_estimate)

    def start_estimate(self) -> None:
        if self.estimating is not None:
            period, windows = self.estimating
            self.estimate_in_thread(period, windows)

    @work(thread=True, exclusive=True, group="estimate", exit_on_error=False)
    def estimate_in_thread(self, period: Period, windows: list[Window]) -> None:
        from bqtui.ops.cost_estimate import estimate_backfill
        from bqtui.pipeline.runner import bigquery_destination, retry_deadline_from_env

        deadline = min(retry_deadline_from_env(), ESTIMATE_RETRY_SECONDS)
        try:  # the keyring and BigQuery's metadata: both may wait, in this worker
            destination = bigquery_destination(self.export, deadline)
            try:
                estimate = estimate_backfill(self.export, windows, destination)
            finally:
                destination.close()
        except Exception as error:  # any failure is one line: the backfill goes on without
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            self.post_message(BackfillEstimated(period, f"Estimate: not available ({reason})"))
            return
        line, note = estimate.line(self.export), estimate.limit_note(self.export)
        self.post_message(BackfillEstimated(period, line, note))

    def on_backfill_estimated(self, message: BackfillEstimated) -> None:
        if self.estimating is not None and message.period == self.estimating[0]:
            self.show_estimate(message.line, message.limit_note)

    def show_estimate(self, line: str, limit_note: str | None) -> None:
        self.query_one("#backfill-estimate", Static).update(line)
        limit = self.query_one("#backfill-limit", Static)
        limit.update(Text(limit_note or "", "bold yellow"))
        limit.display = bool(limit_note)

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
