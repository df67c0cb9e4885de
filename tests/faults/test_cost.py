"""What BigQuery bills, through the real CLI: every MERGE's figures recorded per window and
summed in `status --json`; the bytes guard refuses a MERGE before it runs, so nothing is
written, and says what to change. The harness proxy bills as BigQuery does (at least 10 MiB
per table read) and applies maximumBytesBilled."""

import json

from bqtui.core.cost import projected_month_usd
from tests.faults.conftest import PROJECT, World


def test_the_guard_refuses_before_anything_is_written_and_costs_are_recorded(
    events_world: World,
):
    world = events_world
    assert world.bqtui("set-cost", "ev", "--max-bytes-billed", "15MiB").code == 0

    refused = world.bqtui("run", "ev")
    assert refused.code == 1
    assert "more than the export's limit of 15.7 MB (15,728,640 bytes)" in refused.err
    assert "BigQuery refused it before it ran: nothing was written." in refused.err
    assert "Stopped this export: nothing was written; see above for what to change." in refused.err
    rows = world.google.admin_client(PROJECT).query(
        f"SELECT COUNT(*) AS n FROM `{PROJECT}.{world.dataset}.events_export`"
    )
    assert next(iter(rows.result()))["n"] == 0
    status = json.loads(world.bqtui("status", "--json").out)["exports"][0]
    assert "more than the export's limit" in status["last_run_error"]
    assert status["bytes_billed_30d"] == 0  # a refused job bills nothing

    assert world.bqtui("set-cost", "ev", "--no-max-bytes-billed").code == 0
    run = world.bqtui("run", "ev")
    assert run.code == 0, run.err
    world.assert_exactly_once_and_clean()
    merges = [
        job
        for job in world.google.proxy.query_jobs(r"^MERGE")
        if job.labels.get("bqtui_export") == "ev" and job.status == 200
    ]
    assert merges and "MERGE billed" in run.err
    recorded = world.sql("SELECT kind, bytes_billed FROM job_costs")
    # The refused MERGE is not among them: it billed nothing. 10 MiB at least per table read.
    assert len(recorded) == len(merges) - 1 and all(kind == "merge" for kind, _ in recorded)
    billed = sum(int(count) for _, count in recorded)
    assert billed >= 20 * 2**20 * len(recorded)
    status = json.loads(world.bqtui("status", "--json").out)["exports"][0]
    assert status["bytes_billed_24h"] == status["bytes_billed_30d"] == billed
    assert status["projected_month_usd"] == projected_month_usd(billed, 1.0, None)
    shown = json.loads(world.bqtui("show", "ev", "--json").out)
    assert (shown["write_mode"], shown["max_bytes_billed"]) == ("merge", None)
