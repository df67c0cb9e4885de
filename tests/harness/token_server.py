"""Google's OAuth token endpoint, played locally.

google-auth exchanges a service-account key for an access token by POSTing a signed JWT
to the key file's ``token_uri``. This server verifies that JWT the way Google does
(signature against the registered public key, audience, lifetime, scope) and answers with
Google's error bodies, so the product's real auth code runs unchanged in tests.

Every access token the fake Google issues (key exchange, refresh-token grant, STS,
impersonation, metadata server) lands in this server's registry with its principal, so the
BigQuery proxy knows who calls. Other grant types and POST endpoints plug in with
``add_grant`` and ``add_post_route`` (see user_logins, workload_identity, iam_credentials).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Whatever token_uri says, google-auth always signs for Google's real endpoint.
JWT_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME_SECONDS = 3600
_IAT_TOLERANCE_SECONDS = 60

INVALID_SIGNATURE = "Invalid JWT Signature."
ACCOUNT_NOT_FOUND = "Invalid grant: account not found"
BAD_TIMING = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)
BAD_AUDIENCE = "Invalid JWT: Failed audience check. The right audience is " + JWT_AUDIENCE


@dataclass(frozen=True)
class IssuedToken:
    # The principal: a service account's or user's email, or a federated principal:// URI.
    client_email: str
    scopes: frozenset[str]
    expires_at: float


class TokenError(Exception):
    """A refused exchange, carrying the OAuth error code and description Google sends."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class PostRequest:
    path: str
    headers: Mapping[str, str]
    body: bytes


# A grant type's handler: the token request's form -> the success body, or raise TokenError.
GrantHandler = Callable[[dict[str, str]], dict]
# An endpoint's handler: (request, the path pattern's match) -> (status, JSON body).
PostHandler = Callable[[PostRequest, re.Match[str]], tuple[int, dict]]


class TokenServer:
    """``POST /token`` on 127.0.0.1, with a registry of accounts, keys and issued tokens.

    ``server_time_offset`` shifts the server's clock (seconds) to play a client whose
    clock is wrong.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._public_keys: dict[tuple[str, str], rsa.RSAPublicKey] = {}
        self._accounts: set[str] = set()
        self._tokens: dict[str, IssuedToken] = {}
        self._grant_handlers: dict[str, GrantHandler] = {}
        self._post_routes: list[tuple[re.Pattern[str], PostHandler]] = []
        self.server_time_offset = 0.0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenRequestHandler)
        self._server.daemon_threads = True
        self._server.token_server = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-google-token-server", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def add_grant(self, grant_type: str, handler: GrantHandler) -> None:
        """Let ``POST /token`` answer another ``grant_type``."""
        self._grant_handlers[grant_type] = handler

    def add_post_route(self, path_pattern: str, handler: PostHandler) -> None:
        """Serve POSTs whose path fully matches ``path_pattern`` (a regex)."""
        self._post_routes.append((re.compile(path_pattern), handler))

    def route(self, path: str) -> tuple[PostHandler, re.Match[str]] | None:
        for pattern, handler in self._post_routes:
            match = pattern.fullmatch(path)
            if match:
                return handler, match
        return None

    def issue(
        self, principal: str, scopes: Iterable[str], lifetime: float = TOKEN_LIFETIME_SECONDS
    ) -> str:
        """A new access token for ``principal``, live for ``lifetime`` seconds."""
        access_token = "ya29.fake-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[access_token] = IssuedToken(
                client_email=principal,
                scopes=frozenset(scopes),
                expires_at=self._now() + lifetime,
            )
        return access_token

    def has_account(self, client_email: str) -> bool:
        """Whether the service account exists (it has had a key and was not deleted)."""
        with self._lock:
            return client_email in self._accounts

    def register_key(self, client_email: str, private_key_id: str, public_key_pem: str) -> None:
        public_key = serialization.load_pem_public_key(public_key_pem.encode())
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("service-account keys are RSA keys")
        with self._lock:
            self._accounts.add(client_email)
            self._public_keys[(client_email, private_key_id)] = public_key

    def revoke_key(self, client_email: str, private_key_id: str) -> None:
        """Delete a key: new exchanges fail; tokens already issued live on, as at Google."""
        with self._lock:
            self._public_keys.pop((client_email, private_key_id), None)

    def delete_account(self, client_email: str) -> None:
        """Delete the account: its exchanges fail and its tokens stop working."""
        with self._lock:
            self._accounts.discard(client_email)
            self._tokens = {
                token: issued
                for token, issued in self._tokens.items()
                if issued.client_email != client_email
            }

    def expire_tokens(self, client_email: str | None = None) -> None:
        """Forget issued tokens (all, or one account's), so clients must exchange again."""
        with self._lock:
            self._tokens = {
                token: issued
                for token, issued in self._tokens.items()
                if client_email is not None and issued.client_email != client_email
            }

    def lookup(self, access_token: str) -> IssuedToken | None:
        """The live token behind an access token, or None if unknown or expired."""
        with self._lock:
            issued = self._tokens.get(access_token)
        if issued is None or issued.expires_at <= self._now():
            return None
        return issued

    def exchange(self, form: dict[str, str]) -> dict:
        """Answer a token request: the success body, or raise TokenError."""
        grant_type = form.get("grant_type", "")
        if grant_type in self._grant_handlers:
            return self._grant_handlers[grant_type](form)
        if grant_type != JWT_BEARER_GRANT:
            raise TokenError("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        claims = self._verified_claims(form.get("assertion", ""))
        now = self._now()
        issued_at, expires = claims.get("iat"), claims.get("exp")
        if (
            not isinstance(issued_at, int | float)
            or not isinstance(expires, int | float)
            or issued_at > now + _IAT_TOLERANCE_SECONDS
            or expires < now
            or expires - issued_at > TOKEN_LIFETIME_SECONDS
        ):
            raise TokenError("invalid_grant", BAD_TIMING)
        if claims.get("aud") != JWT_AUDIENCE:
            raise TokenError("invalid_grant", BAD_AUDIENCE)
        scopes = frozenset(str(claims.get("scope") or "").split())
        if not scopes:
            raise TokenError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return {
            "access_token": self.issue(claims["iss"], scopes),
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "token_type": "Bearer",
        }

    def now(self) -> float:
        """The server's clock (shifted by ``server_time_offset``)."""
        return self._now()

    def _now(self) -> float:
        return time.time() + self.server_time_offset

    def _verified_claims(self, assertion: str) -> dict:
        try:
            encoded_header, encoded_claims, encoded_signature = assertion.split(".")
            header = json.loads(_b64url_decode(encoded_header))
            claims = json.loads(_b64url_decode(encoded_claims))
            signature = _b64url_decode(encoded_signature)
        except (ValueError, binascii.Error):
            raise TokenError("invalid_grant", "Invalid JWT: malformed assertion.") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenError("invalid_grant", "Invalid JWT: malformed assertion.")
        client_email = claims.get("iss")
        with self._lock:
            account_exists = client_email in self._accounts
            public_key = self._public_keys.get((str(client_email), str(header.get("kid"))))
        if not account_exists:
            raise TokenError("invalid_grant", ACCOUNT_NOT_FOUND)
        if public_key is None or header.get("alg") != "RS256":
            raise TokenError("invalid_grant", INVALID_SIGNATURE)
        signed = f"{encoded_header}.{encoded_claims}".encode()
        try:
            public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise TokenError("invalid_grant", INVALID_SIGNATURE) from None
        return claims


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _TokenRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        path = urllib.parse.urlsplit(self.path).path
        token_server: TokenServer = self.server.token_server  # type: ignore[attr-defined]
        if path == "/token":
            self._answer_token_request(token_server, body.decode())
            return
        routed = token_server.route(path)
        if routed is None:
            self._reply(404, {"error": "not_found", "error_description": "No such endpoint."})
            return
        handler, match = routed
        request = PostRequest(path, {k.lower(): v for k, v in self.headers.items()}, body)
        self._reply(*handler(request, match))

    def _answer_token_request(self, token_server: TokenServer, body: str) -> None:
        form = dict(urllib.parse.parse_qsl(body))
        try:
            self._reply(200, token_server.exchange(form))
        except TokenError as refused:
            error = {"error": refused.error, "error_description": refused.description}
            self._reply(refused.status, error)

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr lines."""
