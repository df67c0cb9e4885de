"""Export detail: configuration, the destination table against the model, runs, windows, logs."""

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    RichLog,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
)

from bqtui.core.config import AuthKind, ExportConfig, service_account_project
from bqtui.core.errors import BqtuiError
from bqtui.destination.bigquery import BigQueryDestination
from bqtui.models import get_model
from bqtui.ops.status import export_cost
from bqtui.ops.verify_report import VerifyReport
from bqtui.pipeline.export_credentials import export_credentials
from bqtui.source.dsn import redact_dsn
from bqtui.state.costs import CostBook
from bqtui.state.store import Store
from bqtui.tui.cost_text import billed_text, cost_settings_rows, run_cost_text
from bqtui.tui.credentials_text import auth_text
from bqtui.tui.formatting import bytes_text, duration_text, rows_text, time_text
from bqtui.tui.messages import TableSchemaChecked, VerifyDone
from bqtui.tui.screens.base import ExportScreen
from bqtui.tui.screens.dialogs import ConfirmDialog
from bqtui.tui.widgets.chart_axis import ChartAxis
from bqtui.tui.widgets.exports_table import status_text

SCHEMA_RETRY_SECONDS = 15.0  # an unreachable BigQuery shows as an error state, not a long wait
LEVEL_STYLES = {"warning": "yellow", "error": "bold red"}
VERIFY_CHARTS = {
    "verify-source": "ClickHouse, rows per day",
    "verify-bigquery": "BigQuery, rows per day",
    "verify-diff": "Differences per day (missing + extra + duplicated)",
}


def destination_project(export: ExportConfig) -> str:
    """The project as configured, or where it comes from when none is."""
    if export.project_id:
        return export.project_id
    if export.auth == AuthKind.KEY:
        return "(key project)"
    return service_account_project(export.impersonate) or "(the credentials' project)"


def stage_text(export: ExportConfig) -> str:
    """The Cloud Storage stage and its HMAC access ID (the secret stays in the keyring)."""
    if not export.stage:
        return "none: rows pass through bqtui"
    return f"{export.stage}, HMAC key {export.stage_hmac_id} (secret in the keyring)"


def configuration_text(export: ExportConfig, cost_line: str) -> str:
    """The export's settings, then what BigQuery billed it (``export_cost(...).line()``)."""
    rows = [
        ("Model", export.model.value),
        ("Credentials", auth_text(export)),
        ("Destination", f"{destination_project(export)}.{export.destination_label}"),
        ("Column types", "JSON" if export.json_type else "STRING"),
        ("Interval", export.interval.value),
        ("Settle delay", f"{export.settle_seconds} s after a window ends"),
        ("First window", f"{time_text(export.start_at)} UTC"),
        ("Team ID", str(export.team_id)),
        ("Include events", ", ".join(export.include_events) or "all"),
        ("Exclude events", ", ".join(export.exclude_events) or "none"),
        ("Source", redact_dsn(export.source_dsn)),
        ("BigQuery endpoint", export.bigquery_endpoint or "Google (default)"),
        ("Stage", stage_text(export)),
        ("Location", export.location or "inferred from the dataset"),
        ("State", "enabled" if export.enabled else "paused"),
        *cost_settings_rows(export),
        ("BigQuery cost", cost_line),
    ]
    return "\n".join(f"{label:<18} {value}" for label, value in rows)


class ExportDetailScreen(ExportScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "run", "Run now"),
        Binding("b", "backfill", "Backfill"),
        Binding("c", "check", "Check"),
        Binding("e", "edit", "Edit"),
        Binding("1", "show_tab('tab-runs')", "Runs"),
        Binding("2", "show_tab('tab-windows')", "Windows"),
        Binding("3", "show_tab('tab-config')", "Config"),
        Binding("4", "show_tab('tab-verify')", "Verify"),
    ]

    def __init__(self, export_id: int):
        super().__init__(export_id)
        self.verify_report: VerifyReport | None = None

    @property
    def export(self) -> ExportConfig:
        return self.bqtui.store.get_export(self.export_id)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="detail-title")
        with TabbedContent(id="detail-tabs"):
            with TabPane("Runs and logs", id="tab-runs"):
                yield Static("Rows per run (oldest → newest)", classes="chart-label")
                yield Sparkline([], id="runs-rows", classes="chart")
                yield Static("Run duration, seconds", classes="chart-label")
                yield Sparkline([], id="runs-seconds", classes="chart")
                yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
                yield Static("Select a run to see its log.", id="log-title")
                yield Static("", id="run-cost")
                yield RichLog(id="run-logs", wrap=True, markup=False, highlight=False)
            with TabPane("Windows", id="tab-windows"):
                yield DataTable(id="windows", cursor_type="row", zebra_stripes=True)
            with TabPane("Configuration and table", id="tab-config"):
                yield Static(id="config")
                yield Static("Checking the destination table…", id="schema")
            with TabPane("Verify", id="tab-verify"):
                with Horizontal(id="verify-bar"):
                    yield Static(
                        "Compare BigQuery with ClickHouse for the windows done.",
                        id="verify-summary",
                    )
                    yield Button("Verify now", id="verify-run", variant="primary")
                    yield Button("Repair…", id="verify-repair", disabled=True)
                for chart_id, title in VERIFY_CHARTS.items():
                    yield Static(title, classes="chart-label")
                    yield Sparkline([], id=chart_id, classes="chart")
                    yield ChartAxis(id=f"{chart_id}-axis")
                yield DataTable(id="verify-days", cursor_type="row", zebra_stripes=True)
                yield Static("", id="verify-keys")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs", DataTable).add_columns(
            "Run", "Trigger", "Status", "Started", "Took", "Windows", "Rows", "Bytes", "Error"
        )
        self.query_one("#verify-days", DataTable).add_columns(
            "Day", "ClickHouse", "BigQuery", "Missing", "Extra", "Duplicated", "Status"
        )
        self.query_one("#windows", DataTable).add_columns(
            "Window (UTC)",
            "Status",
            "Attempt",
            "Rows",
            "Bytes",
            "Billed",
            "Read from ClickHouse",
            "BigQuery job IDs",
            "Error",
        )
        self.check_table_schema()

    def on_screen_resume(self) -> None:
        export = self.export
        state = "enabled" if export.enabled else "paused"
        self.query_one("#detail-title", Static).update(
            Text.assemble(
                (export.name, "bold"),
                f"  {export.model.value} → {export.destination_label}  ({state})",
            )
        )
        cost = export_cost(self.bqtui.store, export, self.bqtui.clock())
        self.query_one("#config", Static).update(configuration_text(export, cost.line()))
        self.show_runs()
        self.show_windows()

    def show_runs(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        history = list(reversed(self.bqtui.store.list_runs(self.export_id)))
        self.query_one("#runs-rows", Sparkline).data = [float(r.rows) for r in history]
        self.query_one("#runs-seconds", Sparkline).data = [
            (r.finished_at - r.started_at).total_seconds() for r in history if r.finished_at
        ]
        for run in self.bqtui.store.list_runs(self.export_id):
            took = run.finished_at - run.started_at if run.finished_at else None
            table.add_row(
                str(run.id),
                run.trigger,
                status_text(run.status),
                time_text(run.started_at),
                duration_text(took),
                f"{run.windows_done}/{run.windows_total}",
                rows_text(run.rows),
                bytes_text(run.bytes),
                (run.error or "").splitlines()[0] if run.error else "",
                key=str(run.id),
            )
        if not table.row_count:  # no runs yet: no cell under the cursor
            return
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        if row_key.value is not None:
            self.show_logs(int(row_key.value))

    def show_windows(self) -> None:
        table = self.query_one("#windows", DataTable)
        table.clear()
        costs = CostBook(self.bqtui.store)
        for window in self.bqtui.store.list_windows(self.export_id):
            table.add_row(
                f"{time_text(window.window_start)} → {time_text(window.window_end)}",
                status_text(window.status),
                str(window.attempt),
                rows_text(window.rows),
                bytes_text(window.bytes),
                billed_text(costs.for_window(self.export_id, window.window_start)),
                ""
                if window.rows_read is None
                else f"{rows_text(window.rows_read)} rows, {bytes_text(window.bytes_read or 0)}",
                ", ".join(window.job_ids),
                (window.error or "").splitlines()[0] if window.error else "",
            )

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "runs" and event.row_key.value is not None:
            self.show_logs(int(event.row_key.value))

    def show_logs(self, run_id: int) -> None:
        self.query_one("#log-title", Static).update(f"Log of run {run_id}")
        costs = CostBook(self.bqtui.store).for_run(run_id)
        self.query_one("#run-cost", Static).update(run_cost_text(run_id, costs, self.export))
        log = self.query_one("#run-logs", RichLog)
        log.clear()
        for logged_at, level, message in self.bqtui.store.run_logs(run_id):
            log.write(
                Text.assemble(
                    (f"{logged_at:%H:%M:%S} ", "dim"), (message, LEVEL_STYLES.get(level, ""))
                )
            )

    # -- the destination table against the model --------------------------------------------

    @work(
        thread=True,
        exclusive=True,
        group="schema",
        exit_on_error=False,
        description="Reading the table's schema",
    )
    def check_table_schema(self) -> None:
        store = Store(self.bqtui.store.path)  # this thread's own connection
        try:
            export = store.get_export(self.export_id)
        finally:
            store.close()
        try:  # the keyring, or ADC discovery: both may wait, in this worker
            destination = BigQueryDestination(
                export_credentials(export),
                project_id=export.project_id,
                endpoint=export.bigquery_endpoint,
                location=export.location,
                retry_deadline=SCHEMA_RETRY_SECONDS,
            )
        except BqtuiError as error:
            self.post_message(TableSchemaChecked(False, [], str(error)))
            return
        ref = destination.table_ref(export.dataset_id, export.table_id)
        try:
            columns = destination.table_columns(ref)
        except BqtuiError as error:
            self.post_message(TableSchemaChecked(False, [], str(error)))
            return
        finally:
            destination.close()
        if columns is None:
            self.post_message(TableSchemaChecked(False, []))
            return
        have = set(columns)
        missing = [
            f.name for f in get_model(export.model).fields if f.name not in have and not f.optional
        ]
        self.post_message(TableSchemaChecked(True, missing))

    def on_table_schema_checked(self, message: TableSchemaChecked) -> None:
        schema = self.query_one("#schema", Static)
        schema.set_class(message.error is not None, "error")
        if message.error:
            text = Text.assemble(("Cannot read the destination table.\n", "bold"), message.error)
        elif not message.exists:
            text = Text(
                "The table does not exist yet: the first run creates it with the model's schema."
            )
        elif message.missing_fields:
            text = Text.assemble(
                ("The table lacks model fields", "bold yellow"),
                " (left out of every run until you add them to the table): ",
                ", ".join(message.missing_fields),
            )
        else:
            text = Text("The table has every field of the model.", style="green")
        schema.update(text)

    # -- verify ------------------------------------------------------------------------------

    @on(Button.Pressed, "#verify-run")
    def start_verify(self) -> None:
        self.query_one("#verify-summary", Static).update(Text("Verifying…", "italic"))
        self.query_one("#verify-run", Button).disabled = True
        self.verify_in_thread(repair=False)

    @on(Button.Pressed, "#verify-repair")
    def ask_repair(self) -> None:
        report = self.verify_report
        if report is None:
            return
        changes = []
        if report.missing.count or report.stale.count:
            changes.append(
                f"re-export the windows holding {report.missing.count:,} missing and "
                f"{report.stale.count:,} stale rows (the MERGE adds only what is missing)"
            )
        if report.duplicate_keys:
            changes.append(
                f"delete {report.duplicated.count:,} duplicate copies, keeping the first loaded "
                f"copy of each of: {', '.join(report.duplicate_keys[:20])}"
                + (" …" if len(report.duplicate_keys) > 20 else "")
            )
        if not changes:
            self.notify("Nothing bqtui can repair: extra rows are left as they are.")
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.query_one("#verify-summary", Static).update(Text("Repairing…", "italic"))
                self.query_one("#verify-repair", Button).disabled = True
                self.verify_in_thread(repair=True)

        self.app.push_screen(
            ConfirmDialog(
                "Repair the BigQuery table?",
                "This will:\n- " + "\n- ".join(changes),
                confirm_label="Repair",
            ),
            confirmed,
        )

    @work(thread=True, exclusive=True, group="verify", exit_on_error=False, description="Verifying")
    def verify_in_thread(self, repair: bool) -> None:
        from bqtui.ops.repair import repair as repair_table
        from bqtui.ops.verify import Verifier
        from bqtui.pipeline.job_costs import record_job_costs
        from bqtui.pipeline.runner import (
            bigquery_destination,
            clickhouse_source,
            retry_deadline_from_env,
        )

        store = Store(self.bqtui.store.path)  # this thread's own connection
        try:
            export = store.get_export(self.export_id)
            destination = bigquery_destination(export, retry_deadline_from_env())
            destination.on_query_done = record_job_costs(store, export.saved_id)
            with clickhouse_source(export) as source:
                verifier = Verifier(store, export, source, destination, now=self.bqtui.clock)
                repaired = None
                if repair and self.verify_report is not None:
                    repaired = repair_table(store, verifier, self.verify_report, self.bqtui.clock)
                report = verifier.run()
            destination.close()
            self.post_message(VerifyDone(report, repaired=repaired))
        except BqtuiError as error:
            self.post_message(VerifyDone(None, str(error)))
        finally:
            store.close()

    def on_verify_done(self, message: VerifyDone) -> None:
        self.query_one("#verify-run", Button).disabled = False
        summary = self.query_one("#verify-summary", Static)
        if message.error:
            summary.update(Text(message.error, "bold red"))
            return
        report = message.report
        if report is None:
            return
        self.verify_report = report
        lines = [report.verdict()]
        if report.bytes_estimate is not None:
            lines.append(f"BigQuery scanned about {bytes_text(report.bytes_estimate)} (dry run).")
        if message.repaired is not None:
            lines.insert(0, "Repaired; verified again:")
        summary.update(Text("\n".join(lines), "green" if report.ok else "bold red"))
        self.query_one("#verify-repair", Button).disabled = report.ok
        days = report.days
        self.show_verify_charts(report)
        table = self.query_one("#verify-days", DataTable)
        table.clear()
        for day in days:
            table.add_row(
                day.day.isoformat(),
                rows_text(day.source),
                rows_text(day.bigquery),
                str(day.missing),
                str(day.extra),
                str(day.duplicated),
                Text("ok", "green") if day.ok else Text("differs", "bold red"),
                key=day.day.isoformat(),
            )
        keys = [
            f"{name}: {', '.join(f.listed)}"
            for name, f in (
                ("missing", report.missing),
                ("extra", report.extra),
                ("duplicated", report.duplicated),
                ("stale", report.stale),
            )
            if f.count
        ]
        self.query_one("#verify-keys", Static).update("\n".join(keys))

    def show_verify_charts(self, report: VerifyReport) -> None:
        labels = [d.day.isoformat() for d in report.days]
        charts = {
            "verify-source": [float(d.source) for d in report.days],
            "verify-bigquery": [float(d.bigquery) for d in report.days],
            "verify-diff": [float(d.missing + d.extra + d.duplicated) for d in report.days],
        }
        for chart_id, values in charts.items():
            self.query_one(f"#{chart_id}", Sparkline).data = values
            self.query_one(f"#{chart_id}-axis", ChartAxis).show(labels, values)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """A day of the verify table: its missing and extra uuids."""
        if event.data_table.id != "verify-days" or self.verify_report is None:
            return
        day = next(d for d in self.verify_report.days if d.day.isoformat() == event.row_key.value)
        text = "\n".join(day.keys) if day.keys else f"{day.day}: nothing differs by uuid."
        self.query_one("#verify-keys", Static).update(f"{day.day}:\n{text}")

    # -- actions ----------------------------------------------------------------------------

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_run(self) -> None:
        self.bqtui.run_export(self.export)

    def action_backfill(self) -> None:
        self.bqtui.backfill(self.export)

    def action_check(self) -> None:
        self.bqtui.check_permissions(self.export)

    def action_edit(self) -> None:
        self.bqtui.edit_export(self.export)
