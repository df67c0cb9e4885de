"""Step 4: the permission check on the chosen destination, with fixes for what is missing, and
for persons and sessions, append suggested when the table is too large to MERGE into often."""

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

from bqtui.core.config import ExportConfig
from bqtui.core.cost import WriteMode
from bqtui.destination.bigquery import BigQueryDestination
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.tui.cost_text import append_advice, suggests_append
from bqtui.tui.messages import PermissionCheckDone, TableSizeRead
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.step import WizardStep
from bqtui.tui.widgets.permission_report import PermissionReport

TABLE_SIZE_RETRY_SECONDS = 15.0  # advice only: not worth a long wait


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
        with Horizontal(id="write-mode-advice-row"):
            yield Static("", id="write-mode-advice")
            yield Button("Use append", id="use-append", variant="warning")
        yield PermissionReport()
        with Horizontal(classes="buttons"):
            yield Button("Re-run check", id="recheck")

    def on_mount(self) -> None:
        self.query_one("#write-mode-advice-row").display = False

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
            self.query_one("#write-mode-advice-row").display = False
            if export.model.is_mutable:
                self.read_table_size(export, draft.credentials)

    def start_check(self) -> None:
        draft = self.draft
        if draft is None or draft.credentials is None:
            return
        export = draft.export_config(self.bqtui.clock())
        self.checked = (draft.credentials, export)
        draft.report = None
        # Resolved in the check's worker: finding ADC may wait for a metadata server.
        self.query_one(PermissionReport).start_check(export, draft.credentials, draft.stage_secret)

    def on_permission_check_done(self, message: PermissionCheckDone) -> None:
        if self.draft is not None:
            self.draft.report = message.report

    @work(thread=True, exclusive=True, group="table-size", exit_on_error=False)
    def read_table_size(self, export: ExportConfig, credentials: CredentialChoice) -> None:
        """The table's size from its metadata (free); silent when it cannot be read: the
        permission check beside it says why."""
        try:
            destination = BigQueryDestination(
                credentials.resolve(export.project_id),
                project_id=export.project_id,
                endpoint=export.bigquery_endpoint,
                location=export.location,
                retry_deadline=TABLE_SIZE_RETRY_SECONDS,
            )
            try:
                ref = destination.table_ref(export.dataset_id, export.table_id)
                size = destination.table_size(ref)
            finally:
                destination.close()
        except Exception:  # advice only: never an error of the wizard's
            size = None
        self.post_message(TableSizeRead(export, size))

    def on_table_size_read(self, message: TableSizeRead) -> None:
        draft, export = self.draft, message.export
        if draft is None or self.checked is None or self.checked[1] != export:
            return  # read for a destination the user has changed since
        advise = suggests_append(export.model, message.size)
        if advise and message.size is not None:
            advice = append_advice(export, message.size, draft.write_mode)
            self.query_one("#write-mode-advice", Static).update(
                Text(advice, "yellow" if draft.write_mode == WriteMode.MERGE else "")
            )
            self.query_one("#use-append").display = draft.write_mode == WriteMode.MERGE
        self.query_one("#write-mode-advice-row").display = advise

    @on(Button.Pressed, "#use-append")
    def use_append(self, event: Button.Pressed) -> None:
        event.stop()
        if self.draft is not None:
            self.draft.write_mode = WriteMode.APPEND
            export = self.draft.export_config(self.bqtui.clock())
            self.checked = (self.draft.credentials, export) if self.draft.credentials else None
            self.query_one("#write-mode-advice", Static).update(
                "Write mode: append. Loads only, free; readers use the view "
                f"{export.table_id}_latest."
            )
            self.query_one("#use-append").display = False

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
