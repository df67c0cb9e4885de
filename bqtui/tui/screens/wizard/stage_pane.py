"""The destination step's optional Cloud Storage stage: gs://BUCKET/PREFIX and the HMAC key
ClickHouse writes it with. The secret is typed into a password input and kept in memory only,
until the export is created and it goes to the keyring."""

from dataclasses import dataclass, field
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Collapsible, Input, Static

from bqtui.core.config import ExportConfig, validate_export
from bqtui.core.errors import ConfigError
from bqtui.core.stage_uri import EXAMPLE, parse_hmac_id, parse_stage_uri
from bqtui.ops.export_setup import typed_hmac_secret
from bqtui.tui.screens.wizard.draft import WizardDraft
from bqtui.tui.widgets.form_field import FieldParser, FormField

STAGE_TITLE = "Cloud Storage stage (optional)"
STAGE_HELP = (
    "ClickHouse writes the Parquet there and BigQuery loads it: rows never pass through this "
    "machine. Leave empty to upload from here."
)
KEY_WITHOUT_STAGE = (
    "The HMAC access ID and secret go with a stage gs://BUCKET/PREFIX; type the stage too, or "
    "leave them empty."
)
NO_SECRET = (
    "A stage needs the secret of the HMAC key the access ID names (it goes to the keyring, "
    "never to bqtui's database)."
)


def no_hmac_id() -> ConfigError:
    """The core's own message for a stage without its HMAC key's access ID (as `bqtui add`'s)."""
    try:
        validate_export(
            ExportConfig(name="stage", dataset_id="stage", table_id="stage", stage=EXAMPLE)
        )
    except ConfigError as problem:
        return problem
    return ConfigError(NO_SECRET)  # never: the core refuses a stage without its access ID


@dataclass(frozen=True)
class StageChoice:
    """The stage typed: all three parts, or none (``uri`` None: rows pass through bqtui)."""

    uri: str | None = None
    hmac_id: str | None = None
    secret: str = field(default="", repr=False)


class StagePane(Vertical):
    """Folded unless the draft has a stage; unfolded to show an error under its fields."""

    DEFAULT_CSS = "StagePane { height: auto; }"

    def __init__(self, draft: WizardDraft, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.defaults = draft

    def compose(self) -> ComposeResult:
        d = self.defaults
        with Collapsible(title=STAGE_TITLE, collapsed=not d.stage, id="stage"):
            yield Static(STAGE_HELP, classes="step-intro", id="stage-help", markup=False)
            yield FormField(
                "Stage URI",
                Input(d.stage or "", placeholder=EXAMPLE, id="stage-uri"),
                "gs://BUCKET/PREFIX: one folder, bqtui's files only.",
                id="field-stage-uri",
            )
            yield FormField(
                "HMAC access ID",
                Input(d.stage_hmac_id or "", placeholder="GOOG1E…", id="stage-hmac-id"),
                "The key ClickHouse writes with (Cloud Storage > Settings > Interoperability).",
                id="field-stage-hmac-id",
            )
            yield FormField(
                "HMAC secret",
                Input(d.stage_secret, password=True, id="stage-hmac-secret"),
                "Never shown; kept in the keyring.",
                id="field-stage-hmac-secret",
            )

    def parse(self, fields: FieldParser) -> StageChoice:
        """Each part checked under its field (``fields.ok`` False on a problem)."""

        def typed(input_id: str) -> bool:
            return bool(self.query_one(f"#{input_id}", Input).value.strip())

        has_stage = typed("stage-uri")
        has_key = typed("stage-hmac-id") or typed("stage-hmac-secret")

        def uri(value: str) -> str | None:
            if not value.strip():
                if has_key:
                    raise ConfigError(KEY_WITHOUT_STAGE)
                return None
            return parse_stage_uri(value)

        def hmac_id(value: str) -> str | None:
            if not value.strip():
                if has_stage:
                    raise no_hmac_id()
                return None
            return parse_hmac_id(value)

        def secret(value: str) -> str:
            if not value.strip():
                if has_stage:
                    raise ConfigError(NO_SECRET)
                return ""
            return typed_hmac_secret(value)

        before = fields.ok
        fields.ok = True
        choice = StageChoice(
            fields.parse("stage-uri", uri, None),
            fields.parse("stage-hmac-id", hmac_id, None),
            fields.parse("stage-hmac-secret", secret, ""),
        )
        if not fields.ok:
            self.query_one(Collapsible).collapsed = False  # its messages must be seen
        fields.ok = fields.ok and before
        return choice if choice.uri else StageChoice()
