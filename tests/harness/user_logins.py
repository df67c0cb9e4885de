"""User logins (``authorized_user``), as ``gcloud auth application-default login`` makes them.

The token endpoint answers ``grant_type=refresh_token`` the way Google does: the access
token it issues belongs to the user's email, and an expired or revoked refresh token is
``400 invalid_grant: Token has been expired or revoked.``. The answer carries an ``id_token``
naming the user (gcloud's login asks for ``openid`` and ``userinfo.email``), which is how a
client learns whose login it holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from google.auth import crypt, jwt
from google.oauth2 import credentials as user_credentials

from tests.harness.grants import Grantee
from tests.harness.keys import make_service_account_key
from tests.harness.token_server import TOKEN_LIFETIME_SECONDS, TokenError, TokenServer

if TYPE_CHECKING:
    from google.cloud import bigquery

    from tests.harness.bq_proxy import BigQueryProxy
    from tests.harness.google import FakeGoogle

REFRESH_GRANT = "refresh_token"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# What `gcloud auth application-default login` asks the user to consent to.
GCLOUD_ADC_SCOPES = (
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    CLOUD_PLATFORM_SCOPE,
    "https://www.googleapis.com/auth/sqlservice.login",
)
# Scopes a refresh may ask for when the login granted cloud-platform.
_COVERED_BY_CLOUD_PLATFORM = {
    "https://www.googleapis.com/auth/bigquery",
    "https://www.googleapis.com/auth/iam",
    "https://www.googleapis.com/auth/cloud-platform.read-only",
    "https://www.googleapis.com/auth/devstorage.read_write",
}
EXPIRED_OR_REVOKED = "Token has been expired or revoked."
# gcloud names Google's endpoint in the files it writes; the product must use
# BQTUI_IAM_CREDENTIALS_ENDPOINT instead.
GOOGLE_IAM_CREDENTIALS = "https://iamcredentials.googleapis.com"


@dataclass
class _Login:
    email: str
    scopes: tuple[str, ...]
    expired: bool = False


class UserLogins:
    """The refresh-token grant of the token endpoint, for one OAuth client (gcloud's)."""

    def __init__(self, token_server: TokenServer) -> None:
        self._token_server = token_server
        self._lock = threading.Lock()
        self._logins: dict[str, _Login] = {}
        self.client_id = f"{secrets.randbelow(10**12):012d}-fake.apps.googleusercontent.com"
        self.client_secret = "GOCSPX-fake-" + secrets.token_urlsafe(18)
        self._signer: crypt.RSASigner | None = None
        token_server.add_grant(REFRESH_GRANT, self.refresh)

    def log_in(self, email: str, scopes: tuple[str, ...] = GCLOUD_ADC_SCOPES) -> str:
        """A new refresh token for ``email`` (a consent screen accepted)."""
        refresh_token = "1//fake-" + secrets.token_urlsafe(48)
        with self._lock:
            self._logins[refresh_token] = _Login(email, scopes)
        return refresh_token

    def expire(self, refresh_token: str) -> None:
        with self._lock:
            self._logins[refresh_token].expired = True

    def refresh(self, form: dict[str, str]) -> dict:
        """Answer a refresh-token grant: Google's body, or raise TokenError."""
        if not form.get("refresh_token"):
            raise TokenError("invalid_request", "Missing required parameter: refresh_token")
        if form.get("client_id") != self.client_id:
            raise TokenError("invalid_client", "The OAuth client was not found.", 401)
        if form.get("client_secret") != self.client_secret:
            raise TokenError("invalid_client", "Unauthorized", 401)
        with self._lock:
            login = self._logins.get(form["refresh_token"])
        if login is None or login.expired:
            raise TokenError("invalid_grant", EXPIRED_OR_REVOKED)
        scopes = self._granted(login, form.get("scope", "").split())
        answer = {
            "access_token": self._token_server.issue(login.email, scopes),
            "expires_in": TOKEN_LIFETIME_SECONDS - 1,
            "token_type": "Bearer",
            "scope": " ".join(scopes),
        }
        if "openid" in scopes:
            answer["id_token"] = self._id_token(login.email)
        return answer

    @staticmethod
    def _granted(login: _Login, requested: list[str]) -> list[str]:
        if not requested:
            return list(login.scopes)
        allowed = set(login.scopes)
        if CLOUD_PLATFORM_SCOPE in allowed:
            allowed |= _COVERED_BY_CLOUD_PLATFORM
        invalid = [scope for scope in requested if scope not in allowed]
        if invalid:
            raise TokenError(
                "invalid_scope", f"Some requested scopes were invalid. {{invalid={invalid}}}"
            )
        return requested

    def _id_token(self, email: str) -> str:
        if self._signer is None:
            key = make_service_account_key(project_id="-", client_email="-", token_uri="-")
            self._signer = crypt.RSASigner.from_service_account_info(key)
        now = int(self._token_server.now())
        claims = {
            "iss": "https://accounts.google.com",
            "azp": self.client_id,
            "aud": self.client_id,
            "sub": str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16)),
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
        }
        return jwt.encode(self._signer, claims).decode()


@dataclass
class UserLogin(Grantee):
    """A person's Google login on this machine, whose grants live in the fake Google."""

    email: str
    project_id: str
    refresh_token: str
    quota_project_id: str | None
    _google: FakeGoogle = field(repr=False)

    @property
    def principal(self) -> str:
        return self.email

    @property
    def _proxy(self) -> BigQueryProxy:
        return self._google.proxy

    @property
    def client_id(self) -> str:
        return self._google.user_logins.client_id

    @property
    def client_secret(self) -> str:
        return self._google.user_logins.client_secret

    def adc_info(self) -> dict:
        """What `gcloud auth application-default login` writes, as a dict."""
        info: dict = {
            "account": "",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
            "type": "authorized_user",
            "universe_domain": "googleapis.com",
        }
        if self.quota_project_id:
            info["quota_project_id"] = self.quota_project_id
        return info

    def write_adc_file(self, path: Path) -> Path:
        """Write the ADC file (gcloud puts it at
        ``$CLOUDSDK_CONFIG/application_default_credentials.json``), readable by the owner only.
        """
        return _write_private_json(Path(path), self.adc_info())

    def write_impersonated_adc_file(
        self, path: Path, target_email: str, delegates: tuple[str, ...] = ()
    ) -> Path:
        """Write what `gcloud auth application-default login --impersonate-service-account
        TARGET` writes: this login as the source, Google's real IAM Credentials URL."""
        url = f"{GOOGLE_IAM_CREDENTIALS}/v1/projects/-/serviceAccounts/{target_email}"
        info = {
            "delegates": list(delegates),
            "service_account_impersonation_url": url + ":generateAccessToken",
            "source_credentials": self.adc_info(),
            "type": "impersonated_service_account",
        }
        return _write_private_json(Path(path), info)

    def expire_refresh_token(self) -> None:
        """The login expires (or is revoked): refreshes get ``invalid_grant``. Access tokens
        already issued live on until their hour ends, as at Google."""
        self._google.user_logins.expire(self.refresh_token)

    def credentials(self) -> user_credentials.Credentials:
        """google-auth user credentials refreshing at the fake token endpoint."""
        return user_credentials.Credentials(
            None,
            refresh_token=self.refresh_token,
            client_id=self.client_id,
            client_secret=self.client_secret,
            token_uri=self._google.oauth_token_endpoint,
            quota_project_id=self.quota_project_id,
        )

    def client(self, project: str | None = None) -> bigquery.Client:
        """A real BigQuery client acting as this user, with short retries."""
        return self._google.client_for(self.credentials(), project or self.project_id)


def _write_private_json(path: Path, info: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2))
    os.chmod(path, 0o600)
    return path
