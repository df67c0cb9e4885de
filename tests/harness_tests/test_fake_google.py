"""The fake Google, exercised with the real google-auth and google-cloud-bigquery clients."""

import datetime
import io
import os

import google.auth.exceptions
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from google.api_core import exceptions
from google.cloud import bigquery
from google.oauth2 import service_account

from tests.harness import bq_proxy
from tests.harness.google import (
    DATA_EDITOR,
    JOB_USER,
    SEED_CUSTOM_ROLE,
    FakeGoogle,
    ServiceAccount,
    unique_id,
)

PROJECT = "bqtui-test"
SHORT_RETRY = bigquery.DEFAULT_RETRY.with_deadline(5)
DRY_RUN = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False)


def client_for(google: FakeGoogle, key: dict, project: str = PROJECT) -> bigquery.Client:
    """A client configured the way product code configures one: a key file and an endpoint."""
    credentials = service_account.Credentials.from_service_account_info(key)
    return bigquery.Client(
        project=project,
        credentials=credentials,
        client_options={"api_endpoint": google.api_endpoint},
    )


@pytest.fixture
def dataset(fake_google):
    dataset_id = unique_id("harness")
    fake_google.admin_client(PROJECT).create_dataset(dataset_id)
    return dataset_id


@pytest.fixture
def table(fake_google, dataset):
    table = bigquery.Table(
        f"{PROJECT}.{dataset}.events",
        schema=[bigquery.SchemaField("id", "INT64"), bigquery.SchemaField("payload", "STRING")],
    )
    fake_google.admin_client(PROJECT).create_table(table)
    return table.table_id


def exporter(google: FakeGoogle, dataset: str, permissions=SEED_CUSTOM_ROLE) -> ServiceAccount:
    """An account with bqtui's documented grants: jobs.create on the project, the rest on the dataset."""
    return google.new_account(
        PROJECT,
        project_permissions=permissions & JOB_USER,
        dataset_permissions={dataset: permissions - JOB_USER},
    )


def parquet_bytes(rows: int, payload_chars: int = 8) -> bytes:
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            # Random text does not compress, so the file size follows payload_chars.
            "payload": [os.urandom(payload_chars // 2).hex() for _ in range(rows)],
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="none")
    return buffer.getvalue()


def load_parquet(client: bigquery.Client, destination: str, data: bytes, job_id: str):
    return client.load_table_from_file(
        io.BytesIO(data),
        destination,
        job_id=job_id,
        job_config=bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        ),
        size=len(data),
    )


def count_rows(google: FakeGoogle, table_path: str) -> int:
    [row] = google.admin_client(PROJECT).query(f"SELECT COUNT(*) AS n FROM `{table_path}`").result()
    return row.n


def test_a_key_file_gets_a_token_and_creates_and_gets_a_dataset(fake_google):
    account = fake_google.new_account(PROJECT, project_permissions=DATA_EDITOR)
    client = client_for(fake_google, account.key)
    dataset_id = unique_id("created")

    client.create_dataset(dataset_id, retry=SHORT_RETRY)
    fetched = client.get_dataset(dataset_id, retry=SHORT_RETRY)

    assert fetched.dataset_id == dataset_id
    assert fetched.location == "US"
    assert {call.operation for call in fake_google.proxy.calls} == {
        "datasets.insert",
        "datasets.get",
    }
    assert {call.account for call in fake_google.proxy.calls} == {account.email}


def test_a_missing_dataset_permission_is_googles_403(fake_google, dataset):
    account = exporter(fake_google, dataset, SEED_CUSTOM_ROLE - {"bigquery.tables.create"})
    client = client_for(fake_google, account.key)

    with pytest.raises(exceptions.Forbidden) as denied:
        client.create_table(f"{PROJECT}.{dataset}.new_table", retry=SHORT_RETRY)

    assert denied.value.errors[0]["reason"] == "accessDenied"
    assert denied.value.errors[0]["message"] == (
        f"Access Denied: Dataset {PROJECT}:{dataset}: Permission bigquery.tables.create "
        f"denied on dataset {PROJECT}:{dataset} (or it may not exist)."
    )


def test_jobs_create_is_checked_on_the_project(fake_google, dataset):
    account = fake_google.new_account(PROJECT, dataset_permissions={dataset: DATA_EDITOR})
    client = client_for(fake_google, account.key)

    with pytest.raises(exceptions.Forbidden) as denied:
        client.query("SELECT 1", retry=SHORT_RETRY, job_retry=None).result()

    assert denied.value.errors[0]["message"] == (
        f"Access Denied: Project {PROJECT}: User does not have bigquery.jobs.create "
        f"permission in project {PROJECT}."
    )


def test_a_query_needs_get_data_on_what_it_reads_and_update_data_on_what_it_changes(
    fake_google, dataset, table
):
    reader = exporter(fake_google, dataset, JOB_USER | {"bigquery.tables.getData"})
    client = client_for(fake_google, reader.key)

    assert list(client.query(f"SELECT * FROM `{PROJECT}.{dataset}.{table}`").result()) == []
    with pytest.raises(exceptions.Forbidden) as denied:
        client.query(
            f"DELETE FROM `{PROJECT}.{dataset}.{table}` WHERE id = 1", job_retry=None
        ).result()
    assert "Permission bigquery.tables.updateData denied on table" in denied.value.message

    reader.revoke(dataset_permissions={dataset: {"bigquery.tables.getData"}})
    with pytest.raises(exceptions.Forbidden) as denied:
        client.query(f"SELECT * FROM {dataset}.{table}", job_retry=None).result()
    assert denied.value.errors[0]["message"] == (
        f"Access Denied: Table {PROJECT}:{dataset}.{table}: User does not have permission to "
        f"query table {PROJECT}:{dataset}.{table}, or perhaps it does not exist in location US."
    )
    with pytest.raises(exceptions.Forbidden, match="does not have permission to query"):
        client.query_and_wait(f"SELECT * FROM {dataset}.{table}", job_retry=None)
    with pytest.raises(exceptions.Forbidden, match="does not have permission to query"):
        client.query(f"SELECT * FROM {dataset}.{table}", job_config=DRY_RUN, job_retry=None)


def test_a_dry_run_creates_no_job_to_conflict_with(fake_google, dataset, table):
    client = client_for(fake_google, exporter(fake_google, dataset).key)
    job_id = unique_id("job")

    client.query(
        f"SELECT * FROM {dataset}.{table}", job_config=DRY_RUN, job_id=job_id, job_retry=None
    )

    assert client.query("SELECT 1", job_id=job_id, job_retry=None).result().total_rows == 1


def test_test_iam_permissions_answers_the_granted_subset(fake_google, dataset, table):
    account = exporter(fake_google, dataset, JOB_USER | {"bigquery.tables.get"})
    client = client_for(fake_google, account.key)

    def test_permissions(table_id, permissions):
        return client._connection.api_request(
            method="POST",
            path=f"/projects/{PROJECT}/datasets/{dataset}/tables/{table_id}:testIamPermissions",
            data={"permissions": permissions},
        )

    asked = ["bigquery.tables.get", "bigquery.tables.getData", "bigquery.tables.updateData"]
    assert test_permissions(table, asked) == {"permissions": ["bigquery.tables.get"]}
    assert test_permissions(table, ["bigquery.tables.delete"]) == {}
    with pytest.raises(exceptions.NotFound):
        test_permissions("no_such_table", asked)
    with pytest.raises(exceptions.BadRequest, match="not valid for this resource"):
        test_permissions(table, ["bigquery.jobs.create"])


def test_a_reused_job_id_is_a_conflict(fake_google, dataset):
    client = exporter(fake_google, dataset).client()
    job_id = unique_id("job")

    client.query("SELECT 1", job_id=job_id, job_retry=None).result()
    with pytest.raises(exceptions.Conflict) as conflict:
        client.query("SELECT 2", job_id=job_id, job_retry=None)

    assert conflict.value.errors[0]["message"] == f"Already Exists: Job {PROJECT}:US.{job_id}"
    assert conflict.value.errors[0]["reason"] == "duplicate"


def test_a_dropped_answer_to_jobs_insert_makes_the_retry_see_the_conflict(fake_google, dataset):
    client = client_for(fake_google, exporter(fake_google, dataset).key)
    job_id = unique_id("job")
    fake_google.proxy.inject("POST", r"/projects/[^/]+/jobs$", bq_proxy.DROP_AFTER)

    with pytest.raises(exceptions.Conflict):
        client.query("SELECT 1", job_id=job_id, retry=SHORT_RETRY, job_retry=None)

    inserts = fake_google.proxy.calls_to("jobs.insert")
    assert [(call.fault, call.status) for call in inserts] == [("drop_after", 200), (None, 409)]
    assert client.get_job(job_id).state == "DONE"  # the first insert did take effect


@pytest.mark.parametrize(
    ("rows", "payload_chars", "upload_type"),
    [(10, 8, "multipart"), (50_000, 128, "resumable")],
)
def test_a_parquet_load_goes_through_the_upload_endpoint(
    fake_google, dataset, table, rows, payload_chars, upload_type
):
    client = client_for(fake_google, exporter(fake_google, dataset).key)
    data = parquet_bytes(rows, payload_chars)
    assert (len(data) > 5 * 1024 * 1024) == (upload_type == "resumable")
    job_id = unique_id("load")

    job = load_parquet(client, f"{PROJECT}.{dataset}.{table}", data, job_id)
    job.result()

    assert job.job_id == job_id  # the caller's job ID, although the emulator mints its own
    assert client.get_job(job_id).job_type == "load"
    assert count_rows(fake_google, f"{PROJECT}.{dataset}.{table}") == rows
    [insert] = [
        call for call in fake_google.proxy.calls_to("jobs.insert") if "/upload/" in call.path
    ]
    assert insert.query["uploadType"] == upload_type
    assert insert.json["jobReference"]["jobId"] == job_id


def test_a_dropped_answer_to_a_load_makes_the_retry_see_the_conflict(fake_google, dataset, table):
    client = client_for(fake_google, exporter(fake_google, dataset).key)
    fake_google.proxy.inject("POST", r"^/upload/", bq_proxy.DROP_AFTER)

    with pytest.raises(exceptions.Conflict):
        load_parquet(client, f"{PROJECT}.{dataset}.{table}", parquet_bytes(3), unique_id("load"))

    assert count_rows(fake_google, f"{PROJECT}.{dataset}.{table}") == 3


def test_a_load_needs_update_data_on_its_destination(fake_google, dataset, table):
    account = exporter(fake_google, dataset, SEED_CUSTOM_ROLE - {"bigquery.tables.updateData"})
    client = client_for(fake_google, account.key)

    with pytest.raises(exceptions.Forbidden) as denied:
        load_parquet(client, f"{PROJECT}.{dataset}.{table}", parquet_bytes(3), unique_id("load"))

    assert "Permission bigquery.tables.updateData denied on table" in denied.value.message


def test_the_record_keeps_what_the_emulator_forgets(fake_google, dataset):
    client = client_for(fake_google, exporter(fake_google, dataset).key)
    stage = bigquery.Table(
        f"{PROJECT}.{dataset}.stage", schema=[bigquery.SchemaField("id", "INT64")]
    )
    stage.expires = stage_expiry = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)

    client.create_table(stage)
    client.query(
        "SELECT 1", job_config=bigquery.QueryJobConfig(labels={"bqtui_export": "events"})
    ).result()

    [create] = fake_google.proxy.calls_to("tables.insert")
    assert int(create.json["expirationTime"]) == int(stage_expiry.timestamp() * 1000)
    [insert] = fake_google.proxy.calls_to("jobs.insert")
    assert insert.json["configuration"]["labels"] == {"bqtui_export": "events"}


@pytest.mark.parametrize(
    "fault",
    [
        bq_proxy.BACKEND_ERROR,
        bq_proxy.RATE_LIMIT_EXCEEDED,
        bq_proxy.INTERNAL_ERROR,
        bq_proxy.DROP_BEFORE,
    ],
)
def test_transient_faults_are_retried_by_the_client(fake_google, dataset, fault):
    client = client_for(fake_google, exporter(fake_google, dataset).key)
    fake_google.proxy.inject("GET", rf"/datasets/{dataset}$", fault, times=2)

    assert client.get_dataset(dataset, retry=SHORT_RETRY).dataset_id == dataset

    gets = fake_google.proxy.calls_to("datasets.get")
    assert [call.status for call in gets][-1] == 200
    assert len(gets) == 3


def test_quota_exceeded_is_not_retried(fake_google, dataset):
    client = client_for(fake_google, exporter(fake_google, dataset).key)
    fake_google.proxy.inject(None, r"/jobs$", bq_proxy.QUOTA_EXCEEDED)

    with pytest.raises(exceptions.Forbidden) as refused:
        client.query("SELECT 1", retry=SHORT_RETRY, job_retry=None)

    assert refused.value.errors[0]["reason"] == "quotaExceeded"
    assert len(fake_google.proxy.calls_to("jobs.insert")) == 1


def test_a_revoked_key_cannot_get_a_token(fake_google, dataset):
    account = exporter(fake_google, dataset)
    account.revoke_key()

    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        client_for(fake_google, account.key).get_dataset(dataset, retry=SHORT_RETRY)


def test_a_running_client_fails_once_its_token_ends_and_its_key_is_revoked(fake_google, dataset):
    account = exporter(fake_google, dataset)
    client = client_for(fake_google, account.key)
    client.get_dataset(dataset, retry=SHORT_RETRY)

    account.revoke_key()
    client.get_dataset(dataset, retry=SHORT_RETRY)  # its token is still good
    fake_google.expire_tokens()

    with pytest.raises(google.auth.exceptions.RefreshError, match="Invalid JWT Signature"):
        client.get_dataset(dataset, retry=SHORT_RETRY)


def test_a_deleted_account_is_not_found(fake_google, dataset):
    account = exporter(fake_google, dataset)
    client = client_for(fake_google, account.key)
    client.get_dataset(dataset, retry=SHORT_RETRY)

    account.delete()

    with pytest.raises(google.auth.exceptions.RefreshError, match="account not found"):
        client.get_dataset(dataset, retry=SHORT_RETRY)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "required"), ({"Authorization": "Bearer ya29.made-up"}, "authError")],
)
def test_requests_without_a_valid_token_are_unauthenticated(fake_google, dataset, headers, reason):
    url = f"{fake_google.api_endpoint}/bigquery/v2/projects/{PROJECT}/datasets/{dataset}"

    reply = requests.get(url, headers=headers, timeout=10)

    assert reply.status_code == 401
    assert reply.json()["error"]["errors"][0]["reason"] == reason
    assert reply.json()["error"]["status"] == "UNAUTHENTICATED"


def test_an_unknown_project_is_not_found(fake_google):
    account = fake_google.new_account("nope-123", project_permissions=DATA_EDITOR)
    client = client_for(fake_google, account.key, project="nope-123")

    with pytest.raises(exceptions.NotFound) as missing:
        client.get_dataset("anything", retry=SHORT_RETRY)

    assert missing.value.errors[0]["message"] == "Not found: Project nope-123"


def test_datasets_report_their_registered_location_and_jobs_elsewhere_miss_them(
    fake_google, dataset, table
):
    fake_google.set_dataset_location(PROJECT, dataset, "EU")
    client = client_for(fake_google, exporter(fake_google, dataset).key)

    assert client.get_dataset(dataset).location == "EU"
    assert client.get_table(f"{dataset}.{table}").location == "EU"
    with pytest.raises(exceptions.NotFound, match=f"{dataset} was not found in location US"):
        client.query(f"SELECT * FROM {dataset}.{table}", location="US", job_retry=None)
    job = client.query(f"SELECT * FROM {dataset}.{table}", location="EU")
    job.result()
    assert job.location == "EU"


def test_datasets_list_shows_only_datasets_the_caller_may_get(fake_google, dataset):
    client = client_for(fake_google, exporter(fake_google, dataset).key)

    assert [listed.dataset_id for listed in client.list_datasets()] == [dataset]


def test_emulator_error_messages_name_resources_as_bigquery_does(fake_google, dataset):
    client = fake_google.admin_client(PROJECT)

    with pytest.raises(exceptions.NotFound) as missing:
        client.get_table(f"{PROJECT}.{dataset}.missing")

    assert missing.value.errors[0]["message"] == f"Not found: Table {PROJECT}:{dataset}.missing"


def test_a_token_without_a_bigquery_scope_is_refused(fake_google, dataset):
    account = exporter(fake_google, dataset)
    credentials = service_account.Credentials.from_service_account_info(
        account.key, scopes=["https://www.googleapis.com/auth/devstorage.read_only"]
    )
    client = fake_google.client_for(credentials, PROJECT)

    with pytest.raises(exceptions.Forbidden, match="insufficient authentication scopes"):
        client.get_dataset(dataset)


def test_the_creator_of_a_dataset_owns_it(fake_google):
    account = fake_google.new_account(PROJECT, project_permissions={"bigquery.datasets.create"})
    client = client_for(fake_google, account.key)
    dataset_id = unique_id("owned")

    client.create_dataset(dataset_id, retry=SHORT_RETRY)
    client.delete_dataset(dataset_id, retry=SHORT_RETRY)
