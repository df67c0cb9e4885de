"""What the wizard has gathered so far: the export's config, its credentials and password to
be."""

from dataclasses import dataclass, field
from datetime import datetime

from bqtui.core.config import (
    DEFAULT_SETTLE_SECONDS,
    ExportConfig,
    Interval,
    Model,
    service_account_project,
)
from bqtui.core.cost import WriteMode
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.ops.permission_check import CheckReport
from bqtui.state.windows import first_window_start


@dataclass
class WizardDraft:
    credentials: CredentialChoice | None = None  # set by the first step (never left empty)
    project_id: str | None = None  # None: the key's or the impersonated account's project
    name: str = ""
    dataset_id: str = ""
    table_id: str = ""
    model: Model = Model.EVENTS
    json_type: bool = False
    write_mode: WriteMode = WriteMode.MERGE  # persons and sessions only
    interval: Interval = Interval.HOUR
    start: datetime | None = None  # None: the next interval boundary
    team_id: int = 1
    settle_seconds: int = DEFAULT_SETTLE_SECONDS
    include_events: tuple[str, ...] = ()
    exclude_events: tuple[str, ...] = ()
    bigquery_endpoint: str | None = None
    source_dsn: str = ""  # without its password
    source_secrets: dict = field(default_factory=dict, repr=False)  # the DSN's: keyring only
    stage: str | None = None  # gs://BUCKET/PREFIX ClickHouse writes to; None: rows pass here
    stage_hmac_id: str | None = None
    # The stage's HMAC secret: in memory only, until create_export puts it in the keyring.
    stage_secret: str = field(default="", repr=False)
    report: CheckReport | None = None  # the last permission check

    @property
    def default_project(self) -> str | None:
        """The project used when none is typed: the key's, else the impersonated account's."""
        choice = self.credentials
        if choice is None:
            return None
        return choice.default_project or service_account_project(choice.impersonate)

    def export_config(self, now: datetime) -> ExportConfig:
        config = ExportConfig(
            name=self.name,
            dataset_id=self.dataset_id,
            table_id=self.table_id,
            model=self.model,
            interval=self.interval,
            json_type=self.json_type,
            team_id=self.team_id,
            settle_seconds=self.settle_seconds,
            source_dsn=self.source_dsn,
            bigquery_endpoint=self.bigquery_endpoint,
            include_events=self.include_events,
            exclude_events=self.exclude_events,
            project_id=self.project_id,
            start_at=first_window_start(now, self.interval, self.start),
            write_mode=self.write_mode if self.model.is_mutable else WriteMode.MERGE,
            stage=self.stage,
            stage_hmac_id=self.stage_hmac_id,
        )
        # How it authenticates belongs to the export too (the check names the credential by it).
        return self.credentials.configured(config) if self.credentials else config
