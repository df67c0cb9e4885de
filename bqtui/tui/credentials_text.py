"""How an export authenticates, in one line for the screens (never a secret: kinds and emails)."""

from bqtui.core.config import AuthKind, ExportConfig


def auth_text(export: ExportConfig) -> str:
    """'a service-account key file (in the keyring), impersonating sa@…' and the like."""
    if export.auth == AuthKind.ADC:
        what = "Application Default Credentials (found at run time; bqtui stores none)"
    elif export.auth == AuthKind.CREDENTIALS_FILE:
        where = "the configuration: no secret" if export.credential_config else "the keyring"
        what = f"a credential file (in {where})"
    else:
        what = "a service-account key file (in the keyring)"
    return f"{what}, impersonating {export.impersonate}" if export.impersonate else what


def set_auth_hint(export: ExportConfig) -> str:
    """How to switch kinds: the CLI does it (the keyring entries change with it)."""
    return (
        f"To switch: bqtui set-auth {export.name} --key-file KEY.json | --adc | "
        "--credentials-file FILE.json [--impersonate SA_EMAIL]"
    )
