"""Step 2: where the data goes and what is exported; each field checked by the core's validators."""

from datetime import datetime
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import Checkbox, Collapsible, Input, RadioButton, RadioSet, Select, Static

from bqtui.core.config import (
    MODEL_DESCRIPTIONS,
    Interval,
    Model,
    parse_event_names,
    parse_settle_seconds,
    parse_team_id,
    parse_timestamp,
    validate_export,
    validate_export_name,
)
from bqtui.core.cost import WriteMode
from bqtui.core.errors import ConfigError
from bqtui.core.ids import validate_dataset_id, validate_project_id, validate_table_id
from bqtui.tui.cost_text import WRITE_MODE_TRADES
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.stage_pane import StagePane
from bqtui.tui.screens.wizard.step import WizardStep
from bqtui.tui.widgets.form_field import ErrorLine, FieldParser, FormField
from bqtui.tui.widgets.wrapping_checkbox import WrappingCheckbox
from bqtui.tui.widgets.wrapping_radio_button import WrappingRadioButton

JSON_TYPE_LABEL = (
    "Use JSON type — store properties, set and set_once as BigQuery JSON columns instead of "
    "STRING (query with JSON functions, e.g. JSON_VALUE(properties, '$.plan'))"
)
INTERVAL_CHOICES = [
    ("every 5 minutes", Interval.FIVE_MINUTES),
    ("every hour", Interval.HOUR),
    ("every day", Interval.DAY),
    ("every week", Interval.WEEK),
]
PROJECT_REQUIRED = (
    "Required: the project that holds the dataset and runs the load jobs (these credentials "
    "name none)."
)
SETTLE_HELP = (
    "How long after a window ends it is exported, so rows that become visible late (async "
    "inserts, replication) are in it."
)


def selected_interval(select: "Select[Interval]") -> Interval:
    """The interval chosen in a select of ``INTERVAL_CHOICES`` (it has no blank)."""
    value = select.value
    if isinstance(value, str):
        return Interval(value)
    raise ValueError("The interval select has no value")


class DestinationStep(WizardStep):
    TITLE = "Destination"

    def __init__(self, draft: WizardDraft, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.defaults = draft

    def compose(self) -> ComposeResult:
        d = self.defaults
        yield FormField(
            "Project ID",
            Input(d.project_id or "", placeholder="my-project", id="project-id"),
            PROJECT_REQUIRED,
            id="field-project-id",
        )
        yield FormField(
            "Dataset ID",
            Input(d.dataset_id, placeholder="posthog_exports", id="dataset-id"),
            "The bare dataset ID, in the project above.",
            id="field-dataset-id",
        )
        yield FormField(
            "Table ID",
            Input(d.table_id, placeholder="events_export", id="table-id"),
            "Created with the model's schema on the first run if it does not exist.",
            id="field-table-id",
        )
        with RadioSet(id="model"):
            for model in Model:
                yield RadioButton(
                    f"{model.value} — {MODEL_DESCRIPTIONS[model]}",
                    value=model == d.model,
                    name=model.value,
                )
        with RadioSet(id="write-mode"):  # persons and sessions: how the table is written
            for mode, trade in WRITE_MODE_TRADES.items():
                yield WrappingRadioButton(trade, value=mode == d.write_mode, name=mode.value)
        yield WrappingCheckbox(JSON_TYPE_LABEL, d.json_type, id="json-type")
        yield FormField(
            "Interval",
            Select(INTERVAL_CHOICES, value=d.interval, allow_blank=False, id="interval"),
            id="field-interval",
        )
        yield FormField(
            "Start (optional)",
            Input(placeholder="2024-05-01 or 2024-05-01T13:00:00Z", id="start"),
            "The first window's start (ISO 8601, UTC if no zone). Empty: the next boundary.",
            id="field-start",
        )
        yield from self.compose_what_is_exported()

    def compose_what_is_exported(self) -> ComposeResult:
        """The rows exported (team, events) and the export's name: the step's second half."""
        d = self.defaults
        yield FormField("Team ID", Input(str(d.team_id), id="team-id"), id="field-team-id")
        yield FormField(
            "Settle delay (seconds)",
            Input(str(d.settle_seconds), id="settle"),
            SETTLE_HELP,
            id="field-settle",
        )
        yield FormField(
            "Only these events (optional)",
            Input(placeholder="$pageview, signed_up", id="include-events"),
            "Comma-separated event names; empty: all events.",
            id="field-include-events",
        )
        yield FormField(
            "All but these events (optional)",
            Input(placeholder="$feature_flag_called", id="exclude-events"),
            id="field-exclude-events",
        )
        yield FormField(
            "Export name",
            Input(d.name, placeholder="events-to-bigquery", id="export-name"),
            "A short unique name: letters, digits, '-', '_' or '.'.",
            id="field-export-name",
        )
        with Collapsible(title="Advanced", collapsed=not d.bigquery_endpoint, id="advanced"):
            yield FormField(
                "BigQuery endpoint (optional)",
                Input(
                    d.bigquery_endpoint or "",
                    placeholder="https://bigquery.googleapis.com",
                    id="bigquery-endpoint",
                ),
                "Only for emulators and private endpoints; empty: Google's.",
                id="field-bigquery-endpoint",
            )
        yield StagePane(d, id="stage-pane")
        yield ErrorLine(id="destination-error")

    def on_mount(self) -> None:
        self.show_write_mode()

    @on(RadioSet.Changed, "#model")
    def show_write_mode(self) -> None:
        """Events are appended once per uuid: the write mode is for mutable models only."""
        self.query_one("#write-mode").display = self.chosen_model().is_mutable

    def chosen_model(self) -> Model:
        pressed = self.query_one("#model", RadioSet).pressed_button
        return Model(pressed.name if pressed and pressed.name else Model.EVENTS)

    def chosen_write_mode(self) -> WriteMode:
        pressed = self.query_one("#write-mode", RadioSet).pressed_button
        return WriteMode(pressed.name if pressed and pressed.name else WriteMode.MERGE)

    def enter(self, draft: WizardDraft) -> None:
        """The project is optional only when the credentials name one."""
        for button in self.query_one("#write-mode", RadioSet).query(RadioButton):
            button.value = button.name == draft.write_mode.value  # a later step may change it
        default = draft.default_project
        whose = (
            "the key's" if draft.credentials and draft.credentials.key else "the service account's"
        )
        hint = f"Empty: {whose} project, {default}." if default else PROJECT_REQUIRED
        field = self.query_one("#field-project-id", FormField)
        field.query_one(".field-hint", Static).update(hint)
        self.query_one("#project-id", Input).placeholder = default or "my-project"

    def project(self, value: str) -> str | None:
        project = validate_project_id(value)
        if project is None and self.defaults.default_project is None:
            raise ConfigError(
                "Type the Google Cloud project that holds the dataset: Application Default "
                "Credentials and credential files name no project."
            )
        return project

    def value(self, input_id: str) -> str:
        return self.query_one(f"#{input_id}", Input).value

    def commit(self, draft: WizardDraft) -> bool:
        existing = {e.name for e in self.bqtui.store.list_exports()}

        def export_name(value: str) -> str:
            name = validate_export_name(value)
            if name in existing:
                raise ConfigError(
                    f'An export named "{name}" exists already; choose another name or remove '
                    f"it first (bqtui remove {name})."
                )
            return name

        def start(value: str) -> datetime | None:
            return parse_timestamp(value, "start") if value.strip() else None

        fields = FieldParser(self)
        project_id = fields.parse("project-id", self.project, None)
        dataset_id = fields.parse("dataset-id", validate_dataset_id, "")
        table_id = fields.parse("table-id", validate_table_id, "")
        start_at = fields.parse("start", start, None)
        team_id = fields.parse("team-id", parse_team_id, draft.team_id)
        settle_seconds = fields.parse("settle", parse_settle_seconds, draft.settle_seconds)
        include_events = fields.parse("include-events", parse_event_names, draft.include_events)
        exclude_events = fields.parse("exclude-events", parse_event_names, draft.exclude_events)
        name = fields.parse("export-name", export_name, "")
        stage = self.query_one(StagePane).parse(fields)
        step_error = self.query_one("#destination-error", ErrorLine)
        step_error.show(None)
        if not fields.ok:
            self.query("FormField.-invalid").first(FormField).control.focus()
            return False
        draft.project_id = project_id
        draft.dataset_id = dataset_id
        draft.table_id = table_id
        draft.model = self.chosen_model()
        draft.write_mode = self.chosen_write_mode()
        draft.json_type = self.query_one("#json-type", Checkbox).value
        draft.interval = selected_interval(self.query_one("#interval", Select))
        draft.start = start_at
        draft.team_id = team_id
        draft.settle_seconds = settle_seconds
        draft.include_events = include_events
        draft.exclude_events = exclude_events
        draft.name = name
        draft.bigquery_endpoint = self.value("bigquery-endpoint").strip() or None
        draft.stage, draft.stage_hmac_id, draft.stage_secret = (
            stage.uri,
            stage.hmac_id,
            stage.secret,
        )
        try:  # what spans fields: include/exclude overlap, the endpoint's form
            validate_export(draft.export_config(self.bqtui.clock()))
        except ConfigError as problem:
            step_error.show(str(problem))
            return False
        return True
