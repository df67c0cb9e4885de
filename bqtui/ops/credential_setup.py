"""How an export authenticates: the user's choice, validated, and where each part is kept.

A key or a credential file holding a secret goes to the keyring; a credential file without
secrets (workload identity) and the impersonated account go to the export's configuration;
ADC keeps nothing.
"""

from dataclasses import dataclass

from bqtui.core.config import (
    AuthKind,
    ExportConfig,
    service_account_project,
    validate_impersonate,
)
from bqtui.core.errors import ConfigError
from bqtui.destination.credential_files import CredentialFile, load_credential_file
from bqtui.destination.credentials import GoogleCredentials, resolve_credentials
from bqtui.destination.keyfile import ServiceAccountKey, load_key_file
from bqtui.state import secrets


@dataclass(frozen=True)
class CredentialChoice:
    auth: AuthKind
    key: ServiceAccountKey | None = None
    file: CredentialFile | None = None
    impersonate: str | None = None

    @classmethod
    def from_paths(
        cls,
        *,
        key_file: str | None = None,
        adc: bool = False,
        credentials_file: str | None = None,
        impersonate: str | None = None,
    ) -> "CredentialChoice":
        """From the flags: exactly one of a key file, ADC or a credential file."""
        given = [bool(key_file), adc, bool(credentials_file)]
        if sum(given) != 1:
            raise ConfigError(
                "Choose how the export authenticates: exactly one of --key-file KEY.json, "
                "--adc (this machine's Google login or workload identity) or "
                "--credentials-file FILE.json."
            )
        email = validate_impersonate(impersonate) if impersonate else None
        if key_file:
            return cls(AuthKind.KEY, key=load_key_file(key_file), impersonate=email)
        if credentials_file:
            file = load_credential_file(credentials_file)
            return cls(AuthKind.CREDENTIALS_FILE, file=file, impersonate=email)
        return cls(AuthKind.ADC, impersonate=email)

    @property
    def default_project(self) -> str | None:
        """The project the credential names (a key's, an impersonated service account's, a
        file's quota project), if any; ADC may find one at run time."""
        if self.key is not None:
            return self.key.project_id
        target = self.impersonate or (self.file.impersonation_target if self.file else None)
        quota = self.file.info.get("quota_project_id") if self.file else None
        return service_account_project(target) or (quota if isinstance(quota, str) else None)

    def configured(self, config: ExportConfig) -> ExportConfig:
        """``config`` authenticating this way (what lives in the database)."""
        file = self.file
        if file is not None and not (config.project_id or self.default_project):
            raise ConfigError(
                f"The credential file ({file.description}) names no Google Cloud project to "
                "run BigQuery jobs in: give one with --project-id PROJECT."
            )
        return config.with_changes(
            auth=self.auth,
            impersonate=self.impersonate,
            credential_config=file.to_json() if file and not file.holds_secret else None,
        )

    def store_secrets(self, export_uid: str) -> None:
        """Keep this choice's secret in the keyring and forget the other kinds' entries."""
        if self.key is not None:
            secrets.store_service_account_key(export_uid, self.key.to_json())
        else:
            secrets.delete_service_account_key(export_uid)
        if self.file is not None and self.file.holds_secret:
            secrets.store_credential_file(export_uid, self.file.to_json())
        else:
            secrets.delete_credential_file(export_uid)

    def resolve(self, project_id: str | None = None, *, stage: bool = False) -> GoogleCredentials:
        """The credentials this choice gives (before the export exists, e.g. for the
        wizard's permission check); ``stage``: with Cloud Storage's read scope too."""
        return resolve_credentials(
            self.auth,
            key_info=self.key.info if self.key else None,
            credential_file=self.file,
            impersonate=self.impersonate,
            project_id=project_id,
            stage=stage,
        )

    @property
    def summary(self) -> str:
        """One line on what was stored where."""
        then = f", impersonating {self.impersonate}" if self.impersonate else ""
        if self.key is not None:
            return (
                f"Key for {self.key.client_email} stored in the keyring "
                f"({secrets.backend_name()}){then}."
            )
        if self.file is not None:
            where = (
                f"stored in the keyring ({secrets.backend_name()})"
                if self.file.holds_secret
                else "kept in the export's configuration (it holds no secret)"
            )
            return f"Credential file, {self.file.description}, {where}{then}."
        return (
            "Authenticates with Application Default Credentials found at run time; bqtui "
            f"stores no credential{then}."
        )
