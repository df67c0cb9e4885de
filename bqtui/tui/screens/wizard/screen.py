"""New export wizard: five steps, each validated before the next, then the export is created."""

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, ContentSwitcher, Footer, Header, Static

from bqtui.core.errors import BqtuiError
from bqtui.core.paths import default_source_dsn
from bqtui.demo.environment import DEMO_DATASET
from bqtui.ops.export_setup import create_export
from bqtui.tui.screens.base import BqtuiScreen
from bqtui.tui.screens.dialogs import ConfirmDialog
from bqtui.tui.screens.wizard.destination_step import DestinationStep
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.key_step import KeyStep
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

    def __init__(self):
        super().__init__()
        self.draft = WizardDraft()
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
        with ContentSwitcher(initial="step-key", id="wizard-body"):
            yield KeyStep(self.bqtui.browse_from, key_path, id="step-key")
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
        focusable = [w for w in self.step.query("Input, DirectoryTree, Button") if w.focusable]
        (focusable[0] if focusable else self.query_one("#next")).focus(scroll_visible=False)
        self.step.scroll_home(animate=False)  # the first field's label stays in view

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"cancel": self.action_cancel, "back": self.action_back, "next": self.action_next}
        if event.button.id in actions:
            actions[event.button.id]()

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
        review = self.query_one(ReviewStep)
        try:
            # The same call as `bqtui add`: the export and its secrets, or nothing.
            export = create_export(
                self.bqtui.store,
                self.draft.export_config(self.bqtui.clock()),
                self.draft.key,
                self.draft.source_secrets,
            )
        except BqtuiError as error:
            review.show_error(str(error))
            return
        self.dismiss(export)
