"""Creating and removing an export: SQLite and the keyring together, or not at all.

Both faces (the CLI and the TUI wizard) call these, so an export is never stored without its
key, nor a key left behind without its export.
"""

from . import secrets
from .config import ExportConfig, validate_export
from .errors import ConfigError, SecretsError
from .keyfile import ServiceAccountKey
from .store import Store


def create_export(
    store: Store,
    config: ExportConfig,
    key: ServiceAccountKey,
    clickhouse_password: str | None = None,
) -> ExportConfig:
    """Validate and store the export and its secrets; a keyring failure stores nothing."""
    config = validate_export(config)
    if store.find_export(config.name):
        raise ConfigError(
            f'An export named "{config.name}" exists already; choose another name or remove '
            f"it first (bqtui remove {config.name})."
        )
    secrets.check_backend()
    export = store.add_export(config)
    try:
        secrets.store_service_account_key(export.uid, key.to_json())
        if clickhouse_password:
            secrets.store_clickhouse_password(export.uid, clickhouse_password)
    except SecretsError:
        store.remove_export(export.id)  # nothing half written
        raise
    return export


def remove_export(store: Store, export: ExportConfig) -> None:
    """Forget the export: its keyring entries, then its config and history."""
    secrets.delete_export_secrets(export.uid)
    store.remove_export(export.id)
