"""An export's Google credentials, from its configuration and the keyring, at run time."""

from bqtui.core.config import AuthKind, ExportConfig
from bqtui.core.errors import ConfigError, SecretsError
from bqtui.destination.credential_files import parse_credential_text
from bqtui.destination.credentials import GoogleCredentials, resolve_credentials
from bqtui.destination.keyfile import parse_key_text
from bqtui.state import secrets


def export_credentials(export: ExportConfig) -> GoogleCredentials:
    """What the export's BigQuery calls run with (able to read its Cloud Storage stage, if it
    has one); nothing is fetched until a call needs it (ADC discovery aside)."""
    if export.auth == AuthKind.KEY:
        key = _stored_key(export)
        return resolve_credentials(
            AuthKind.KEY,
            key_info=key,
            impersonate=export.impersonate,
            project_id=export.project_id,
            stage=bool(export.stage),
        )
    if export.auth == AuthKind.CREDENTIALS_FILE:
        text = export.credential_config or secrets.load_credential_file(export.uid, export.name)
        try:
            file = parse_credential_text(text)
        except ConfigError as error:
            raise SecretsError(
                f'The credential file stored for export "{export.name}" no longer reads as one '
                f"({error}). Set it again: bqtui set-auth {export.name} --credentials-file FILE"
            ) from None
        return resolve_credentials(
            AuthKind.CREDENTIALS_FILE,
            credential_file=file,
            impersonate=export.impersonate,
            project_id=export.project_id,
            stage=bool(export.stage),
        )
    return resolve_credentials(
        AuthKind.ADC,
        impersonate=export.impersonate,
        project_id=export.project_id,
        stage=bool(export.stage),
    )


def _stored_key(export: ExportConfig) -> dict:
    text = secrets.load_service_account_key(export.uid, export.name)
    try:
        return parse_key_text(text).info
    except ConfigError as error:
        reason = str(error).split(". ")[0]
        raise SecretsError(
            f'The service-account key stored in the keyring for export "{export.name}" no '
            f"longer reads as a key ({reason}). Set it again: bqtui set-key {export.name} "
            "--key-file KEY.json"
        ) from None
