"""Exports without a key file, through the real CLI: Application Default Credentials (a user
login, a metadata server), credential files (a user login, workload identity federation) and
impersonation on top of each. Google's side is played offline (tests/harness): the token
endpoint, IAM Credentials, STS and a metadata server, and the BigQuery proxy knows whose token
each call carries. Every row exactly once; every failure one sentence and a failed run; no
secret in any file or output."""

import json
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from tests.faults.conftest import HOURS, PROJECT, T0, World, iso
from tests.faults.test_schedule import CRONTAB
from tests.harness.google import DATA_EDITOR, JOB_USER, FakeGoogle, ServiceAccount
from tests.harness.user_logins import UserLogin

ALICE = "alice@example.com"


@dataclass
class Keyless:
    world: World
    exporter: ServiceAccount  # may write the dataset; everyone else only impersonates it
    alice: UserLogin

    def add(self, name: str, *credential: str, table: str | None = None) -> None:
        result = self.world.bqtui(
            "add",
            "--name",
            name,
            *credential,
            "--dataset-id",
            self.world.dataset,
            "--table-id",
            table or f"t_{name.replace('-', '_')}",
            "--interval",
            "hour",
            "--start",
            iso(T0),
            "--source-dsn",
            self.world.source_dsn,
            "--bigquery-endpoint",
            self.world.google.api_endpoint,
        )
        assert result.code == 0, result.err

    def summary(self, name: str) -> dict:
        result = self.world.bqtui("show", name, "--json")
        assert result.code == 0, result.err
        return json.loads(result.out)


@pytest.fixture
def keyless(world: World, fake_google: FakeGoogle) -> Keyless:
    exporter = fake_google.new_account(
        PROJECT,
        project_permissions=JOB_USER,
        dataset_permissions={world.dataset: DATA_EDITOR},
    )
    alice = fake_google.new_user(ALICE, project_id=PROJECT)
    gcloud = world.root / "gcloud"  # no real gcloud configuration is ever found
    gcloud.mkdir()
    world.env.update(fake_google.keyless_env(), CLOUDSDK_CONFIG=str(gcloud))
    world.insert_hours(T0, HOURS)
    return Keyless(world, exporter, alice)


def test_every_kind_of_credential_exports_every_row_exactly_once(keyless: Keyless, fake_google):
    world, exporter, alice = keyless.world, keyless.exporter, keyless.alice
    alice.grant(project_permissions=JOB_USER, dataset_permissions={world.dataset: DATA_EDITOR})
    fake_google.allow_impersonation(alice, exporter)
    adc_file = alice.write_adc_file(world.root / "adc.json")
    user_file = shutil.copy(adc_file, world.root / "alice.json")
    pool = fake_google.new_workload_pool(subject="ci-job", service_account=exporter)
    fake_google.allow_impersonation(pool, exporter)
    pool_file = pool.write_config(world.root / "wif.json", world.root / "oidc-token")
    holder = fake_google.new_account(PROJECT, "key-holder")  # no BigQuery rights of its own
    fake_google.allow_impersonation(holder, exporter)
    world.env["GOOGLE_APPLICATION_CREDENTIALS"] = str(adc_file)

    keyless.add("adc-user", "--adc", "--project-id", PROJECT)
    keyless.add("adc-impersonate", "--adc", "--impersonate", exporter.email)
    keyless.add("file-user", "--credentials-file", str(user_file), "--project-id", PROJECT)
    keyless.add("workload", "--credentials-file", str(pool_file))
    keyless.add(
        "key-impersonate",
        "--key-file",
        str(holder.write_key(world.root / "holder.json")),
        "--impersonate",
        exporter.email,
    )
    user_file.unlink()  # kept in the keyring: the file is not needed any more

    run = world.bqtui("--run-all")
    assert run.code == 0, run.err
    for name in ("adc-user", "adc-impersonate", "file-user", "workload", "key-impersonate"):
        world.assert_exactly_once_and_clean(f"t_{name.replace('-', '_')}")

    shown = {
        name: (keyless.summary(name)["auth"], keyless.summary(name)["impersonate"])
        for name in ("adc-user", "adc-impersonate", "file-user", "workload", "key-impersonate")
    }
    assert shown == {
        "adc-user": ("adc", None),
        "adc-impersonate": ("adc", exporter.email),
        "file-user": ("credentials-file", None),
        "workload": ("credentials-file", None),
        "key-impersonate": ("key", exporter.email),
    }
    callers = {(call.caller, call.target) for call in fake_google.impersonation_calls}
    assert {(ALICE, exporter.email), (holder.email, exporter.email)} <= callers
    assert (pool.principal, exporter.email) in callers

    # The login's secrets went to the keyring only.
    outputs = (
        run.out
        + run.err
        + "".join(
            world.bqtui(*command).out for command in (["list", "--json"], ["status", "--json"])
        )
    )
    for secret in (alice.refresh_token, alice.client_secret):
        assert secret not in world.db_path.read_bytes().decode("latin-1")
        assert secret not in outputs


def test_a_metadata_server_is_found_without_any_file(keyless: Keyless, fake_google):
    world = keyless.world
    metadata = fake_google.start_metadata_server(keyless.exporter, PROJECT)
    world.env.update(fake_google.keyless_env(metadata))
    keyless.add("on-gce", "--adc")
    check = world.bqtui("check", "on-gce")
    assert f"runs as {keyless.exporter.email} (ADC)" in check.out, check.out + check.err

    run = world.bqtui("run", "on-gce")
    assert run.code == 0, run.err
    world.assert_exactly_once_and_clean("t_on_gce")
    assert metadata.token_requests >= 1


def test_the_check_names_the_principal_and_the_impersonation_fix(keyless: Keyless, fake_google):
    world, exporter = keyless.world, keyless.exporter
    world.env["GOOGLE_APPLICATION_CREDENTIALS"] = str(
        keyless.alice.write_adc_file(world.root / "adc.json")
    )
    keyless.add("denied", "--adc", "--impersonate", exporter.email)

    check = world.bqtui("check", "denied")
    assert check.code != 0
    assert (
        f"{ALICE} may not impersonate {exporter.email} (iam.serviceAccounts.getAccessToken "
        "denied): grant it roles/iam.serviceAccountTokenCreator on that service account: gcloud "
        f"iam service-accounts add-iam-policy-binding {exporter.email} --member=user:{ALICE} "
        "--role=roles/iam.serviceAccountTokenCreator"
    ) in check.out

    fake_google.allow_impersonation(keyless.alice, exporter)
    check = world.bqtui("check", "denied")
    assert check.code == 0, check.out + check.err
    assert f"runs as {exporter.email}, impersonated by {ALICE} (ADC)" in check.out


def _failed_run(keyless: Keyless, name: str) -> str:
    """The run's stderr, after checking it failed and was recorded for `status`."""
    world = keyless.world
    run = world.bqtui("run", name)
    assert run.code == 1, run.out + run.err
    assert "Traceback" not in run.err
    status = json.loads(world.bqtui("status", "--json").out)
    recorded = {e["name"]: e["last_run_error"] for e in status["exports"]}[name]
    assert recorded and recorded in run.err
    return recorded


def test_each_credential_failure_is_one_sentence_and_a_failed_run(keyless: Keyless, fake_google):
    world, exporter = keyless.world, keyless.exporter
    adc_file = keyless.alice.write_adc_file(world.root / "adc.json")
    world.env["GOOGLE_APPLICATION_CREDENTIALS"] = str(adc_file)
    keyless.add("denied", "--adc", "--impersonate", exporter.email)
    keyless.add("expired", "--adc", "--project-id", PROJECT)
    pool = fake_google.new_workload_pool(subject="ci-job")
    pool.grant(project_permissions=JOB_USER, dataset_permissions={world.dataset: DATA_EDITOR})
    keyless.add(
        "refused",
        "--credentials-file",
        str(pool.write_config(world.root / "wif.json", world.root / "oidc-token")),
        "--project-id",
        PROJECT,
    )

    assert "may not impersonate" in _failed_run(keyless, "denied")
    pool.refuse_exchange()
    assert "refused the token exchange (invalid_grant: " in _failed_run(keyless, "refused")
    keyless.alice.expire_refresh_token()
    assert _failed_run(keyless, "expired").endswith(
        "The Google login has expired or was revoked (invalid_grant): run `gcloud auth "
        "application-default login` again."
    )

    del world.env["GOOGLE_APPLICATION_CREDENTIALS"]
    assert _failed_run(keyless, "expired").endswith(
        "No Application Default Credentials were found on this machine (no credential file, and "
        f"no metadata server answered at {world.env['GCE_METADATA_HOST']}): run `gcloud auth "
        "application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a credential file, "
        "or run on a Google Cloud machine with a service account attached."
    )


def test_a_metadata_server_that_stops_answering_fails_the_run(keyless: Keyless, fake_google):
    world = keyless.world
    metadata = fake_google.start_metadata_server(keyless.exporter, PROJECT)
    world.env.update(fake_google.keyless_env(metadata))
    keyless.add("on-gce", "--adc", "--project-id", PROJECT)
    metadata.stop()
    assert f"no metadata server answered at {metadata.host}" in _failed_run(keyless, "on-gce")


def test_cron_runs_an_adc_export_with_only_what_schedule_install_carried(keyless: Keyless):
    """cron starts with an almost empty environment: what ADC needs must be on the line."""
    world, exporter = keyless.world, keyless.exporter
    home = world.root / "home"
    home.mkdir()
    crontab = home / "crontab"
    crontab.write_text(CRONTAB)
    crontab.chmod(0o755)
    adc_file = keyless.alice.write_adc_file(world.root / "adc.json")
    keyless.world.google.allow_impersonation(keyless.alice, exporter)
    world.env.update(
        HOME=str(home),
        BQTUI_CRONTAB=str(crontab),
        BQTUI_SCHEDULER="crontab",
        GOOGLE_APPLICATION_CREDENTIALS=str(adc_file),
    )
    keyless.add("nightly", "--adc", "--impersonate", exporter.email)
    assert world.bqtui("schedule", "install").code == 0
    entry = next(
        line for line in (home / "crontab.txt").read_text().splitlines() if "--run-all" in line
    )
    assert f"GOOGLE_APPLICATION_CREDENTIALS={adc_file}" in entry
    command = entry.split(" ", 5)[5]  # after the five schedule fields

    # As cron runs it: a shell, HOME and PATH, the line's own variables, nothing of ours.
    # The endpoints of the offline Google side stand in for Google's and BQTUI_NOW for the
    # clock; neither is something a real schedule needs.
    bare = {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "BQTUI_NOW": world.environ()["BQTUI_NOW"],
        "CLOUDSDK_CONFIG": world.env["CLOUDSDK_CONFIG"],
        **keyless.world.google.keyless_env(),
    }
    done = subprocess.run(["/bin/sh", "-c", command], env=bare, timeout=180, capture_output=True)
    log = next(home.rglob("run-all.log")).read_text() if list(home.rglob("run-all.log")) else ""
    assert done.returncode == 0, log + done.stderr.decode()
    world.assert_exactly_once_and_clean("t_nightly")
