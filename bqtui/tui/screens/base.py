"""What every full bqtui screen shares: typed access to the app, and worker errors shown."""

from textual.screen import Screen

from bqtui.tui.context import BqtuiContext, bqtui_context
from bqtui.tui.worker_errors import WorkerErrors


class BqtuiScreen(WorkerErrors, Screen):
    @property
    def bqtui(self) -> BqtuiContext:
        return bqtui_context(self.app)


class ExportScreen(BqtuiScreen):
    """A screen about one export, read fresh from the store when needed."""

    def __init__(self, export_id: int):
        super().__init__()
        self.export_id = export_id
