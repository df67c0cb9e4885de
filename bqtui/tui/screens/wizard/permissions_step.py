"""Step 4: the permission check on the chosen destination, with fixes for what is missing."""

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from bqtui.tui.messages import PermissionCheckDone
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.step import WizardStep
from bqtui.tui.widgets.permission_report import PermissionReport


class PermissionsStep(WizardStep):
    TITLE = "Permissions"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.checked = None  # what the last check was for: re-check only when it changed
        self.draft: WizardDraft | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            "bqtui tries each permission the export needs, with an expiring probe table "
            "(nothing else is written).",
            classes="step-intro",
        )
        yield PermissionReport()
        with Horizontal(classes="buttons"):
            yield Button("Re-run check", id="recheck")

    def enter(self, draft: WizardDraft) -> None:
        self.draft = draft
        wanted = (draft.key.client_email, draft.export_config(self.app.clock()))
        if wanted != self.checked or draft.report is None:
            self.start_check()

    def start_check(self) -> None:
        draft = self.draft
        self.checked = (draft.key.client_email, draft.export_config(self.app.clock()))
        draft.report = None
        self.query_one(PermissionReport).start_check(self.checked[1], draft.key)

    def on_permission_check_done(self, message: PermissionCheckDone) -> None:
        self.draft.report = message.report

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "recheck":
            event.stop()
            self.start_check()

    def commit(self, draft: WizardDraft) -> bool:
        if self.query_one(PermissionReport).running:
            self.app.notify("The permission check is still running.", severity="warning")
            return False
        return True

    def confirmation(self, draft: WizardDraft) -> str | None:
        report = draft.report
        if report is None:
            return "The permission check did not finish. Create the export without it?"
        if report.ok:
            return None
        findings = [f"{p.subject}: {p.detail}" for p in report.problems]
        findings += [f"{p.permission} is missing on the {p.level}" for p in report.missing]
        if not findings:
            findings = ["some required permissions could not be tested"]
        return (
            "The export will fail until this is fixed:\n• "
            + "\n• ".join(findings)
            + "\n\nContinue anyway? You can check again later with c on the exports screen."
        )
