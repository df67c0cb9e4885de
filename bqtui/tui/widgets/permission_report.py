"""The permission checklist: runs ``check_permissions`` in a thread and shows who the export runs
as, each permission ✓ / ✗ / ?, the credential/project/dataset problems first, and the fix
commands in a copyable box."""

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static, TextArea

from bqtui.core.config import AuthKind, ExportConfig, service_account_project
from bqtui.core.errors import BqtuiError
from bqtui.destination.credentials import GoogleCredentials
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.ops.permission_check import (
    GRANTED,
    MISSING,
    CheckReport,
    Problem,
    check_permissions,
)
from bqtui.tui.messages import PermissionCheckAs, PermissionCheckDone, PermissionCheckStep
from bqtui.tui.worker_errors import WorkerErrors

MARKS = {GRANTED: ("✓", "green"), MISSING: ("✗", "bold red"), "unknown": ("?", "yellow")}


def checklist_text(report: CheckReport) -> Text:
    if not report.permissions:  # the credentials or the project failed first
        return Text("No permission was tested: fix the finding above first.", style="dim")
    text = Text()
    width = max(len(p.permission) for p in report.permissions) + 2
    for result in report.permissions:
        mark, style = MARKS[result.status]
        where = f" on the {result.level}" if result.status == MISSING else ""
        need = "" if result.required else " (not needed by this model)"
        text.append(f"{mark} ", style=style)
        text.append(f"{result.permission:<{width}}", style="bold" if result.required else "dim")
        text.append(
            f"{result.status}{where}{need}: {result.detail}\n",
            style=style if result.status == MISSING else "",
        )
    stage = report.stage
    if stage is not None and not any(p.subject == "stage" for p in report.problems):
        mark, style = MARKS[stage.status]  # a refusal is shown once, among the problems
        text.append(f"{mark} ", style=style)
        text.append(f"{'HMAC key ' + (stage.hmac_id or ''):<{width}}", style="bold")
        text.append(f"{stage.status}: {stage.detail}\n")
    text.rstrip()
    return text


def chosen_principal(choice: CredentialChoice) -> str:
    """Who a choice will run as, as far as is known before it is resolved."""
    if choice.impersonate:
        return choice.impersonate
    if choice.key is not None:
        return choice.key.client_email
    if choice.file is not None:
        return choice.file.impersonation_target or "the credential file's principal"
    return "Application Default Credentials"


def chosen_project(export: ExportConfig, choice: CredentialChoice) -> str:
    return (
        export.project_id
        or choice.default_project
        or service_account_project(choice.impersonate)
        or "?"
    )


def export_project(export: ExportConfig, credentials: GoogleCredentials) -> str:
    return export.project_id or credentials.project_id or "?"


def unusable_report(export: ExportConfig, problem: str) -> CheckReport:
    """The report of credentials that could not be built: one finding, nothing checked."""
    report = CheckReport(
        export.name, "?", export.project_id or "?", export.dataset_id, export.table_id
    )
    subject = "key" if export.auth == AuthKind.KEY else "credentials"
    report.problems.append(Problem(subject, problem))
    return report


def fix_text(report: CheckReport) -> str:
    lines = []
    for result in report.missing:
        if result.fix:
            lines.extend(result.fix.lines())
    return "\n".join(lines)


class PermissionReport(WorkerErrors, Vertical):
    """Owners call ``start_check``; ``PermissionCheckDone`` bubbles up to them when it ends."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.report: CheckReport | None = None
        self.export: ExportConfig | None = None  # what is being checked

    @property
    def running(self) -> bool:
        return any(w.is_running for w in self.workers if w.group == "check")

    def compose(self) -> ComposeResult:
        yield Static("", id="perm-status")
        yield Static("", id="perm-runs-as")
        yield Static("", id="perm-problems")
        yield Static("", id="perm-list")
        with Vertical(id="perm-fix"):
            with Horizontal(id="perm-fix-header"):
                yield Static("How to fix — select the commands, or copy them all:", id="fix-title")
                yield Button("Copy fix commands", id="copy-fix", compact=True)
            yield TextArea("", read_only=True, soft_wrap=True, id="fix-commands")
        yield Static("", id="perm-notes")

    def on_mount(self) -> None:
        self.hide_findings()

    def hide_findings(self) -> None:
        self.query_one("#perm-list", Static).update("")
        for part in ("#perm-runs-as", "#perm-problems", "#perm-fix", "#perm-notes"):
            self.query_one(part).display = False

    def start_check(
        self,
        export: ExportConfig,
        credentials: GoogleCredentials | CredentialChoice,
        stage_secret: str | None = None,
    ) -> None:
        """Check ``export`` as ``credentials``; a choice is resolved in the worker first.
        ``stage_secret``: the wizard's HMAC secret, not in the keyring yet."""
        self.report, self.export = None, export
        if isinstance(credentials, CredentialChoice):
            principal, project = chosen_principal(credentials), chosen_project(export, credentials)
        else:
            principal, project = credentials.principal.label, export_project(export, credentials)
        self.show_checking(PermissionCheckAs(principal, project))
        self.hide_findings()
        self.check_in_thread(export, credentials, stage_secret)

    def show_checking(self, subject: PermissionCheckAs) -> None:
        where = self.export.destination_label if self.export else "?"
        status = self.query_one("#perm-status", Static)
        status.set_class(False, "error")
        status.update(f"Checking as {subject.principal} on {subject.project}:{where}…")

    def show_unusable(self, export: ExportConfig, problem: str) -> None:
        """Credentials that could not even be built (no ADC here, say): a finding, not a crash."""
        self.report, self.export = None, export
        self.post_message(PermissionCheckDone(unusable_report(export, problem)))

    @work(
        thread=True,
        exclusive=True,
        group="check",
        exit_on_error=False,
        description="The permission check",
    )
    def check_in_thread(
        self,
        export: ExportConfig,
        credentials: GoogleCredentials | CredentialChoice,
        stage_secret: str | None = None,
    ) -> None:
        def on_step(text: str) -> None:
            self.post_message(PermissionCheckStep(text))

        if isinstance(credentials, CredentialChoice):
            try:
                credentials = credentials.resolve(export.project_id, stage=bool(export.stage))
            except BqtuiError as problem:
                self.post_message(PermissionCheckDone(unusable_report(export, str(problem))))
                return
            self.post_message(
                PermissionCheckAs(credentials.principal.label, export_project(export, credentials))
            )
        self.post_message(
            PermissionCheckDone(
                check_permissions(export, credentials, on_step=on_step, stage_secret=stage_secret)
            )
        )

    def on_permission_check_as(self, message: PermissionCheckAs) -> None:
        message.stop()
        self.show_checking(message)

    def on_permission_check_step(self, message: PermissionCheckStep) -> None:
        message.stop()
        self.query_one("#perm-list", Static).update(Text(f"{message.text}…", style="italic"))

    def on_permission_check_done(self, message: PermissionCheckDone) -> None:
        report = self.report = message.report  # the message goes on up to the owner
        status = self.query_one("#perm-status", Static)
        if report.ok:
            status.update(Text("✓ All required permissions are granted.", style="bold green"))
        else:
            status.update(
                Text("✗ Not ready: fix the findings below, then re-run the check.", "bold red")
            )
        status.set_class(not report.ok, "error")
        runs_as = self.query_one("#perm-runs-as", Static)
        runs_as.display = bool(report.runs_as)
        runs_as.update(f"The export {report.runs_as}.")
        problems = self.query_one("#perm-problems", Static)
        problems.display = bool(report.problems)
        problems.update(
            Text("\n").join(
                Text.assemble((f"✗ {problem.subject}: ", "bold"), problem.detail)
                for problem in report.problems
            )
        )
        self.query_one("#perm-list", Static).update(checklist_text(report))
        fixes = fix_text(report)
        self.query_one("#perm-fix").display = bool(fixes)
        self.query_one("#fix-commands", TextArea).load_text(fixes)
        notes = self.query_one("#perm-notes", Static)
        notes.display = bool(report.notes)
        notes.update("\n".join(f"Note: {note}" for note in report.notes))

    @on(Button.Pressed, "#copy-fix")
    def copy_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self.report is not None:
            self.app.copy_to_clipboard(fix_text(self.report))
            self.app.notify("Fix commands copied to the clipboard.")
