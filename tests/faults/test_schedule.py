"""`bqtui schedule install|show|remove` against a crontab in a temporary HOME.

This machine has no cron and no systemd user session, so `crontab` is played by a small
script with crontab's interface (`-l` prints the table or fails with "no crontab for …",
`-` replaces it from stdin) keeping the table in $HOME; bqtui finds it through
BQTUI_CRONTAB, as it would find /usr/bin/crontab."""

import os
import stat

import pytest

from tests.faults.conftest import World

CRONTAB = """#!/bin/sh
table="$HOME/crontab.txt"
case "$1" in
  -l) [ -f "$table" ] || { echo "no crontab for $(id -un)" >&2; exit 1; }; cat "$table" ;;
  -) cat > "$table" ;;
  *) echo "usage: crontab [-l | -]" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def home(tmp_path, world: World):
    home = tmp_path / "home"
    home.mkdir()
    program = home / "crontab"
    program.write_text(CRONTAB)
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    world.env.update(
        HOME=str(home),
        BQTUI_CRONTAB=str(program),
        BQTUI_SCHEDULER="crontab",
        PYTHON_KEYRING_BACKEND=os.environ["PYTHON_KEYRING_BACKEND"],
    )
    return home


def test_install_show_and_remove_keep_the_users_own_entries(world: World, home):
    (home / "crontab.txt").write_text("# mine\n0 3 * * * /usr/bin/backup\n")
    installed = world.bqtui("schedule", "install")
    assert installed.code == 0, installed.err
    table = (home / "crontab.txt").read_text()
    lines = table.splitlines()
    assert lines[:2] == ["# mine", "0 3 * * * /usr/bin/backup"]
    assert lines[2].startswith("# >>> bqtui schedule")
    entry = lines[3]
    assert entry.startswith("* * * * * ")
    assert "PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring" in entry
    assert f"BQTUI_DB={world.db_path}" in entry
    assert entry.split(" --run-all ")[0].endswith("/bin/bqtui")
    assert entry.endswith("/logs/run-all.log 2>&1")
    assert lines[4] == "# <<< bqtui schedule <<<"

    shown = world.bqtui("schedule", "show")
    assert shown.out.splitlines()[:3] == lines[2:5]
    assert shown.out.splitlines()[3].startswith("Logs: ") and "run-all.log" in shown.out
    status = world.bqtui("status")
    assert "Scheduled (crontab); runs' logs: " in status.out

    again = world.bqtui("schedule", "install", "--every", "5")  # replaces, never doubles
    assert again.code == 0
    table = (home / "crontab.txt").read_text()
    assert table.count("# >>> bqtui schedule") == 1 and "*/5 * * * * " in table

    removed = world.bqtui("schedule", "remove")
    assert removed.out.strip() == "Removed bqtui's schedule."
    assert (home / "crontab.txt").read_text() == "# mine\n0 3 * * * /usr/bin/backup\n"
    assert world.bqtui("schedule", "show").out.strip() == (
        "No schedule installed. Install one with: bqtui schedule install"
    )


def test_without_cron_or_systemd_install_says_what_to_do(world: World, tmp_path):
    world.env.update(
        HOME=str(tmp_path), BQTUI_SCHEDULER="crontab", BQTUI_CRONTAB="", PATH="/nonexistent"
    )
    refused = world.bqtui("schedule", "install")
    assert refused.code == 2
    assert refused.err.strip() == (
        "bqtui: Neither a systemd user session nor crontab is available here. Install cron "
        "(e.g. apt-get install cron), or run `bqtui --run-all` from your own scheduler."
    )
