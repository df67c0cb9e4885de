"""What the screens need from the app, as a Protocol: screens depend on this, never on the app.

The app (``bqtui.tui.app.BqtuiApp``) satisfies it; it imports the screens, so the screens
importing the app would make a circle.
"""

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, cast

from textual.app import App

from bqtui.core.config import ExportConfig
from bqtui.demo.environment import DemoEnvironment
from bqtui.state.store import Store

Clock = Callable[[], datetime]
Period = tuple[datetime, datetime]


class BqtuiContext(Protocol):
    store: Store  # the UI thread's connection; a worker opens its own on ``store.path``
    clock: Clock
    demo: DemoEnvironment | None
    browse_from: Path

    def show_error(self, title: str, error: BaseException) -> None: ...

    def new_export(self) -> None: ...

    def show_detail(self, export: ExportConfig) -> None: ...

    def run_export(self, export: ExportConfig, backfill: Period | None = None) -> None: ...

    def backfill(self, export: ExportConfig) -> None: ...

    def check_permissions(self, export: ExportConfig) -> None: ...

    def edit_export(self, export: ExportConfig) -> None: ...

    def toggle_paused(self, export: ExportConfig) -> None:
        """In a worker; the home screen is refreshed once it is done."""

    def delete_export(self, export: ExportConfig) -> None:
        """Asks first; the home screen is refreshed once the export is gone."""


def bqtui_context(app: App[Any]) -> BqtuiContext:
    """The running app as the screens see it (only ``BqtuiApp`` runs these screens)."""
    return cast(BqtuiContext, app)
