"""The wizard without a key file: Application Default Credentials (what it finds, shown before
anything is stored) and a credential file with a service account to impersonate."""

import json

from textual.widgets import Static

from bqtui.core.config import AuthKind
from bqtui.state import secrets
from bqtui.state.store import Store
from bqtui.tui.screens.home import HomeScreen
from bqtui.tui.widgets.form_field import FormField
from tests.harness.google import DATA_EDITOR, JOB_USER, FakeGoogle, unique_id

from .conftest import PROJECT, SIZE, make_app, wait_until
from .wizard_driver import (
    adc_detected,
    choose_credentials,
    credentials_file_step,
    destination_step,
    finish_permission_check,
    next_step,
    open_wizard,
    type_into,
    wizard,
)


def text_of(widget: Static) -> str:
    return str(widget.render())


def screen_text(pilot) -> str:
    """Everything the wizard shows in its Static widgets (labels, infos, reports)."""
    return "\n".join(text_of(widget) for widget in wizard(pilot).query(Static))


def keyless_environment(monkeypatch, fake_google: FakeGoogle) -> None:
    """Where user logins refresh and IAM issues tokens: the fake Google (in-process)."""
    for name, value in fake_google.keyless_env().items():
        monkeypatch.setenv(name, value)


async def through_source(pilot, dataset: str, name: str, fake_google, demo_dsn, project=""):
    """The destination (``project`` typed or not) and source steps, on to the check."""
    await destination_step(
        pilot,
        dataset=dataset,
        table="events_export",
        name=name,
        endpoint=fake_google.api_endpoint,
        project=project,
    )
    await next_step(pilot)
    type_into(pilot, "#source-dsn", demo_dsn)
    await next_step(pilot)


async def test_the_wizard_with_adc_shows_the_login_found_and_stores_no_credential(
    db_path, dataset, fake_google, demo_dsn, tmp_path, monkeypatch
):
    alice = fake_google.new_user(
        f"{unique_id('alice')}@example.com",
        project_id=PROJECT,
        project_permissions=JOB_USER,
        dataset_permissions={dataset: DATA_EDITOR},
    )
    adc = alice.write_adc_file(tmp_path / "gcloud" / "application_default_credentials.json")
    keyless_environment(monkeypatch, fake_google)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await choose_credentials(pilot, AuthKind.ADC)
        assert f"found: user login ({adc})" in await adc_detected(pilot)
        await next_step(pilot)

        await destination_step(pilot, dataset=dataset, table="events_export", name="adc-events")
        await next_step(pilot)
        screen = wizard(pilot)
        assert screen.index == 1  # ADC names no project: it must be typed
        project_field = screen.query_one("#field-project-id", FormField)
        assert "Type the Google Cloud project" in text_of(
            project_field.query_one(".field-error", Static)
        )
        await through_source(pilot, dataset, "adc-events", fake_google, demo_dsn, PROJECT)

        report = await finish_permission_check(pilot)
        assert report.report.ok, report.report.lines()
        assert report.report.runs_as.endswith("(ADC)"), report.report.runs_as
        runs_as = text_of(report.query_one("#perm-runs-as", Static))
        assert runs_as == f"The export {report.report.runs_as}."
        await next_step(pilot)

        review = text_of(wizard(pilot).query_one("#review-summary", Static))
        assert "Application Default Credentials, found at run time" in review
        assert "bqtui stores no credential" in review
        assert alice.refresh_token not in screen_text(pilot)
        await next_step(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))

    export = Store(db_path).require_export("adc-events")
    assert (export.auth, export.project_id, export.impersonate) == (AuthKind.ADC, PROJECT, None)
    assert export.credential_config is None


async def test_the_wizard_with_a_credential_file_impersonating_an_account(
    db_path, dataset, fake_google, demo_dsn, tmp_path, monkeypatch
):
    """A user login file that may only impersonate: the export runs as the service account,
    in its project (none typed), and the file's refresh token goes to the keyring."""
    bob = fake_google.new_user(f"{unique_id('bob')}@example.com", project_id=PROJECT)
    exporter = fake_google.new_account(
        PROJECT, project_permissions=JOB_USER, dataset_permissions={dataset: DATA_EDITOR}
    )
    fake_google.allow_impersonation(bob, exporter)
    login = bob.write_adc_file(tmp_path / "logins" / "bob.json")
    keyless_environment(monkeypatch, fake_google)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await choose_credentials(pilot, AuthKind.CREDENTIALS_FILE)
        await credentials_file_step(pilot, str(login), impersonate=exporter.email)
        info = text_of(wizard(pilot).query_one("#credentials-info", Static))
        assert 'a user login ("authorized_user")' in info
        assert "keyring (it holds a secret)" in info
        await next_step(pilot)

        await through_source(pilot, dataset, "file-events", fake_google, demo_dsn)
        report = await finish_permission_check(pilot)
        assert report.report.ok, report.report.lines()
        assert report.report.runs_as.startswith(f"runs as {exporter.email}, impersonated by")
        await next_step(pilot)

        review = text_of(wizard(pilot).query_one("#review-summary", Static))
        assert f"Impersonates       {exporter.email}" in review
        assert f"{PROJECT}.{dataset}.events_export" in review
        assert bob.refresh_token not in screen_text(pilot)
        await next_step(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))

    export = Store(db_path).require_export("file-events")
    assert (export.auth, export.impersonate) == (AuthKind.CREDENTIALS_FILE, exporter.email)
    assert export.project_id is None  # the impersonated account's project, at run time
    assert export.credential_config is None  # it holds a secret: the keyring has it
    assert json.loads(secrets.load_credential_file(export.uid)) == json.loads(login.read_text())


async def test_no_adc_on_this_machine_says_none_found(db_path, tmp_path, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "empty-gcloud"))
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await choose_credentials(pilot, AuthKind.ADC)
        found = await adc_detected(pilot)  # the metadata server does not answer (~1 s)
        assert "none found" in found, found
        assert "gcloud auth application-default login" in found


async def test_a_bad_account_to_impersonate_is_refused_under_its_field(
    db_path, tmp_path, monkeypatch
):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "empty-gcloud"))
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await choose_credentials(pilot, AuthKind.ADC)
        type_into(pilot, "#impersonate", "alice@example.com")
        await next_step(pilot)
        screen = wizard(pilot)
        assert screen.index == 0
        error = screen.query_one("#field-impersonate", FormField).query_one(".field-error")
        assert "is not a service account email" in text_of(error)
