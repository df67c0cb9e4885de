"""`bqtui schedule install|show|remove`: run `bqtui --run-all` every minute without writing a
cron line by hand — a systemd user timer where `systemctl --user` works, else a crontab entry.

What is installed carries the environment the keyring backend and the database need, and
sends the runner's output where `bqtui status` can point to it. bqtui's crontab entry lives
between two marker lines, so the user's own entries are kept as they are.
"""

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bqtui.core.errors import ConfigError
from bqtui.core.paths import data_dir

BEGIN = "# >>> bqtui schedule (managed by `bqtui schedule`; edit with it) >>>"
END = "# <<< bqtui schedule <<<"
UNIT = "bqtui-run-all"
# Carried into the scheduled environment when set here: where the key is, which database,
# what Application Default Credentials and impersonation find, and which Cloud Storage
# endpoints the stage uses (cron starts with almost no environment, so a login found here
# would not be found there).
CARRIED = (
    "PYTHON_KEYRING_BACKEND",
    "BQTUI_DB",
    "BQTUI_DATA_DIR",
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "BQTUI_RETRY_DEADLINE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "CLOUDSDK_CONFIG",
    "GCE_METADATA_HOST",
    "GCE_METADATA_IP",
    "BQTUI_OAUTH_TOKEN_ENDPOINT",
    "BQTUI_IAM_CREDENTIALS_ENDPOINT",
    "BQTUI_GCS_ENDPOINT",
    "BQTUI_GCS_JSON_ENDPOINT",
)


@dataclass(frozen=True)
class Installed:
    kind: str  # systemd | crontab | none
    text: str  # exactly what is installed
    log: str | None  # where the runs' output goes


def bqtui_argv() -> list[str]:
    """The absolute path of this bqtui, so cron's minimal PATH finds the same one."""
    candidate = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if candidate and candidate.name == "bqtui" and candidate.exists():
        return [str(candidate)]
    found = shutil.which("bqtui")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "bqtui.cli"]


def _cron_quote(text: str) -> str:
    """Shell-quoted, and % escaped (cron turns a bare % into a newline)."""
    return shlex.quote(text).replace("%", "\\%")


def _systemd_quote(text: str) -> str:
    """A systemd command-line word: double-quoted, with specifiers and escapes doubled."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def log_file() -> Path:
    return data_dir() / "logs" / "run-all.log"


def _environment(db: str | None) -> dict[str, str]:
    env = {name: os.environ[name] for name in CARRIED if os.environ.get(name)}
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG"):  # cron's cwd is $HOME
        if name in env:
            env[name] = str(Path(env[name]).expanduser().resolve())
    if db:
        env["BQTUI_DB"] = str(Path(db).expanduser().resolve())
    return env


def _crontab_program() -> list[str]:
    program = os.environ.get("BQTUI_CRONTAB") or shutil.which("crontab")
    if not program:
        raise ConfigError(
            "Neither a systemd user session nor crontab is available here. Install cron "
            "(e.g. apt-get install cron), or run `bqtui --run-all` from your own scheduler."
        )
    return shlex.split(program)


def systemd_available() -> bool:
    if os.environ.get("BQTUI_SCHEDULER") == "crontab" or not shutil.which("systemctl"):
        return False
    try:
        return (
            subprocess.run(
                ["systemctl", "--user", "show-environment"], capture_output=True, timeout=10
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


# -- crontab --------------------------------------------------------------------------------


def _read_crontab() -> str:
    done = subprocess.run([*_crontab_program(), "-l"], capture_output=True, text=True)
    if done.returncode != 0 and "no crontab" not in done.stderr.lower():
        raise ConfigError(f"crontab -l failed: {done.stderr.strip()}")
    return done.stdout if done.returncode == 0 else ""


def _write_crontab(text: str) -> None:
    done = subprocess.run([*_crontab_program(), "-"], input=text, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"crontab refused the new table: {done.stderr.strip()}")


def _without_block(text: str) -> str:
    if BEGIN in text and END not in text[text.index(BEGIN) :]:
        raise ConfigError(
            "Your crontab has bqtui's start marker but not its end marker: bqtui will not guess "
            f"which lines are its own. Edit it with `crontab -e` (remove the lines from "
            f"'{BEGIN}'), then try again."
        )
    lines, kept, inside = text.splitlines(), [], False
    for line in lines:
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join(kept).rstrip("\n")


def _block(text: str) -> str | None:
    if BEGIN not in text:
        return None
    start = text.index(BEGIN)
    end = text.index(END, start) + len(END) if END in text[start:] else len(text)
    return text[start:end]


def crontab_entry(every_minutes: int, db: str | None) -> str:
    env = " ".join(f"{k}={_cron_quote(v)}" for k, v in _environment(db).items())
    log = log_file()
    schedule = "* * * * *" if every_minutes == 1 else f"*/{every_minutes} * * * *"
    program = " ".join(_cron_quote(part) for part in bqtui_argv())
    command = f"{program} --run-all >> {_cron_quote(str(log))} 2>&1"
    return "\n".join([BEGIN, f"{schedule} {env + ' ' if env else ''}{command}", END])


# -- systemd --------------------------------------------------------------------------------


def _unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def systemd_units(every_minutes: int, db: str | None) -> dict[str, str]:
    environment = "\n".join(
        f"Environment={shlex.quote(f'{k}={v}')}" for k, v in _environment(db).items()
    )
    service = (
        "[Unit]\nDescription=bqtui: export every due window (bqtui --run-all)\n\n"
        f"[Service]\nType=oneshot\n{environment}\n"
        f"ExecStart={' '.join(_systemd_quote(part) for part in bqtui_argv())} --run-all\n"
    )
    timer = (
        "[Unit]\nDescription=Run bqtui --run-all on a schedule\n\n"
        f"[Timer]\nOnCalendar=*:0/{every_minutes}\nPersistent=true\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return {f"{UNIT}.service": service, f"{UNIT}.timer": timer}


def _systemctl(*args: str) -> None:
    done = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"systemctl --user {' '.join(args)} failed: {done.stderr.strip()}")


# -- the three commands ---------------------------------------------------------------------


def install(every_minutes: int = 1, db: str | None = None) -> Installed:
    if not 1 <= every_minutes <= 59:
        raise ConfigError("--every is a number of minutes from 1 to 59.")
    remove()  # one schedule at a time, whichever kind was there
    if systemd_available():
        folder = _unit_dir()
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in systemd_units(every_minutes, db).items():
            (folder / name).write_text(text)
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", f"{UNIT}.timer")
        return show()
    log_file().parent.mkdir(parents=True, exist_ok=True)
    current = _without_block(_read_crontab())
    entry = crontab_entry(every_minutes, db)
    _write_crontab((current + "\n" if current else "") + entry + "\n")
    return show()


def show() -> Installed:
    folder = _unit_dir()
    if (folder / f"{UNIT}.timer").exists():
        text = "\n".join(
            f"# {folder / name}\n{(folder / name).read_text()}"
            for name in (f"{UNIT}.service", f"{UNIT}.timer")
            if (folder / name).exists()
        )
        return Installed("systemd", text, f"journalctl --user -u {UNIT}.service")
    try:
        block = _block(_read_crontab())
    except ConfigError:
        block = None
    if block:
        return Installed("crontab", block, str(log_file()))
    return Installed("none", "", None)


def remove() -> Installed:
    """Remove bqtui's schedule, whichever kind; the user's other entries are kept."""
    folder = _unit_dir()
    if (folder / f"{UNIT}.timer").exists():
        subprocess.run(
            ["systemctl", "--user", "disable", "--now", f"{UNIT}.timer"], capture_output=True
        )
        for name in (f"{UNIT}.service", f"{UNIT}.timer"):
            (folder / name).unlink(missing_ok=True)
        subprocess.run(["systemctl", "--user", "daemon-reload"], capture_output=True)
    try:
        current = _read_crontab()
    except ConfigError:
        return show()
    if BEGIN in current:
        remaining = _without_block(current)
        _write_crontab(remaining + "\n" if remaining else "")
    return show()
