"""bqtui.stage.location: gs://BUCKET/PREFIX as users type it, and an attempt's folders."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bqtui.core.errors import ConfigError
from bqtui.stage.location import StageLocation, window_label

START = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("typed", "bucket", "prefix"),
    [
        ("gs://my-bucket/bqtui-stage", "my-bucket", "bqtui-stage"),
        ("gs://my-bucket/bqtui-stage/", "my-bucket", "bqtui-stage"),
        ("  gs://my-bucket/a/b=1/c.d_e  ", "my-bucket", "a/b=1/c.d_e"),
        ("gs://my-bucket", "my-bucket", ""),
        ("gs://my-bucket/", "my-bucket", ""),
        ("GS://my_bucket.example.com/x", "my_bucket.example.com", "x"),
        ("gs://abc", "abc", ""),
        ("gs://" + "a" * 63, "a" * 63, ""),
    ],
)
def test_a_stage_location_is_a_bucket_and_a_prefix(typed, bucket, prefix):
    location = StageLocation.parse(typed)

    assert (location.bucket, location.prefix) == (bucket, prefix)
    assert location.uri == (f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}")
    assert StageLocation.parse(location.uri) == location


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (
            "",
            "The stage must be a Cloud Storage location like gs://my-bucket/bqtui-stage; "
            "got nothing.",
        ),
        (
            "s3://my-bucket/stage",
            "The stage must be a Cloud Storage location like gs://my-bucket/bqtui-stage; "
            "got s3://my-bucket/stage.",
        ),
        (
            "https://storage.googleapis.com/my-bucket",
            "The stage must be a Cloud Storage location like gs://my-bucket/bqtui-stage; "
            "got https://storage.googleapis.com/my-bucket.",
        ),
        (
            "my-bucket/stage",
            "The stage must be a Cloud Storage location like gs://my-bucket/bqtui-stage; "
            "got my-bucket/stage.",
        ),
        (
            "gs://my-bucket/stage/*.parquet",
            "The stage names one folder and takes no wildcards (*); type its location like "
            "gs://my-bucket/bqtui-stage, not gs://my-bucket/stage/*.parquet.",
        ),
        (
            "gs://my-bucket/st{a,b}?",
            "The stage names one folder and takes no wildcards (? { }); type its location "
            "like gs://my-bucket/bqtui-stage, not gs://my-bucket/st{a,b}?.",
        ),
        (
            "gs://",
            "The stage names no bucket; type gs://BUCKET/PREFIX, e.g. gs://my-bucket/bqtui-stage.",
        ),
        (
            "gs:///stage",
            "The stage names no bucket; type gs://BUCKET/PREFIX, e.g. gs://my-bucket/bqtui-stage.",
        ),
        (
            "gs://My-Bucket/stage",
            '"My-Bucket" is not a Cloud Storage bucket name (use lowercase letters, digits, '
            "'-', '_' and '.'); type e.g. gs://my-bucket/bqtui-stage.",
        ),
        (
            "gs://-bucket",
            '"-bucket" is not a Cloud Storage bucket name (start and end it with a letter or '
            "digit); type e.g. gs://my-bucket/bqtui-stage.",
        ),
        (
            "gs://ab",
            '"ab" is not a Cloud Storage bucket name (use 3-63 characters, or up to 222 with '
            "dots); type e.g. gs://my-bucket/bqtui-stage.",
        ),
        (
            "gs://a..b",
            '"a..b" is not a Cloud Storage bucket name (keep each dot-separated part 1-63 '
            "characters long); type e.g. gs://my-bucket/bqtui-stage.",
        ),
        (
            "gs://192.168.5.4",
            '"192.168.5.4" is not a Cloud Storage bucket name (it may not be an IP address); '
            "type e.g. gs://my-bucket/bqtui-stage.",
        ),
        (
            "gs://goog-stage",
            '"goog-stage" is not a Cloud Storage bucket name (it may not start with "goog" or '
            'contain "google"); type e.g. gs://my-bucket/bqtui-stage.',
        ),
        (
            "gs://my-bucket//stage",
            "The stage gs://my-bucket//stage has an empty folder name (//); type e.g. "
            "gs://my-bucket/bqtui-stage.",
        ),
        (
            "gs://my-bucket/my stage",
            "The stage's folder names may use only letters, digits, '-', '_', '.' and '=' (not "
            "'.' or '..' alone); got gs://my-bucket/my stage, type e.g. "
            "gs://my-bucket/bqtui-stage.",
        ),
        (
            "gs://my-bucket/a/../b",
            "The stage's folder names may use only letters, digits, '-', '_', '.' and '=' (not "
            "'.' or '..' alone); got gs://my-bucket/a/../b, type e.g. "
            "gs://my-bucket/bqtui-stage.",
        ),
        (
            "gs://my-bucket/" + "a" * 513,
            "The stage's folder is 513 characters long; use at most 512, e.g. "
            "gs://my-bucket/bqtui-stage.",
        ),
    ],
)
def test_a_wrong_stage_says_what_to_type(typed, message):
    with pytest.raises(ConfigError) as refused:
        StageLocation.parse(typed)

    assert str(refused.value) == message


def test_bucket_names_with_dots_may_be_longer_but_not_their_parts():
    assert StageLocation.parse("gs://" + ".".join(["a" * 63] * 3)).bucket.count(".") == 2
    with pytest.raises(ConfigError, match="each dot-separated part"):
        StageLocation.parse("gs://" + "a" * 64 + ".com")
    with pytest.raises(ConfigError, match="use 3-63 characters"):
        StageLocation.parse("gs://" + "a" * 64)


def test_an_attempt_has_its_own_folder_under_the_export_and_the_window():
    attempt = StageLocation.parse("gs://my-bucket/bqtui-stage").attempt("a1b2c3", START, 2)

    assert attempt.bucket == "my-bucket"
    assert attempt.prefix == "bqtui-stage/a1b2c3/20261205T1500Z/attempt_2/"
    assert attempt.uri == "gs://my-bucket/bqtui-stage/a1b2c3/20261205T1500Z/attempt_2/"
    assert attempt.load_uri == (
        "gs://my-bucket/bqtui-stage/a1b2c3/20261205T1500Z/attempt_2/*.parquet"
    )


def test_without_a_prefix_the_export_folder_is_at_the_bucket_root():
    location = StageLocation.parse("gs://my-bucket")

    assert location.export_prefix("a1b2c3") == "a1b2c3/"
    assert location.attempt("a1b2c3", START, 1).prefix == "a1b2c3/20261205T1500Z/attempt_1/"


def test_clickhouse_writes_to_the_xml_api_path_style(monkeypatch):
    attempt = StageLocation.parse("gs://my-bucket/s").attempt("a1b2c3", START, 1)

    monkeypatch.delenv("BQTUI_GCS_ENDPOINT", raising=False)
    assert attempt.write_url() == (
        "https://storage.googleapis.com/my-bucket/s/a1b2c3/20261205T1500Z/attempt_1/"
    )
    monkeypatch.setenv("BQTUI_GCS_ENDPOINT", "http://127.0.0.1:9000/")
    assert (
        attempt.write_url() == "http://127.0.0.1:9000/my-bucket/s/a1b2c3/20261205T1500Z/attempt_1/"
    )
    assert attempt.write_url("http://other:1").startswith("http://other:1/my-bucket/s/")


def test_window_labels_are_utc_and_show_seconds_only_when_there_are_some():
    assert window_label(START) == "20261205T1500Z"
    assert window_label(START.astimezone(timezone(timedelta(hours=2)))) == "20261205T1500Z"
    assert window_label(START + timedelta(seconds=30)) == "20261205T150030Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        window_label(datetime(2026, 12, 5, 15))


@pytest.mark.parametrize("number", [0, -1, True, 1.0])
def test_attempts_are_numbered_from_one(number):
    with pytest.raises(ValueError, match="attempt numbers start at 1"):
        StageLocation.parse("gs://my-bucket").attempt("a1b2c3", START, number)


@pytest.mark.parametrize("uid", ["", "a/b", "a b", "x" * 65])
def test_an_export_uid_must_be_a_plain_name(uid):
    with pytest.raises(ValueError, match="not an export uid"):
        StageLocation.parse("gs://my-bucket").export_prefix(uid)
