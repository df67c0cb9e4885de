"""What every full bqtui screen shares: typed access to the app, and worker errors shown."""

from typing import TYPE_CHECKING

from textual.screen import Screen

from ..worker_errors import WorkerErrors

if TYPE_CHECKING:
    from ..app import BqtuiApp


class BqtuiScreen(WorkerErrors, Screen):
    @property
    def bqtui(self) -> "BqtuiApp":
        return self.app  # type: ignore[return-value]
