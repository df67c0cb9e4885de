"""kill -9 at each step of a window and at random instants, frozen runners, concurrent
runners: every case ends with each source row exactly once in BigQuery and nothing left."""

import os
import random
import signal
import time
from datetime import timedelta

import pytest

from tests.faults.conftest import HOURS, T0, World, iso, kill_tree, wait_for

STEPS = ["extracted", "uploading", "load_submitted", "merge_submitted", "merge_done", "recorded"]


@pytest.mark.parametrize("grouped", [False, True], ids=["window-by-window", "grouped"])
@pytest.mark.parametrize("step", STEPS)
def test_kill_at_each_step_then_an_immediate_rerun(events_world: World, step, grouped):
    """Window by window (one stage and MERGE each), the second window dies at ``step``;
    grouped (the three windows share a stage and a MERGE), the group dies there."""
    world = events_world
    if not grouped:
        world.env["BQTUI_GROUP_WINDOWS"] = "1"
    if step == "merge_submitted":  # the MERGE is still running in BigQuery when we die
        world.google.proxy.set_job_latency(3.0, r"_merge$")
    nth = 2 if not grouped or step in ("extracted", "recorded") else 1
    killed = world.bqtui("run", "ev", BQTUI_TEST_FAULT=f"{step}#{nth}:die")
    assert killed.code == -signal.SIGKILL, killed.err
    assert world.sql("SELECT status FROM runs") == [("running",)]
    merges_before = [
        c for c in world.google.proxy.calls_to("jobs.insert") if "_merge" in str(c.json)
    ]

    rerun = world.bqtui("run", "ev")
    assert rerun.code == 0, rerun.err
    assert "Took over from a runner that stopped without finishing (pid" in rerun.err
    assert world.sql("SELECT status FROM runs ORDER BY id") == [("interrupted",), ("succeeded",)]
    assert len(world.sql("SELECT * FROM windows WHERE status = 'done'")) == HOURS
    world.assert_exactly_once_and_clean()
    if step == "merge_submitted":
        assert "is still running in BigQuery; waiting for it" in rerun.err
    if step in ("merge_submitted", "merge_done"):
        assert "had succeeded; recorded the window as done without running it again" in rerun.err
        # The window whose MERGE had run (the group's first: the killed window, or the
        # group of three) gets no second MERGE; a later window may merge for the first time.
        merged_window = "T000000" if grouped else "T010000"
        second_attempt_merges = [
            c
            for c in world.google.proxy.calls_to("jobs.insert")
            if f"{merged_window}_a2_merge" in str(c.json)
        ]
        assert second_attempt_merges == [], "the finished MERGE was run (and billed) again"
        assert len(merges_before) == (1 if grouped else 2)


def test_kill_at_twenty_random_instants(world: World):
    """Twenty runs killed at seeded random instants, each followed at once by the next."""
    world.insert_hours(T0, 12)
    world.add()
    world.env["BQTUI_NOW"] = iso(T0 + timedelta(hours=12, minutes=2))
    chooser = random.Random(20261201)
    started = time.monotonic()
    finished = world.bqtui("run", "ev", BQTUI_TEST_FAULT="recorded#3:die")
    full = time.monotonic() - started  # a run's time to its third window
    assert finished.code == -signal.SIGKILL
    for _ in range(20):
        process = world.start("run", "ev")
        time.sleep(chooser.uniform(0.05, full * 1.5))
        kill_tree(process)
    final = world.bqtui("run", "ev")
    assert final.code == 0, final.err
    assert len(world.sql("SELECT * FROM windows WHERE status = 'done'")) == 12
    world.assert_exactly_once_and_clean()


def test_three_runners_started_at_once(events_world: World):
    world = events_world
    runners = [world.start("--run-all") for _ in range(3)]
    outputs = [p.communicate(timeout=180) for p in runners]
    assert [p.returncode for p in runners] == [0, 0, 0], [err for _, err in outputs]
    statuses = sorted(out.split(":")[1].split(",")[0].strip() for out, _ in outputs)
    assert statuses == ["busy", "busy", "succeeded"]
    world.assert_exactly_once_and_clean()


def test_a_short_lock_outlives_a_slow_merge(events_world: World):
    """The heartbeat renews a 1 s lock while a MERGE takes 4 s: a second runner is refused."""
    world = events_world
    world.google.proxy.set_job_latency(4.0, r"_merge$")
    first = world.start("run", "ev", BQTUI_LOCK_TTL=1)
    wait_for(lambda: world.sql("SELECT 1 FROM windows WHERE pending_merge_job IS NOT NULL"), 20)
    time.sleep(2.0)  # two TTLs into the MERGE
    second = world.bqtui("run", "ev", BQTUI_LOCK_TTL=1)
    assert second.code == 1 and "busy" in second.out, second.err
    assert "Another bqtui runner (pid" in second.err
    out, err = first.communicate(timeout=180)
    assert first.returncode == 0, err
    world.assert_exactly_once_and_clean()


def test_a_frozen_runner_loses_its_lock_and_records_nothing(events_world: World):
    """Frozen after submitting its MERGE, a runner's lock expires; the next runner takes it
    over, finds the MERGE done and records the window; the thawed runner is fenced off."""
    world = events_world
    frozen = world.start(
        "run",
        "ev",
        BQTUI_LOCK_TTL=1,
        BQTUI_GROUP_WINDOWS=1,
        BQTUI_TEST_FAULT="merge_submitted#2:stop",
    )
    wait_for(
        lambda: os.waitid(os.P_PID, frozen.pid, os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT)
    )
    time.sleep(1.5)  # the lock expires
    taker = world.start("run", "ev", BQTUI_ENGINE_WAIT=120)
    owner = world.sql("SELECT owner FROM locks")[0][0]
    wait_for(lambda: world.sql("SELECT owner FROM locks WHERE owner != ?", (owner,)))
    os.kill(frozen.pid, signal.SIGCONT)
    frozen_out, frozen_err = frozen.communicate(timeout=180)
    taker_out, taker_err = taker.communicate(timeout=180)
    assert frozen.returncode == 1, frozen_err
    assert "ev: interrupted" in frozen_out
    assert "lost the export's lock" in frozen_err or "took this export's lock over" in frozen_err
    assert taker.returncode == 0, taker_err
    assert "had succeeded; recorded the window as done without running it again" in taker_err
    world.assert_exactly_once_and_clean()


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_at_a_safe_point_and_the_next_run_completes(
    events_world: World, signum, code
):
    world = events_world
    runner = world.start("--run-all", BQTUI_TEST_FAULT="uploading#2:pause=2", BQTUI_GROUP_WINDOWS=1)
    wait_for(lambda: len(world.sql("SELECT 1 FROM windows")) == 2)  # the second began
    time.sleep(0.5)  # inside the second window's pause (the first's MERGE runs meanwhile)
    sent = time.monotonic()
    runner.send_signal(signum)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == code, err
    assert time.monotonic() - sent < 10
    name = signal.Signals(signum).name
    assert f"bqtui: {name} received; stopping at the next safe point." in err
    assert "ev: cancelled, 1/3 windows, 40 rows" in out
    assert world.sql("SELECT status FROM windows ORDER BY window_start") == [
        ("done",),
        ("cancelled",),
    ]
    rerun = world.bqtui("--run-all")
    assert rerun.code == 0, rerun.err
    assert "ev: succeeded, 2/2 windows, 80 rows" in rerun.out
    world.assert_exactly_once_and_clean()
