"""A GCE/GKE/Cloud Run metadata server, played locally for one service account.

google-auth finds it through ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP`` (read when
google.auth is imported, so set them in a subprocess's environment): it pings ``GET /``,
which must answer with ``Metadata-Flavor: Google``, then reads the account and its token
under ``/computeMetadata/v1/``. ``stop()`` closes the port, so a client sees a metadata
server that does not answer.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.harness.token_server import TOKEN_LIFETIME_SECONDS, TokenServer

FLAVOR_HEADER = "Metadata-Flavor"
FLAVOR = "Google"
DEFAULT_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_ROOT = "/computeMetadata/v1/"
_MISSING_FLAVOR = (
    "Your client does not have permission to get URL {path} from this server. "
    "Missing Metadata-Flavor:Google header."
)


class MetadataServer:
    """Answers for an instance running as ``email`` in ``project_id``."""

    def __init__(
        self,
        token_server: TokenServer,
        email: str,
        project_id: str,
        scopes: Sequence[str] = DEFAULT_SCOPES,
    ) -> None:
        self.email = email
        self.project_id = project_id
        self.scopes = tuple(scopes)
        self._token_server = token_server
        self._lock = threading.Lock()
        self._token_requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _MetadataRequestHandler)
        self._server.daemon_threads = True
        self._server.metadata = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-google-metadata-server", daemon=True
        )
        self._running = False

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the value for GCE_METADATA_HOST and GCE_METADATA_IP."""
        return f"127.0.0.1:{self._server.server_port}"

    @property
    def token_requests(self) -> int:
        """How many access tokens the server has handed out."""
        with self._lock:
            return self._token_requests

    def start(self) -> MetadataServer:
        """Start answering (idempotent; a stopped server cannot start again)."""
        if not self._running and not self._thread.is_alive():
            self._thread.start()
            self._running = True
        return self

    def stop(self) -> None:
        """Stop answering and close the port (idempotent)."""
        if not self._running:
            return
        self._running = False
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MetadataServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, str | dict]:
        """The status and body (text, or a dict sent as JSON) for a metadata GET."""
        if not path.startswith(_ROOT):
            return 404, "Not Found"
        resource = path.removeprefix(_ROOT)
        if resource == "project/project-id":
            return 200, self.project_id
        if resource == "universe/universe-domain":
            return 200, "googleapis.com"
        if resource == "instance/service-accounts/":
            return 200, f"default/\n{self.email}/\n"
        account, _, leaf = resource.removeprefix("instance/service-accounts/").partition("/")
        if not resource.startswith("instance/service-accounts/") or account not in (
            "default",
            self.email,
        ):
            return 404, "Not Found"
        return self._account_answer(leaf, query)

    def _account_answer(self, leaf: str, query: dict[str, str]) -> tuple[int, str | dict]:
        if leaf == "" and query.get("recursive") == "true":
            return 200, {"aliases": ["default"], "email": self.email, "scopes": list(self.scopes)}
        if leaf == "":
            return 200, "aliases\nemail\nidentity\nscopes\ntoken\n"
        if leaf == "email":
            return 200, self.email
        if leaf == "scopes":
            return 200, "\n".join(self.scopes) + "\n"
        if leaf == "token":
            # Cloud Run and GKE honour ?scopes=; a plain VM would give the instance's.
            scopes = query.get("scopes", "").replace(",", " ").split() or self.scopes
            with self._lock:
                self._token_requests += 1
            return 200, {
                "access_token": self._token_server.issue(self.email, scopes),
                "expires_in": TOKEN_LIFETIME_SECONDS - 1,
                "token_type": "Bearer",
            }
        return 404, "Not Found"


class _MetadataRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        metadata: MetadataServer = self.server.metadata  # type: ignore[attr-defined]
        parts = urllib.parse.urlsplit(self.path)
        if parts.path == "/":
            self._reply(200, "computeMetadata/\n")
        elif self.headers.get(FLAVOR_HEADER) != FLAVOR:
            self._reply(403, _MISSING_FLAVOR.format(path=parts.path))
        else:
            self._reply(*metadata.answer(parts.path, dict(urllib.parse.parse_qsl(parts.query))))

    def _reply(self, status: int, payload: str | dict) -> None:
        if isinstance(payload, dict):
            body, content_type = json.dumps(payload).encode(), "application/json"
        else:
            body, content_type = payload.encode(), "application/text"
        self.send_response(status)
        self.send_header(FLAVOR_HEADER, FLAVOR)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr lines."""
