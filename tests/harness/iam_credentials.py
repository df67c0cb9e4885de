"""The IAM Credentials API's ``generateAccessToken``: service-account impersonation.

``POST {BASE}/v1/projects/-/serviceAccounts/{EMAIL}:generateAccessToken`` with the caller's
bearer token and ``{"scope": [...], "lifetime": "3600s", "delegates": [...]}`` answers
``{"accessToken", "expireTime"}`` for EMAIL when the caller holds
``roles/iam.serviceAccountTokenCreator`` on it (``allow``), else Google's 403. Each hop of a
delegation chain needs the role on the next one, as at Google.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass

from tests.harness.token_server import (
    TOKEN_LIFETIME_SECONDS,
    IssuedToken,
    PostRequest,
    TokenServer,
)

PATH_PREFIX = "/iamcredentials"
GENERATE_ACCESS_TOKEN = "/v1/projects/-/serviceAccounts/{email}:generateAccessToken"
_ROUTE = PATH_PREFIX + r"/v1/projects/-/serviceAccounts/(?P<email>[^/:]+):generateAccessToken"
# A caller token needs one of these to call the IAM Credentials API.
_IAM_SCOPES = {
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/iam",
}
TOKEN_CREATOR_ROLE = "roles/iam.serviceAccountTokenCreator"
DENIED = "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_METHOD = "google.iam.credentials.v1.IAMCredentials.GenerateAccessToken"


@dataclass(frozen=True)
class ImpersonationCall:
    """One generateAccessToken request: who asked (None if unauthenticated), for whom."""

    caller: str | None
    target: str
    scopes: tuple[str, ...]
    delegates: tuple[str, ...]
    status: int


class IamCredentials:
    """generateAccessToken on the token server, with the token-creator bindings it checks."""

    def __init__(self, token_server: TokenServer) -> None:
        self._token_server = token_server
        self._lock = threading.Lock()
        self._token_creators: set[tuple[str, str]] = set()
        self._calls: list[ImpersonationCall] = []
        token_server.add_post_route(_ROUTE, self._generate_access_token)

    @property
    def base_url(self) -> str:
        return self._token_server.url + PATH_PREFIX

    def url_for(self, target_email: str) -> str:
        return self.base_url + GENERATE_ACCESS_TOKEN.format(email=target_email)

    def allow(self, caller: str, target: str) -> None:
        """Grant ``caller`` roles/iam.serviceAccountTokenCreator on service account ``target``."""
        with self._lock:
            self._token_creators.add((caller, target))

    def deny(self, caller: str, target: str) -> None:
        with self._lock:
            self._token_creators.discard((caller, target))

    @property
    def calls(self) -> list[ImpersonationCall]:
        with self._lock:
            return list(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def _generate_access_token(
        self, request: PostRequest, match: re.Match[str]
    ) -> tuple[int, dict]:
        target = urllib.parse.unquote(match["email"])
        caller = self._caller(request)
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            body = None
        scopes = tuple(body.get("scope") or ()) if isinstance(body, dict) else ()
        delegates = tuple(body.get("delegates") or ()) if isinstance(body, dict) else ()
        status, answer = self._answer(caller, target, body, scopes, delegates)
        principal = caller.client_email if caller else None
        with self._lock:
            self._calls.append(ImpersonationCall(principal, target, scopes, delegates, status))
        return status, answer

    def _caller(self, request: PostRequest) -> IssuedToken | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self._token_server.lookup(token.strip())

    def _answer(
        self,
        caller: IssuedToken | None,
        target: str,
        body: object,
        scopes: tuple[str, ...],
        delegates: tuple[str, ...],
    ) -> tuple[int, dict]:
        if caller is None:
            return _error(401, "UNAUTHENTICATED", UNAUTHENTICATED, "ACCESS_TOKEN_TYPE_UNSUPPORTED")
        if not caller.scopes & _IAM_SCOPES:
            message = "Request had insufficient authentication scopes."
            return _error(403, "PERMISSION_DENIED", message, "ACCESS_TOKEN_SCOPE_INSUFFICIENT")
        lifetime = _lifetime(body)
        if not isinstance(body, dict) or not scopes or lifetime is None:
            return _error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
        if not self._may_impersonate(caller.client_email, delegates, target):
            return _error(403, "PERMISSION_DENIED", DENIED, "IAM_PERMISSION_DENIED")
        access_token = self._token_server.issue(target, scopes, lifetime)
        expires_at = self._token_server.now() + lifetime
        expire_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))
        return 200, {"accessToken": access_token, "expireTime": expire_time}

    def _may_impersonate(self, caller: str, delegates: tuple[str, ...], target: str) -> bool:
        chain = [caller, *(_delegate_email(delegate) for delegate in delegates), target]
        with self._lock:
            allowed = all(hop in self._token_creators for hop in itertools.pairwise(chain))
        return allowed and self._token_server.has_account(target)


def _delegate_email(delegate: str) -> str:
    # Delegates are written "projects/-/serviceAccounts/EMAIL".
    return delegate.rsplit("/", 1)[-1]


def _lifetime(body: object) -> int | None:
    """The requested lifetime in seconds (default one hour; at most one hour)."""
    text = body.get("lifetime", f"{TOKEN_LIFETIME_SECONDS}s") if isinstance(body, dict) else ""
    try:
        seconds = int(float(str(text).removesuffix("s")))
    except ValueError:
        return None
    return seconds if 0 < seconds <= TOKEN_LIFETIME_SECONDS else None


def _error(code: int, status: str, message: str, reason: str | None = None) -> tuple[int, dict]:
    error: dict = {"code": code, "message": message, "status": status}
    if reason is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "iam.googleapis.com" if reason.startswith("IAM") else "googleapis.com",
                "metadata": {"service": "iamcredentials.googleapis.com", "method": _METHOD},
            }
        ]
    return code, {"error": error}
