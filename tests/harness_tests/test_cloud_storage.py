"""The Cloud Storage stage end to end, offline: the embedded ClickHouse writes Parquet parts
through the XML API stand-in, bqtui's client lists and deletes them, the BigQuery emulator
loads them by wildcard URI; wrong keys and missing permissions give bqtui's messages; the
JSON API answers testPermissions from the fake Google's bucket grants."""

from __future__ import annotations

import hashlib
import socket
import urllib.request
import uuid
from datetime import UTC, datetime

import clickhouse_connect
import pytest
from google.auth.transport.requests import AuthorizedSession
from google.cloud import bigquery
from google.oauth2 import service_account

from bqtui.stage.clickhouse_sql import insert_statement
from bqtui.stage.errors import StageAccessProblem, StageUnreachable
from bqtui.stage.hmac_key import HmacKey
from bqtui.stage.location import StageLocation
from bqtui.stage.signing import signed_headers
from bqtui.stage.xml_client import PROBE_NAME, StageClient
from tests.harness import sigv4
from tests.harness.cloud_storage import CloudStorage
from tests.harness.fixtures import DEFAULT_PROJECT
from tests.harness.google import unique_id

KEY = HmacKey("GOOG1ETESTKEY", "a-secret/with+'quote")
START = datetime(2026, 12, 5, 15, tzinfo=UTC)
# What the pipeline should run ClickHouse's INSERT with: a retried attempt overwrites.
WRITE_SETTINGS = {"s3_truncate_on_insert": 1}
ROWS = "SELECT toInt64(number) AS n, concat('row ', toString(number)) AS s FROM numbers(1000)"
STORAGE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
OBJECT_PERMISSIONS = [f"storage.objects.{verb}" for verb in ("create", "get", "list", "delete")]


@pytest.fixture
def bucket(cloud_storage: CloudStorage) -> str:
    name = f"stage-{uuid.uuid4().hex[:12]}"
    cloud_storage.add_bucket(name)
    cloud_storage.register_key(KEY.access_id, KEY.secret)
    return name


@pytest.fixture(scope="module")
def clickhouse(chdb_dsn_for):
    return clickhouse_connect.get_client(dsn=chdb_dsn_for("stage_tests"))


def client_for(storage: CloudStorage, bucket: str, key: HmacKey = KEY) -> StageClient:
    return StageClient(bucket, key, endpoint=storage.url)


def write_attempt(clickhouse, storage: CloudStorage, attempt, key=KEY, parts=3, rows=ROWS):
    statement = insert_statement(
        attempt, key, rows, parts=parts, spread_by="n", endpoint=storage.url
    )
    clickhouse.command(statement.sql, settings=WRITE_SETTINGS)


def test_clickhouse_writes_parts_bigquery_loads_them_and_bqtui_deletes_them(
    cloud_storage, bucket, clickhouse, fake_google
):
    attempt = StageLocation.parse(f"gs://{bucket}/stage").attempt("exp1", START, 1)

    write_attempt(clickhouse, cloud_storage, attempt)

    stage = client_for(cloud_storage, bucket)
    listed = stage.list_objects(attempt.prefix)
    assert [o.name.removeprefix(attempt.prefix) for o in listed] == [
        f"part_{n}.parquet" for n in range(3)
    ]
    assert all(o.size > 0 for o in listed)
    writes = [c for c in cloud_storage.calls if c.method == "PUT"]
    assert {(c.access_id, c.status) for c in writes} == {(KEY.access_id, 200)}

    bq = fake_google.admin_client(DEFAULT_PROJECT)
    table = f"{DEFAULT_PROJECT}.{unique_id('stage')}.loaded"
    bq.create_dataset(table.rsplit(".", 1)[0])
    schema = [bigquery.SchemaField("n", "INT64"), bigquery.SchemaField("s", "STRING")]
    bq.create_table(bigquery.Table(table, schema=schema))  # a URI load does not create it
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET)
    bq.load_table_from_uri(attempt.load_uri, table, job_config=config).result(timeout=60)
    (row,) = bq.query(f"SELECT COUNT(*) AS c, SUM(n) AS total FROM `{table}`").result()
    assert (row.c, row.total) == (1000, sum(range(1000)))

    assert stage.delete_prefix(attempt.prefix) == 3
    assert stage.list_objects(attempt.prefix) == []
    assert cloud_storage.objects(bucket) == []


def test_listing_follows_continuation_tokens(cloud_storage, bucket, clickhouse):
    cloud_storage.page_size = 2
    attempt = StageLocation.parse(f"gs://{bucket}").attempt("exp1", START, 3)
    write_attempt(clickhouse, cloud_storage, attempt, parts=5)

    names = [o.name for o in client_for(cloud_storage, bucket).list_objects("exp1/")]

    assert names == [f"{attempt.prefix}part_{n}.parquet" for n in range(5)]
    lists = [c for c in cloud_storage.calls if c.method == "GET"]
    assert [bool(c.query.get("continuation-token")) for c in lists] == [False, True, True]


def test_deletes_fall_back_to_one_by_one_where_multi_object_delete_is_missing(
    cloud_storage, bucket, clickhouse
):
    cloud_storage.multi_object_delete = False
    attempt = StageLocation.parse(f"gs://{bucket}").attempt("exp1", START, 1)
    write_attempt(clickhouse, cloud_storage, attempt)
    cloud_storage.reset_calls()

    assert client_for(cloud_storage, bucket).delete_prefix(attempt.prefix) == 3

    assert cloud_storage.objects(bucket) == []
    assert [(c.method, c.status) for c in cloud_storage.calls] == [
        ("GET", 200),
        ("POST", 501),
        ("DELETE", 204),
        ("DELETE", 204),
        ("DELETE", 204),
    ]


def test_an_empty_select_writes_no_part_when_split_and_one_empty_part_when_not(
    cloud_storage, bucket, clickhouse
):
    location = StageLocation.parse(f"gs://{bucket}")
    empty = "SELECT toInt64(number) AS n FROM numbers(0)"

    write_attempt(clickhouse, cloud_storage, location.attempt("e", START, 1), rows=empty)
    write_attempt(clickhouse, cloud_storage, location.attempt("e", START, 2), rows=empty, parts=1)

    assert cloud_storage.objects(bucket) == ["e/20261205T1500Z/attempt_2/part_0.parquet"]


def test_large_parts_go_up_as_multipart_uploads(cloud_storage, bucket, clickhouse):
    attempt = StageLocation.parse(f"gs://{bucket}").attempt("big", START, 1)
    statement = insert_statement(
        attempt, KEY, "SELECT randomString(12000000) AS blob", endpoint=cloud_storage.url
    )

    clickhouse.command(
        statement.sql, settings={**WRITE_SETTINGS, "s3_max_single_part_upload_size": 1_000_000}
    )

    assert client_for(cloud_storage, bucket).list_objects(attempt.prefix)[0].size > 12_000_000
    queries = [c.query for c in cloud_storage.calls if c.method in ("POST", "PUT")]
    assert "uploads" in queries[0]
    assert all("partNumber" in query for query in queries[1:-1]) and len(queries) >= 3
    assert set(queries[-1]) == {"uploadId"}  # complete


def test_a_wrong_secret_is_named_and_nothing_is_written(cloud_storage, bucket, clickhouse):
    wrong = HmacKey(KEY.access_id, "not-the-secret")
    attempt = StageLocation.parse(f"gs://{bucket}/s").attempt("exp1", START, 1)

    with pytest.raises(StageAccessProblem) as refused:
        client_for(cloud_storage, bucket, wrong).check_can_write(attempt.prefix)
    with pytest.raises(Exception, match="signature we calculated does not match"):
        write_attempt(clickhouse, cloud_storage, attempt, key=wrong)

    assert str(refused.value) == (
        f"Cloud Storage rejected the secret of HMAC key GOOG1ETESTKEY for bucket {bucket}: "
        "give the export the secret shown when that key was created, or create a new key "
        "(Cloud Storage > Settings > Interoperability)."
    )
    assert "not-the-secret" not in str(refused.value)
    assert cloud_storage.objects(bucket) == []
    assert {c.code for c in cloud_storage.calls} == {"SignatureDoesNotMatch"}


def test_an_unknown_access_id_is_named(cloud_storage, bucket):
    stranger = HmacKey("GOOG1EUNKNOWN", KEY.secret)

    with pytest.raises(StageAccessProblem) as refused:
        client_for(cloud_storage, bucket, stranger).list_objects("")

    assert str(refused.value) == (
        f"Cloud Storage does not know HMAC key GOOG1EUNKNOWN (used for bucket {bucket}): "
        "check the access ID, or create a key under Cloud Storage > Settings > Interoperability."
    )


def test_a_key_denied_writes_is_told_which_permission_to_grant(cloud_storage, bucket, clickhouse):
    cloud_storage.deny_writes(KEY.access_id)
    stage = client_for(cloud_storage, bucket)
    attempt = StageLocation.parse(f"gs://{bucket}/s").attempt("exp1", START, 1)

    with pytest.raises(StageAccessProblem) as refused:
        stage.check_can_write(attempt.prefix)
    with pytest.raises(Exception, match="Access denied"):
        write_attempt(clickhouse, cloud_storage, attempt)

    assert str(refused.value) == (
        f"HMAC key GOOG1ETESTKEY may not create objects in bucket {bucket}: grant its service "
        "account storage.objects.create on the bucket (for example with "
        "roles/storage.objectAdmin)."
    )
    assert stage.list_objects("") == []


def test_the_write_check_leaves_nothing_behind(cloud_storage, bucket):
    client_for(cloud_storage, bucket).check_can_write("stage/")

    assert [
        (c.method, c.path.startswith(f"/{bucket}/stage/{PROBE_NAME}")) for c in cloud_storage.calls
    ] == [
        ("PUT", True),
        ("DELETE", True),
    ]
    assert cloud_storage.objects(bucket) == []


def test_a_missing_bucket_is_named(cloud_storage):
    cloud_storage.register_key(KEY.access_id, KEY.secret)

    with pytest.raises(StageAccessProblem) as refused:
        client_for(cloud_storage, "no-such-bucket").check_can_write("")

    assert str(refused.value) == (
        "Cloud Storage has no bucket no-such-bucket: create it, or point the stage at an "
        "existing bucket (gs://BUCKET/PREFIX)."
    )


def test_an_endpoint_that_does_not_answer_is_named():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    stage = StageClient("my-bucket", KEY, endpoint=endpoint, timeout=5)

    with pytest.raises(StageUnreachable) as refused:
        stage.list_objects("")

    assert str(refused.value) == (
        f"Could not reach Cloud Storage at {endpoint} for bucket my-bucket (connection "
        "failed): check the network, or BQTUI_GCS_ENDPOINT if it is set."
    )
    assert refused.value.retryable


def test_objects_are_read_whole_or_by_range(cloud_storage, bucket):
    (cloud_storage.add_bucket(bucket) / "a.txt").write_bytes(b"0123456789")

    def get(method: str, byte_range: str | None = None):
        url = f"{cloud_storage.url}/{bucket}/a.txt"
        headers = {"Range": byte_range} if byte_range else {}
        request = urllib.request.Request(
            url, method=method, headers=signed_headers(KEY, method, url, b"", headers)
        )
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers["Content-Length"], response.read()

    assert get("GET") == (200, "10", b"0123456789")
    assert get("HEAD") == (200, "10", b"")
    assert get("GET", "bytes=2-4") == (206, "3", b"234")
    assert get("GET", "bytes=-3") == (206, "3", b"789")
    assert get("GET", "bytes=7-") == (206, "3", b"789")


def test_the_signature_check_agrees_with_awss_published_example():
    """AWS's "GET Object" example of Signature V4 (Amazon S3 API Reference)."""
    headers = {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": hashlib.sha256(b"").hexdigest(),
        "x-amz-date": "20130524T000000Z",
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
        "s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    }
    secrets = {"AKIAIOSFODNN7EXAMPLE": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}

    verdict = sigv4.verify("GET", "/test.txt", "", headers, b"", secrets.get)
    assert verdict == sigv4.Verdict("AKIAIOSFODNN7EXAMPLE")
    tampered = {**headers, "range": "bytes=0-10"}
    assert sigv4.verify("GET", "/test.txt", "", tampered, b"", secrets.get).code == (
        "SignatureDoesNotMatch"
    )


def test_test_permissions_answers_what_the_principal_holds_on_the_bucket(fake_google):
    account = fake_google.new_account(DEFAULT_PROJECT)
    fake_google.grant_bucket(account, "granted-bucket", OBJECT_PERMISSIONS[:3])
    fake_google.bucket_iam.add_bucket("bare-bucket")

    def ask(bucket: str, scope: str = STORAGE_SCOPE):
        credentials = service_account.Credentials.from_service_account_info(
            account.key, scopes=[scope]
        )
        response = AuthorizedSession(credentials).get(
            f"{fake_google.storage_json_endpoint}/storage/v1/b/{bucket}/iam/testPermissions",
            params={"permissions": OBJECT_PERMISSIONS},
        )
        return response.status_code, response.json()

    assert ask("granted-bucket") == (
        200,
        {"kind": "storage#testIamPermissionsResponse", "permissions": OBJECT_PERMISSIONS[:3]},
    )
    assert ask("bare-bucket") == (200, {"kind": "storage#testIamPermissionsResponse"})
    assert ask("unknown-bucket")[0] == 404
    assert ask("granted-bucket", "https://www.googleapis.com/auth/bigquery")[0] == 403

    fake_google.revoke_bucket(account, "granted-bucket", ["storage.objects.get"])
    assert ask("granted-bucket")[1]["permissions"] == [
        "storage.objects.create",
        "storage.objects.list",
    ]
    assert fake_google.bucket_iam.calls[-1].principal == account.email
