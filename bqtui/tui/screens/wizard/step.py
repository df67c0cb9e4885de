"""The shape every wizard step has."""

from textual.containers import VerticalScroll

from bqtui.tui.context import BqtuiContext, bqtui_context
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.worker_errors import WorkerErrors


class WizardStep(WorkerErrors, VerticalScroll):
    """One step: ``enter`` when shown, ``commit`` to validate and write into the draft."""

    TITLE = ""

    @property
    def bqtui(self) -> BqtuiContext:
        return bqtui_context(self.app)

    def enter(self, draft: WizardDraft) -> None:
        """Called each time the step is shown."""

    def commit(self, draft: WizardDraft) -> bool:
        """Validate the step, show its errors, and write it into the draft. True: go on."""
        return True

    def confirmation(self, draft: WizardDraft) -> str | None:
        """A question the user must confirm before going on, if any."""
        return None
