"""Query job statistics, maximumBytesBilled, dry runs and reservations, as the fake Google
plays them, seen through the real google-cloud-bigquery client."""

import pytest
from google.api_core import exceptions
from google.cloud import bigquery

from tests.harness.google import unique_id
from tests.harness.job_statistics import (
    BYTES_PER_ROW,
    MIB,
    MIN_BILLED_PER_TABLE,
    RESERVATION_ID,
    billed_for,
    partition_filter,
    slot_ms_for,
    tables_read,
)

PROJECT = "bqtui-test"
# Rows per day of the ``events`` tables: 5 on May 1st, 3 on the 2nd, 2 on the 3rd.
ROWS_PER_DAY = {"2024-05-01": 5, "2024-05-02": 3, "2024-05-03": 2}
ALL_ROWS = sum(ROWS_PER_DAY.values())
# Rows lie between 00:00 and 04:00 of their day: this range holds all of May 1st and 2nd.
MAY_1_AND_2 = (
    "`timestamp` BETWEEN TIMESTAMP '2024-05-01 00:00:00+00' AND TIMESTAMP '2024-05-02 12:00:00+00'"
)


@pytest.fixture
def client(fake_google):
    return fake_google.admin_client(PROJECT)


@pytest.fixture
def dataset(client):
    dataset_id = unique_id("costs")
    client.create_dataset(dataset_id)
    return dataset_id


def events_table(client, dataset: str, name: str, *, partitioned: bool) -> str:
    """A table with ``ROWS_PER_DAY`` rows, day-partitioned on ``timestamp`` or not."""
    table = bigquery.Table(
        f"{PROJECT}.{dataset}.{name}",
        schema=[
            bigquery.SchemaField("uuid", "STRING"),
            bigquery.SchemaField("timestamp", "TIMESTAMP"),
            bigquery.SchemaField("v", "INT64"),
        ],
    )
    if partitioned:
        table.time_partitioning = bigquery.TimePartitioning(field="timestamp")
    client.create_table(table)
    values = ", ".join(
        f"('{day}-{n}', TIMESTAMP '{day} 0{n}:00:00+00', {n})"
        for day, count in ROWS_PER_DAY.items()
        for n in range(count)
    )
    table_ref = f"{PROJECT}.{dataset}.{name}"
    client.query(f"INSERT INTO `{table_ref}` VALUES {values}").result()
    return table_ref


def values(client, table_ref: str) -> list[tuple]:
    return sorted(tuple(row.values()) for row in client.query(f"SELECT uuid, v FROM `{table_ref}`"))


def count(client, table_ref: str) -> int:
    return next(iter(client.query(f"SELECT COUNT(*) AS n FROM `{table_ref}`").result())).n


# -- the model, without an emulator ------------------------------------------------------


def test_billing_rounds_up_to_the_mib_with_ten_mib_per_table():
    assert billed_for([]) == 0
    assert billed_for([0]) == MIN_BILLED_PER_TABLE
    assert billed_for([1000, 1000]) == 2 * MIN_BILLED_PER_TABLE
    assert billed_for([10 * MIB + 1]) == 11 * MIB
    assert slot_ms_for(0) == 1
    assert slot_ms_for(25_000) == 3


def test_the_tables_a_merge_reads_and_the_days_its_filter_keeps():
    sql = (
        "MERGE `p.d.final` AS final\n"
        "USING (SELECT * FROM `p.d.stage`) AS stage\n"
        "ON final.`uuid` = stage.`uuid` AND (final.`timestamp` BETWEEN "
        "TIMESTAMP '2024-05-01T00:00:00.000000+00:00' AND "
        "TIMESTAMP '2024-05-02T03:00:00.000000+00:00' OR final.`timestamp` IS NULL)\n"
        "WHEN NOT MATCHED THEN INSERT (`uuid`) VALUES (stage.`uuid`)"
    )
    final, stage = tables_read(sql, "p")
    assert (final.ref, final.aliases, stage.ref) == ("p.d.final", {"final"}, "p.d.stage")
    kept = partition_filter(sql, "timestamp", final)
    assert kept is not None and kept.includes_null
    assert sorted(str(day) for day in kept.days) == ["2024-05-01", "2024-05-02"]
    # The filter names the final table's alias, not the stage's.
    assert partition_filter(sql, "timestamp", stage) is None
    # A column whose name ends like the partition column's is another column.
    assert partition_filter(sql, "ingested_timestamp", final) is None


def test_ddl_and_views_read_nothing():
    assert tables_read("CREATE OR REPLACE VIEW `p.d.v` AS SELECT * FROM `p.d.t`", "p") == []
    assert tables_read("DROP TABLE `p.d.t`", "p") == []
    assert [t.ref for t in tables_read("DELETE FROM `d.t` WHERE TRUE", "p")] == ["p.d.t"]


# -- through the real client -------------------------------------------------------------


def test_a_query_job_reports_bytes_processed_billed_and_slot_time(client, dataset):
    table = events_table(client, dataset, "events", partitioned=False)

    job = client.query(f"SELECT COUNT(*) FROM `{table}`")
    rows = job.result()  # from jobs.getQueryResults

    assert rows.total_bytes_processed == ALL_ROWS * BYTES_PER_ROW
    assert job.total_bytes_processed == ALL_ROWS * BYTES_PER_ROW
    assert job.total_bytes_billed == MIN_BILLED_PER_TABLE
    assert job.slot_millis == slot_ms_for(ALL_ROWS * BYTES_PER_ROW)
    statistics = client.get_job(job.job_id)._properties["statistics"]
    assert statistics["totalBytesProcessed"] == str(ALL_ROWS * BYTES_PER_ROW)
    assert statistics["totalSlotMs"] == str(job.slot_millis)
    assert {key: statistics["query"][key] for key in ("billingTier", "cacheHit")} == {
        "billingTier": 1,
        "cacheHit": False,
    }
    assert statistics["query"]["totalBytesBilled"] == str(MIN_BILLED_PER_TABLE)
    assert "reservation_id" not in statistics


def test_a_constant_filter_on_the_partition_column_prunes_whole_days(client, dataset):
    partitioned = events_table(client, dataset, "by_day", partitioned=True)
    flat = events_table(client, dataset, "flat", partitioned=False)

    def processed(sql: str) -> int:
        job = client.query(sql)
        job.result()
        return job.total_bytes_processed

    may_1_and_2 = (ROWS_PER_DAY["2024-05-01"] + ROWS_PER_DAY["2024-05-02"]) * BYTES_PER_ROW
    assert processed(f"SELECT * FROM `{partitioned}` WHERE {MAY_1_AND_2}") == may_1_and_2
    assert processed(f"SELECT * FROM `{partitioned}`") == ALL_ROWS * BYTES_PER_ROW
    assert processed(f"SELECT * FROM `{partitioned}` WHERE v = 1") == ALL_ROWS * BYTES_PER_ROW
    # Without partitions BigQuery reads the whole table whatever the filter.
    assert processed(f"SELECT * FROM `{flat}` WHERE {MAY_1_AND_2}") == ALL_ROWS * BYTES_PER_ROW


def merge_sql(target: str, stage: str) -> str:
    return (
        f"MERGE `{target}` AS final\n"
        f"USING (SELECT * FROM `{stage}`) AS stage\n"
        f"ON final.`uuid` = stage.`uuid` AND final.{MAY_1_AND_2}\n"
        "WHEN MATCHED THEN UPDATE SET `v` = stage.`v` + 100\n"
        "WHEN NOT MATCHED THEN INSERT (`uuid`, `timestamp`, `v`) "
        "VALUES (stage.`uuid`, stage.`timestamp`, stage.`v`)"
    )


def test_a_merge_over_maximum_bytes_billed_fails_before_it_runs(fake_google, client, dataset):
    target = events_table(client, dataset, "final", partitioned=True)
    stage = events_table(client, dataset, "stage", partitioned=False)
    client.query(
        f"INSERT INTO `{stage}` VALUES ('new', TIMESTAMP '2024-05-02 05:00:00+00', 7)"
    ).result()
    before = values(client, target)
    config = bigquery.QueryJobConfig(maximum_bytes_billed=1000, labels={"bqtui": "merge"})

    job = client.query(merge_sql(target, stage), job_config=config, job_id_prefix="merge_")
    # The client maps reasons it does not know to 500, as it does against BigQuery.
    with pytest.raises(exceptions.InternalServerError) as failure:
        job.result()

    assert failure.value.errors[0]["reason"] == "bytesBilledLimitExceeded"
    two_tables = 2 * MIN_BILLED_PER_TABLE
    assert job.error_result == {
        "reason": "bytesBilledLimitExceeded",
        "message": f"Query exceeded limit for bytes billed: 1000. {two_tables} or higher required.",
    }
    assert values(client, target) == before
    assert client.get_job(job.job_id).state == "DONE"
    [recorded] = fake_google.proxy.query_jobs(r"^MERGE")
    assert (recorded.job_id, recorded.maximum_bytes_billed) == (job.job_id, 1000)
    assert recorded.labels == {"bqtui": "merge"}
    assert f"final.{MAY_1_AND_2}" in recorded.query

    # Within its limit the same MERGE runs and says what it read: the whole stage, and the
    # target's two days. It updates those days' rows and inserts the other three.
    config = bigquery.QueryJobConfig(maximum_bytes_billed=two_tables)
    job = client.query(merge_sql(target, stage), job_config=config)
    job.result()
    assert job.total_bytes_processed == (ALL_ROWS + 1 + 8) * BYTES_PER_ROW
    assert job.total_bytes_billed == two_tables
    assert count(client, target) == ALL_ROWS + 3


def test_jobs_query_reports_statistics_and_applies_the_limit(client, dataset):
    table = events_table(client, dataset, "events", partitioned=True)

    rows = client.query_and_wait(f"SELECT * FROM `{table}` WHERE {MAY_1_AND_2}")

    assert rows.total_bytes_processed == 8 * BYTES_PER_ROW
    assert rows.slot_millis == slot_ms_for(8 * BYTES_PER_ROW)
    with pytest.raises(exceptions.BadRequest) as failure:
        client.query_and_wait(
            f"DELETE FROM `{table}` WHERE TRUE",
            job_config=bigquery.QueryJobConfig(maximum_bytes_billed=MIB),
        )
    assert failure.value.errors[0]["reason"] == "bytesBilledLimitExceeded"
    assert count(client, table) == ALL_ROWS


def test_on_a_reservation_nothing_is_billed_and_slot_time_is_reported(fake_google, client, dataset):
    table = events_table(client, dataset, "events", partitioned=False)
    fake_google.proxy.set_reservation(True)

    job = client.query(
        f"SELECT * FROM `{table}`", job_config=bigquery.QueryJobConfig(maximum_bytes_billed=1)
    )
    job.result()

    assert job.total_bytes_processed == ALL_ROWS * BYTES_PER_ROW
    assert job.total_bytes_billed == 0
    assert job.slot_millis == slot_ms_for(ALL_ROWS * BYTES_PER_ROW)
    statistics = job._properties["statistics"]
    assert statistics["reservation_id"] == RESERVATION_ID
    assert statistics["reservationUsage"][0]["slotMs"] == str(job.slot_millis)


def test_a_dry_run_estimates_without_running(fake_google, client, dataset):
    target = events_table(client, dataset, "final", partitioned=True)
    stage = events_table(client, dataset, "stage", partitioned=False)
    before = values(client, target)
    dry_run = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False)

    job = client.query(merge_sql(target, stage), job_config=dry_run)

    assert job.total_bytes_processed == (ALL_ROWS + 8) * BYTES_PER_ROW
    assert job.total_bytes_billed == 0
    assert values(client, target) == before
    # A dry run is no job: query_jobs leaves it out.
    assert fake_google.proxy.query_jobs(r"^MERGE") == []
    # What tests set explicitly still wins.
    fake_google.proxy.dry_run_bytes = 12_345
    assert client.query(merge_sql(target, stage), job_config=dry_run).total_bytes_processed == (
        12_345
    )


def test_reported_figures_override_the_model_and_count_for_the_limit(fake_google, client, dataset):
    table = events_table(client, dataset, "events", partitioned=False)
    fake_google.proxy.report_job_stats(r"^big_", processed=5 * 1024**3)

    job = client.query(f"SELECT * FROM `{table}`", job_id_prefix="big_")
    job.result()
    assert (job.total_bytes_processed, job.total_bytes_billed) == (5 * 1024**3, 5 * 1024**3)
    assert job.slot_millis == slot_ms_for(5 * 1024**3)

    limited = bigquery.QueryJobConfig(maximum_bytes_billed=1024**3)
    with pytest.raises(exceptions.InternalServerError):
        client.query(f"SELECT * FROM `{table}`", job_config=limited, job_id_prefix="big_").result()
    small = client.query(f"SELECT * FROM `{table}`", job_config=limited, job_id_prefix="small_")
    small.result()
    assert small.total_bytes_billed == MIN_BILLED_PER_TABLE

    fake_google.proxy.report_job_stats(r"^slots_", billed=0, slot_ms=42)
    job = client.query(f"SELECT * FROM `{table}`", job_id_prefix="slots_")
    job.result()
    assert (job.total_bytes_billed, job.slot_millis) == (0, 42)
    assert job.total_bytes_processed == ALL_ROWS * BYTES_PER_ROW


def test_query_jobs_lists_statements_with_their_settings(fake_google, client, dataset):
    table = events_table(client, dataset, "events", partitioned=False)
    fake_google.proxy.reset_calls()

    client.query(f"SELECT 1 FROM `{table}`", job_id_prefix="listed_").result()
    client.query_and_wait(f"SELECT 2 FROM `{table}`")

    first, second = fake_google.proxy.query_jobs()
    assert first.operation == "jobs.insert" and first.job_id.startswith("listed_")
    assert first.maximum_bytes_billed is None and first.status == 200
    assert second.operation == "jobs.query" and second.job_id is None
    assert [job.query for job in fake_google.proxy.query_jobs("SELECT 2")] == [second.query]
