"""One place that turns a failed worker into an error dialog instead of a crash."""

from textual.worker import Worker, WorkerState


class WorkerErrors:
    """Mix into a screen or widget that starts ``exit_on_error=False`` workers."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            title = f"{event.worker.description or 'A background task'} failed"
            self.app.show_error(title, event.worker.error)
