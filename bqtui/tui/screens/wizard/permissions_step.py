"""Step 4: the permission check on the chosen destination, with fixes for what is missing."""

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from bqtui.core.config import ExportConfig
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.tui.messages import PermissionCheckDone
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.step import WizardStep
from bqtui.tui.widgets.permission_report import PermissionReport


class PermissionsStep(WizardStep):
    TITLE = "Permissions"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # What the last check was for (credentials, export): re-check only when it changed.
        self.checked: tuple[CredentialChoice, ExportConfig] | None = None
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
        if draft.credentials is None:  # never: the first step lets no one past without
            return
        export = draft.export_config(self.bqtui.clock())
        unchanged = (
            self.checked is not None
            and self.checked[0] is draft.credentials
            and self.checked[1] == export
        )
        if not unchanged or draft.report is None:
            self.start_check()

    def start_check(self) -> None:
        draft = self.draft
        if draft is None or draft.credentials is None:
            return
        export = draft.export_config(self.bqtui.clock())
        self.checked = (draft.credentials, export)
        draft.report = None
        # Resolved in the check's worker: finding ADC may wait for a metadata server.
        self.query_one(PermissionReport).start_check(export, draft.credentials)

    def on_permission_check_done(self, message: PermissionCheckDone) -> None:
        if self.draft is not None:
            self.draft.report = message.report

    @on(Button.Pressed, "#recheck")
    def recheck_pressed(self, event: Button.Pressed) -> None:
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
