"""A local BigQuery emulator (bqemulator) for the demo and the tests.

bqemulator lives in its own virtualenv because it pins libraries (protobuf among them)
that conflict with google-cloud-bigquery. The emulator is started through
``_emulator_launcher.py``, which lets it run without network access.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import platformdirs

if sys.platform != "win32":
    import fcntl
else:  # Windows: concurrent installs are simply not guarded there.
    fcntl = None

# duckdb 2.x breaks insertAll after tabledata.list; numpy is an undeclared dependency.
EMULATOR_REQUIREMENTS = ("bqemulator==1.4.0", "duckdb==1.5.6", "numpy==2.4.6")
# Their whole environment, pinned with hashes (scripts/lock rebuilds it): a new release of
# anything the emulator pulls in cannot change the tests or the demo.
EMULATOR_LOCK = Path(__file__).with_name("emulator-requirements.txt")
VENV_ENV_VAR = "BQTUI_BQEMULATOR_VENV"
# The emulator loads gs://BUCKET/PATH from ROOT/BUCKET/PATH under this folder.
GCS_LOCAL_ROOT_ENV_VAR = "BQEMU_GCS_LOCAL_ROOT"

_INSTALLED_MARKER = ".bqtui-installed"
_LAUNCHER = Path(__file__).with_name("_emulator_launcher.py")
_ERROR_TAIL_LINES = 40


class EmulatorError(RuntimeError):
    """The emulator could not be installed or started."""


def default_venv_dir() -> Path:
    """Where the emulator's virtualenv lives: ``$BQTUI_BQEMULATOR_VENV`` or the user data dir."""
    configured = os.environ.get(VENV_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("bqtui")) / "bqemulator-venv"


def ensure_installed(venv_dir: Path | None = None, log: Callable[[str], object] = print) -> Path:
    """Create the emulator's virtualenv unless it is already installed; return its python."""
    venv_dir = Path(venv_dir) if venv_dir is not None else default_venv_dir()
    python = _venv_python(venv_dir)
    if _is_installed(venv_dir, python):
        return python
    with _install_lock(venv_dir):
        if _is_installed(venv_dir, python):  # another process finished while we waited
            return python
        if not python.exists():
            log(f"Creating a virtualenv for the BigQuery emulator in {venv_dir}")
            _run([sys.executable, "-m", "venv", str(venv_dir)], "create the emulator virtualenv")
        log(f"Installing {' '.join(EMULATOR_REQUIREMENTS)} (about a minute the first time)")
        _run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                "--require-hashes",
                "-r",
                str(EMULATOR_LOCK),
            ],
            "install the BigQuery emulator",
        )
        (venv_dir / _INSTALLED_MARKER).write_text(_requirements_record())
    return python


@dataclass
class Emulator:
    """A running emulator process; stop it with ``stop()`` or use it as a context manager."""

    url: str
    port: int
    process: subprocess.Popen = field(repr=False)

    def stop(self, timeout: float = 10) -> None:
        atexit.unregister(self.stop)
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_emulator(
    python: Path,
    *,
    port: int | None = None,
    data_dir: Path | None = None,
    log_file: Path | None = None,
    timeout: float = 30,
    gcs_local_root: Path | None = None,
) -> Emulator:
    """Start the emulator and wait until it is healthy.

    In-memory when ``data_dir`` is None, persisted in ``data_dir`` otherwise. Its output
    goes to ``log_file`` (appended) or is discarded. With ``gcs_local_root`` its loads read
    ``gs://BUCKET/PATH`` from the file ``gcs_local_root/BUCKET/PATH``.
    """
    rest_port = port or _free_port()
    command = [
        str(python),
        "-I",  # keeps bqtui's package directory and the user's site-packages off sys.path
        str(_LAUNCHER),
        "start",
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(_free_port()),
    ]
    if data_dir is None:
        command.append("--ephemeral")
    else:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        command += ["--persistent", "--data-dir", str(data_dir)]
    env = {**os.environ, "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false"}
    if gcs_local_root is not None:
        Path(gcs_local_root).mkdir(parents=True, exist_ok=True)
        env[GCS_LOCAL_ROOT_ENV_VAR] = str(Path(gcs_local_root).resolve())
    with _output_target(log_file) as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            # bqemulator reads a .bqemu.toml from its working directory: use one we own.
            cwd=Path(python).parent.parent,
        )
    emulator = Emulator(url=f"http://127.0.0.1:{rest_port}", port=rest_port, process=process)
    atexit.register(emulator.stop)
    try:
        _wait_until_healthy(emulator, timeout, log_file)
    except BaseException:
        emulator.stop()
        raise
    return emulator


def _venv_python(venv_dir: Path) -> Path:
    if sys.platform == "win32":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def _requirements_record() -> str:
    """What the venv was installed from: a changed lock file reinstalls it."""
    digest = hashlib.sha256(EMULATOR_LOCK.read_bytes()).hexdigest()
    return "\n".join(EMULATOR_REQUIREMENTS) + f"\nlock sha256 {digest}\n"


def _is_installed(venv_dir: Path, python: Path) -> bool:
    marker = venv_dir / _INSTALLED_MARKER
    return python.exists() and marker.exists() and marker.read_text() == _requirements_record()


@contextlib.contextmanager
def _install_lock(venv_dir: Path) -> Iterator[None]:
    """Serialise installs into one venv (e.g. the demo and a test run starting together)."""
    venv_dir.mkdir(parents=True, exist_ok=True)  # the lock lives inside, ignored with the venv
    with open(venv_dir / ".bqtui-install.lock", "w") as lock_file:
        if fcntl is not None:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def _run(command: list[str], purpose: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise EmulatorError(f"Could not {purpose}: {exc}") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(output[-_ERROR_TAIL_LINES:])
        raise EmulatorError(
            f"Could not {purpose}: `{' '.join(command)}` exited with {result.returncode}:\n{tail}"
        )


@contextlib.contextmanager
def _output_target(log_file: Path | None) -> Iterator[int | IO[bytes]]:
    if log_file is None:
        yield subprocess.DEVNULL
        return
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as handle:  # the child keeps its own copy of the descriptor
        yield handle


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_healthy(emulator: Emulator, timeout: float, log_file: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exit_code = emulator.process.poll()
        if exit_code is not None:
            raise EmulatorError(
                f"The BigQuery emulator exited with {exit_code} while starting."
                + _log_tail_hint(log_file)
            )
        try:
            with urllib.request.urlopen(f"{emulator.url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise EmulatorError(
        f"The BigQuery emulator did not become healthy within {timeout:g} s."
        + _log_tail_hint(log_file)
    )


def _log_tail_hint(log_file: Path | None) -> str:
    if log_file is None:
        return " Pass log_file to see its output."
    try:
        lines = Path(log_file).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return f" Last lines of {log_file}:\n" + "\n".join(lines[-_ERROR_TAIL_LINES:])
