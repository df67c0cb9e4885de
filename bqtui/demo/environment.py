"""The demo environment: embedded ClickHouse with demo data, a local BigQuery emulator, and
demo exports ready to run. Everything lives in its own folder; nothing touches real exports.

The emulator ignores authentication, but google-auth still exchanges the key for a token,
so a tiny local token endpoint answers for the demo's throwaway key.
"""

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bqtui.core.config import ExportConfig, Interval, Model
from bqtui.core.paths import data_dir
from bqtui.demo import data as demo_data
from bqtui.demo.emulator import Emulator, default_venv_dir, ensure_installed, start_emulator
from bqtui.destination.keyfile import parse_key_text
from bqtui.ops.export_setup import create_export
from bqtui.source.clickhouse import ClickHouseSource
from bqtui.state import secrets
from bqtui.state.store import Store

DEMO_PROJECT = "bqtui-demo"
DEMO_DATASET = "bqtui_demo"
DEMO_ACCOUNT = f"demo-exporter@{DEMO_PROJECT}.iam.gserviceaccount.com"
DEMO_DAYS = 2
DEMO_EXPORTS = (
    ("demo-events", Model.EVENTS, "events"),
    ("demo-persons", Model.PERSONS, "persons"),
    ("demo-sessions", Model.SESSIONS, "sessions"),
)


class _TokenHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {"access_token": "demo-token", "expires_in": 3600, "token_type": "Bearer"}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the TUI's terminal clean
        pass


class DemoTokenEndpoint:
    """Answers every token request: only for the demo's emulator, which checks nothing."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def token_uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _demo_key(token_uri: str) -> dict:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": DEMO_PROJECT,
        "private_key_id": "demo",
        "private_key": pem,
        "client_email": DEMO_ACCOUNT,
        "client_id": "1",
        "token_uri": token_uri,
    }


@dataclass
class DemoEnvironment:
    folder: Path
    db_path: Path
    source_dsn: str
    emulator: Emulator
    token_endpoint: DemoTokenEndpoint
    key_file: Path
    export_names: list[str] = field(default_factory=list)

    @property
    def bigquery_endpoint(self) -> str:
        return self.emulator.url

    def stop(self) -> None:
        self.token_endpoint.stop()
        self.emulator.stop()


def use_demo_keyring(folder: Path) -> None:
    """Keep the demo's throwaway key in a plain file keyring inside the demo folder, never in
    the user's own keyring (the demo runs in its own process and database)."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    demo_keyring = PlaintextKeyring()
    demo_keyring.file_path = str(folder / "demo-keyring.cfg")
    keyring.set_keyring(demo_keyring)


def start_demo(folder: Path | None = None, *, log=print) -> DemoEnvironment:
    """Start (or restart) the demo: idempotent, keeps exported data between sessions."""
    folder = Path(folder or data_dir() / "demo")
    folder.mkdir(parents=True, exist_ok=True)
    use_demo_keyring(folder)
    log("Preparing the BigQuery emulator (a minute the first time)…")
    python = ensure_installed(default_venv_dir(), log=log)
    emulator = start_emulator(
        python, data_dir=folder / "bigquery", log_file=folder / "bigquery.log"
    )
    token_endpoint = DemoTokenEndpoint()
    try:
        key = _demo_key(token_endpoint.token_uri)
        key_file = folder / "demo-key.json"
        key_file.write_text(json.dumps(key, indent=2))
        os.chmod(key_file, 0o600)
        source_dsn = f"chdb://{folder / 'clickhouse'}"
        start = _seed_source(source_dsn, log)
        _create_dataset(key, emulator.url)
        db_path = folder / "bqtui.db"
        names = _create_exports(db_path, key, source_dsn, emulator.url, start)
    except BaseException:
        token_endpoint.stop()
        emulator.stop()
        raise
    log(f"Demo ready: {len(names)} exports into the local emulator at {emulator.url}.")
    return DemoEnvironment(folder, db_path, source_dsn, emulator, token_endpoint, key_file, names)


def _seed_source(source_dsn: str, log) -> datetime:
    with ClickHouseSource(source_dsn) as source:  # released: the TUI and runners open it
        return _seed(source.client, log)


def _seed(client, log) -> datetime:
    demo_data.create_source_tables(client)
    existing = client.query("SELECT count(), min(_timestamp) FROM events").first_row
    if existing[0]:
        return existing[1].replace(tzinfo=UTC)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=DEMO_DAYS)
    log("Generating demo events, persons and sessions in the embedded ClickHouse…")
    demo_data.generate(client, seed=42, start=start, end=now)
    return start


def _create_dataset(key: dict, endpoint: str) -> None:
    from bqtui.destination.bigquery import BigQueryDestination

    destination = BigQueryDestination(parse_key_text(json.dumps(key)), endpoint=endpoint)
    try:
        destination.client.create_dataset(f"{DEMO_PROJECT}.{DEMO_DATASET}", exists_ok=True)
    finally:
        destination.close()


def _create_exports(db_path, key: dict, source_dsn: str, endpoint: str, start: datetime):
    store = Store(db_path)
    parsed_key = parse_key_text(json.dumps(key))
    names = []
    try:
        for name, model, table in DEMO_EXPORTS:
            config = ExportConfig(
                name=name,
                dataset_id=DEMO_DATASET,
                table_id=table,
                model=model,
                interval=Interval.HOUR,
                team_id=1,
                source_dsn=source_dsn,
                bigquery_endpoint=endpoint,
                start_at=start,
            )
            export = store.find_export(name)
            if export is None:
                create_export(store, config, parsed_key)
            else:  # the emulator's port and the token endpoint change with each start
                store.update_export(export.with_changes(bigquery_endpoint=endpoint))
                secrets.store_service_account_key(export.uid, parsed_key.to_json())
            names.append(name)
    finally:
        store.close()
    return names
