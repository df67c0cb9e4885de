"""Shared test setup: an isolated keyring and data dir, one embedded ClickHouse per session,
and the local Google side (token endpoint + BigQuery proxy + emulator) from tests.harness."""

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

# Isolate every test run from the user's keyring, data dir and database (before any import
# of keyring resolves its backend).
_SANDBOX = Path(tempfile.mkdtemp(prefix="bqtui-tests-"))
# The emulator's venv is slow to build: keep it beside the checkout, across test runs.
os.environ.setdefault(
    "BQTUI_BQEMULATOR_VENV", str(Path(__file__).resolve().parent.parent / ".bqemu-venv")
)
os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
os.environ["XDG_DATA_HOME"] = str(_SANDBOX / "xdg-data")
os.environ["XDG_CONFIG_HOME"] = str(_SANDBOX / "xdg-config")
os.environ["BQTUI_DATA_DIR"] = str(_SANDBOX / "bqtui-data")
os.environ["BQTUI_RETRY_DEADLINE"] = "20"
os.environ.pop("BQTUI_DB", None)

pytest_plugins = ["tests.harness.fixtures"]

CHDB_PATH = _SANDBOX / "clickhouse"


@pytest.fixture(scope="session")
def chdb_path() -> Path:
    """The one embedded ClickHouse data dir of this process (chdb allows one path each)."""
    return CHDB_PATH


@pytest.fixture(scope="session")
def chdb_dsn_for(chdb_path):
    """A DSN for a named database inside the session's embedded ClickHouse."""

    def dsn(database: str) -> str:
        from bqtui.source.clickhouse import ClickHouseSource

        root = ClickHouseSource(f"chdb://{chdb_path}")
        root.client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        return f"chdb://{chdb_path}?database={database}"

    return dsn


# The demo data every end-to-end test reads: seed 42, ingested over 2024-05-01..04.
DEMO_START = datetime(2024, 5, 1, tzinfo=UTC)
DEMO_END = datetime(2024, 5, 4, tzinfo=UTC)


@pytest.fixture(scope="session")
def demo_dsn(chdb_dsn_for) -> str:
    """Read-only demo data shared by the tests that do not change their source."""
    from bqtui.demo import data as demo_data
    from bqtui.source.clickhouse import ClickHouseSource

    dsn = chdb_dsn_for("demo")
    client = ClickHouseSource(dsn).client
    demo_data.create_source_tables(client)
    if client.command("SELECT count() FROM events") == 0:
        demo_data.generate(client, seed=42, start=DEMO_START, end=DEMO_END)
    return dsn
