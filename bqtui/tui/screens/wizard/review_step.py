"""Step 5: everything at a glance before the export is created."""

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from bqtui.core.config import ExportConfig
from bqtui.core.cost import WriteMode
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.source.dsn import redact_dsn
from bqtui.tui.formatting import time_text
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.step import WizardStep
from bqtui.tui.widgets.form_field import ErrorLine


def credential_rows(choice: CredentialChoice | None) -> list[tuple[str, str]]:
    """Who the export runs as: the key's account, or the kind of keyless credentials."""
    if choice is None:  # never: the first step lets no one past without
        return [("Credentials", "—")]
    if choice.key is not None:
        rows = [("Service account", choice.key.client_email)]
    elif choice.file is not None:
        rows = [("Credentials", f"credential file: {choice.file.description}")]
    else:
        rows = [("Credentials", "Application Default Credentials, found at run time")]
    if choice.impersonate:
        rows.append(("Impersonates", choice.impersonate))
    return rows


def what_create_stores(choice: CredentialChoice | None) -> str:
    if choice is None or choice.key is not None:
        return "Create stores the key in the keyring and the export in bqtui's database."
    if choice.file is not None and choice.file.holds_secret:
        return (
            "Create stores the credential file in the keyring and the export in bqtui's database."
        )
    if choice.file is not None:
        return (
            "Create stores the export, with its credential file (it holds no secret), in "
            "bqtui's database."
        )
    return "Create stores the export in bqtui's database; bqtui stores no credential."


def stage_rows(config: ExportConfig) -> list[tuple[str, str]]:
    """The Cloud Storage stage, when there is one: its URI and HMAC access ID, never the secret."""
    if not config.stage:
        return []
    return [
        ("Stage", f"{config.stage} (ClickHouse writes, BigQuery loads)"),
        ("Stage HMAC key", f"{config.stage_hmac_id} (secret → keyring)"),
    ]


def write_mode_rows(config: ExportConfig) -> list[tuple[str, str]]:
    """Persons and sessions only: events have one way to be written."""
    if not config.model.is_mutable:
        return []
    if config.write_mode == WriteMode.APPEND:
        return [("Write mode", f"append (loads only, free; view {config.table_id}_latest)")]
    return [("Write mode", "merge (each window's MERGE is billed for the table it reads)")]


class ReviewStep(WizardStep):
    TITLE = "Review"

    def compose(self) -> ComposeResult:
        yield Static("", id="review-summary")
        yield ErrorLine(id="create-error")

    def enter(self, draft: WizardDraft) -> None:
        config = draft.export_config(self.bqtui.clock())
        report = draft.report
        if report is None:
            check = Text("not run", style="yellow")
        elif report.ok:
            check = Text("all required permissions granted", style="green")
        else:
            check = Text(
                f"NOT READY: {len(report.problems)} problem(s), {len(report.missing)} missing "
                "permission(s)",
                style="bold red",
            )
        project = config.project_id or draft.default_project or "—"  # a project was required
        rows = [
            ("Export name", config.name),
            *credential_rows(draft.credentials),
            ("Destination", f"{project}.{config.destination_label}"),
            ("Model", config.model.value),
            *write_mode_rows(config),
            ("Column types", "JSON" if config.json_type else "STRING"),
            ("Interval", config.interval.value),
            ("First window", f"from {time_text(config.start_at)} UTC"),
            ("Team ID", str(config.team_id)),
            ("Only events", ", ".join(config.include_events) or "all"),
            ("All but events", ", ".join(config.exclude_events) or "none"),
            (
                "Source",
                redact_dsn(config.source_dsn)
                + (" (credentials → keyring)" if draft.source_secrets else ""),
            ),
            ("BigQuery endpoint", config.bigquery_endpoint or "Google (default)"),
            *stage_rows(config),
        ]
        summary = Text()
        for label, value in rows:
            summary.append(f"{label:<18} ", style="bold")
            summary.append(f"{value}\n")
        summary.append(f"{'Permissions':<18} ", style="bold")
        summary.append(check)
        summary.append(f"\n\n{what_create_stores(draft.credentials)}")
        if config.stage:
            summary.append(" The stage's HMAC secret goes to the keyring too.")
        self.query_one("#review-summary", Static).update(summary)
        self.show_error(None)

    def show_error(self, message: str | None) -> None:
        self.query_one("#create-error", ErrorLine).show(message)
