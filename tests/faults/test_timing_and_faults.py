"""Late rows, backfills into the future, BigQuery's faults and quotas, narrow tables,
remove during a run and a busy embedded engine — through the real CLI, every row checked."""

import signal
import time
from datetime import timedelta

import pytest
from google.cloud import bigquery

from tests.faults.conftest import PROJECT, T0, World, iso, kill_tree, wait_for
from tests.harness.bq_proxy import (
    BACKEND_ERROR,
    DROP_AFTER,
    DROP_BEFORE,
    INTERNAL_ERROR,
    JOB_BACKEND_ERROR,
    QUOTA_EXCEEDED,
    RATE_LIMIT_EXCEEDED,
    HttpFault,
)

RATE_LIMIT_EXCEEDED_403 = HttpFault(
    403, "rateLimitExceeded", "Exceeded rate limits: too many table update operations."
)


def test_rows_that_become_visible_after_the_boundary_are_exported(world: World):
    """A row stamped one second before the boundary that shows up 30 s later is not lost."""
    boundary = T0 + timedelta(hours=1)
    world.insert_hours(T0, 1)
    world.add()
    on_the_boundary = world.bqtui("--run-all", BQTUI_NOW=iso(boundary + timedelta(seconds=5)))
    assert on_the_boundary.code == 0, on_the_boundary.err
    assert "ev: nothing_due" in on_the_boundary.out
    world.insert_hours(boundary - timedelta(seconds=1), 1 / 3600, per_hour=3600)  # one late row
    settled = world.bqtui("--run-all", BQTUI_NOW=iso(boundary + timedelta(seconds=61)))
    assert settled.code == 0, settled.err
    assert "ev: succeeded, 1/1 windows, 41 rows" in settled.out
    world.assert_exactly_once_and_clean()


def test_settle_is_configurable_and_shown(world: World):
    world.add("slow", "--settle", "600")
    shown = world.bqtui("show", "slow", "--json")
    assert '"settle_seconds": 600' in shown.out
    listed = world.bqtui("list", "--json")
    assert '"settle_seconds": 600' in listed.out
    bad = world.bqtui(
        "add",
        "--name",
        "x",
        "--key-file",
        str(world.key_file),
        "--dataset-id",
        "d",
        "--table-id",
        "t",
        "--settle",
        "-5",
    )
    assert bad.code == 2
    assert bad.err.strip() == (
        "bqtui: Settle delay must be between 0 and 86400 seconds (24 hours), not -5; the "
        "default is 60."
    )


def test_a_backfill_into_the_future_leaves_those_windows_for_later(world: World):
    now = T0 + timedelta(hours=2, minutes=30)
    world.insert_hours(T0, 2.5)
    world.add()
    backfill = world.bqtui(
        "run",
        "ev",
        "--start",
        iso(T0),
        "--end",
        iso(T0 + timedelta(hours=5)),
        BQTUI_NOW=iso(now),
    )
    assert backfill.code == 0, backfill.err
    assert "ev: succeeded, 2/2 windows, 80 rows" in backfill.out
    assert "3 window(s) left for later (not yet due)" in backfill.out
    assert "Left for later: 3 window(s) from 2024-05-01 02:00 UTC" in backfill.err
    done = [row[0][11:16] for row in world.sql("SELECT window_start FROM windows")]
    assert done == ["00:00", "01:00"]
    world.insert_hours(T0 + timedelta(hours=2, minutes=30), 2.5)  # the rest arrives later
    later = world.bqtui("--run-all", BQTUI_NOW=iso(T0 + timedelta(hours=5, minutes=2)))
    assert later.code == 0, later.err
    assert "ev: succeeded, 3/3 windows, 120 rows" in later.out
    world.assert_exactly_once_and_clean()


@pytest.mark.parametrize(
    "fault, path",
    [
        (BACKEND_ERROR, r"/jobs$"),
        (RATE_LIMIT_EXCEEDED, r"/jobs$"),
        (RATE_LIMIT_EXCEEDED_403, r"/jobs$"),
        (INTERNAL_ERROR, r"/tables$"),
        (DROP_BEFORE, r"/jobs$"),
        (DROP_AFTER, r"/jobs$"),
        (BACKEND_ERROR, r"/queries/[^/]*_merge$"),
    ],
    ids=[
        "503-backendError",
        "429-rateLimit",
        "403-rateLimit",
        "500-internal",
        "drop-before",
        "drop-after",
        "503-polling",
    ],
)
def test_transient_faults_are_retried(events_world: World, fault, path):
    world = events_world
    world.google.proxy.inject(None, path, fault, times=2)
    result = world.bqtui("run", "ev", BQTUI_RETRY_DEADLINE=60)
    assert result.code == 0, result.err
    assert "ev: succeeded, 3/3 windows, 120 rows" in result.out
    assert [c for c in world.google.proxy.calls if c.fault], "the fault was never injected"
    world.assert_exactly_once_and_clean()


def test_a_load_job_that_fails_for_a_transient_reason_is_a_new_attempt(events_world: World):
    world = events_world
    world.google.proxy.fail_jobs(r"T010000_a1_load0$", JOB_BACKEND_ERROR)
    result = world.bqtui("run", "ev", BQTUI_GROUP_WINDOWS=1)
    assert result.code == 0, result.err
    assert (
        "job bqtui_" in result.err
        and "_20240501T010000_a1_load0 failed (backendError): Error "
        "encountered during execution. Retrying may solve the problem. Trying the window(s) again "
        "as a new attempt."
        in result.err
    )
    attempts = world.sql("SELECT substr(window_start, 12, 5), attempt FROM windows ORDER BY 1")
    assert attempts == [("00:00", 1), ("01:00", 2), ("02:00", 1)]
    world.assert_exactly_once_and_clean()


def test_quota_exceeded_is_a_quota_problem_and_the_next_run_completes(events_world: World):
    world = events_world
    world.google.proxy.inject(None, r"/jobs$", QUOTA_EXCEEDED, times=100)
    refused = world.bqtui("run", "ev")
    assert refused.code == 1
    assert "BigQuery quota exceeded for project bqtui-test" in refused.err
    assert "This is a quota, not a missing permission" in refused.err
    assert "denied" not in refused.err and "Grant " not in refused.err
    assert [c.fault for c in world.google.proxy.calls if c.fault] == ["403 quotaExceeded"]
    assert world.sql("SELECT status FROM windows") == [("failed",)] * 3  # one group
    world.google.proxy.clear_faults()
    rerun = world.bqtui("run", "ev")
    assert rerun.code == 0, rerun.err
    world.assert_exactly_once_and_clean()


@pytest.mark.parametrize(
    "model, lacking",
    [("persons", "distinct_id"), ("sessions", "session_id"), ("events", "uuid")],
)
def test_a_table_without_its_merge_key_is_refused(world: World, model, lacking):
    world.insert_hours(T0, 3)
    world.add(model=model, table="narrow")
    from bqtui.models import get_model

    schema = [f.schema_field(False) for f in get_model(model).fields if f.name != lacking]
    admin = world.google.admin_client(PROJECT)
    admin.create_table(bigquery.Table(f"{PROJECT}.{world.dataset}.narrow", schema=schema))
    refused = world.bqtui("run", "ev")
    assert refused.code == 1
    expected = (
        f"Table {PROJECT}.{world.dataset}.narrow lacks {lacking}, which the {model} model needs "
        "to merge rows without overwriting others; nothing was exported. Add it: ALTER TABLE "
        f"`{PROJECT}.{world.dataset}.narrow` ADD COLUMN `{lacking}` STRING;"
    )
    assert expected in refused.err
    assert world.sql("SELECT count(*) FROM windows") == [(0,)]
    rows = admin.query(f"SELECT count(*) AS n FROM `{PROJECT}.{world.dataset}.narrow`").result()
    assert next(iter(rows))["n"] == 0
    check = world.bqtui("check", "ev")
    assert check.code == 1
    assert f"✗ table                        {expected}" in check.out


def test_remove_during_a_run_is_refused_or_stops_the_run_first(world: World):
    world.insert_hours(T0, 3)
    world.add("a-first", table="first")
    world.add("b-second", table="second")
    runner = world.start(
        "--run-all", BQTUI_TEST_FAULT="merge_submitted:pause=3", BQTUI_GROUP_WINDOWS=1
    )
    wait_for(lambda: world.sql("SELECT 1 FROM windows WHERE pending_merge_job IS NOT NULL"))
    refused = world.bqtui("remove", "a-first")
    assert refused.code == 1
    assert 'bqtui: Export "a-first" is running now (pid ' in refused.err
    assert "bqtui remove a-first --force" in refused.err
    forced = world.bqtui("remove", "a-first", "--force")
    assert forced.code == 0, forced.err
    assert 'Removed export "a-first"' in forced.out
    out, err = runner.communicate(timeout=180)
    assert runner.returncode == 0, err
    assert "a-first: cancelled" in out
    assert "Stopped at a safe point: another bqtui asked (bqtui remove --force)." in err
    assert "b-second: succeeded, 3/3 windows, 120 rows" in out
    assert world.destination_uuids("first").most_common(1)[0][1] == 1  # one window, once
    world.assert_exactly_once_and_clean("second")


def test_a_busy_embedded_engine_is_busy_not_a_failure(events_world: World):
    world = events_world
    import subprocess
    import sys

    from tests.faults.conftest import _CHDB_SCRIPT

    holder = subprocess.Popen(
        [sys.executable, "-c", _CHDB_SCRIPT, world.source_dsn, "hold", "null"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    try:
        busy = world.bqtui("--run-all", BQTUI_ENGINE_WAIT=1)
    finally:
        holder.communicate("", timeout=30)
    assert busy.code == 0, busy.err
    assert busy.out.startswith("ev: busy, 0/0 windows")
    assert "is in use by another process" in busy.err
    assert world.sql("SELECT count(*) FROM windows") == [(0,)]  # no attempt used
    assert world.bqtui("--run-all").code == 0
    world.assert_exactly_once_and_clean()


def test_sigkill_while_waiting_for_the_engine_leaves_nothing(events_world: World):
    """Killed while another process holds the engine: the next run is not blocked."""
    import subprocess
    import sys

    from tests.faults.conftest import _CHDB_SCRIPT

    world = events_world
    holder = subprocess.Popen(
        [sys.executable, "-c", _CHDB_SCRIPT, world.source_dsn, "hold", "null"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    runner = None
    try:
        assert holder.stdout.readline().strip() == "holding"
        runner = world.start("--run-all", BQTUI_ENGINE_WAIT=60)
        # The runner takes the export's lock, then waits for the engine the holder has open.
        wait_for(lambda: world.sql("SELECT pid FROM locks") == [(runner.pid,)])
        time.sleep(1.5)
        assert runner.poll() is None, runner.communicate()
        assert world.sql("SELECT count(*) FROM windows") == [(0,)]  # still waiting
        runner.send_signal(signal.SIGKILL)
        _, killed_err = runner.communicate(timeout=30)
        assert runner.returncode == -signal.SIGKILL
        assert "Exporting" not in killed_err, killed_err  # killed before the engine was free
        assert world.sql("SELECT pid FROM locks") == [(runner.pid,)]  # the dead runner's lock
    finally:
        if runner is not None and runner.poll() is None:
            kill_tree(runner)
        holder.communicate("", timeout=30)
    after = world.bqtui("--run-all")
    assert after.code == 0, after.err
    assert "ev: succeeded, 3/3 windows, 120 rows" in after.out, after.out + after.err
    assert "Took over from a runner that stopped without finishing" in after.err
    world.assert_exactly_once_and_clean()


_TUI_THEN_CRON = """
import asyncio, json, os, subprocess, sys
from datetime import datetime
from bqtui.tui.app import create_app

LATER = datetime.fromisoformat(sys.argv[2])


async def main():
    app = create_app(os.environ["BQTUI_DB"], clock=lambda: LATER, cursor_blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")  # the first export: a-tui
        screen = app.screen
        while not screen.finished:
            await pilot.pause(0.1)
        outcome = str(screen.query_one("#run-outcome").render())
        # The TUI stays open, as a user leaves it; cron's runner starts meanwhile.
        cron = subprocess.run([sys.argv[1], "--run-all"], capture_output=True, text=True)
        print(json.dumps({"outcome": outcome, "code": cron.returncode, "out": cron.stdout,
                          "err": cron.stderr}))


asyncio.run(main())
"""


def test_the_tui_does_not_hold_the_embedded_engine_while_cron_runs(world: World):
    import json
    import subprocess
    import sys

    from tests.faults.conftest import BQTUI, LATER

    world.insert_hours(T0, 3)
    world.add("a-tui", table="by_tui")
    world.add("b-cron", table="by_cron")
    done = subprocess.run(
        [sys.executable, "-c", _TUI_THEN_CRON, BQTUI, LATER.isoformat()],
        capture_output=True,
        text=True,
        timeout=300,
        env=world.environ(),
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["outcome"].startswith("✓ Succeeded: 3 window(s), 120 rows"), seen["outcome"]
    assert seen["code"] == 0, seen["err"]
    assert "b-cron: succeeded, 3/3 windows, 120 rows" in seen["out"]
    assert "a-tui: nothing_due" in seen["out"]
    world.assert_exactly_once_and_clean("by_tui")
    world.assert_exactly_once_and_clean("by_cron")


def test_small_windows_share_one_stage_and_merge_and_keep_their_own_counts(world: World):
    """Twelve hourly windows of 1..12 rows each: one load, one MERGE, twelve exact records."""
    for hour in range(12):
        world.insert_hours(T0 + timedelta(hours=hour), 1, per_hour=hour + 1)
    world.add()
    result = world.bqtui("run", "ev", BQTUI_NOW=iso(T0 + timedelta(hours=12, minutes=2)))
    assert result.code == 0, result.err
    assert "ev: succeeded, 12/12 windows, 78 rows" in result.out
    assert (
        "Windows 2024-05-01 00:00–2024-05-01 12:00 UTC (12 windows): loaded 78 rows" in result.err
    )
    rows = world.sql("SELECT substr(window_start, 12, 2), rows FROM windows ORDER BY 1")
    assert rows == [(f"{hour:02d}", hour + 1) for hour in range(12)]
    jobs = [
        c.json["jobReference"]["jobId"]
        for c in world.google.proxy.calls_to("jobs.insert")
        if isinstance(c.json, dict) and "jobReference" in c.json
    ]
    assert [j.rsplit("_", 2)[-2:] for j in jobs] == [["a1", "load0"], ["a1", "merge"]]
    world.assert_exactly_once_and_clean()
