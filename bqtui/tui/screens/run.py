"""Run screen: one export running live — its log, progress, and a Cancel that stops it safely."""

from datetime import datetime

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Footer, Header, ProgressBar, RichLog, Static
from textual.worker import Worker, WorkerState

from bqtui.pipeline.runner import CancelToken, ExportRunner, RunResult, duration_words
from bqtui.state.costs import CostBook
from bqtui.state.store import Store
from bqtui.tui.cost_text import run_billed_sentence
from bqtui.tui.formatting import duration_text, rows_text, time_text
from bqtui.tui.messages import RunCompleted, RunLogLines, RunProgressed, RunWindowsFinished
from bqtui.tui.run_relay import FLUSH_INTERVAL, RunRelay
from bqtui.tui.screens.base import ExportScreen

LEVEL_STYLES = {"warning": "yellow", "error": "bold red"}
OUTCOMES = {
    "succeeded": ("✓ Succeeded", "green"),
    "failed": ("✗ Failed", "bold red"),
    "cancelled": ("■ Cancelled", "yellow"),
    "interrupted": ("✗ Interrupted", "bold red"),
    "busy": ("■ Not started", "yellow"),
    "nothing_due": ("✓ Nothing due", "green"),
}


class RunScreen(ExportScreen):
    BINDINGS = [
        Binding("x", "cancel_run", "Cancel run"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, export_id: int, backfill: tuple[datetime, datetime] | None = None):
        super().__init__(export_id)
        self.backfill = backfill
        self.cancel_token = CancelToken()
        self.relay = RunRelay(self)
        self.finished = False
        self.window_statuses: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        export = self.bqtui.store.get_export(self.export_id)
        if self.backfill:
            start, end = self.backfill
            what = f"Backfill {time_text(start)} → {time_text(end)} UTC"
        else:
            what = "Run now: the due windows"
        yield Header()
        yield Static(
            Text.assemble(
                (export.name, "bold"),
                f"  {export.model.value} → {export.destination_label}   ",
                what,
            ),
            id="run-title",
        )
        yield Static("Starting…", id="run-window")
        with Horizontal(id="run-progress"):
            yield ProgressBar(show_eta=False, id="run-bar")
            yield Static("", id="run-counts")
        yield RichLog(id="run-log", wrap=True, markup=False, highlight=False)
        yield Static("", id="run-outcome")
        with Horizontal(id="run-buttons"):
            yield Button("Cancel run (x)", id="cancel", variant="error")
            yield Button("Close (esc)", id="close", disabled=True)
        yield Footer()

    def on_mount(self) -> None:
        self.started = self.bqtui.clock()
        self.flush_timer = self.set_interval(FLUSH_INTERVAL, self.flush_events)
        self.run_in_thread()

    def on_unmount(self) -> None:
        self.cancel_token.cancel()  # the app is closing: stop at the next safe point

    @work(thread=True, exclusive=True, group="run", exit_on_error=False, description="The run")
    def run_in_thread(self) -> RunResult:
        # SQLite connections belong to one thread: the worker opens its own.
        store = Store(self.bqtui.store.path)
        try:
            export = store.get_export(self.export_id)
            runner = ExportRunner(
                store, on_event=self.relay.on_event, cancel=self.cancel_token, now=self.bqtui.clock
            )
            if self.backfill:
                return runner.backfill(export, *self.backfill)
            return runner.run_export(export)
        finally:
            store.close()

    def flush_events(self) -> None:
        if self.relay.flush():
            self.flush_timer.stop()

    # -- rendering the run's messages -------------------------------------------------------

    def on_run_log_lines(self, message: RunLogLines) -> None:
        log = self.query_one(RichLog)
        for line in message.lines:
            log.write(Text(line.message, style=LEVEL_STYLES.get(line.level, "")))

    def on_run_progressed(self, message: RunProgressed) -> None:
        progress = message.progress
        self.query_one(ProgressBar).update(
            total=max(progress.windows_total, 1), progress=progress.windows_done
        )
        if progress.window is not None:
            self.query_one("#run-window", Static).update(f"Window {progress.window.label()}")
        counts = f"{progress.windows_done}/{progress.windows_total} windows · "
        counts += f"{rows_text(progress.rows)} rows"
        if progress.eta_seconds is not None and progress.windows_done < progress.windows_total:
            counts += f" · about {duration_words(progress.eta_seconds)} left"
        self.query_one("#run-counts", Static).update(counts)

    def on_run_windows_finished(self, message: RunWindowsFinished) -> None:
        for window in message.windows:
            self.window_statuses[window.status] = self.window_statuses.get(window.status, 0) + 1

    def on_run_completed(self, message: RunCompleted) -> None:
        self.show_outcome(message.result)

    def show_outcome(self, result: RunResult) -> None:
        self.finished = True
        title, style = OUTCOMES.get(result.status, (result.status, ""))
        elapsed = duration_text(self.bqtui.clock() - self.started)
        if result.status == "succeeded":
            detail = f"{result.windows_done} window(s), {rows_text(result.rows)} rows in {elapsed}."
        elif result.status == "cancelled":
            stopped = (
                "the window in progress was not written and runs again next time"
                if self.window_statuses.get("cancelled")
                else "it stopped between windows; the rest run next time"
            )
            detail = (
                f"{result.windows_done} of {result.windows_total} window(s) were exported and "
                f"kept; {stopped}."
            )
        elif result.status == "nothing_due":
            detail = "every window that has ended and settled is exported already."
        else:
            detail = (result.error or "").splitlines()[0] if result.error else ""
        if self.window_statuses:
            tally = ", ".join(f"{count} {status}" for status, count in self.window_statuses.items())
            detail += f" Windows: {tally}."
        if result.missing_fields:
            detail += f" The table lacks model fields: {', '.join(result.missing_fields)}."
        if result.run_id is not None:
            costs = CostBook(self.bqtui.store).for_run(result.run_id)
            detail += run_billed_sentence(costs, self.bqtui.store.get_export(self.export_id))
        outcome = self.query_one("#run-outcome", Static)
        outcome.update(Text.assemble((title, style), ": ", detail))
        outcome.set_class(True, f"-{result.status}")
        self.query_one("#run-window", Static).update("Finished.")
        cancel = self.query_one("#cancel", Button)
        cancel.disabled = True
        cancel.display = False  # nothing left to cancel: don't offer it
        self.refresh_bindings()  # drops "x Cancel run" from the footer
        close = self.query_one("#close", Button)
        close.disabled = False
        close.focus()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        super().on_worker_state_changed(event)
        if event.state == WorkerState.ERROR and not self.finished:
            self.flush_timer.stop()
            self.show_outcome(RunResult("", "failed", error=str(event.worker.error)))

    # -- actions ----------------------------------------------------------------------------

    @on(Button.Pressed, "#cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel_run()

    @on(Button.Pressed, "#close")
    def close_pressed(self) -> None:
        self.action_close()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # "x Cancel run" leaves the footer once the run is over
        return not (action == "cancel_run" and self.finished)

    def action_cancel_run(self) -> None:
        if self.finished or self.cancel_token.cancelled:
            return
        self.cancel_token.cancel()
        self.query_one("#cancel", Button).disabled = True
        self.query_one("#run-window", Static).update(
            "Cancelling: stopping at the next safe point (nothing is half written)…"
        )

    def action_close(self) -> None:
        if self.finished:
            self.dismiss()
        else:
            self.notify("The run is still going: cancel it first (x).", severity="warning")
