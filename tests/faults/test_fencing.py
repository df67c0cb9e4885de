"""Fencing covers what happens in BigQuery: a runner that lost its lock submits no load and no
MERGE; a dataset whose location cannot be looked up never makes a running MERGE "missing";
what a MERGE changed is logged, and a MERGE that inserted more than was staged fails loudly."""

import os
import signal
import time

from tests.faults.conftest import World, wait_for
from tests.harness.bq_proxy import HttpFault


def _stopped(process) -> bool:
    return bool(
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT)
    )


def test_a_runner_frozen_before_a_load_submits_nothing_after_it_lost_its_lock(
    events_world: World,
):
    world = events_world
    frozen = world.start(
        "run", "ev", BQTUI_LOCK_TTL=1, BQTUI_GROUP_WINDOWS=1, BQTUI_TEST_FAULT="uploading#2:stop"
    )
    wait_for(lambda: _stopped(frozen))
    time.sleep(1.5)  # the lock expires
    # The taker has its own temporary folder: the frozen runner's file is still there to load.
    (world.root / "taker-tmp").mkdir()
    taker = world.start("run", "ev", BQTUI_ENGINE_WAIT=120, TMPDIR=world.root / "taker-tmp")
    owner = world.sql("SELECT owner FROM locks")[0][0]
    wait_for(lambda: world.sql("SELECT owner FROM locks WHERE owner != ?", (owner,)))

    os.kill(frozen.pid, signal.SIGCONT)  # it resumes right before submitting its load
    out, err = frozen.communicate(timeout=120)
    taker_out, taker_err = taker.communicate(timeout=180)
    assert frozen.returncode == 1, err
    assert "ev: interrupted" in out
    assert "lost the export's lock" in err
    assert taker.returncode == 0, taker_err
    # The thawed runner was about to load its second window (attempt 1): nothing was sent.
    frozen_loads = [
        c for c in world.google.proxy.calls_to("jobs.insert") if "T010000_a1_load" in str(c.json)
    ]
    assert frozen_loads == []
    world.assert_exactly_once_and_clean()


def test_a_failed_location_lookup_never_merges_a_window_again(events_world: World):
    """Outside the US a job is found only with its location: when the dataset's location
    cannot be read, the earlier MERGE is not taken as missing; the window waits."""
    world = events_world
    proxy = world.google.proxy
    proxy.set_dataset_location("bqtui-test", world.dataset, "EU")
    proxy.set_job_latency(3.0, r"_merge$")
    killed = world.bqtui("run", "ev", BQTUI_GROUP_WINDOWS=3, BQTUI_TEST_FAULT="merge_submitted:die")
    assert killed.code == -signal.SIGKILL, killed.err
    proxy.set_job_latency(0)
    merges = lambda: [c for c in proxy.calls_to("jobs.insert") if "_merge" in str(c.json)]  # noqa: E731
    assert len(merges()) == 1

    proxy.inject(
        "GET",
        rf"/datasets/{world.dataset}$",
        HttpFault(
            403, "accessDenied", "Access Denied: Dataset: permission bigquery.datasets.get denied"
        ),
        times=50,
    )
    waiting = world.bqtui("run", "ev")
    assert waiting.code == 1, waiting.err
    assert "looking up the location of dataset" in waiting.err
    assert len(merges()) == 1, "the window was merged again while its MERGE may run"
    assert world.sql("SELECT count(*) FROM windows WHERE pending_merge_job IS NOT NULL") == [(3,)]

    proxy.clear_faults()
    resolved = world.bqtui("run", "ev")
    assert resolved.code == 0, resolved.err
    assert "had succeeded; recorded the window as done without running it again" in resolved.err
    assert len(merges()) == 1
    world.assert_exactly_once_and_clean()


def test_merge_counts_are_logged_and_more_inserted_than_staged_fails_the_window(
    events_world: World,
):
    world = events_world
    world.google.proxy.report_dml_stats(r"T000000_a1_merge$", inserted=45)
    first = world.bqtui("run", "ev", BQTUI_GROUP_WINDOWS=1)
    assert first.code == 1
    assert "the MERGE inserted 45 and updated 0 of 40 staged rows." in first.err
    assert (
        "BigQuery reports 45 rows inserted by MERGE job " in first.err
        and "more than the 40 staged. The window is recorded failed; run `bqtui verify`"
        in first.err
    )
    assert world.sql("SELECT status FROM windows ORDER BY window_start")[0] == ("failed",)
    world.google.proxy.clear_faults()
    second = world.bqtui("run", "ev")
    assert second.code == 0, second.err
    assert "the MERGE changed" in second.err  # the emulator gives only rows affected
    world.assert_exactly_once_and_clean()
