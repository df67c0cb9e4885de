"""New export wizard: five steps, each validated before the next, then the export is created."""

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, ContentSwitcher, Footer, Header, Static

from bqtui.core.config import ExportConfig
from bqtui.core.errors import BqtuiError
from bqtui.core.paths import default_source_dsn
from bqtui.demo.environment import DEMO_DATASET
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.ops.export_setup import create_export
from bqtui.state.store import Store
from bqtui.tui.messages import ExportCreated
from bqtui.tui.screens.base import BqtuiScreen
from bqtui.tui.screens.dialogs import ConfirmDialog
from bqtui.tui.screens.wizard.credentials_step import CredentialsStep
from bqtui.tui.screens.wizard.destination_step import DestinationStep
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.permissions_step import PermissionsStep
from bqtui.tui.screens.wizard.review_step import ReviewStep
from bqtui.tui.screens.wizard.source_step import SourceStep
from bqtui.tui.screens.wizard.step import WizardStep


class NewExportScreen(BqtuiScreen):
    """Dismissed with the created export, or None when cancelled."""

    BINDINGS = [
        Binding("ctrl+n", "next", "Next"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.draft = WizardDraft()
        self.creating = False
        self.index = 0

    def compose(self) -> ComposeResult:
        demo = self.bqtui.demo
        key_path, dsn = "", default_source_dsn()
        if demo is not None:  # the demo's own key, dataset and emulator: a wizard that just works
            key_path, dsn = str(demo.key_file), demo.source_dsn
            self.draft.dataset_id = DEMO_DATASET
            self.draft.bigquery_endpoint = demo.bigquery_endpoint
        yield Header()
        yield Static(id="wizard-steps")
        with ContentSwitcher(initial="step-credentials", id="wizard-body"):
            yield CredentialsStep(self.bqtui.browse_from, key_path, id="step-credentials")
            yield DestinationStep(self.draft, id="step-destination")
            yield SourceStep(dsn, id="step-source")
            yield PermissionsStep(id="step-permissions")
            yield ReviewStep(id="step-review")
        with Horizontal(id="wizard-buttons"):
            yield Button("Cancel", id="cancel")
            yield Button("Back", id="back")
            yield Button("Next (ctrl+n)", id="next", variant="primary")
        yield Footer()

    @property
    def steps(self) -> list[WizardStep]:
        return list(self.query_one(ContentSwitcher).query_children(WizardStep))

    @property
    def step(self) -> WizardStep:
        return self.steps[self.index]

    def on_mount(self) -> None:
        self.show_step(0)

    def show_step(self, index: int) -> None:
        self.index = index
        steps = self.steps
        step = steps[index]
        self.query_one(ContentSwitcher).current = step.id
        indicator = Text()
        for number, each in enumerate(steps):
            if number:
                indicator.append("  ›  ", style="dim")
            style = "bold reverse" if number == index else ("" if number < index else "dim")
            indicator.append(f" {number + 1} {each.TITLE} ", style=style)
        self.query_one("#wizard-steps", Static).update(indicator)
        self.query_one("#back", Button).disabled = index == 0
        last = index == len(steps) - 1
        self.query_one("#next", Button).label = "Create export" if last else "Next (ctrl+n)"
        step.enter(self.draft)
        self.call_after_refresh(self.focus_step)

    def focus_step(self) -> None:
        focusable = [
            w
            for w in self.step.query("Input, DirectoryTree, Button")
            if w.focusable and all(node.display for node in w.ancestors_with_self)
        ]  # not in a hidden part (the credentials step shows one kind's fields)
        (focusable[0] if focusable else self.query_one("#next")).focus(scroll_visible=False)
        self.step.scroll_home(animate=False)  # the first field's label stays in view

    @on(Button.Pressed, "#cancel")
    def cancel_pressed(self) -> None:
        self.action_cancel()

    @on(Button.Pressed, "#back")
    def back_pressed(self) -> None:
        self.action_back()

    @on(Button.Pressed, "#next")
    def next_pressed(self) -> None:
        self.action_next()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_back(self) -> None:
        if self.index == 0:
            self.dismiss(None)
        else:
            self.show_step(self.index - 1)

    def action_next(self) -> None:
        step = self.step
        if not step.commit(self.draft):
            return
        question = step.confirmation(self.draft)
        if question is None:
            self.go_on()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.go_on()

        self.app.push_screen(
            ConfirmDialog(
                "Continue with missing permissions?", question, confirm_label="Continue anyway"
            ),
            answered,
        )

    def go_on(self) -> None:
        if self.index < len(self.steps) - 1:
            self.show_step(self.index + 1)
            return
        credentials = self.draft.credentials  # the first step requires them
        if credentials is not None and not self.creating:
            self.creating = True  # one export, however often Create is pressed meanwhile
            config = self.draft.export_config(self.bqtui.clock())
            self.create_in_thread(
                config,
                credentials,
                dict(self.draft.source_secrets),
                self.draft.stage_secret or None,
            )

    @work(thread=True, exclusive=True, group="create", exit_on_error=False, description="Creating")
    def create_in_thread(
        self,
        config: ExportConfig,
        credentials: CredentialChoice,
        source_secrets: dict[str, str],
        stage_secret: str | None,
    ) -> None:
        # The keyring and SQLite may block: not on the UI thread. The same call as `bqtui add`:
        # the export and its secrets (the stage's HMAC secret too), or nothing.
        store = Store(self.bqtui.store.path)  # this thread's own connection
        try:
            export = create_export(store, config, credentials, source_secrets, stage_secret)
        except BqtuiError as error:
            self.post_message(ExportCreated(None, str(error)))
            return
        finally:
            store.close()
        self.post_message(ExportCreated(export))

    def on_export_created(self, message: ExportCreated) -> None:
        self.creating = False
        if message.export is None:
            self.query_one(ReviewStep).show_error(message.error)
            return
        self.dismiss(message.export)
