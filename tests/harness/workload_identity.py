"""Workload identity federation: the STS token exchange and ``external_account`` configs.

A ``WorkloadPool`` is one workload (a subject, e.g. a CI job) of an identity pool provider
whose OIDC tokens Google trusts. Its config file is what
``gcloud iam workload-identity-pools create-cred-config --credential-source-file`` writes;
the subject token file holds the workload's OIDC token. The STS exchange
(``POST /sts/v1/token``, form-encoded, RFC 8693) gives a federated access token whose
principal is ``principal://iam.googleapis.com/projects/123/locations/global/
workloadIdentityPools/POOL/subject/SUBJECT``; with a service account named in the config,
google-auth then impersonates it through the IAM Credentials endpoint.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.harness.grants import Grantee
from tests.harness.token_server import TOKEN_LIFETIME_SECONDS, PostRequest, TokenServer

if TYPE_CHECKING:
    from tests.harness.bq_proxy import BigQueryProxy
    from tests.harness.google import FakeGoogle, ServiceAccount

STS_PATH = "/sts/v1/token"
POOL_PROJECT_NUMBER = "123"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
_SUBJECT_TOKEN_TYPES = {JWT_TOKEN_TYPE, "urn:ietf:params:oauth:token-type:id_token"}
_POOL_PATH = "projects/{number}/locations/global/workloadIdentityPools/{pool}"
INVALID_TARGET = (
    'The target service indicated by the "audience" parameters is invalid. This might either '
    "be because the pool or provider is disabled or deleted or because it doesn't exist."
)


@dataclass
class _Workload:
    audience: str
    subject: str
    principal: str
    refusal: str | None = None


class SecurityTokenService:
    """The STS token exchange on the token server, knowing each workload's subject tokens."""

    def __init__(self, token_server: TokenServer) -> None:
        self._token_server = token_server
        self._lock = threading.Lock()
        self._by_subject_token: dict[str, _Workload] = {}
        self._audiences: set[str] = set()
        token_server.add_post_route(re.escape(STS_PATH), self._exchange)

    @property
    def url(self) -> str:
        return self._token_server.url + STS_PATH

    def register(self, subject_token: str, workload: _Workload) -> None:
        with self._lock:
            self._by_subject_token[subject_token] = workload
            self._audiences.add(workload.audience)

    def _exchange(self, request: PostRequest, match: re.Match[str]) -> tuple[int, dict]:
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        if form.get("grant_type") != TOKEN_EXCHANGE_GRANT:
            return _oauth_error("unsupported_grant_type", 'Invalid value for "grant_type".')
        if form.get("requested_token_type") != ACCESS_TOKEN_TYPE:
            return _oauth_error("invalid_request", 'Invalid value for "requested_token_type".')
        if form.get("subject_token_type") not in _SUBJECT_TOKEN_TYPES:
            return _oauth_error("invalid_request", 'Invalid value for "subject_token_type".')
        audience = form.get("audience", "")
        with self._lock:
            known_audience = audience in self._audiences
            workload = self._by_subject_token.get(form.get("subject_token", "").strip())
        if not known_audience:
            return _oauth_error("invalid_target", INVALID_TARGET)
        if workload is None:
            return _oauth_error("invalid_grant", "The ID Token could not be verified.")
        if workload.refusal is not None:
            return _oauth_error("invalid_grant", workload.refusal)
        if workload.audience != audience:
            return _oauth_error("invalid_grant", _audience_mismatch(workload.audience, audience))
        scopes = form.get("scope", "").split() or ["https://www.googleapis.com/auth/cloud-platform"]
        return 200, {
            "access_token": self._token_server.issue(workload.principal, scopes),
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECONDS - 1,
        }


def _audience_mismatch(token_audience: str, expected: str) -> str:
    return (
        f"The audience in ID Token [https:{token_audience}] does not match the expected "
        f"audience https:{expected}."
    )


def _oauth_error(error: str, description: str) -> tuple[int, dict]:
    return 400, {"error": error, "error_description": description}


@dataclass
class WorkloadPool(Grantee):
    """One workload identity in pool ``pool_id`` (provider ``provider_id``) of project 123.

    ``principal`` is the federated principal: grant BigQuery permissions to it directly, or
    let it impersonate ``service_account`` with ``FakeGoogle.allow_impersonation``.
    """

    subject: str
    project_id: str
    service_account: ServiceAccount | None
    pool_id: str
    provider_id: str
    _google: FakeGoogle = field(repr=False)
    _workload: _Workload = field(init=False, repr=False)

    def __post_init__(self) -> None:
        pool = _POOL_PATH.format(number=POOL_PROJECT_NUMBER, pool=self.pool_id)
        self._workload = _Workload(
            audience=f"//iam.googleapis.com/{pool}/providers/{self.provider_id}",
            subject=self.subject,
            principal=f"principal://iam.googleapis.com/{pool}/subject/{self.subject}",
        )

    @property
    def principal(self) -> str:
        return self._workload.principal

    @property
    def audience(self) -> str:
        return self._workload.audience

    @property
    def _proxy(self) -> BigQueryProxy:
        return self._google.proxy

    def new_subject_token(self) -> str:
        """A fresh OIDC token of this workload, as its identity provider would mint it."""
        subject_token = _unsigned_jwt(
            {"iss": "https://oidc.example.test", "sub": self.subject, "aud": self.audience}
        )
        self._google.sts.register(subject_token, self._workload)
        return subject_token

    def config(self, subject_token_path: Path) -> dict:
        """The external_account configuration reading its token from ``subject_token_path``."""
        config: dict = {
            "universe_domain": "googleapis.com",
            "type": "external_account",
            "audience": self.audience,
            "subject_token_type": JWT_TOKEN_TYPE,
            "token_url": self._google.sts.url,
            "credential_source": {"file": str(subject_token_path)},
        }
        if self.service_account is not None:
            config["service_account_impersonation_url"] = self._google.iam_credentials.url_for(
                self.service_account.email
            )
        return config

    def write_config(self, path: Path, subject_token_path: Path) -> Path:
        """Write the config file at ``path`` and a fresh subject token at ``subject_token_path``."""
        subject_token_path = Path(subject_token_path)
        subject_token_path.parent.mkdir(parents=True, exist_ok=True)
        subject_token_path.write_text(self.new_subject_token())
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.config(subject_token_path), indent=2))
        return path

    def refuse_exchange(self, description: str | None = None) -> None:
        """STS refuses this workload's tokens (400 invalid_grant), by default as when the
        provider's audience no longer matches."""
        self._workload.refusal = description or _audience_mismatch(
            self.audience.replace("/providers/", "/providers/old-"), self.audience
        )

    def accept_exchange(self) -> None:
        self._workload.refusal = None


def _unsigned_jwt(claims: dict) -> str:
    # STS here trusts the tokens it registered, so the signature only needs the JWT's shape.
    def encode(part: dict | bytes) -> str:
        raw = part if isinstance(part, bytes) else json.dumps(part).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims = {**claims, "jti": secrets.token_hex(8)}
    return ".".join(
        [encode({"alg": "RS256", "typ": "JWT"}), encode(claims), encode(secrets.token_bytes(32))]
    )
