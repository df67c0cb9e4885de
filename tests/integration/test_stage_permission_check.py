"""`bqtui check NAME` of an export with a Cloud Storage stage, through the real CLI in a
subprocess: the principal's object permissions on the bucket (Cloud Storage's testPermissions,
asked with the export's own token) and a probe write with the stage's HMAC key (the XML API
stand-in checks its signature). The HMAC secret never shows."""

from __future__ import annotations

import json
import uuid

import pytest

from bqtui.core.config import AuthKind
from bqtui.destination.credentials import (
    BIGQUERY_SCOPE,
    CLOUD_PLATFORM_SCOPE,
    STORAGE_READ_SCOPE,
    resolve_credentials,
)
from bqtui.ops.permission_check import check_permissions
from bqtui.state.store import Store
from tests.faults.conftest import World, new_world
from tests.harness.cloud_storage import CloudStorage
from tests.harness.google import FakeGoogle, ServiceAccount

PROJECT = "bqtui-test"
HMAC_ID = "GOOG1ECHECKKEY0001"
SECRET = "hmacSecretOfTheCheck0123456789abcdefXYZ"
OBJECT_PERMISSIONS = [f"storage.objects.{verb}" for verb in ("create", "get", "list", "delete")]


class Staged:
    def __init__(self, world: World, account: ServiceAccount, bucket: str) -> None:
        self.world, self.account, self.bucket = world, account, bucket

    def add(self, secret: str = SECRET) -> None:
        secret_file = self.world.root / "hmac-secret"
        secret_file.write_text(secret + "\n")
        self.world.add(
            "ev",
            "--stage",
            f"gs://{self.bucket}/bqtui-stage",
            "--stage-hmac-id",
            HMAC_ID,
            "--stage-hmac-secret-file",
            str(secret_file),
        )
        secret_file.unlink()  # only the keyring keeps it now

    def check(self, *extra: str):
        return self.world.bqtui("check", "ev", *extra)

    def db_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.world.root.glob("bqtui.db*"))


@pytest.fixture
def staged(fake_google: FakeGoogle, cloud_storage: CloudStorage, tmp_path) -> Staged:
    """An export whose principal may write its dataset, with a stage bucket the stand-in
    serves and the HMAC key registered there; no bucket grants yet."""
    world = new_world(
        fake_google,
        tmp_path,
        "stagecheck",
        BQTUI_GCS_ENDPOINT=cloud_storage.url,
        BQTUI_GCS_JSON_ENDPOINT=fake_google.storage_json_endpoint,
    )
    account = world.account
    assert account is not None
    bucket = f"stage-{uuid.uuid4().hex[:12]}"
    cloud_storage.add_bucket(bucket)
    fake_google.bucket_iam.add_bucket(bucket)
    cloud_storage.register_key(HMAC_ID, SECRET)
    return Staged(world, account, bucket)


def bucket_lines(out: str) -> dict[str, str]:
    return {
        permission: next(line for line in out.splitlines() if f" {permission} " in line)
        for permission in OBJECT_PERMISSIONS
    }


def test_all_granted_and_a_key_that_writes_pass(staged: Staged, fake_google, cloud_storage):
    fake_google.grant_bucket(staged.account, staged.bucket, OBJECT_PERMISSIONS)
    staged.add()

    result = staged.check()

    assert result.code == 0, result.out + result.err
    lines = bucket_lines(result.out)
    assert all(line.lstrip().startswith("✓") for line in lines.values()), lines
    assert all(f"per testPermissions on bucket {staged.bucket}" in line for line in lines.values())
    assert f"It stages through gs://{staged.bucket}/bqtui-stage" in result.out
    assert f"✓ HMAC key {HMAC_ID}" in result.out
    assert "All required permissions are granted." in result.out
    # Asked once, as the export's principal, about the four object permissions.
    calls = [c for c in fake_google.bucket_iam.calls if c.bucket == staged.bucket]
    assert [(c.principal, c.permissions, c.status) for c in calls] == [
        (staged.account.email, tuple(OBJECT_PERMISSIONS), 200)
    ]
    # The probe went up with the HMAC key under the export's folder, and is gone.
    writes = [c for c in cloud_storage.calls if c.method == "PUT"]
    assert [(c.access_id, c.status) for c in writes] == [(HMAC_ID, 200)]
    assert writes[0].path.startswith(f"/{staged.bucket}/bqtui-stage/")
    assert cloud_storage.objects(staged.bucket) == []

    report = json.loads(staged.check("--json").out)
    assert report["ok"] is True
    bucket = [p for p in report["permissions"] if p["level"] == "bucket"]
    assert [(p["permission"], p["status"]) for p in bucket] == [
        (p, "granted") for p in OBJECT_PERMISSIONS
    ]
    assert [p["required"] for p in bucket] == [False, True, True, False]
    assert report["stage"] == {
        "uri": f"gs://{staged.bucket}/bqtui-stage",
        "bucket": staged.bucket,
        "hmac_id": HMAC_ID,
        "status": "granted",
        "detail": report["stage"]["detail"],
    }
    assert report["stage"]["detail"].startswith("wrote, listed and deleted a probe object")


def test_a_principal_that_may_not_list_the_bucket_is_told_the_role_and_command(
    staged: Staged, fake_google
):
    granted = [p for p in OBJECT_PERMISSIONS if p != "storage.objects.list"]
    fake_google.grant_bucket(staged.account, staged.bucket, granted)
    staged.add()

    result = staged.check()

    assert result.code != 0
    line = bucket_lines(result.out)["storage.objects.list"]
    assert line.lstrip().startswith("✗")
    assert "missing on the bucket" in line
    assert (
        "Grant storage.objects.list on the bucket: the built-in role Storage Object Admin "
        "(roles/storage.objectAdmin) includes it"
    ) in result.out
    assert (
        f"gcloud storage buckets add-iam-policy-binding gs://{staged.bucket} "
        f"--member=serviceAccount:{staged.account.email} --role=roles/storage.objectAdmin"
    ) in result.out
    assert "Not ready: fix the findings above" in result.out

    report = json.loads(staged.check("--json").out)
    assert report["ok"] is False
    (missing,) = [p for p in report["permissions"] if p["status"] == "missing"]
    assert (missing["permission"], missing["level"]) == ("storage.objects.list", "bucket")
    assert missing["fix"]["role"] == "roles/storage.objectAdmin"
    assert missing["fix"]["commands"] == [
        f"gcloud storage buckets add-iam-policy-binding gs://{staged.bucket} "
        f"--member=serviceAccount:{staged.account.email} --role=roles/storage.objectAdmin"
    ]


def test_a_wrong_hmac_secret_is_named_and_kept_secret(staged: Staged, fake_google, cloud_storage):
    fake_google.grant_bucket(staged.account, staged.bucket, OBJECT_PERMISSIONS)
    wrong = "notTheRightSecret0123456789abcdefghijkl"
    staged.add(secret=wrong)

    result = staged.check()
    as_json = staged.check("--json")

    assert result.code != 0
    message = (
        f"Cloud Storage rejected the secret of HMAC key {HMAC_ID} for bucket {staged.bucket}: "
        "give the export the secret shown when that key was created, or create a new key "
        "(Cloud Storage > Settings > Interoperability)."
    )
    assert f"✗ stage{' ' * 24}{message}" in result.out
    report = json.loads(as_json.out)
    assert report["ok"] is False
    assert {"subject": "stage", "detail": message} in report["problems"]
    assert report["stage"]["status"] == "missing"
    # The principal's own grants are fine: only the key is wrong.
    assert all(p["status"] == "granted" for p in report["permissions"] if p["level"] == "bucket")
    assert {c.code for c in cloud_storage.calls} == {"SignatureDoesNotMatch"}
    assert cloud_storage.objects(staged.bucket) == []
    # Neither the wrong secret nor the right one shows anywhere.
    for secret in (wrong, SECRET):
        for text in (result.out, result.err, as_json.out, as_json.err):
            assert secret not in text
        assert secret.encode() not in staged.db_bytes()


def test_the_secret_shows_nowhere(staged: Staged, fake_google):
    fake_google.grant_bucket(staged.account, staged.bucket, OBJECT_PERMISSIONS)
    staged.add()

    outputs = [staged.check(), staged.check("--json"), staged.world.bqtui("show", "ev", "--json")]

    assert outputs[0].code == 0, outputs[0].out
    for result in outputs:
        assert SECRET not in result.out and SECRET not in result.err
    assert staged.db_bytes()  # the database was written …
    assert SECRET.encode() not in staged.db_bytes()  # … without the secret


def test_a_missing_bucket_is_one_finding_and_nothing_is_probed(staged: Staged, cloud_storage):
    staged.bucket = f"gone-{uuid.uuid4().hex[:12]}"
    staged.add()

    result = staged.check("--json")

    assert result.code != 0
    report = json.loads(result.out)
    message = (
        f"Cloud Storage has no bucket {staged.bucket}: create it, or point the stage at an "
        "existing bucket (gs://BUCKET/PREFIX)."
    )
    assert [p for p in report["problems"] if p["subject"] in ("bucket", "stage")] == [
        {"subject": "bucket", "detail": message}
    ]
    assert report["stage"]["detail"] == f"not tested: bucket {staged.bucket} does not exist"
    assert [c for c in cloud_storage.calls if c.method == "PUT"] == []


def test_a_token_without_a_storage_scope_cannot_ask_and_all_four_are_missing(
    staged: Staged, fake_google
):
    """What an export's token looked like before stages: scoped to BigQuery only. Cloud
    Storage answers testPermissions 403, so nothing is known and everything needs the fix."""
    fake_google.grant_bucket(staged.account, staged.bucket, OBJECT_PERMISSIONS)
    staged.add()
    export = Store(staged.world.db_path).require_export("ev")
    bigquery_only = resolve_credentials(AuthKind.KEY, key_info=staged.account.key, stage=False)
    environment = {
        "BQTUI_GCS_ENDPOINT": staged.world.env["BQTUI_GCS_ENDPOINT"],
        "BQTUI_GCS_JSON_ENDPOINT": fake_google.storage_json_endpoint,
    }

    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        report = check_permissions(export, bigquery_only, retry_deadline=5)
        staged_token = check_permissions(
            export,
            resolve_credentials(AuthKind.KEY, key_info=staged.account.key, stage=True),
            retry_deadline=5,
        )

    bucket = [p for p in report.permissions if p.level == "bucket"]
    assert [(p.permission, p.status) for p in bucket] == [
        (p, "missing") for p in OBJECT_PERMISSIONS
    ]
    assert all("403: Insufficient Permission" in p.detail for p in bucket)
    assert all(p.fix and p.fix.role == "roles/storage.objectAdmin" for p in bucket)
    assert not report.ok
    assert staged_token.ok, staged_token.lines()


def test_a_stage_adds_the_storage_read_scope_also_when_impersonating(staged: Staged):
    """Without a stage the token stays scoped to BigQuery; an impersonated token carries the
    export's scopes (its caller asks IAM with cloud-platform)."""
    key = staged.account.key
    bigquery, storage = BIGQUERY_SCOPE, STORAGE_READ_SCOPE

    plain = resolve_credentials(AuthKind.KEY, key_info=key)
    staged_key = resolve_credentials(AuthKind.KEY, key_info=key, stage=True)
    impersonating = resolve_credentials(
        AuthKind.KEY,
        key_info=key,
        impersonate="other@bqtui-test.iam.gserviceaccount.com",
        stage=True,
    )

    assert plain.credentials.scopes == [bigquery]
    assert staged_key.credentials.scopes == [bigquery, storage]
    assert impersonating.credentials._target_scopes == [bigquery, storage]
    assert impersonating.caller_credentials.scopes == [CLOUD_PLATFORM_SCOPE]
