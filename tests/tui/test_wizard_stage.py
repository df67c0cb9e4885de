"""The wizard's optional Cloud Storage stage: its fields checked as `bqtui add --stage` checks
them, the URI and access ID stored with the export, and the HMAC secret only in the keyring:
never on screen, in the draft's repr, or in SQLite."""

import json
import uuid
from datetime import UTC, datetime

import pytest
from textual.widgets import Static

from bqtui.core.config import ExportConfig, validate_export
from bqtui.core.errors import ConfigError
from bqtui.core.stage_uri import parse_hmac_id, parse_stage_uri
from bqtui.destination.keyfile import load_key_file
from bqtui.destination.permissions import BUCKET_PERMISSIONS
from bqtui.ops.export_setup import create_export
from bqtui.state import secrets
from bqtui.state.store import Store
from bqtui.tui.screens.detail import ExportDetailScreen, configuration_text
from bqtui.tui.screens.dialogs import ConfirmDialog
from bqtui.tui.screens.home import HomeScreen
from bqtui.tui.screens.wizard.stage_pane import KEY_WITHOUT_STAGE, NO_SECRET
from bqtui.tui.widgets.form_field import FormField
from tests.harness.cloud_storage import CloudStorage
from tests.harness.google import DATA_EDITOR, JOB_USER, FakeGoogle, unique_id
from tests.harness.keys import make_service_account_key

from .conftest import PROJECT, SIZE, make_app, wait_until
from .wizard_driver import (
    destination_step,
    finish_permission_check,
    key_step,
    next_step,
    open_wizard,
    stage_fields,
    type_into,
    wizard,
)

HMAC_ID = "GOOG1EWIZARDSTAGE01"
SECRET = "wizardHMACsecret/notOnScreen+0123456789ab"  # 40 characters, as Cloud Storage's


def text_of(widget: Static) -> str:
    return str(widget.render())


def field_error(pilot, field_id: str) -> str:
    field = wizard(pilot).query_one(f"#{field_id}", FormField)
    return text_of(field.query_one(".field-error", Static)) if field.has_class("-invalid") else ""


def core_message(check) -> str:
    """What the core says (as `bqtui add` prints it)."""
    with pytest.raises(ConfigError) as refused:
        check()
    return str(refused.value)


@pytest.fixture
def key_path(tmp_path) -> str:
    """A key file (its token endpoint unreachable): enough for the steps before the check."""
    key = make_service_account_key(
        project_id=PROJECT,
        client_email=f"{unique_id('sa')}@{PROJECT}.iam.gserviceaccount.com",
        token_uri="http://127.0.0.1:9/token",
    )
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    return str(path)


async def on_destination(pilot, key_path: str, **destination) -> None:
    await open_wizard(pilot)
    await key_step(pilot, key_path)
    await next_step(pilot)
    await destination_step(pilot, dataset="analytics", table="events", name="staged", **destination)


async def test_a_stage_is_stored_with_the_export_and_its_secret_only_in_the_keyring(
    db_path, dataset, fake_google: FakeGoogle, cloud_storage: CloudStorage, demo_dsn, monkeypatch
):
    bucket = f"wizard-stage-{uuid.uuid4().hex[:10]}"
    cloud_storage.add_bucket(bucket)
    cloud_storage.register_key(HMAC_ID, SECRET)
    monkeypatch.setenv("BQTUI_GCS_ENDPOINT", cloud_storage.url)
    monkeypatch.setenv("BQTUI_GCS_JSON_ENDPOINT", fake_google.storage_json_endpoint)
    account = fake_google.new_account(
        PROJECT, project_permissions=JOB_USER, dataset_permissions={dataset: DATA_EDITOR}
    )
    fake_google.grant_bucket(account, bucket, BUCKET_PERMISSIONS)
    key = account.write_key(db_path.parent / "keys" / "exporter.json")
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await key_step(pilot, str(key))
        await next_step(pilot)
        await destination_step(
            pilot,
            dataset=dataset,
            table="events_export",
            name="staged-events",
            endpoint=fake_google.api_endpoint,
        )
        # Spaces around, a trailing slash: normalised as `bqtui add` does.
        await stage_fields(pilot, f" gs://{bucket}/bqtui-stage/ ", HMAC_ID, f" {SECRET} ")
        await next_step(pilot)
        screen = wizard(pilot)
        assert screen.index == 2, [field_error(pilot, f) for f in ("field-stage-uri",)]
        assert SECRET not in repr(screen.draft)
        assert (screen.draft.stage, screen.draft.stage_hmac_id) == (
            f"gs://{bucket}/bqtui-stage",
            HMAC_ID,
        )

        type_into(pilot, "#source-dsn", demo_dsn)
        await next_step(pilot)
        await finish_permission_check(pilot)
        report = wizard(pilot).draft.report
        # The wizard's secret, before the keyring holds it: the key wrote, the bucket is open.
        assert report is not None and report.stage is not None
        assert report.stage.status == "granted", report.stage.detail
        assert report.ok, report.lines()
        checklist = text_of(wizard(pilot).query_one("#perm-list", Static))
        assert f"✓ HMAC key {HMAC_ID}" in checklist
        assert "granted: wrote, listed and deleted a probe object under gs://" in checklist
        assert "storage.objects.list" in checklist
        await next_step(pilot)
        assert not isinstance(app.screen, ConfirmDialog)
        assert wizard(pilot).index == 4

        review = text_of(wizard(pilot).query_one("#review-summary", Static))
        assert f"gs://{bucket}/bqtui-stage" in review
        assert HMAC_ID in review
        assert "The stage's HMAC secret goes to the keyring too." in review
        assert SECRET not in review
        assert SECRET not in app.export_screenshot()
        await next_step(pilot)  # Create export
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))

    export = Store(db_path).require_export("staged-events")
    assert (export.stage, export.stage_hmac_id) == (f"gs://{bucket}/bqtui-stage", HMAC_ID)
    assert secrets.find_stage_hmac_secret(export.uid) == SECRET
    for stored in db_path.parent.glob(f"{db_path.name}*"):  # the database, its WAL if any
        assert SECRET.encode() not in stored.read_bytes(), stored
    secrets.delete_export_secrets(export.uid)


async def test_the_export_detail_shows_the_stage_and_its_access_id(db_path, key_path):
    """The Configuration tab names the stage and the key, never the secret."""
    config = ExportConfig(
        name="staged",
        dataset_id="analytics",
        table_id="events",
        stage="gs://detail-bucket/x",
        stage_hmac_id=HMAC_ID,
        start_at=datetime(2024, 5, 1, tzinfo=UTC),
    )
    export = create_export(Store(db_path), config, load_key_file(key_path), None, SECRET)
    try:
        text = configuration_text(export, "none")
        assert (
            f"Stage              gs://detail-bucket/x, HMAC key {HMAC_ID} (secret in the keyring)"
            in text
        )
        assert SECRET not in text
        app = make_app(db_path)
        async with app.run_test(size=SIZE) as pilot:
            app.push_screen(ExportDetailScreen(export.saved_id))
            await pilot.pause()
            await pilot.press("3")
            await pilot.pause()
            shown = text_of(app.screen.query_one("#config", Static))
            assert "gs://detail-bucket/x" in shown and HMAC_ID in shown
            assert SECRET not in app.export_screenshot()
    finally:
        secrets.delete_export_secrets(export.uid)


@pytest.mark.parametrize(
    ("uri", "hmac_id", "secret", "field", "message"),
    [
        (
            "gs://my-bucket/stage",
            "",
            SECRET,
            "field-stage-hmac-id",
            core_message(
                lambda: validate_export(
                    ExportConfig(name="n", dataset_id="d", table_id="t", stage="gs://b-1/x")
                )
            ),
        ),
        ("gs://my-bucket/stage", HMAC_ID, "", "field-stage-hmac-secret", NO_SECRET),
        (
            "s3://my-bucket/stage",
            HMAC_ID,
            SECRET,
            "field-stage-uri",
            core_message(lambda: parse_stage_uri("s3://my-bucket/stage")),
        ),
        (
            "gs://my-bucket/stage/*",
            HMAC_ID,
            SECRET,
            "field-stage-uri",
            core_message(lambda: parse_stage_uri("gs://my-bucket/stage/*")),
        ),
        (
            "gs://my-bucket/stage",
            "GOOG1E/secret+like",
            SECRET,
            "field-stage-hmac-id",
            core_message(lambda: parse_hmac_id("GOOG1E/secret+like")),
        ),
        ("", HMAC_ID, SECRET, "field-stage-uri", KEY_WITHOUT_STAGE),
    ],
)
async def test_an_incomplete_or_bad_stage_is_refused_under_its_field(
    db_path, key_path, uri, hmac_id, secret, field, message
):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_destination(pilot, key_path)
        await stage_fields(pilot, uri, hmac_id, secret)
        await next_step(pilot)
        assert wizard(pilot).index == 1  # not past the destination step
        assert field_error(pilot, field) == message
        others = {"field-stage-uri", "field-stage-hmac-id", "field-stage-hmac-secret"} - {field}
        assert all(field_error(pilot, other) == "" for other in others)
        assert app.focused is not None and app.focused.id == field.removeprefix("field-")
    assert Store(db_path).list_exports() == []


async def test_a_stage_uri_without_an_access_id_or_secret_shows_both_messages(db_path, key_path):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_destination(pilot, key_path)
        await stage_fields(pilot, "gs://my-bucket/stage")
        stage = wizard(pilot).query_one("#stage")
        stage.collapsed = True  # folded again: the refusal unfolds it
        await pilot.pause()
        await next_step(pilot)
        assert wizard(pilot).index == 1
        assert not stage.collapsed
        assert field_error(pilot, "field-stage-hmac-id").startswith(
            "--stage needs the HMAC key that ClickHouse writes with"
        )
        assert field_error(pilot, "field-stage-hmac-secret") == NO_SECRET


async def test_no_stage_is_the_default_and_changes_nothing(db_path, key_path):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_destination(pilot, key_path)
        assert wizard(pilot).query_one("#stage").collapsed
        await next_step(pilot)
        screen = wizard(pilot)
        assert screen.index == 2
        assert (screen.draft.stage, screen.draft.stage_hmac_id, screen.draft.stage_secret) == (
            None,
            None,
            "",
        )


async def test_the_secret_is_never_on_screen(db_path, key_path):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await on_destination(pilot, key_path)
        await stage_fields(pilot, "gs://my-bucket/stage", HMAC_ID, SECRET)
        secret_input = wizard(pilot).query_one("#stage-hmac-secret")
        secret_input.focus()
        secret_input.scroll_visible(animate=False)
        await pilot.pause()
        assert secret_input.region.height > 0  # on screen: what it shows is masked
        svg = app.export_screenshot()
        assert SECRET not in svg and SECRET[:12] not in svg
        assert "•" * 12 in svg  # the masked characters are what is drawn
        await next_step(pilot)
        assert wizard(pilot).index == 2
        assert SECRET not in repr(wizard(pilot).draft)
        assert SECRET not in app.export_screenshot()
