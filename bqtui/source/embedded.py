"""The embedded ClickHouse (chdb): importing it from a neutral folder, which data dir a DSN
names, whether another process holds that engine, and the folders dead engines leave behind.
"""

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

if sys.platform != "win32":
    import fcntl
else:  # Windows: no flock; a locked engine shows as a connect error
    fcntl = None
import psutil


def is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb:")


# The embedded engine's whole configuration (an empty one): given to chdb explicitly, so that a
# ClickHouse config.xml in the working folder never decides where it keeps data or what it locks.
ENGINE_CONFIG = Path(__file__).with_name("embedded_clickhouse.xml")
ENGINE_OPTIONS = {"config-file": str(ENGINE_CONFIG)}

_chdb_module: ModuleType | None = None
_chdb_lock = threading.Lock()
IMPORT_FOLDER_PREFIX = "bqtui-engine-"


def embedded_engine() -> ModuleType:
    """The chdb module, imported on first use: by an export or a connection test that reads
    the embedded ClickHouse, never by ``--help``, ``list`` or the TUI's home screen.

    Importing chdb starts an in-memory engine at once, and ClickHouse reads ``config.xml``
    from the working folder (and ``~/.clickhouse-local/``) when it starts: the import runs in
    an empty private folder, so that a server's configuration there neither creates folders
    nor takes another server's locks.
    """
    global _chdb_module
    with _chdb_lock:
        if _chdb_module is None:
            with _neutral_folder():
                import chdb
            _chdb_module = chdb
        return _chdb_module


@contextmanager
def _neutral_folder() -> Iterator[None]:
    """Work in an empty temporary folder (HOME too, where a ~/.clickhouse-local exists), then
    return to the working folder (by descriptor: even one removed meanwhile)."""
    home = os.environ.get("HOME") or ""
    local_config = bool(home) and Path(home, ".clickhouse-local").exists()
    back = before = None
    with contextlib.suppress(OSError):  # a folder without read permission: by its path
        back = os.open(".", os.O_RDONLY) if hasattr(os, "fchdir") else None
    if back is None:
        with contextlib.suppress(OSError):  # a removed folder has no path to return to
            before = os.getcwd()
    try:
        # The pid in the name: a process killed meanwhile leaves a folder the next run removes.
        with tempfile.TemporaryDirectory(
            prefix=f"{IMPORT_FOLDER_PREFIX}{os.getpid()}-", ignore_cleanup_errors=True
        ) as empty:
            os.chdir(empty)
            if local_config:
                os.environ["HOME"] = empty
            try:
                yield
            finally:
                if local_config:
                    os.environ["HOME"] = home
                if back is not None:
                    os.fchdir(back)
                elif before is not None:
                    os.chdir(before)
    finally:
        if back is not None:
            os.close(back)


ENGINE_BUSY_WAIT = 30.0  # seconds to wait for another process to release the embedded engine


def engine_busy_wait_from_env() -> float:
    return float(os.environ.get("BQTUI_ENGINE_WAIT", ENGINE_BUSY_WAIT))


def embedded_path(dsn: str) -> str | None:
    """The data dir of an embedded DSN (``chdb:///abs/path``), None for memory or a server."""
    if not is_embedded(dsn):
        return None
    path = urlsplit(dsn).path
    return path if path and path != ":memory:" else None


# Embedded data dirs this process has open, with how many sources use each.
_open_paths: Counter[str] = Counter()
_open_paths_lock = threading.Lock()


def engine_locked_elsewhere(path: str) -> bool:
    """Whether another process holds the embedded engine at ``path`` (its ``status`` lock).

    ClickHouse takes an exclusive flock on ``status``; probing it with a lock of our own,
    released at once, asks the kernel rather than parsing what chdb prints.
    """
    status = Path(path) / "status"
    with _open_paths_lock:
        if _open_paths[path]:  # our own engine holds it: clients in one process share it
            return False
    if fcntl is None or not status.exists():
        return False
    with open(status, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def remove_dead_engine_dirs(temp_dir: Path, min_age: float = 2.0) -> int:
    """Remove the working folders (``clickhouse-embedded-*``) that embedded engines of dead
    processes left in the temp folder; a live engine holds the flock on its ``status``."""
    removed = 0
    for folder in temp_dir.glob("clickhouse-embedded-*"):
        status = folder / "status"
        try:
            dead = (
                not engine_locked_elsewhere(str(folder))
                if status.exists()
                else time.time() - folder.stat().st_mtime > min_age
            )
        except OSError:
            continue
        if dead:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    for folder in temp_dir.glob(f"{IMPORT_FOLDER_PREFIX}*-*"):  # see _neutral_folder
        pid = folder.name.removeprefix(IMPORT_FOLDER_PREFIX).split("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def note_engine_opened(path: str) -> None:
    """A source of this process opened the engine at ``path`` (see engine_locked_elsewhere)."""
    with _open_paths_lock:
        _open_paths[path] += 1


def note_engine_closed(path: str) -> None:
    with _open_paths_lock:
        _open_paths[path] -= 1
