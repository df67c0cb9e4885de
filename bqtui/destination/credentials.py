"""The principal an export runs as: Google credentials of every kind bqtui accepts.

A service-account key, Application Default Credentials or a credential configuration file,
each optionally impersonating a service account. Access tokens live in memory only; every way
a credential can fail to give a token becomes one sentence that says what to do.
"""

import base64
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import google.auth
import google.auth.transport.requests
import requests
from google.auth import _cloud_sdk, aws, identity_pool, impersonated_credentials, pluggable
from google.auth import credentials as auth_credentials
from google.auth import exceptions as auth_errors
from google.auth import external_account_authorized_user as workforce
from google.auth.compute_engine import _metadata
from google.auth.compute_engine import credentials as compute_engine
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from bqtui.core.config import AuthKind, service_account_project
from bqtui.core.errors import CredentialFileError, CredentialProblem
from bqtui.destination.credential_files import (
    MAX_CREDENTIAL_FILE_BYTES,
    CredentialFile,
    file_problem,
    parse_credential_text,
)
from bqtui.destination.permissions import describe_token_error
from bqtui.destination.small_files import read_small_text_file

BIGQUERY_SCOPE = "https://www.googleapis.com/auth/bigquery"
# An export with a Cloud Storage stage: BigQuery's load job reads the gs:// objects with the
# caller's token, and Google refuses a token scoped to BigQuery only.
STORAGE_READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
# Asking IAM for an impersonated token needs this scope on the caller's token.
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"
# Contract (issue 17): where user logins refresh and where impersonated tokens come from, for
# tests and private deployments. google-auth ignores a user file's own token_uri on purpose.
OAUTH_TOKEN_ENDPOINT_VARIABLE = "BQTUI_OAUTH_TOKEN_ENDPOINT"
IAM_CREDENTIALS_ENDPOINT_VARIABLE = "BQTUI_IAM_CREDENTIALS_ENDPOINT"
ADC_VARIABLE = "GOOGLE_APPLICATION_CREDENTIALS"
ADC_LOGIN = "gcloud auth application-default login"
AWS_SUBJECT_TOKEN_TYPE = "urn:ietf:params:aws:token-type:aws4_request"


def no_adc_message() -> str:
    return (
        "No Application Default Credentials were found on this machine (no credential file, "
        f"and no metadata server answered at {_metadata_host()}): run `{ADC_LOGIN}`, set "
        "GOOGLE_APPLICATION_CREDENTIALS to a credential file, or run on a Google Cloud machine "
        "with a service account attached."
    )


PrincipalKind = Literal["service_account", "user", "workload_identity", "metadata"]


@dataclass(frozen=True)
class Principal:
    """Who Google sees, as far as is known before (and after) a token is issued."""

    kind: PrincipalKind
    email: str | None = None
    origin: str = "key file"  # how bqtui found it: key file, ADC, credentials file
    pool: str | None = (
        None  # workload identity: projects/N/locations/global/workloadIdentityPools/P
    )

    @property
    def label(self) -> str:
        if self.email:
            return self.email
        return {
            "service_account": "the service account",
            "user": "the Google user login",
            "workload_identity": f"workload identity pool {self.pool or '(unknown)'}",
            "metadata": "the metadata server's service account",
        }[self.kind]

    @property
    def member(self) -> str:
        """The principal as an IAM policy member, for the gcloud line of a fix."""
        if self.kind == "workload_identity":
            return f"principalSet://iam.googleapis.com/{self.pool}/*"
        prefix = "user" if self.kind == "user" else "serviceAccount"
        return f"{prefix}:{self.email or 'PRINCIPAL'}"


@dataclass
class GoogleCredentials:
    """What every BigQuery call of an export runs with."""

    credentials: auth_credentials.Credentials
    principal: Principal
    project_id: str | None
    caller: Principal | None = None  # when impersonating: who asks for the token
    caller_credentials: auth_credentials.Credentials | None = None
    endpoint_note: str = ""  # where a token endpoint that did not answer lives

    @property
    def runs_as(self) -> str:
        """'runs as X (ADC)' or 'runs as SA, impersonated by Y (ADC)'."""
        if self.caller is not None:
            return (
                f"runs as {self.principal.label}, impersonated by {self.caller.label} "
                f"({self.caller.origin})"
            )
        return f"runs as {self.principal.label} ({self.principal.origin})"

    @property
    def service_account_email(self) -> str:
        """The principal, for messages that name who was denied."""
        return self.principal.label

    def refresh(self) -> None:
        """Obtain a token now (the caller's first when impersonating), or raise
        ``CredentialProblem`` with one sentence saying what to do."""
        request = google.auth.transport.requests.Request()
        if self.caller is not None and self.caller_credentials is not None:
            self._refresh_one(self.caller_credentials, request, as_caller=True)
            self.caller = learned_principal(self.caller, self.caller_credentials)
        self._refresh_one(self.credentials, request, as_caller=False)
        self.principal = learned_principal(self.principal, self.credentials)

    def _refresh_one(self, credentials, request, *, as_caller: bool) -> None:
        try:
            credentials.refresh(request)
        except (auth_errors.GoogleAuthError, requests.exceptions.RequestException) as error:
            raise CredentialProblem(self.describe(error, as_caller=as_caller)) from None

    def describe(self, error: Exception, *, as_caller: bool = False) -> str:
        """Why no token came, in one sentence, for this principal."""
        return describe_credential_error(error, self, as_caller=as_caller)


# -- building ---------------------------------------------------------------------------------


def resolve_credentials(
    auth: AuthKind,
    *,
    key_info: dict[str, Any] | None = None,
    credential_file: CredentialFile | None = None,
    impersonate: str | None = None,
    project_id: str | None = None,
    stage: bool = False,
) -> GoogleCredentials:
    """The credentials an export runs with. Nothing is fetched here but ADC discovery.

    ``stage``: the export loads from a Cloud Storage stage, so its token also needs to read
    Cloud Storage."""
    job_scopes = export_scopes(stage=stage)
    scopes = [CLOUD_PLATFORM_SCOPE] if impersonate else job_scopes
    if auth == AuthKind.KEY:
        if key_info is None:
            raise ValueError("a key export needs its key")
        resolved = _from_file(CredentialFile("service_account", key_info), scopes, "key file")
    elif auth == AuthKind.ADC:
        resolved = _application_default(scopes)
    else:
        if credential_file is None:
            raise ValueError("a credentials-file export needs its file")
        resolved = _from_file(credential_file, scopes, "credentials file")
    if impersonate:
        resolved = _impersonating(resolved, impersonate, job_scopes)
    resolved.project_id = project_id or resolved.project_id or _project_of(resolved.principal)
    return resolved


def export_scopes(*, stage: bool = False) -> list[str]:
    """The scopes an export's token carries: BigQuery, and reading Cloud Storage with a
    stage."""
    return [BIGQUERY_SCOPE, STORAGE_READ_SCOPE] if stage else [BIGQUERY_SCOPE]


def _from_file(file: CredentialFile, scopes: list[str], origin: str) -> GoogleCredentials:
    info = file.info
    if file.type == "service_account":
        credentials = service_account.Credentials.from_service_account_info(info, scopes=scopes)
        principal = Principal("service_account", info.get("client_email"), origin)
        return GoogleCredentials(
            credentials, principal, info.get("project_id"), endpoint_note=info.get("token_uri", "")
        )
    if file.type == "authorized_user":
        return GoogleCredentials(
            _user_login(info), Principal("user", info.get("account") or None, origin), None
        )
    if file.type == "external_account_authorized_user":
        credentials = workforce.Credentials.from_info(info)
        return GoogleCredentials(credentials, Principal("user", None, origin), None)
    if file.type == "external_account":
        return _workload_identity(info, scopes, origin)
    return _impersonation_file(file, scopes, origin)


def _user_login(info: dict[str, Any]) -> user_credentials.Credentials:
    # Built by hand: from_authorized_user_info ignores the file's token_uri on purpose, and
    # the contract variable must be able to point elsewhere. No scopes: a user login keeps
    # the scopes it was granted (asking for others is refused).
    return user_credentials.Credentials(
        None,
        refresh_token=info["refresh_token"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        token_uri=os.environ.get(OAUTH_TOKEN_ENDPOINT_VARIABLE) or GOOGLE_TOKEN_ENDPOINT,
        quota_project_id=info.get("quota_project_id"),
    )


def _workload_identity(info: dict[str, Any], scopes: list[str], origin: str) -> GoogleCredentials:
    try:
        if info.get("subject_token_type") == AWS_SUBJECT_TOKEN_TYPE:
            credentials: auth_credentials.Credentials = aws.Credentials.from_info(
                info, scopes=scopes
            )
        elif (info.get("credential_source") or {}).get("executable"):
            credentials = pluggable.Credentials.from_info(info, scopes=scopes)
        else:
            credentials = identity_pool.Credentials.from_info(info, scopes=scopes)
    except (ValueError, auth_errors.GoogleAuthError) as error:
        raise CredentialFileError(
            f"The workload identity configuration cannot be used: {_first_line(error)}"
        ) from None
    pool = _pool_of(str(info.get("audience", "")))
    federated = Principal("workload_identity", None, origin, pool)
    target = CredentialFile("external_account", info).impersonation_target
    if target:  # the file impersonates: google-auth asks IAM itself, as written in the file
        principal = Principal("service_account", target, origin)
        return GoogleCredentials(credentials, principal, info.get("quota_project_id"), federated)
    return GoogleCredentials(credentials, federated, info.get("quota_project_id"))


def _pool_of(audience: str) -> str | None:
    path = audience.removeprefix("//iam.googleapis.com/")
    return path.split("/providers/")[0] if "workloadIdentityPools/" in path else None


def _impersonation_file(file: CredentialFile, scopes: list[str], origin: str) -> GoogleCredentials:
    source_file = parse_credential_text(json.dumps(file.info["source_credentials"]), allow_key=True)
    source = _from_file(source_file, [CLOUD_PLATFORM_SCOPE], origin)
    target = file.impersonation_target or ""
    endpoint = _iam_endpoint(target) or file.info["service_account_impersonation_url"]
    impersonated = _impersonated(
        source.credentials, target, endpoint, file.info.get("delegates"), scopes
    )
    return GoogleCredentials(
        impersonated,
        Principal("service_account", target, origin),
        file.info.get("quota_project_id"),
        source.principal,
        source.credentials,
    )


def _impersonating(
    resolved: GoogleCredentials, email: str, target_scopes: list[str]
) -> GoogleCredentials:
    # The caller needs cloud-platform to ask IAM; a user login keeps its own scopes.
    caller_credentials = resolved.credentials
    if isinstance(caller_credentials, auth_credentials.Scoped) and not isinstance(
        caller_credentials, user_credentials.Credentials
    ):
        caller_credentials = caller_credentials.with_scopes([CLOUD_PLATFORM_SCOPE])
    credentials = _impersonated(
        caller_credentials, email, _iam_endpoint(email), None, target_scopes
    )
    return GoogleCredentials(
        credentials,
        Principal("service_account", email, resolved.principal.origin),
        resolved.project_id,
        resolved.principal,
        caller_credentials,
    )


def _impersonated(
    source: auth_credentials.Credentials,
    email: str,
    endpoint: str | None,
    delegates: Any,
    target_scopes: list[str],
) -> impersonated_credentials.Credentials:
    return impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal=email,
        target_scopes=list(target_scopes),
        delegates=list(delegates or []),
        iam_endpoint_override=endpoint,
    )


def _iam_endpoint(email: str) -> str | None:
    base = os.environ.get(IAM_CREDENTIALS_ENDPOINT_VARIABLE)
    if not base:
        return None
    return f"{base.rstrip('/')}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"


def _project_of(principal: Principal) -> str | None:
    """A service account's own project (NAME@PROJECT.iam.gserviceaccount.com)."""
    return service_account_project(principal.email) or os.environ.get("GOOGLE_CLOUD_PROJECT")


# -- Application Default Credentials ----------------------------------------------------------


def adc_file() -> Path | None:
    """The file ADC would use: GOOGLE_APPLICATION_CREDENTIALS, else gcloud's login file."""
    explicit = os.environ.get(ADC_VARIABLE)
    if explicit:
        return Path(explicit).expanduser()
    # google-auth's own lookup of gcloud's file (CLOUDSDK_CONFIG, APPDATA, ~/.config/gcloud).
    well_known = Path(_cloud_sdk.get_application_default_credentials_path())
    return well_known if well_known.is_file() else None


def _read_adc_file(path: Path) -> CredentialFile:
    try:
        refuse = file_problem(
            "The ADC file", "Point GOOGLE_APPLICATION_CREDENTIALS at a credential file."
        )
        text = read_small_text_file(path, MAX_CREDENTIAL_FILE_BYTES, refuse)
        return parse_credential_text(text, allow_key=True)
    except CredentialFileError as error:
        named = f"{ADC_VARIABLE} names {path}" if os.environ.get(ADC_VARIABLE) else str(path)
        raise CredentialProblem(f"Application Default Credentials ({named}): {error}") from None


def _application_default(scopes: list[str]) -> GoogleCredentials:
    path = adc_file()
    if path is not None:
        file = _read_adc_file(path)
        return _from_file(file, scopes, "ADC")
    # No file: google-auth's own search (App Engine, then a metadata server). The project
    # comes from the metadata server, never from Cloud Resource Manager.
    try:
        credentials, project = google.auth.default(scopes=scopes)
    except auth_errors.DefaultCredentialsError:
        raise CredentialProblem(no_adc_message()) from None
    return GoogleCredentials(
        credentials,
        Principal("metadata", None, "ADC"),
        project,
        endpoint_note=_metadata_host(),
    )


def _metadata_host() -> str:
    return (
        os.environ.get("GCE_METADATA_HOST")
        or os.environ.get("GCE_METADATA_IP")
        or ("169.254.169.254")
    )


def describe_adc() -> str:
    """What ADC would use right now, for the wizard: 'found: …' or 'none found'."""
    try:
        path = adc_file()
        if path is not None:
            file = _read_adc_file(path)
            account = file.info.get("account") or file.info.get("client_email")
            what = {
                "authorized_user": "user login",
                "service_account": "service-account key",
            }.get(file.type, file.description)
            of = f" of {account}" if account else ""
            return f"found: {what}{of} ({path})"
    except CredentialProblem as problem:
        return f"found, but unusable: {problem}"
    request = google.auth.transport.requests.Request()
    if _metadata.ping(request, timeout=1, retry_count=1):
        return f"found: a metadata server ({_metadata_host()})"
    return "none found"


# -- what went wrong --------------------------------------------------------------------------


def learned_principal(principal: Principal, credentials: auth_credentials.Credentials) -> Principal:
    """The principal with the email a fresh token revealed (a user's ID token, the metadata
    server's account)."""
    if principal.email:
        return principal
    email = None
    if isinstance(credentials, compute_engine.Credentials):
        email = credentials.service_account_email
        email = None if email == "default" else email
    elif isinstance(credentials, user_credentials.Credentials):
        email = _email_in_id_token(credentials.id_token)
    return replace(principal, email=email) if email else principal


def _email_in_id_token(id_token: str | None) -> str | None:
    # Only to name the user in messages: the token came straight from the token endpoint.
    try:
        payload = (id_token or "").split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    email = claims.get("email") if isinstance(claims, dict) else None
    return email if isinstance(email, str) else None


def _first_line(error: Exception) -> str:
    text = " ".join(str(part) for part in error.args) if error.args else str(error)
    text = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return text[:300]


def _oauth_error(error: Exception) -> tuple[str, str]:
    """(error code, description) from a token endpoint's JSON body, where there is one."""
    for part in error.args:
        body = part if isinstance(part, dict) else None
        if body is None and isinstance(part, str | bytes):
            try:
                body = json.loads(part)
            except ValueError:
                continue
        if isinstance(body, dict):
            nested = body.get("error")
            if isinstance(nested, dict):
                return str(nested.get("status", "")), str(nested.get("message", ""))
            return str(nested or ""), str(body.get("error_description", ""))
    text = str(error)
    return ("invalid_grant" if "invalid_grant" in text else ""), text


def describe_credential_error(
    error: Exception, resolved: GoogleCredentials, *, as_caller: bool = False
) -> str:
    """One sentence for a credential that gave no token, naming what to do."""
    text = str(error)
    if isinstance(error, auth_errors.DefaultCredentialsError):
        return no_adc_message()
    if resolved.caller is not None and not as_caller:
        if "impersonated credentials" in text:
            return _impersonation_refused(error, resolved)
        as_caller = True  # the caller's own token failed before IAM was asked
    principal = resolved.caller if as_caller and resolved.caller else resolved.principal
    if principal.kind == "metadata":
        return (
            f"The metadata server ({resolved.endpoint_note}) did not give a token "
            f"({_first_line(error)}): run on a Google Cloud machine with a service account "
            "attached, or choose another credential (bqtui set-auth)."
        )
    if principal.kind == "workload_identity" or isinstance(error, auth_errors.OAuthError):
        code, description = _oauth_error(error)
        pool = f" {principal.pool}" if principal.pool else ""
        return (
            f"The workload identity pool{pool} refused the token exchange "
            f"({code or 'error'}: {description.strip()[:200]}). Check the provider's audience "
            "and attribute conditions, and that the subject token the configuration reads "
            "is current."
        )
    if principal.kind == "user":
        return _user_login_refused(error, principal)
    # A key: the key path's own messages.
    return describe_token_error(error, resolved.endpoint_note or None)


def _impersonation_refused(error: Exception, resolved: GoogleCredentials) -> str:
    caller = resolved.caller or resolved.principal
    target = resolved.principal.email or "the service account"
    code, description = _oauth_error(error)
    if code in ("PERMISSION_DENIED", "403") or "PERMISSION_DENIED" in str(error):
        role = (
            "roles/iam.workloadIdentityUser"
            if caller.kind == "workload_identity"
            else "roles/iam.serviceAccountTokenCreator"
        )
        return (
            f"{caller.label} may not impersonate {target} (iam.serviceAccounts.getAccessToken "
            f"denied): grant it {role} on that service account: gcloud iam service-accounts "
            f"add-iam-policy-binding {target} --member={caller.member} --role={role}"
        )
    if code in ("NOT_FOUND", "404"):
        return f"The service account {target} does not exist: check --impersonate."
    return f"IAM refused a token for {target}: {description.strip()[:300] or _first_line(error)}"


def _user_login_refused(error: Exception, principal: Principal) -> str:
    code, description = _oauth_error(error)
    who = f" of {principal.email}" if principal.email else ""
    if code == "invalid_grant":
        again = (
            f"run `{ADC_LOGIN}` again"
            if principal.origin == "ADC"
            else f"run `{ADC_LOGIN}` and set the new file with bqtui set-auth NAME "
            "--credentials-file FILE"
        )
        return f"The Google login{who} has expired or was revoked (invalid_grant): {again}."
    if isinstance(error, auth_errors.TransportError) or "Max retries" in str(error):
        return f"Cannot reach Google's token endpoint to refresh the login{who}: check the network."
    reason = f"{code}: {description.strip()[:300]}" if code else _first_line(error)
    return f"Google refused to refresh the login{who} ({reason})."
