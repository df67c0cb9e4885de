"""Saved exports without a key file: the check screen names who they run as, the detail screen
reads the table with their credentials, the edit screen shows how they authenticate."""

from datetime import UTC, datetime

from textual.widgets import Static

from bqtui.core.config import AuthKind, ExportConfig, Interval
from bqtui.ops.credential_setup import CredentialChoice
from bqtui.ops.export_setup import create_export
from bqtui.state.store import Store
from bqtui.tui.screens.check import PermissionCheckScreen
from bqtui.tui.screens.detail import ExportDetailScreen
from bqtui.tui.screens.edit import EditExportScreen
from bqtui.tui.widgets.permission_report import PermissionReport
from tests.harness.google import DATA_EDITOR, JOB_USER, FakeGoogle, unique_id

from .conftest import PROJECT, SIZE, make_app, wait_until


def text_of(widget: Static) -> str:
    return str(widget.render())


def add_keyless_export(
    db_path, choice: CredentialChoice, *, dataset="analytics", endpoint=None, project=PROJECT
) -> ExportConfig:
    store = Store(db_path)
    try:
        config = ExportConfig(
            name="keyless-events",
            dataset_id=dataset,
            table_id="events_export",
            interval=Interval.DAY,
            source_dsn="http://127.0.0.1:9/never_contacted",
            bigquery_endpoint=endpoint,
            project_id=project,
            start_at=datetime(2024, 5, 1, tzinfo=UTC),
        )
        return create_export(store, config, choice)
    finally:
        store.close()


def log_in_with_adc(monkeypatch, fake_google: FakeGoogle, dataset: str, tmp_path):
    alice = fake_google.new_user(
        f"{unique_id('alice')}@example.com",
        project_id=PROJECT,
        project_permissions=JOB_USER,
        dataset_permissions={dataset: DATA_EDITOR},
    )
    for name, value in fake_google.keyless_env().items():
        monkeypatch.setenv(name, value)
    adc = alice.write_adc_file(tmp_path / "gcloud" / "application_default_credentials.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    return alice


async def test_the_check_screen_names_the_principal_of_an_adc_export(
    db_path, dataset, fake_google, tmp_path, monkeypatch
):
    log_in_with_adc(monkeypatch, fake_google, dataset, tmp_path)
    add_keyless_export(
        db_path,
        CredentialChoice(AuthKind.ADC),
        dataset=dataset,
        endpoint=fake_google.api_endpoint,
    )
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        screen = app.screen
        assert isinstance(screen, PermissionCheckScreen)
        assert text_of(screen.query_one("#check-auth", Static)) == (
            "Authenticates with Application Default Credentials (found at run time; bqtui "
            "stores none)."
        )
        report = screen.query_one(PermissionReport)
        await wait_until(pilot, lambda: report.report is not None and not report.running)
        assert report.report.ok, report.report.lines()
        runs_as = text_of(report.query_one("#perm-runs-as", Static))
        assert runs_as.startswith("The export runs as ") and runs_as.endswith(" (ADC).")


async def test_the_detail_screen_reads_the_table_with_the_exports_credentials(
    db_path, dataset, fake_google, tmp_path, monkeypatch
):
    log_in_with_adc(monkeypatch, fake_google, dataset, tmp_path)
    add_keyless_export(
        db_path,
        CredentialChoice(AuthKind.ADC),
        dataset=dataset,
        endpoint=fake_google.api_endpoint,
    )
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        screen = app.screen
        assert isinstance(screen, ExportDetailScreen)
        schema = screen.query_one("#schema", Static)
        await wait_until(pilot, lambda: "Checking" not in text_of(schema))
        assert text_of(schema).startswith("The table does not exist yet"), text_of(schema)


async def test_the_check_screen_shows_adc_found_nowhere_as_a_finding(
    db_path, tmp_path, monkeypatch
):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "empty-gcloud"))
    add_keyless_export(db_path, CredentialChoice(AuthKind.ADC))
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        report = app.screen.query_one(PermissionReport)
        await wait_until(pilot, lambda: report.report is not None and not report.running)
        problems = text_of(report.query_one("#perm-problems", Static))
        assert problems.startswith("✗ credentials: No Application Default Credentials were found")


async def test_the_edit_screen_shows_how_the_export_authenticates(db_path):
    exporter = f"exporter@{PROJECT}.iam.gserviceaccount.com"
    add_keyless_export(db_path, CredentialChoice(AuthKind.ADC, impersonate=exporter))
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        screen = app.screen
        assert isinstance(screen, EditExportScreen)
        assert text_of(screen.query_one("#auth", Static)) == (
            "Application Default Credentials (found at run time; bqtui stores none), "
            f"impersonating {exporter}"
        )
        hint = text_of(screen.query_one("#field-auth .field-hint", Static))
        assert hint.startswith("To switch: bqtui set-auth keyless-events --key-file KEY.json")
