"""The bqtui app: a thin face on the core. Screens start core calls; the core does the work."""

import sys
from collections.abc import Iterable
from pathlib import Path

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from bqtui.core.config import ExportConfig
from bqtui.core.errors import BqtuiError, ConfigError
from bqtui.core.paths import default_db_path
from bqtui.demo.environment import DemoEnvironment
from bqtui.ops.export_setup import remove_export
from bqtui.pipeline.runner import ExportRunner
from bqtui.state.store import Store, utcnow
from bqtui.tui.context import BqtuiContext, Clock, Period
from bqtui.tui.messages import AutorunDone, ExportPaused, ExportRemoved
from bqtui.tui.screens.backfill import BackfillDialog
from bqtui.tui.screens.check import PermissionCheckScreen
from bqtui.tui.screens.detail import ExportDetailScreen
from bqtui.tui.screens.dialogs import ConfirmDialog, MessageDialog
from bqtui.tui.screens.edit import EditExportScreen
from bqtui.tui.screens.help import HelpScreen
from bqtui.tui.screens.home import HomeScreen
from bqtui.tui.screens.run import RunScreen
from bqtui.tui.screens.wizard.screen import NewExportScreen

AUTORUN_SECONDS = 60.0


class BqtuiApp(App[None]):
    """Satisfies ``bqtui.tui.context.BqtuiContext``: what the screens need from the app."""

    TITLE = "bqtui"
    SUB_TITLE = "ClickHouse → BigQuery exports"
    CSS_PATH = ["app.tcss", "home.tcss", "wizard.tcss", "run.tcss", "detail.tcss"]
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+c", "quit", "Quit", show=False),
    ]

    def __init__(
        self,
        store: Store,
        *,
        demo: DemoEnvironment | None = None,
        clock: Clock = utcnow,
        browse_from: Path | None = None,
        cursor_blink: bool = True,
    ):
        super().__init__()
        self.store = store
        self.demo = demo
        self.clock = clock
        self.browse_from = Path(browse_from) if browse_from else Path.cwd()
        self.cursor_blink = cursor_blink
        self.autorun = False  # "run due exports while open", off until the user turns it on
        self._autorun_timer: Timer | None = None

    def get_default_screen(self) -> Screen[None]:
        return HomeScreen()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # Tests and screenshots turn the blinking cursor off so every frame is the same.
        if not self.cursor_blink and hasattr(event.widget, "cursor_blink"):
            event.widget.cursor_blink = False

    def on_unmount(self) -> None:
        self.store.close()

    # -- "run due exports while open": the same runner and locks as cron -------------------

    def action_toggle_autorun(self) -> None:
        self.autorun = not self.autorun
        if self.autorun:
            self._autorun_timer = self.set_interval(AUTORUN_SECONDS, self.autorun_tick)
            self.autorun_tick()
            self.sub_title = f"{self.SUB_TITLE} · running due exports every minute"
            self.notify(
                "While bqtui is open it runs every due export each minute (press a "
                "again to stop). It uses the same locks as cron: they never collide."
            )
        else:
            if self._autorun_timer is not None:
                self._autorun_timer.stop()
            self.sub_title = self.SUB_TITLE
            self.notify("Stopped running due exports.")

    def autorun_tick(self) -> None:
        if not any(w.group == "autorun" and w.is_running for w in self.workers):
            self.run_due_exports()

    @work(thread=True, group="autorun", exit_on_error=False, description="Due exports")
    def run_due_exports(self) -> None:
        store = Store(self.store.path)  # this thread's own connection
        try:
            self.post_message(AutorunDone(ExportRunner(store, now=self.clock).run_all()))
        finally:
            store.close()

    def on_autorun_done(self, message: AutorunDone) -> None:
        self.refresh_home()
        failed = [r for r in message.results if r.failed]
        if failed:
            self.notify(
                "; ".join(
                    f"{r.export_name}: {(r.error or r.status).splitlines()[0]}" for r in failed
                ),
                title="A due export failed",
                severity="error",
                timeout=15,
            )

    async def action_quit(self) -> None:
        """Quit; while a run is active, ask first (it then stops at its next safe point)."""
        running = [s for s in self.screen_stack if isinstance(s, RunScreen) and not s.finished]
        if not running:
            self.exit()
            return
        if isinstance(self.screen, ConfirmDialog):
            return  # already asking

        def confirmed(yes: bool | None) -> None:
            if yes:
                for screen in running:
                    screen.cancel_token.cancel()
                self.exit()

        self.push_screen(
            ConfirmDialog(
                "A run is in progress",
                "Quit anyway? The run stops at its next safe point: the window in progress is "
                "not written, and the next run exports it.",
                confirm_label="Quit",
            ),
            confirmed,
        )

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        if isinstance(screen, HomeScreen):
            yield SystemCommand("New export", "Create an export step by step", screen.action_new)
            if screen.selected_export() is not None:
                yield SystemCommand(
                    "Run export now", "Export the selected export's due windows", screen.action_run
                )
                yield SystemCommand(
                    "Check permissions",
                    "Check the selected export's key and BigQuery permissions",
                    screen.action_check,
                )
                yield SystemCommand(
                    "Backfill", "Export a date range of the selected export", screen.action_backfill
                )
        yield SystemCommand("Help", "The keys of every screen", self.action_help)
        yield from super().get_system_commands(screen)

    # -- actions shared by the screens ------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def show_error(self, title: str, error: BaseException) -> None:
        """An error for the user: core errors are complete sentences; others get their type."""
        message = (
            str(error) if isinstance(error, BqtuiError) else f"{type(error).__name__}: {error}"
        )
        self.push_screen(MessageDialog(title, message, error=True))

    def new_export(self) -> None:
        def created(export: ExportConfig | None) -> None:
            if export is not None:
                self.notify(
                    f'Export "{export.name}" created. Press r to run it now, or let cron run it '
                    "(bqtui --run-all).",
                    title="Created",
                )

        self.push_screen(NewExportScreen(), created)

    def show_detail(self, export: ExportConfig) -> None:
        self.push_screen(ExportDetailScreen(export.saved_id))

    def run_export(self, export: ExportConfig, backfill: Period | None = None) -> None:
        self.push_screen(RunScreen(export.saved_id, backfill=backfill))

    def backfill(self, export: ExportConfig) -> None:
        def chosen(period: Period | None) -> None:
            if period is not None:
                self.run_export(export, backfill=period)

        self.push_screen(BackfillDialog(export), chosen)

    def check_permissions(self, export: ExportConfig) -> None:
        self.push_screen(PermissionCheckScreen(export.saved_id))

    def edit_export(self, export: ExportConfig) -> None:
        self.push_screen(EditExportScreen(export.saved_id))

    def toggle_paused(self, export: ExportConfig) -> None:
        self.pause_in_thread(export)

    @work(thread=True, group="export-changes", exit_on_error=False, description="Pausing")
    def pause_in_thread(self, export: ExportConfig) -> None:
        store = Store(self.store.path)  # this thread's own connection
        try:
            store.set_enabled(export.saved_id, not export.enabled)
        finally:
            store.close()
        self.post_message(ExportPaused(export, paused=export.enabled))

    def on_export_paused(self, message: ExportPaused) -> None:
        state = "paused" if message.paused else "resumed"
        self.notify(f'Export "{message.export.name}" {state}.')
        self.refresh_home()

    def delete_export(self, export: ExportConfig) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.remove_in_thread(export)

        self.push_screen(
            ConfirmDialog(
                f'Delete export "{export.name}"?',
                "This removes its configuration, its run history and its keyring entries "
                "(service-account key, ClickHouse password). Data already in BigQuery is "
                "untouched.",
                confirm_label="Delete",
            ),
            confirmed,
        )

    @work(thread=True, group="export-changes", exit_on_error=False, description="Deleting")
    def remove_in_thread(self, export: ExportConfig) -> None:
        # The keyring and SQLite can block (a locked keyring, a busy database): not on the UI.
        store = Store(self.store.path)  # this thread's own connection
        try:
            remove_export(store, export)
        except BqtuiError as error:
            self.post_message(ExportRemoved(export, error))
            return
        finally:
            store.close()
        self.post_message(ExportRemoved(export))

    def on_export_removed(self, message: ExportRemoved) -> None:
        if message.error is not None:
            self.show_error("The export was not deleted", message.error)
            return
        self.notify(f'Export "{message.export.name}" deleted.')
        self.refresh_home()

    def refresh_home(self) -> None:
        if isinstance(self.screen, HomeScreen):
            self.screen.refresh_exports()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The app's own workers (the screens show theirs): an error dialog, not a crash."""
        if event.worker.group != "export-changes" or event.state != WorkerState.ERROR:
            return
        if event.worker.error is not None:
            self.show_error(f"{event.worker.description} failed", event.worker.error)


def as_context(app: BqtuiApp) -> BqtuiContext:
    """Where mypy checks that the app gives the screens what ``BqtuiContext`` promises."""
    return app


def create_app(
    db_path: str | Path | None = None,
    *,
    demo: DemoEnvironment | None = None,
    clock: Clock = utcnow,
    browse_from: Path | None = None,
    cursor_blink: bool = True,
) -> BqtuiApp:
    """Build the app on a database file (default: the user's). The app closes the store."""
    store = Store(db_path or default_db_path())
    return BqtuiApp(
        store, demo=demo, clock=clock, browse_from=browse_from, cursor_blink=cursor_blink
    )


def run_tui(db_path: str | Path | None = None, demo: DemoEnvironment | None = None) -> int:
    try:
        app = create_app(db_path, demo=demo)
    except ConfigError as error:
        print(f"bqtui: {error}", file=sys.stderr)
        return 2
    app.run()
    return app.return_code or 0
