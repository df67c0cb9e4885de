"""Cloud Storage's JSON API bucket IAM check, offline:
``GET {BASE}/storage/v1/b/{BUCKET}/iam/testPermissions?permissions=P&permissions=Q``.

With a bearer token from the token server it answers which of the asked permissions the
token's principal holds on the bucket (``{"kind": …, "permissions": [...]}``, the key left
out when none), as Google does; 401 without a live token, 403 when the token's scopes do not
reach Cloud Storage, 404 for a bucket it does not know.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.harness.token_server import IssuedToken, TokenServer

_ROUTE = re.compile(r"^/storage/v1/b/(?P<bucket>[^/]+)/iam/testPermissions$")
# Scopes with which a token may call Cloud Storage's JSON API.
STORAGE_SCOPES = frozenset(
    "https://www.googleapis.com/auth/" + scope
    for scope in (
        "cloud-platform",
        "cloud-platform.read-only",
        "devstorage.full_control",
        "devstorage.read_only",
        "devstorage.read_write",
    )
)


@dataclass(frozen=True)
class BucketPermissionsCall:
    """One testPermissions request: who asked (None if unauthenticated), about what."""

    principal: str | None
    bucket: str
    permissions: tuple[str, ...]
    status: int


class BucketIam:
    """Bucket-level grants of storage permissions and the testPermissions endpoint."""

    def __init__(self, token_server: TokenServer) -> None:
        self._token_server = token_server
        self._lock = threading.Lock()
        self._buckets: set[str] = set()
        self._grants: dict[tuple[str, str], set[str]] = {}
        self._calls: list[BucketPermissionsCall] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.bucket_iam = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-gcs-json-api", daemon=True
        )

    @property
    def url(self) -> str:
        """The JSON API's base URL (``BQTUI_GCS_JSON_ENDPOINT``)."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> BucketIam:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_bucket(self, bucket: str) -> None:
        with self._lock:
            self._buckets.add(bucket)

    def grant(self, principal: str, bucket: str, permissions: Iterable[str]) -> None:
        """Grant permissions on the bucket (which then exists)."""
        with self._lock:
            self._buckets.add(bucket)
            self._grants.setdefault((principal, bucket), set()).update(permissions)

    def revoke(self, principal: str, bucket: str, permissions: Iterable[str]) -> None:
        with self._lock:
            self._grants.get((principal, bucket), set()).difference_update(permissions)

    @property
    def calls(self) -> list[BucketPermissionsCall]:
        with self._lock:
            return list(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def answer(self, path: str, query: str, authorization: str) -> tuple[int, dict]:
        match = _ROUTE.match(path)
        if match is None:
            return _error(404, "notFound", "Not Found")
        bucket = urllib.parse.unquote(match["bucket"])
        asked = tuple(
            value for name, value in urllib.parse.parse_qsl(query) if name == "permissions"
        )
        scheme, _, token = authorization.partition(" ")
        issued = self._token_server.lookup(token.strip()) if scheme.lower() == "bearer" else None
        principal = issued.client_email if issued else None
        status, body = self._decide(issued, bucket, asked)
        with self._lock:
            self._calls.append(BucketPermissionsCall(principal, bucket, asked, status))
        return status, body

    def _decide(
        self, issued: IssuedToken | None, bucket: str, asked: tuple[str, ...]
    ) -> tuple[int, dict]:
        if issued is None:
            return _error(401, "required", "Anonymous caller does not have access.")
        if not issued.scopes & STORAGE_SCOPES:
            return _error(403, "insufficientPermissions", "Insufficient Permission")
        if not asked:
            return _error(400, "required", "Required parameter: permissions")
        with self._lock:
            if bucket not in self._buckets:
                return _error(404, "notFound", "The specified bucket does not exist.")
            held = self._grants.get((issued.client_email, bucket), set())
            granted = [permission for permission in asked if permission in held]
        body: dict = {"kind": "storage#testIamPermissionsResponse"}
        if granted:
            body["permissions"] = granted
        return 200, body


def _error(code: int, reason: str, message: str) -> tuple[int, dict]:
    error = {"code": code, "message": message, "errors": [{"message": message, "reason": reason}]}
    return code, {"error": error}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        bucket_iam: BucketIam = self.server.bucket_iam  # type: ignore[attr-defined]
        split = urllib.parse.urlsplit(self.path)
        status, payload = bucket_iam.answer(
            split.path, split.query, self.headers.get("Authorization", "")
        )
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr lines."""
