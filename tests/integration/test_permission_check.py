"""The permission check against the local Google side: each permission on its own."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import bigquery

from bqtui.cli import main
from bqtui.core.config import ExportConfig, Model
from bqtui.destination.keyfile import parse_key_text
from bqtui.destination.permissions import required_permissions
from bqtui.models import get_model
from bqtui.ops.permission_check import check_permissions
from tests.harness.google import DATA_EDITOR, JOB_USER, SEED_CUSTOM_ROLE, unique_id
from tests.integration.conftest import PROJECT, add_export, run_cli

EVERYTHING = set(required_permissions(Model.PERSONS))


# A destination table any model can use: the union of the models' fields.
EVERY_MODEL_FIELD = list({f.name: f for m in Model for f in get_model(m).schema(False)}.values())


@pytest.fixture
def dataset(fake_google) -> str:
    """A dataset holding the destination table already (so tables.testIamPermissions works)."""
    name = unique_id("perm")
    admin = fake_google.admin_client(PROJECT)
    admin.create_dataset(f"{PROJECT}.{name}")
    admin.create_table(bigquery.Table(f"{PROJECT}.{name}.dest", schema=EVERY_MODEL_FIELD))
    return name


def check(fake_google, dataset, account, model=Model.PERSONS, table="dest"):
    export = ExportConfig(
        name="ev",
        dataset_id=dataset,
        table_id=table,
        model=model,
        bigquery_endpoint=fake_google.api_endpoint,
    )
    return check_permissions(export, parse_key_text(json.dumps(account.key)), retry_deadline=5)


def account_with(fake_google, dataset, permissions):
    project_level = permissions & {"bigquery.jobs.create"}
    return fake_google.new_account(
        PROJECT,
        project_permissions=project_level,
        dataset_permissions={dataset: permissions - project_level},
    )


@pytest.mark.parametrize("lacking", sorted(EVERYTHING))
def test_exactly_the_one_missing_permission_is_reported_with_its_fix(fake_google, dataset, lacking):
    account = account_with(fake_google, dataset, EVERYTHING - {lacking})
    report = check(fake_google, dataset, account)

    assert report.problems == []
    assert [p.permission for p in report.missing] == [lacking]
    missing = report.missing[0]
    statuses = {p.permission: p.status for p in report.permissions}
    assert statuses == {p: ("missing" if p == lacking else "granted") for p in EVERYTHING}
    if lacking == "bigquery.jobs.create":
        assert (missing.level, missing.fix.role) == ("project", "roles/bigquery.jobUser")
        assert missing.fix.commands[0] == (
            f"gcloud projects add-iam-policy-binding {PROJECT} "
            f"--member=serviceAccount:{account.email} --role=roles/bigquery.jobUser"
        )
    else:
        assert (missing.level, missing.fix.role) == ("dataset", "roles/bigquery.dataEditor")
        assert missing.fix.commands[0] == (
            f"bq query --nouse_legacy_sql 'GRANT `roles/bigquery.dataEditor` ON SCHEMA "
            f'`{PROJECT}.{dataset}` TO "serviceAccount:{account.email}"\''
        )
    assert f"--add-permissions={lacking}" in missing.fix.commands[1]
    assert not report.ok


def test_the_seed_custom_role_is_enough_for_events_not_for_persons(fake_google, dataset):
    account = account_with(fake_google, dataset, set(SEED_CUSTOM_ROLE))
    assert check(fake_google, dataset, account, Model.EVENTS).ok
    persons = check(fake_google, dataset, account, Model.PERSONS)
    assert [p.permission for p in persons.missing] == ["bigquery.tables.delete"]


@pytest.mark.parametrize("model", list(Model))
def test_the_built_in_roles_pass_for_every_model(fake_google, dataset, model):
    account = fake_google.new_account(
        PROJECT, project_permissions=JOB_USER, dataset_permissions={dataset: DATA_EDITOR}
    )
    report = check(fake_google, dataset, account, model, table=unique_id("not_yet"))
    assert report.ok, report.lines()
    assert "does not exist yet; the first run creates it" in report.notes[0]


def test_a_revoked_key_is_its_own_finding(fake_google, dataset):
    account = account_with(fake_google, dataset, EVERYTHING)
    account.revoke_key()
    report = check(fake_google, dataset, account)
    assert [(p.subject, p.detail.split(":")[0]) for p in report.problems] == [
        ("key", "Google rejected the key's signature (invalid_grant")
    ]
    assert all(p.status == "unknown" for p in report.permissions)
    assert not report.ok


def test_a_missing_dataset_and_a_missing_project(fake_google):
    account = fake_google.new_account(PROJECT, project_permissions=JOB_USER | DATA_EDITOR)
    report = check(fake_google, "no_such_dataset", account)
    assert [p.subject for p in report.problems] == ["dataset"]
    assert report.problems[0].detail.startswith(
        f"Dataset no_such_dataset does not exist in project {PROJECT}."
    )

    stranger = fake_google.new_account("ghost-project-1")  # a project Google does not know
    report = check(fake_google, "whatever", stranger)
    assert [p.subject for p in report.problems] == ["project"]
    assert report.problems[0].detail.startswith("Project ghost-project-1 does not exist")


def test_the_probe_table_expires_when_it_cannot_be_deleted(fake_google, dataset):
    account = account_with(fake_google, dataset, EVERYTHING - {"bigquery.tables.delete"})
    started = datetime.now(UTC)
    report = check(fake_google, dataset, account)

    probes = [
        c.json
        for c in fake_google.proxy.calls_to("tables.insert")
        if "probe" in c.json["tableReference"]["tableId"]
    ]
    [probe] = probes
    expires = datetime.fromtimestamp(int(probe["expirationTime"]) / 1000, UTC)
    assert started + timedelta(minutes=59) < expires <= datetime.now(UTC) + timedelta(hours=1)
    assert any("expires within the hour" in note for note in report.notes)


def test_check_command_prints_each_permission_and_exits_1_when_any_is_missing(
    fake_google, dataset, tmp_path, capsys
):
    account = account_with(
        fake_google, dataset, EVERYTHING - {"bigquery.tables.delete", "bigquery.jobs.create"}
    )
    key_file = account.write_key(tmp_path / "key.json")
    db = str(tmp_path / "bqtui.db")
    assert (
        main(
            [
                "add",
                "--db",
                db,
                "--name",
                "people",
                "--key-file",
                str(key_file),
                "--dataset-id",
                dataset,
                "--table-id",
                "dest",
                "--model",
                "persons",
                "--bigquery-endpoint",
                fake_google.api_endpoint,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["check", "--db", db, "people"]) == 1
    text = capsys.readouterr().out
    assert "  ✗ bigquery.jobs.create         missing on the project" in text
    assert "  ✗ bigquery.tables.delete       missing on the dataset" in text
    assert "  ✓ bigquery.tables.updateData   granted" in text
    assert (
        f"gcloud projects add-iam-policy-binding {PROJECT} --member=serviceAccount:{account.email} --role=roles/bigquery.jobUser"
        in text
    )

    assert main(["check", "--db", db, "people", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert sorted(p["permission"] for p in report["permissions"] if p["status"] == "missing") == [
        "bigquery.jobs.create",
        "bigquery.tables.delete",
    ]
    assert "PRIVATE" not in json.dumps(report)


def test_a_run_without_a_permission_stops_with_the_precise_finding(
    fake_google, db_path, tmp_path, demo_dsn, capsys
):
    from tests.integration.conftest import Destination

    dataset = unique_id("ds")
    fake_google.admin_client(PROJECT).create_dataset(f"{PROJECT}.{dataset}")
    account = account_with(fake_google, dataset, EVERYTHING - {"bigquery.tables.updateData"})
    destination = Destination(
        fake_google, dataset, account, account.write_key(tmp_path / "key.json")
    )
    add_export(db_path, destination, demo_dsn)
    capsys.readouterr()
    assert (
        run_cli("run", "ev", "--db", str(db_path), "--start", "2024-05-01", "--end", "2024-05-03")
        == 1
    )

    err = capsys.readouterr().err
    assert (
        f"BigQuery denied bigquery.tables.updateData to {account.email} on the dataset "
        f"{PROJECT}:{dataset}." in err
    )
    assert "Stopped this export: fix the permission and run it again." in err
    assert "Traceback" not in err
    uploads = [c for c in fake_google.proxy.calls if c.operation == "jobs.insert"]
    assert len(uploads) == 1  # refused once, not retried


def key_problem(report) -> str:
    assert [p.subject for p in report.problems] == ["key"]
    assert all(p.status == "unknown" for p in report.permissions)
    return report.problems[0].detail


def test_a_deleted_account_is_its_own_finding(fake_google, dataset):
    account = account_with(fake_google, dataset, EVERYTHING)
    account.delete()
    assert key_problem(check(fake_google, dataset, account)).startswith(
        "Google does not know this service account (invalid_grant: account not found)"
    )


def test_a_wrong_token_uri_is_its_own_finding(fake_google, dataset):
    account = fake_google.new_account(
        PROJECT, key_overrides={"token_uri": "http://127.0.0.1:9/token"}
    )
    assert key_problem(check(fake_google, dataset, account)).startswith(
        "Cannot reach the key's token endpoint (http://127.0.0.1:9/token)."
    )


def test_clock_skew_is_its_own_finding(fake_google, dataset):
    account = account_with(fake_google, dataset, EVERYTHING)
    fake_google.token_server.server_time_offset = 2 * 3600  # this machine is two hours behind
    try:
        detail = key_problem(check(fake_google, dataset, account))
    finally:
        fake_google.token_server.server_time_offset = 0
    assert detail.startswith(
        "Google refused the key's token request because this machine's clock is off"
    )


def test_a_dataset_in_another_location_is_its_own_finding(fake_google, dataset):
    account = account_with(fake_google, dataset, EVERYTHING)
    fake_google.set_dataset_location(PROJECT, dataset, "EU")
    export = ExportConfig(
        name="ev",
        dataset_id=dataset,
        table_id="dest",
        model=Model.EVENTS,
        location="US",
        bigquery_endpoint=fake_google.api_endpoint,
    )
    report = check_permissions(export, parse_key_text(json.dumps(account.key)), retry_deadline=5)
    assert [(p.subject, p.detail) for p in report.problems] == [
        (
            "dataset",
            f"Dataset {dataset} is in location EU, but the export runs jobs in US. Set the "
            f"export's location to EU, or use a dataset in US.",
        )
    ]


def test_without_jobs_create_and_a_table_the_probe_still_answers_every_table_permission(
    fake_google, dataset
):
    account = account_with(fake_google, dataset, EVERYTHING - {"bigquery.jobs.create"})
    report = check(fake_google, dataset, account, table=unique_id("not_yet"))
    statuses = {p.permission: p.status for p in report.permissions}
    assert statuses == {
        p: "missing" if p == "bigquery.jobs.create" else "granted" for p in EVERYTHING
    }


def test_a_table_without_the_models_merge_key_is_a_finding(fake_google, dataset):
    account = account_with(fake_google, dataset, set(required_permissions(Model.PERSONS)))
    admin = fake_google.admin_client(PROJECT)
    admin.create_table(
        bigquery.Table(
            f"{PROJECT}.{dataset}.narrow", schema=[bigquery.SchemaField("uuid", "STRING")]
        )
    )
    report = check(fake_google, dataset, account, table="narrow")
    assert [p.subject for p in report.problems] == ["table"]
    assert report.problems[0].detail.startswith(
        f"Table {PROJECT}.{dataset}.narrow lacks team_id, distinct_id, person_distinct_id_version, "
        "person_version, which the persons model needs to merge rows without overwriting others"
    )
    assert not report.ok
