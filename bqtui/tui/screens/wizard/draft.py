"""What the wizard has gathered so far, and creating the export from it.

``create_export`` makes the same calls as ``bqtui add`` (``cli.cmd_add``), in the same order,
so an export made in the TUI is exactly one made on the command line.
"""

from dataclasses import dataclass
from datetime import datetime

from ... import secrets
from ...config import ExportConfig, Interval, Model, validate_export
from ...errors import ConfigError, SecretsError
from ...keyfile import ServiceAccountKey
from ...permission_check import CheckReport
from ...schedule import first_window_start
from ...store import Store


@dataclass
class WizardDraft:
    key: ServiceAccountKey | None = None
    name: str = ""
    dataset_id: str = ""
    table_id: str = ""
    model: Model = Model.EVENTS
    json_type: bool = False
    interval: Interval = Interval.HOUR
    start: datetime | None = None  # None: the next interval boundary
    team_id: int = 1
    include_events: tuple[str, ...] = ()
    exclude_events: tuple[str, ...] = ()
    bigquery_endpoint: str | None = None
    source_dsn: str = ""  # without its password
    source_password: str | None = None  # for the keyring only
    report: CheckReport | None = None  # the last permission check

    def export_config(self, now: datetime) -> ExportConfig:
        return ExportConfig(
            name=self.name,
            dataset_id=self.dataset_id,
            table_id=self.table_id,
            model=self.model,
            interval=self.interval,
            json_type=self.json_type,
            team_id=self.team_id,
            source_dsn=self.source_dsn,
            bigquery_endpoint=self.bigquery_endpoint,
            include_events=self.include_events,
            exclude_events=self.exclude_events,
            start_at=first_window_start(now, self.interval, self.start),
        )


def create_export(store: Store, draft: WizardDraft, now: datetime) -> ExportConfig:
    """Store the export and its secrets, or nothing: a keyring failure removes the export again."""
    assert draft.key is not None, "the key step comes first"
    config = validate_export(draft.export_config(now))
    if store.find_export(config.name):
        raise ConfigError(
            f'An export named "{config.name}" exists already; choose another name or remove '
            f"it first (bqtui remove {config.name})."
        )
    secrets.check_backend()
    export = store.add_export(config)
    try:
        secrets.store_service_account_key(export.uid, draft.key.to_json())
        if draft.source_password:
            secrets.store_clickhouse_password(export.uid, draft.source_password)
    except SecretsError:
        store.remove_export(export.id)  # nothing half written
        raise
    return export
