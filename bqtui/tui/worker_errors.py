"""One place that turns a failed worker into an error dialog instead of a crash."""

from typing import Any, Protocol

from textual.app import App
from textual.worker import Worker, WorkerState

from bqtui.tui.context import bqtui_context


class HasApp(Protocol):
    @property
    def app(self) -> App[Any]: ...


class WorkerErrors:
    """Mix into a screen or widget that starts ``exit_on_error=False`` workers."""

    def on_worker_state_changed(self: HasApp, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            title = f"{event.worker.description or 'A background task'} failed"
            bqtui_context(self.app).show_error(title, event.worker.error)
