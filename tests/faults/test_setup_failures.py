"""Failures before the first window — a locked keyring, a stored key or stored credentials
that no longer read — are recorded as failed runs that say what to do (and `status` shows
them); "Internal error" stays for real bugs. The heartbeat runs from the moment the lock is
taken, and a retry's back-off ends at once on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.faults.conftest import World, wait_for
from tests.harness.bq_proxy import JOB_BACKEND_ERROR

REPO = Path(__file__).resolve().parents[2]


def set_secret(world: World, entry_suffix: str, value: str) -> None:
    """Overwrite one of the export's keyring entries, as another program could."""
    uid = world.sql("SELECT uid FROM exports")[0][0]
    code = "import keyring, sys; keyring.set_password('bqtui', sys.argv[1], sys.argv[2])"
    subprocess.run(
        [sys.executable, "-c", code, f"export:{uid}:{entry_suffix}", value],
        check=True,
        env=world.environ(),
    )


def last_run(world: World) -> tuple:
    return world.sql("SELECT status, error FROM runs ORDER BY id DESC LIMIT 1")[0]


def assert_recorded(world: World, result, message: str) -> None:
    assert result.code == 1, result.err
    assert "Internal error" not in result.out + result.err
    assert message in result.err
    assert last_run(world) == ("failed", message)
    status = json.loads(world.bqtui("status", "--json").out)["exports"][0]
    assert (status["last_run_status"], status["last_run_error"]) == ("failed", message)
    assert status["problems"][-1] == f"last run failed: {message}"


def test_a_locked_keyring_is_a_recorded_failed_run_that_says_what_to_do(events_world: World):
    world = events_world
    result = world.bqtui(
        "--run-all",
        PYTHON_KEYRING_BACKEND="tests.harness.locked_keyring.LockedKeyring",
        PYTHONPATH=str(REPO),
    )
    assert_recorded(
        world,
        result,
        "The keyring (tests.harness.locked_keyring.LockedKeyring) is locked: Failed to unlock "
        "the collection!. Unlock it (log in to the desktop session, or unlock the login "
        "keyring), then run again; for cron and servers, use a file keyring instead (README, "
        "'Servers and cron').",
    )
    assert world.bqtui("--run-all").code == 0  # unlocked: the next run exports everything
    world.assert_exactly_once_and_clean()


def test_a_stored_key_that_no_longer_reads_names_set_key(events_world: World):
    world = events_world
    set_secret(world, "service-account-key", "{not json")
    result = world.bqtui("--run-all")
    assert_recorded(
        world,
        result,
        'The service-account key stored in the keyring for export "ev" no longer reads as a '
        "key (The key file is not valid JSON (line 1, column 2: Expecting property name "
        "enclosed in double quotes)). Set it again: bqtui set-key ev --key-file KEY.json",
    )
    assert world.bqtui("set-key", "ev", "--key-file", str(world.key_file)).code == 0
    assert world.bqtui("--run-all").code == 0
    world.assert_exactly_once_and_clean()


def test_damaged_clickhouse_credentials_name_set_source(events_world: World):
    world = events_world
    set_secret(world, "clickhouse-credentials", "garbage")
    result = world.bqtui("--run-all")
    assert_recorded(
        world,
        result,
        'The ClickHouse credentials stored in the keyring for export "ev" are damaged. Set '
        "them again: bqtui set-source ev --source-dsn DSN",
    )
    assert world.sql("SELECT count(*) FROM windows") == [(0,)]  # no window was begun
    assert world.bqtui("set-source", "ev", "--source-dsn", world.source_dsn).code == 0
    assert world.bqtui("--run-all").code == 0
    world.assert_exactly_once_and_clean()


def test_the_lock_is_renewed_while_the_run_waits_for_the_engine(events_world: World):
    """Waiting for the embedded engine (held by another process) takes longer than the lock's
    TTL: a second runner still finds the export running, and nothing is exported twice."""
    world = events_world
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, world.source_dsn],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    first = world.start("run", "ev", BQTUI_LOCK_TTL=1, BQTUI_ENGINE_WAIT=60)
    wait_for(lambda: world.sql("SELECT owner FROM locks"))
    time.sleep(2.5)  # more than the TTL: only a heartbeat keeps the lock
    second = world.bqtui("run", "ev", BQTUI_LOCK_TTL=1, BQTUI_ENGINE_WAIT=1)
    assert "Another bqtui runner (pid" in second.err and "is running this export" in second.err
    holder.communicate(timeout=30)  # stdin closed: the engine is free
    out, err = first.communicate(timeout=180)
    assert first.returncode == 0, err
    assert "ev: succeeded, 3/3 windows, 120 rows" in out
    world.assert_exactly_once_and_clean()


_HOLD = """
import sys
from bqtui.source.clickhouse import ClickHouseSource
with ClickHouseSource(sys.argv[1]) as source:
    source.open()
    print("holding", flush=True)
    sys.stdin.read()
"""


def test_sigterm_ends_a_retry_back_off_at_once(events_world: World):
    """A transient job failure makes the run wait before the next attempt; SIGTERM stops it
    there at once, not after the back-off."""
    world = events_world
    world.google.proxy.fail_jobs(r"_load0$", JOB_BACKEND_ERROR, times=2)
    runner = world.start("run", "ev", BQTUI_GROUP_WINDOWS=3)
    retrying = "Trying the window(s) again as a new attempt"
    wait_for(lambda: _log_text(world).count(retrying) == 2, 60)  # the second back-off: 4 s
    sent = time.monotonic()
    os.kill(runner.pid, signal.SIGTERM)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 143, err
    assert time.monotonic() - sent < 3.0  # well before the back-off ran out
    assert world.bqtui("run", "ev").code == 0
    world.assert_exactly_once_and_clean()


def _log_text(world: World) -> str:
    return "\n".join(r[0] for r in world.sql("SELECT message FROM run_logs"))
