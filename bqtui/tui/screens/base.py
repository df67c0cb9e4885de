"""What every full bqtui screen shares: typed access to the app, and worker errors shown."""

from typing import TYPE_CHECKING

from textual.screen import Screen

from bqtui.tui.worker_errors import WorkerErrors

if TYPE_CHECKING:
    from bqtui.tui.app import BqtuiApp


class BqtuiScreen(WorkerErrors, Screen):
    @property
    def bqtui(self) -> "BqtuiApp":
        return self.app  # type: ignore[return-value]


class ExportScreen(BqtuiScreen):
    """A screen about one export, read fresh from the store when needed."""

    def __init__(self, export_id: int):
        super().__init__()
        self.export_id = export_id
