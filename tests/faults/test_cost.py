"""What BigQuery bills, through the real CLI: every MERGE's figures recorded per window and
summed in `status --json`; the bytes guard refuses a MERGE before it runs, so nothing is
written, and says what to change. The harness proxy bills as BigQuery does (at least 10 MiB
per table read) and applies maximumBytesBilled."""

import json

from bqtui.core.cost import projected_month_usd
from tests.faults.conftest import PROJECT, World
from tests.harness.job_statistics import query_job_record


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


def test_a_backfill_of_a_partitioned_table_is_estimated_from_the_days_it_merges(
    events_world: World,
):
    world = events_world
    assert world.bqtui("run", "ev").code == 0  # the table exists, partitioned by day
    assert world.bqtui("set-cost", "ev", "--max-bytes-billed", "15MiB").code == 0
    world.google.proxy.reset_calls()
    backfill = world.bqtui("run", "ev", "--start", "2024-05-01", "--end", "2024-05-01T02:00")
    estimate = backfill.err.splitlines()[0]
    assert estimate == (
        "Estimate: 1 MERGE(s), 21.0 MB billed in all (about $0.00; the largest 21.0 MB), from "
        "dry runs of the partitions each MERGE names (its windows' days ± 1; rows whose "
        "timestamp lies further back add their days)."
    ), backfill.err
    # Above the guard: said before the run, as the run then finds.
    assert "Each MERGE may bill up to 21.0 MB, more than the export's" in backfill.err
    [dry_run] = [
        record
        for call in world.google.proxy.calls
        if (record := query_job_record(call.operation, call.json, call.account, call.status))
        and record.dry_run
    ]
    # Constant bounds on the partition column: BigQuery prunes to those days.
    assert dry_run.query.endswith(
        "WHERE `timestamp` BETWEEN TIMESTAMP '2024-04-30T00:00:00.000000+00:00' "
        "AND TIMESTAMP '2024-05-02T02:00:00.000000+00:00'"
    ), dry_run.query
