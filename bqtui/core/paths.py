"""Where bqtui keeps its files: the platform's user data dir, overridable by environment."""

import os
from pathlib import Path

import platformdirs

APP_NAME = "bqtui"


def data_dir() -> Path:
    """The user data dir (``BQTUI_DATA_DIR`` overrides the platform default)."""
    override = os.environ.get("BQTUI_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_db_path() -> Path:
    """The config and run-state database (``BQTUI_DB`` overrides it)."""
    override = os.environ.get("BQTUI_DB")
    return Path(override) if override else data_dir() / "bqtui.db"


def default_source_dsn() -> str:
    """The embedded ClickHouse (chdb) in the data dir."""
    return f"chdb://{data_dir() / 'clickhouse'}"
