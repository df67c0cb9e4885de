"""bqtui.stage: the ClickHouse statement that writes an attempt's Parquet, and keeping the
HMAC secret out of everything but that statement's ``sql``."""

import logging
from datetime import UTC, datetime

import pytest

from bqtui.stage.clickhouse_sql import insert_statement, sql_string
from bqtui.stage.errors import Action, Refusal, error_for
from bqtui.stage.hmac_key import HmacKey
from bqtui.stage.location import StageLocation

ATTEMPT = StageLocation.parse("gs://my-bucket/stage").attempt(
    "a1b2c3", datetime(2026, 12, 5, 15, tzinfo=UTC), 1
)
SECRET = "s3cr'et\\+/Zz"
KEY = HmacKey("GOOG1EXAMPLE", SECRET)
URL = "https://storage.googleapis.com/my-bucket/stage/a1b2c3/20261205T1500Z/attempt_1/"


@pytest.fixture(autouse=True)
def _google_endpoint(monkeypatch):
    monkeypatch.delenv("BQTUI_GCS_ENDPOINT", raising=False)


def test_one_part_writes_part_0_without_partition_by():
    statement = insert_statement(ATTEMPT, KEY, "SELECT 1 AS n;\n")

    assert statement.sql == (
        f"INSERT INTO FUNCTION s3('{URL}part_0.parquet', 'GOOG1EXAMPLE', "
        "'s3cr\\'et\\\\+/Zz', 'Parquet') SELECT 1 AS n"
    )


def test_several_parts_are_split_by_partition_by():
    statement = insert_statement(
        ATTEMPT, KEY, "SELECT uuid FROM events", parts=4, spread_by="cityHash64(uuid)"
    )

    assert statement.redacted() == (
        f"INSERT INTO FUNCTION s3('{URL}part_{{_partition_id}}.parquet', 'GOOG1EXAMPLE', "
        "'[HIDDEN]', 'Parquet') PARTITION BY (cityHash64(uuid)) % 4 SELECT uuid FROM events"
    )


def test_the_endpoint_comes_from_the_environment_or_the_caller(monkeypatch):
    monkeypatch.setenv("BQTUI_GCS_ENDPOINT", "http://127.0.0.1:9000")
    assert "s3('http://127.0.0.1:9000/my-bucket/stage/" in insert_statement(ATTEMPT, KEY, "S").sql
    chosen = insert_statement(ATTEMPT, KEY, "S", endpoint="http://h:1/").sql
    assert "s3('http://h:1/my-bucket/stage/" in chosen


@pytest.mark.parametrize("parts", [0, -2, True, 2.0])
def test_parts_are_a_positive_whole_number(parts):
    with pytest.raises(ValueError, match="parts must be"):
        insert_statement(ATTEMPT, KEY, "SELECT 1", parts=parts)


def test_string_literals_escape_quotes_and_backslashes():
    assert sql_string("it's a \\ test") == "'it\\'s a \\\\ test'"


def test_the_secret_shows_only_in_the_sql_itself(caplog):
    statement = insert_statement(ATTEMPT, KEY, "SELECT 1", parts=2)
    logging.getLogger("test").warning("running %s / %r / %s", statement, statement, KEY)

    assert "s3cr" in statement.sql
    for shown in (str(statement), repr(statement), statement.redacted(), caplog.text):
        assert "s3cr" not in shown
        assert "[HIDDEN]" in shown or "HMAC key GOOG1EXAMPLE" in shown


def test_an_hmac_key_never_shows_its_secret():
    assert str(KEY) == "HMAC key GOOG1EXAMPLE"
    assert repr(KEY) == "HmacKey(access_id='GOOG1EXAMPLE', secret='***')"
    assert SECRET not in f"{KEY} {KEY!r} {[KEY]} {dict(k=KEY)}"


@pytest.mark.parametrize(
    ("refusal", "action", "message"),
    [
        (
            Refusal(403, "SignatureDoesNotMatch", "The request signature we calculated…"),
            Action.LIST,
            "Cloud Storage rejected the secret of HMAC key GOOG1EXAMPLE for bucket my-bucket: "
            "give the export the secret shown when that key was created, or create a new key "
            "(Cloud Storage > Settings > Interoperability).",
        ),
        (
            Refusal(403, "InvalidAccessKeyId"),
            Action.WRITE,
            "Cloud Storage does not know HMAC key GOOG1EXAMPLE (used for bucket my-bucket): "
            "check the access ID, or create a key under Cloud Storage > Settings > "
            "Interoperability.",
        ),
        (
            Refusal(403, "AccessDenied", "Access denied."),
            Action.WRITE,
            "HMAC key GOOG1EXAMPLE may not create objects in bucket my-bucket: grant its "
            "service account storage.objects.create on the bucket (for example with "
            "roles/storage.objectAdmin).",
        ),
        (
            Refusal(403, ""),
            Action.DELETE,
            "HMAC key GOOG1EXAMPLE may not delete objects in bucket my-bucket: grant its "
            "service account storage.objects.delete on the bucket (for example with "
            "roles/storage.objectAdmin).",
        ),
        (
            Refusal(404, "NoSuchBucket"),
            Action.LIST,
            "Cloud Storage has no bucket my-bucket: create it, or point the stage at an "
            "existing bucket (gs://BUCKET/PREFIX).",
        ),
        (
            Refusal(503, "ServiceUnavailable", "Please try again."),
            Action.READ,
            "Cloud Storage answered 503 ServiceUnavailable for bucket my-bucket when asked to "
            "read objects: Please try again.",
        ),
    ],
)
def test_refusals_become_one_sentence_naming_the_bucket_and_the_fix(refusal, action, message):
    error = error_for(refusal, bucket="my-bucket", access_id="GOOG1EXAMPLE", action=action)

    assert str(error) == message
    assert error.retryable == (refusal.status == 503)
