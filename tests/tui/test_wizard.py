"""The new-export wizard: each step's validation, the permission check, and creating the export."""

import json

import pytest
from textual.widgets import Static, TextArea

from bqtui.core.errors import KeyFileError
from bqtui.core.ids import validate_table_id
from bqtui.destination.keyfile import load_key_file
from bqtui.state import secrets
from bqtui.state.store import Store
from bqtui.tui.screens.dialogs import ConfirmDialog
from bqtui.tui.screens.home import HomeScreen
from bqtui.tui.widgets.form_field import FormField
from tests.harness.google import DATA_EDITOR, unique_id

from .conftest import PROJECT, SIZE, key_json, make_app, wait_until
from .wizard_driver import (
    destination_step,
    finish_permission_check,
    key_step,
    next_step,
    open_wizard,
    type_into,
    wizard,
)


def text_of(widget: Static) -> str:
    return str(widget.render())


async def test_the_whole_wizard_creates_the_export_and_keeps_its_key_in_the_keyring(
    db_path, key_file, dataset, fake_google, demo_dsn
):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await key_step(pilot, str(key_file))
        info = text_of(wizard(pilot).query_one("#key-info", Static))
        assert key_json(key_file)["client_email"] in info and PROJECT in info
        assert "PRIVATE KEY" not in info
        await next_step(pilot)

        await destination_step(
            pilot,
            dataset=dataset,
            table="events_export",
            name="wizard-events",
            endpoint=fake_google.api_endpoint,
        )
        await next_step(pilot)

        type_into(pilot, "#source-dsn", demo_dsn)
        await pilot.click("#test-connection")
        result = wizard(pilot).query_one("#connection-result", Static)
        await wait_until(pilot, lambda: "Connecting" not in text_of(result))
        shown = text_of(result)
        assert shown.startswith("✓ Connected: 5,310 events of team 1.")  # the demo data
        assert "  ✓ server 26." in shown and "database demo" in shown
        assert "  ✓ table events (11 columns)" in shown
        assert "Note: events.inserted_at has no skip index" in shown
        await next_step(pilot)

        report = await finish_permission_check(pilot)
        assert report.report.ok, report.report.lines()
        await next_step(pilot)  # all granted: no confirmation

        assert "wizard-events" in text_of(wizard(pilot).query_one("#review-summary", Static))
        await next_step(pilot)  # Create export: stored by a worker, then the wizard closes
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))

    export = Store(db_path).require_export("wizard-events")
    assert (export.dataset_id, export.table_id, export.interval.value) == (
        dataset,
        "events_export",
        "day",
    )
    assert export.source_dsn == demo_dsn
    assert export.bigquery_endpoint == fake_google.api_endpoint
    assert json.loads(secrets.load_service_account_key(export.uid)) == key_json(key_file)


async def test_a_key_file_that_is_not_a_service_account_key_shows_why(db_path, tmp_path):
    bad_key = tmp_path / "user.json"
    bad_key.write_text(json.dumps({"type": "authorized_user"}))
    try:
        load_key_file(bad_key)
    except KeyFileError as error:
        expected = str(error)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await key_step(pilot, str(bad_key))
        await next_step(pilot)
        screen = wizard(pilot)
        assert screen.index == 0  # not past the key step
        assert text_of(screen.query_one("#key-info", Static)) == expected


async def test_a_qualified_table_name_shows_the_suggestion(db_path, tmp_path):
    key = tmp_path / "key.json"
    key.write_text(json.dumps(fake_key()))
    qualified = "my-project:analytics.events_export"
    try:
        validate_table_id(qualified)
    except Exception as error:  # noqa: BLE001 - the core's message is what the step must show
        expected = str(error)
    assert 'Use the bare table ID "events_export"' in expected
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await key_step(pilot, str(key))
        await next_step(pilot)
        await destination_step(pilot, dataset="analytics", table=qualified, name="x")
        await next_step(pilot)
        screen = wizard(pilot)
        assert screen.index == 1
        table_field = screen.query_one("#field-table-id", FormField)
        assert text_of(table_field.query_one(".field-error", Static)) == expected
        assert table_field.has_class("-invalid")


async def test_a_missing_permission_shows_the_fix_and_needs_confirmation(
    db_path, fake_google, dataset, demo_dsn, tmp_path
):
    # Data Editor on the dataset, but no Job User on the project: no bigquery.jobs.create.
    account = fake_google.new_account(PROJECT, dataset_permissions={dataset: DATA_EDITOR})
    key = account.write_key(tmp_path / "no-jobs.json")
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await key_step(pilot, str(key))
        await next_step(pilot)
        await destination_step(
            pilot,
            dataset=dataset,
            table="events",
            name="no-jobs",
            endpoint=fake_google.api_endpoint,
        )
        await next_step(pilot)
        type_into(pilot, "#source-dsn", demo_dsn)
        await next_step(pilot)

        report = await finish_permission_check(pilot)
        checklist = text_of(report.query_one("#perm-list", Static))
        assert "✗ bigquery.jobs.create" in checklist
        fix = report.query_one("#fix-commands", TextArea).text
        assert (
            f"gcloud projects add-iam-policy-binding {PROJECT} "
            f"--member=serviceAccount:{account.email} --role=roles/bigquery.jobUser"
        ) in fix

        await next_step(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.click("#cancel")
        await pilot.pause()
        assert wizard(pilot).index == 3  # still on the permission step

        await next_step(pilot)
        await pilot.click("#confirm")
        await pilot.pause()
        assert wizard(pilot).index == 4  # on to review, by explicit choice


def fake_key() -> dict:
    from tests.harness.keys import make_service_account_key

    return make_service_account_key(
        project_id=PROJECT,
        client_email=f"{unique_id('sa')}@{PROJECT}.iam.gserviceaccount.com",
        token_uri="http://127.0.0.1:9/token",
    )


@pytest.mark.parametrize(
    "dsn, message",
    [
        (
            "ftp://ch/db",
            'Unknown ClickHouse DSN scheme "ftp": use http://host:8123/database, '
            "https://host:8443/database, or chdb:///path for the embedded engine.",
        ),
        (
            "clickhouse://ch:9000/db",
            '"clickhouse://" is ClickHouse\'s native protocol; bqtui '
            "speaks its HTTP interface. Use http://host:8123/database, or "
            "https://host:8443/database with TLS.",
        ),
    ],
)
async def test_the_source_step_refuses_a_dsn_bqtui_cannot_use(db_path, tmp_path, dsn, message):
    key = tmp_path / "key.json"
    key.write_text(json.dumps(fake_key()))
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await key_step(pilot, str(key))
        await next_step(pilot)
        await destination_step(pilot, dataset="analytics", table="events", name="x")
        await next_step(pilot)
        type_into(pilot, "#source-dsn", dsn)
        await next_step(pilot)
        screen = wizard(pilot)
        assert screen.index == 2  # still on the source step
        dsn_field = screen.query_one("#field-source-dsn", FormField)
        assert text_of(dsn_field.query_one(".field-error", Static)) == message
    assert Store(db_path).list_exports() == []


async def test_the_destination_step_refuses_a_bad_settle_delay(db_path, tmp_path):
    key = tmp_path / "key.json"
    key.write_text(json.dumps(fake_key()))
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await key_step(pilot, str(key))
        await next_step(pilot)
        await destination_step(pilot, dataset="analytics", table="events", name="x")
        type_into(pilot, "#settle", "3 minutes")
        await next_step(pilot)
        screen = wizard(pilot)
        assert screen.index == 1
        settle = screen.query_one("#field-settle", FormField)
        assert text_of(settle.query_one(".field-error", Static)) == (
            'Settle delay must be a whole number of seconds, not "3 minutes" (default 60).'
        )
