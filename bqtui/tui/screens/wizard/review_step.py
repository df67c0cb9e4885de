"""Step 5: everything at a glance before the export is created."""

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from bqtui.source.dsn import redact_dsn
from bqtui.tui.formatting import time_text
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.step import WizardStep
from bqtui.tui.widgets.form_field import ErrorLine


class ReviewStep(WizardStep):
    TITLE = "Review"

    def compose(self) -> ComposeResult:
        yield Static("", id="review-summary")
        yield ErrorLine(id="create-error")

    def enter(self, draft: WizardDraft) -> None:
        config = draft.export_config(self.app.clock())
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
        rows = [
            ("Export name", config.name),
            ("Service account", f"{draft.key.client_email}"),
            ("Destination", f"{draft.key.project_id}.{config.destination_label}"),
            ("Model", config.model.value),
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
        ]
        summary = Text()
        for label, value in rows:
            summary.append(f"{label:<18} ", style="bold")
            summary.append(f"{value}\n")
        summary.append(f"{'Permissions':<18} ", style="bold")
        summary.append(check)
        summary.append(
            "\n\nCreate stores the key in the keyring and the export in bqtui's database."
        )
        self.query_one("#review-summary", Static).update(summary)
        self.show_error(None)

    def show_error(self, message: str | None) -> None:
        self.query_one("#create-error", ErrorLine).show(message)
