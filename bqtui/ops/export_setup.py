"""Creating and removing an export: SQLite and the keyring together, or not at all.

Both faces (the CLI and the TUI wizard) call these, so an export is never stored without its
key, nor a key left behind without its export.
"""

import time

from bqtui.core.config import AuthKind, ExportConfig, validate_export
from bqtui.core.errors import ConfigError, ExportBusy, SecretsError
from bqtui.destination.keyfile import ServiceAccountKey
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.state import secrets
from bqtui.state.locks import live_holder, request_cancel
from bqtui.state.store import Store


def create_export(
    store: Store,
    config: ExportConfig,
    credentials: CredentialChoice | ServiceAccountKey,
    clickhouse_secrets: dict[str, str] | None = None,
) -> ExportConfig:
    """Validate and store the export and its secrets; a keyring failure stores nothing."""
    if isinstance(credentials, ServiceAccountKey):
        credentials = CredentialChoice(AuthKind.KEY, key=credentials)
    config = validate_export(credentials.configured(config))
    if store.find_export(config.name):
        raise ConfigError(
            f'An export named "{config.name}" exists already; choose another name or remove '
            f"it first (bqtui remove {config.name})."
        )
    secrets.check_backend()
    export = store.add_export(config)
    try:
        credentials.store_secrets(export.uid)
        if clickhouse_secrets:
            secrets.store_clickhouse_secrets(export.uid, clickhouse_secrets)
    except SecretsError:
        store.remove_export(export.saved_id)  # nothing half written
        raise
    return export


REMOVE_FORCE_WAIT = 120.0  # seconds for a running export to reach a safe point


def remove_export(
    store: Store, export: ExportConfig, *, force: bool = False, wait: float = REMOVE_FORCE_WAIT
) -> None:
    """Forget the export: its keyring entries, then its config and history.

    A running export is not pulled from under its runner: refused, or with ``force`` its run
    is asked to stop at the next safe point (nothing half written) and awaited first.
    """
    holder = live_holder(store, export.saved_id)
    if holder is not None:
        if not force:
            raise ExportBusy(
                f'Export "{export.name}" is running now ({holder.describe()}). Wait for the run '
                f"to finish, or stop it at a safe point and remove: bqtui remove {export.name} "
                "--force"
            )
        request_cancel(store, export.saved_id)
        deadline = time.monotonic() + wait
        while live_holder(store, export.saved_id) is not None:
            if time.monotonic() > deadline:
                raise ExportBusy(
                    f'Export "{export.name}" is still running after {wait:.0f} s (a BigQuery '
                    "job it waits for has not finished); nothing was removed. Try again later."
                )
            time.sleep(0.2)
    secrets.delete_export_secrets(export.uid)
    store.remove_export(export.saved_id)
