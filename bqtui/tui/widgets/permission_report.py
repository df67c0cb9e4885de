"""The permission checklist: runs ``check_permissions`` in a thread and shows each permission
✓ / ✗ / ?, the key/project/dataset problems first, and the fix commands in a copyable box."""

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static, TextArea

from bqtui.core.config import ExportConfig
from bqtui.destination.keyfile import ServiceAccountKey
from bqtui.ops.permission_check import GRANTED, MISSING, CheckReport, check_permissions
from bqtui.tui.messages import PermissionCheckDone, PermissionCheckStep
from bqtui.tui.worker_errors import WorkerErrors

MARKS = {GRANTED: ("✓", "green"), MISSING: ("✗", "bold red"), "unknown": ("?", "yellow")}


def checklist_text(report: CheckReport) -> Text:
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
    text.rstrip()
    return text


def fix_text(report: CheckReport) -> str:
    lines = []
    for result in report.missing:
        if result.fix:
            lines.extend(result.fix.lines())
    return "\n".join(lines)


class PermissionReport(WorkerErrors, Vertical):
    """Owners call ``start_check``; ``PermissionCheckDone`` bubbles up to them when it ends."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.report: CheckReport | None = None

    @property
    def running(self) -> bool:
        return any(w.is_running for w in self.workers if w.group == "check")

    def compose(self) -> ComposeResult:
        yield Static("", id="perm-status")
        yield Static("", id="perm-problems")
        yield Static("", id="perm-list")
        with Vertical(id="perm-fix"):
            with Horizontal(id="perm-fix-header"):
                yield Static("How to fix — select the commands, or copy them all:", id="fix-title")
                yield Button("Copy fix commands", id="copy-fix", compact=True)
            yield TextArea("", read_only=True, soft_wrap=True, id="fix-commands")
        yield Static("", id="perm-notes")

    def on_mount(self) -> None:
        for part in ("#perm-problems", "#perm-fix", "#perm-notes"):
            self.query_one(part).display = False

    def start_check(self, export: ExportConfig, key: ServiceAccountKey) -> None:
        self.report = None
        self.query_one("#perm-status", Static).update(
            f"Checking as {key.client_email} on "
            f"{export.project_id or key.project_id}:{export.destination_label}…"
        )
        self.query_one("#perm-list", Static).update("")
        for part in ("#perm-problems", "#perm-fix", "#perm-notes"):
            self.query_one(part).display = False
        self.check_in_thread(export, key)

    @work(
        thread=True,
        exclusive=True,
        group="check",
        exit_on_error=False,
        description="The permission check",
    )
    def check_in_thread(self, export: ExportConfig, key: ServiceAccountKey) -> None:
        report = check_permissions(
            export, key, on_step=lambda text: self.post_message(PermissionCheckStep(text))
        )
        self.post_message(PermissionCheckDone(report))

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

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "copy-fix" and self.report is not None:
            event.stop()
            self.app.copy_to_clipboard(fix_text(self.report))
            self.app.notify("Fix commands copied to the clipboard.")
