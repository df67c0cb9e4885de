"""Creating and removing an export: SQLite and the keyring together, or not at all.

Both faces (the CLI and the TUI wizard) call these, so an export is never stored without its
key, nor a key left behind without its export.
"""

import contextlib
import time
from pathlib import Path

from bqtui.core.config import AuthKind, ExportConfig, validate_export
from bqtui.core.errors import BqtuiError, ConfigError, ExportBusy, SecretsError
from bqtui.destination.keyfile import ServiceAccountKey
from bqtui.destination.small_files import Problem, read_small_text_file
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.pipeline.cloud_stage import ExportStage
from bqtui.state import secrets
from bqtui.state.locks import live_holder, request_cancel
from bqtui.state.store import Store

NO_STAGE_SECRET = (
    "--stage needs the secret of the HMAC key --stage-hmac-id names: give "
    "--stage-hmac-secret-file FILE, or run on a terminal to be asked for it."
)
# A Cloud Storage HMAC secret is 40 characters; a file far larger is the wrong file.
MAX_HMAC_SECRET_BYTES = 4096


def create_export(
    store: Store,
    config: ExportConfig,
    credentials: CredentialChoice | ServiceAccountKey,
    clickhouse_secrets: dict[str, str] | None = None,
    stage_secret: str | None = None,
) -> ExportConfig:
    """Validate and store the export and its secrets; a keyring failure stores nothing.

    ``stage_secret`` is the secret of the HMAC key ``config.stage_hmac_id`` names, required
    with ``config.stage``."""
    if isinstance(credentials, ServiceAccountKey):
        credentials = CredentialChoice(AuthKind.KEY, key=credentials)
    config = validate_export(credentials.configured(config))
    if config.stage and not stage_secret:
        raise ConfigError(NO_STAGE_SECRET)
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
        if config.stage and stage_secret:
            secrets.store_stage_hmac_secret(export.uid, stage_secret)
    except SecretsError:
        # Nothing half written: no export without its secrets, no secret without its export.
        _forget_secrets(export.uid)
        store.remove_export(export.saved_id)
        raise
    return export


REMOVE_FORCE_WAIT = 120.0  # seconds for a running export to reach a safe point


def remove_export(
    store: Store, export: ExportConfig, *, force: bool = False, wait: float = REMOVE_FORCE_WAIT
) -> str | None:
    """Forget the export: its stage's leftover objects, its keyring entries, then its config
    and history; return a note on the stage's objects, if any.

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
    note = delete_stage_objects(export)  # with the HMAC secret, before it goes
    secrets.delete_export_secrets(export.uid)
    store.remove_export(export.saved_id)
    return note


def delete_stage_objects(export: ExportConfig) -> str | None:
    """Best effort: what runs left in the export's Cloud Storage stage goes with it. Returns
    a line for the user (None: no stage, nothing there)."""
    if not export.stage:
        return None
    where = f"{export.stage.rstrip('/')}/{export.uid}/"
    try:
        stage = ExportStage.of(export)
        if stage is None:
            return None
        deleted = stage.client.delete_prefix(stage.location.export_prefix(export.uid))
    except BqtuiError as error:
        return (
            f"The export's Cloud Storage objects under {where} were not deleted ({error}); "
            "delete them, or let the bucket's lifecycle rule do it."
        )
    return f"Deleted {deleted} Cloud Storage object(s) under {where}." if deleted else None


def _forget_secrets(export_uid: str) -> None:
    # Best effort while another error is on its way to the user: that error is the news.
    with contextlib.suppress(Exception):
        secrets.delete_export_secrets(export_uid)


# -- the Cloud Storage stage ----------------------------------------------------------------


def set_export_stage(
    store: Store,
    export: ExportConfig,
    stage: str,
    hmac_id: str | None = None,
    hmac_secret: str | None = None,
) -> ExportConfig:
    """Point the export at a stage, with a new HMAC key (both parts) or the one it has.

    The keyring and the database change together: if the database refuses, the keyring
    gets its previous secret back."""
    if (hmac_id is None) != (hmac_secret is None):
        raise ConfigError(NO_STAGE_SECRET)
    if hmac_secret is None:
        _require_kept_key(export)
    changed = validate_export(
        export.with_changes(stage=stage, stage_hmac_id=hmac_id or export.stage_hmac_id)
    )
    if hmac_secret is None:
        return store.update_export(changed)
    secrets.check_backend()
    previous = secrets.find_stage_hmac_secret(export.uid)
    secrets.store_stage_hmac_secret(export.uid, hmac_secret)
    try:
        return store.update_export(changed)
    except BaseException:
        with contextlib.suppress(Exception):
            if previous is None:
                secrets.delete_stage_hmac_secret(export.uid)
            else:
                secrets.store_stage_hmac_secret(export.uid, previous)
        raise


def _require_kept_key(export: ExportConfig) -> None:
    if not export.stage_hmac_id:
        raise ConfigError(
            f'Export "{export.name}" has no HMAC key for a stage yet: add --stage-hmac-id ID '
            "and its secret (--stage-hmac-secret-file FILE, or typed when asked)."
        )
    secrets.load_stage_hmac_secret(export.uid, export.name)  # says how to set it if missing


def remove_export_stage(store: Store, export: ExportConfig) -> ExportConfig:
    """No stage: the database first (a failure there changes nothing), then the secret."""
    secrets.check_backend()
    changed = store.update_export(export.with_changes(stage=None, stage_hmac_id=None))
    secrets.delete_stage_hmac_secret(export.uid)
    return changed


def load_hmac_secret_file(path: str | Path) -> str:
    """The HMAC secret in ``path``: one line, its line end dropped, or a ``ConfigError``."""
    text = read_small_text_file(path, MAX_HMAC_SECRET_BYTES, _secret_file_problem)
    secret = _without_line_end(text)
    shown = Path(path).expanduser()
    if not secret:
        raise ConfigError(
            f"The HMAC secret file {shown} is empty; put the secret of the key --stage-hmac-id "
            "names in it, on one line."
        )
    if any(character.isspace() for character in secret):
        raise ConfigError(
            f"The HMAC secret file {shown} holds more than a secret (spaces or several lines); "
            "keep only the secret of the key --stage-hmac-id names, on one line."
        )
    return secret


def typed_hmac_secret(text: str) -> str:
    """The secret typed at a prompt (pasting may add spaces around it), or a ``ConfigError``."""
    secret = text.strip()
    if not secret:
        raise ConfigError(
            "No HMAC secret was typed: run again and paste the secret of the key "
            "--stage-hmac-id names, or give --stage-hmac-secret-file FILE."
        )
    if any(character.isspace() for character in secret):
        raise ConfigError(
            "The HMAC secret typed holds spaces; paste only the secret of the key "
            "--stage-hmac-id names (40 characters)."
        )
    if len(secret.encode("utf-8", "surrogatepass")) > MAX_HMAC_SECRET_BYTES:
        raise ConfigError(
            f"The HMAC secret typed is over {MAX_HMAC_SECRET_BYTES // 1024} KB; paste only the "
            "secret of the key --stage-hmac-id names (40 characters)."
        )
    return secret


def _without_line_end(text: str) -> str:
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _secret_file_problem(problem: Problem, path: Path, detail: str) -> ConfigError:
    choose = "--stage-hmac-secret-file takes the file that holds only the HMAC key's secret."
    message = {
        "missing": f"HMAC secret file not found: {path}. Check the path.",
        "unreadable": f"Cannot read the HMAC secret file {path}: {detail}.",
        "folder": f"{path} is a folder; {choose}",
        "special": f"{path} is not a regular file (a device, pipe or socket); {choose}",
        "too_large": (
            f"The HMAC secret file {path} is over {MAX_HMAC_SECRET_BYTES // 1024} KB; an HMAC "
            f"secret is 40 characters. {choose}"
        ),
        "not_text": f"The HMAC secret file {path} is not text (not UTF-8); {choose}",
    }[problem]
    return ConfigError(message)
