"""Step 2: where the data goes and what is exported; each field checked by the core's validators."""

from textual.app import ComposeResult
from textual.widgets import Checkbox, Collapsible, Input, RadioButton, RadioSet, Select

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
from bqtui.core.errors import ConfigError
from bqtui.core.ids import validate_dataset_id, validate_table_id
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.screens.wizard.step import WizardStep
from bqtui.tui.widgets.form_field import ErrorLine, FormField
from bqtui.tui.widgets.wrapping_checkbox import WrappingCheckbox

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
SETTLE_HELP = (
    "How long after a window ends it is exported, so rows that become visible late (async "
    "inserts, replication) are in it."
)


class DestinationStep(WizardStep):
    TITLE = "Destination"

    def __init__(self, draft: WizardDraft, **kwargs):
        super().__init__(**kwargs)
        self.defaults = draft

    def compose(self) -> ComposeResult:
        d = self.defaults
        yield FormField(
            "Dataset ID",
            Input(d.dataset_id, placeholder="posthog_exports", id="dataset-id"),
            "The bare dataset ID; the project comes from the key file.",
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
        yield ErrorLine(id="destination-error")

    def value(self, input_id: str) -> str:
        return self.query_one(f"#{input_id}", Input).value

    def commit(self, draft: WizardDraft) -> bool:
        existing = {e.name for e in self.app.store.list_exports()}

        def export_name(value: str) -> str:
            name = validate_export_name(value)
            if name in existing:
                raise ConfigError(
                    f'An export named "{name}" exists already; choose another name or remove '
                    f"it first (bqtui remove {name})."
                )
            return name

        parsers = {
            "dataset-id": validate_dataset_id,
            "table-id": validate_table_id,
            "start": lambda v: parse_timestamp(v, "start") if v.strip() else None,
            "team-id": parse_team_id,
            "settle": parse_settle_seconds,
            "include-events": parse_event_names,
            "exclude-events": parse_event_names,
            "export-name": export_name,
        }
        values, valid = {}, True
        for input_id, parse in parsers.items():
            try:
                values[input_id] = parse(self.value(input_id))
                error = None
            except ConfigError as problem:
                error, valid = str(problem), False
            self.query_one(f"#field-{input_id}", FormField).show_error(error)
        step_error = self.query_one("#destination-error", ErrorLine)
        step_error.show(None)
        if not valid:
            self.query("FormField.-invalid").first(FormField).control.focus()
            return False
        pressed = self.query_one("#model", RadioSet).pressed_button
        draft.dataset_id = values["dataset-id"]
        draft.table_id = values["table-id"]
        draft.model = Model(pressed.name if pressed else Model.EVENTS)
        draft.json_type = self.query_one("#json-type", Checkbox).value
        draft.interval = Interval(self.query_one("#interval", Select).value)
        draft.start = values["start"]
        draft.team_id = values["team-id"]
        draft.settle_seconds = values["settle"]
        draft.include_events = values["include-events"]
        draft.exclude_events = values["exclude-events"]
        draft.name = values["export-name"]
        draft.bigquery_endpoint = self.value("bigquery-endpoint").strip() or None
        try:  # what spans fields: include/exclude overlap, the endpoint's form
            validate_export(draft.export_config(self.app.clock()))
        except ConfigError as problem:
            step_error.show(str(problem))
            return False
        return True
