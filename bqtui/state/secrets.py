"""The keyring: the only place where service-account keys, ClickHouse passwords and the
Cloud Storage stage's HMAC secrets live.

Entries are named by the export's ``uid`` so renaming an export keeps its secrets.
"""

import contextlib
import json
import os
from pathlib import Path

import keyring
import keyring.errors
import keyring.util.platform_
from keyring.backends import fail

from bqtui.core.errors import SecretsError

SERVICE = "bqtui"
NO_BACKEND_HELP = (
    "No keyring backend is available, so bqtui cannot store the service-account key safely. "
    "On a desktop, install or unlock a Secret Service keyring (GNOME Keyring, KWallet) or use "
    "macOS Keychain / Windows Credential Locker. On a server or in cron, use a file keyring "
    "from keyrings.alt (installed with bqtui): set "
    "PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring (a file readable only by you) "
    "or PYTHON_KEYRING_BACKEND=keyrings.alt.file.EncryptedKeyring (asks for a password). "
    "See the README, section 'Servers and cron'."
)


def _key_entry(export_uid: str) -> str:
    return f"export:{export_uid}:service-account-key"


def _password_entry(export_uid: str) -> str:
    return f"export:{export_uid}:clickhouse-password"


def backend_name() -> str:
    backend = keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _backend_chosen_explicitly() -> bool:
    config = Path(keyring.util.platform_.config_root()) / "keyringrc.cfg"
    return bool(os.environ.get("PYTHON_KEYRING_BACKEND")) or config.exists()


def check_backend() -> None:
    """Raise ``SecretsError`` naming the options when no usable keyring exists.

    keyrings.alt's file backends register themselves as a last resort; a key must not land
    in a plain file unless the user chose that backend.
    """
    backend = keyring.get_keyring()
    children = getattr(backend, "backends", None)
    if isinstance(backend, fail.Keyring) or children == []:
        raise SecretsError(NO_BACKEND_HELP)
    if type(backend).__module__.startswith("keyrings.alt") and not _backend_chosen_explicitly():
        raise SecretsError(NO_BACKEND_HELP)


def _set(entry: str, secret: str) -> None:
    check_backend()
    try:
        keyring.set_password(SERVICE, entry, secret)
    except keyring.errors.KeyringError as error:
        # The error names the backend's problem, never the secret.
        raise SecretsError(
            f"The keyring ({backend_name()}) refused to store a secret: {error}. " + NO_BACKEND_HELP
        ) from None


LOCKED_HELP = (
    "Unlock it (log in to the desktop session, or unlock the login keyring), then run again; "
    "for cron and servers, use a file keyring instead (README, 'Servers and cron')."
)


def _get(entry: str) -> str | None:
    check_backend()
    try:
        return keyring.get_password(SERVICE, entry)
    except keyring.errors.KeyringLocked as error:
        raise SecretsError(
            f"The keyring ({backend_name()}) is locked: {error}. {LOCKED_HELP}"
        ) from None
    except Exception as error:  # noqa: BLE001 - backends raise their own (D-Bus, files …)
        raise SecretsError(
            f"The keyring ({backend_name()}) could not be read: {error}. Check that it runs "
            f"and is unlocked. {NO_BACKEND_HELP}"
        ) from None


def _delete(entry: str) -> None:
    # Already absent is fine: removing is idempotent.
    with contextlib.suppress(keyring.errors.PasswordDeleteError):
        keyring.delete_password(SERVICE, entry)


def store_service_account_key(export_uid: str, key_json: str) -> None:
    _set(_key_entry(export_uid), key_json)


def load_service_account_key(export_uid: str, export_name: str = "") -> str:
    secret = _get(_key_entry(export_uid))
    if secret is None:
        label = f'export "{export_name}"' if export_name else "this export"
        raise SecretsError(
            f"The service-account key of {label} is not in the keyring ({backend_name()}). "
            "It may have been stored under another keyring backend or user. Set it again: "
            f"bqtui set-key {export_name or 'NAME'} --key-file KEY.json"
        )
    return secret


def _credential_file_entry(export_uid: str) -> str:
    return f"export:{export_uid}:google-credential-file"


def store_credential_file(export_uid: str, credential_json: str) -> None:
    """A Google credential file that holds a secret (a refresh token, a client secret)."""
    _set(_credential_file_entry(export_uid), credential_json)


def load_credential_file(export_uid: str, export_name: str = "") -> str:
    secret = _get(_credential_file_entry(export_uid))
    if secret is None:
        label = f'export "{export_name}"' if export_name else "this export"
        raise SecretsError(
            f"The credential file of {label} is not in the keyring ({backend_name()}). "
            "It may have been stored under another keyring backend or user. Set it again: "
            f"bqtui set-auth {export_name or 'NAME'} --credentials-file FILE.json"
        )
    return secret


def delete_credential_file(export_uid: str) -> None:
    _delete(_credential_file_entry(export_uid))


def delete_service_account_key(export_uid: str) -> None:
    _delete(_key_entry(export_uid))


def _credentials_entry(export_uid: str) -> str:
    return f"export:{export_uid}:clickhouse-credentials"


def store_clickhouse_secrets(export_uid: str, credentials: dict[str, str]) -> None:
    """The ClickHouse DSN's credentials (password, access token …), as one JSON entry; they
    replace whatever was stored before."""
    _set(_credentials_entry(export_uid), json.dumps(credentials))
    _delete(_password_entry(export_uid))  # stored by bqtui before 0.2


def load_clickhouse_secrets(export_uid: str, export_name: str = "") -> dict[str, str]:
    stored = _get(_credentials_entry(export_uid))
    if stored is not None:
        try:
            credentials = json.loads(stored)
        except json.JSONDecodeError:
            credentials = None
        if not isinstance(credentials, dict):
            label = f'export "{export_name}"' if export_name else "this export"
            raise SecretsError(
                f"The ClickHouse credentials stored in the keyring for {label} are damaged. "
                f"Set them again: bqtui set-source {export_name or 'NAME'} --source-dsn DSN"
            )
        return credentials
    password = _get(_password_entry(export_uid))  # stored by bqtui before 0.2
    return {"password": password} if password is not None else {}


def _stage_hmac_entry(export_uid: str) -> str:
    return f"export:{export_uid}:stage-hmac-secret"


def store_stage_hmac_secret(export_uid: str, secret: str) -> None:
    """The secret of the HMAC key ClickHouse writes the Cloud Storage stage with (its access
    ID is in the export's configuration)."""
    _set(_stage_hmac_entry(export_uid), secret)


def find_stage_hmac_secret(export_uid: str) -> str | None:
    """The stage's HMAC secret, or None when the keyring holds none for this export."""
    return _get(_stage_hmac_entry(export_uid))


def load_stage_hmac_secret(export_uid: str, export_name: str = "") -> str:
    secret = find_stage_hmac_secret(export_uid)
    if secret is None:
        label = f'export "{export_name}"' if export_name else "this export"
        raise SecretsError(
            f"The Cloud Storage stage's HMAC secret of {label} is not in the keyring "
            f"({backend_name()}). It may have been stored under another keyring backend or "
            f"user. Set it again: bqtui set-stage {export_name or 'NAME'} --stage gs://BUCKET/"
            "PREFIX --stage-hmac-id ID --stage-hmac-secret-file FILE"
        )
    return secret


def delete_stage_hmac_secret(export_uid: str) -> None:
    _delete(_stage_hmac_entry(export_uid))


def delete_export_secrets(export_uid: str) -> None:
    check_backend()
    _delete(_key_entry(export_uid))
    _delete(_password_entry(export_uid))
    _delete(_credentials_entry(export_uid))
    _delete(_credential_file_entry(export_uid))
    _delete(_stage_hmac_entry(export_uid))
