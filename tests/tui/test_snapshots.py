"""SVG snapshots of the important states (pytest-textual-snapshot; update with --snapshot-update).

Everything rendered is fixed: the clock, dataset and account names, paths (relative to a
temporary working dir), and the emulator's port never appears on these screens.
"""

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bqtui.core.config import AuthKind, ExportConfig, Interval, Model, validate_export
from bqtui.state.locks import ExportLock
from bqtui.state.store import Store, to_iso
from tests.harness.google import DATA_EDITOR
from tests.harness.keys import make_service_account_key

from .conftest import PROJECT, SIZE, make_app, wait_until
from .wizard_driver import (
    adc_detected,
    choose_credentials,
    destination_step,
    finish_permission_check,
    key_step,
    next_step,
    open_wizard,
    type_into,
    wizard,
)

SMALL = (80, 24)
MORNING = datetime(2024, 5, 4, 9, 30, tzinfo=UTC)
SNAPSHOT_ACCOUNT = f"exporter@{PROJECT}.iam.gserviceaccount.com"


def seed_exports(db_path: Path) -> None:
    """Three exports with a history: one healthy, one failing, one paused."""
    store = Store(db_path)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    specs = [
        ("web-events", Model.EVENTS, "events_export", Interval.HOUR, True, "succeeded", 48_212),
        ("people", Model.PERSONS, "persons", Interval.DAY, True, "failed", 0),
        ("sessions-weekly", Model.SESSIONS, "sessions", Interval.WEEK, False, "cancelled", 913),
    ]
    for name, model, table, interval, enabled, status, rows in specs:
        export = store.add_export(
            validate_export(
                ExportConfig(
                    name=name,
                    dataset_id="analytics",
                    table_id=table,
                    model=model,
                    interval=interval,
                    enabled=enabled,
                    source_dsn="chdb:///unused",
                    start_at=start,
                )
            )
        )
        run_id = store.start_run(export.id, "schedule", 3)
        store.update_run(
            run_id,
            status=status,
            rows=rows,
            windows_done=3,
            started_at=to_iso(MORNING - timedelta(hours=2)),
            finished_at=MORNING - timedelta(hours=2) + timedelta(seconds=41),
        )
        if status == "succeeded":  # caught up: its next window ends at the next hour
            lock = ExportLock(store, export.id).acquire()
            stamp = start
            while stamp + timedelta(hours=1) <= MORNING:
                store.begin_window(export.id, stamp, stamp + timedelta(hours=1), run_id, lock.owner)
                store.finish_window(export.id, stamp, "done", owner=lock.owner, attempt=1, rows=10)
                stamp += timedelta(hours=1)
            lock.release()
    store.close()


def test_home_with_exports(snap_compare, db_path):
    seed_exports(db_path)
    assert snap_compare(make_app(db_path, clock=lambda: MORNING), terminal_size=SIZE)


def test_home_with_exports_at_80x24(snap_compare, db_path):
    seed_exports(db_path)
    assert snap_compare(make_app(db_path, clock=lambda: MORNING), terminal_size=SMALL)


def test_home_empty(snap_compare, db_path):
    assert snap_compare(make_app(db_path), terminal_size=SMALL)


@pytest.fixture
def key_folder(tmp_path, monkeypatch) -> Path:
    """A working dir with keys/exporter.json (and a file the browser hides)."""
    monkeypatch.chdir(tmp_path)
    keys = tmp_path / "keys"
    keys.mkdir()
    key = make_service_account_key(
        project_id=PROJECT, client_email=SNAPSHOT_ACCOUNT, token_uri="http://127.0.0.1:9/token"
    )
    (keys / "exporter.json").write_text(json.dumps(key))
    (keys / "notes.txt").write_text("not a key")
    return Path("keys")


async def load_key(pilot, key_folder: Path) -> None:
    await open_wizard(pilot)
    tree = wizard(pilot).query_one("#key-tree")
    await wait_until(pilot, lambda: len(tree.root.children) > 0)
    await key_step(pilot, str(key_folder / "exporter.json"))


def test_wizard_key_step(snap_compare, db_path, key_folder):
    async def run_before(pilot):
        await load_key(pilot, key_folder)

    app = make_app(db_path, browse_from=key_folder)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.fixture
def adc_login(tmp_path, monkeypatch) -> None:
    """A user login as ADC, named by a relative path: the detection line is the same in every
    run (no account in the file, as gcloud writes it)."""
    monkeypatch.chdir(tmp_path)
    login = {
        "account": "",
        "client_id": "snapshot.apps.googleusercontent.com",
        "client_secret": "not-shown",
        "refresh_token": "not-shown-either",
        "type": "authorized_user",
    }
    Path("adc.json").write_text(json.dumps(login))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "adc.json")


def test_wizard_credentials_step_with_adc(snap_compare, db_path, adc_login):
    async def run_before(pilot):
        await open_wizard(pilot)
        await choose_credentials(pilot, AuthKind.ADC)
        assert "found: user login (adc.json)" in await adc_detected(pilot)

    app = make_app(db_path, browse_from=Path("."))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_wizard_destination_step_with_a_qualified_table_name(snap_compare, db_path, key_folder):
    async def run_before(pilot):
        await load_key(pilot, key_folder)
        await next_step(pilot)
        await destination_step(
            pilot,
            dataset="analytics",
            table="my-project:analytics.events_export",
            name="web-events",
        )
        await next_step(pilot)  # refused: the table field shows the suggestion and has focus

    app = make_app(db_path, browse_from=key_folder)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def through_destination(pilot, key_folder: Path, dataset: str, endpoint: str) -> None:
    await load_key(pilot, key_folder)
    await next_step(pilot)
    await destination_step(
        pilot, dataset=dataset, table="events_export", name="web-events", endpoint=endpoint
    )
    await next_step(pilot)


def test_wizard_source_step(snap_compare, db_path, key_folder):
    async def run_before(pilot):
        await through_destination(pilot, key_folder, "analytics", "")
        type_into(pilot, "#source-dsn", "http://reader@clickhouse.internal:8123/posthog")
        await pilot.pause()

    app = make_app(db_path, browse_from=key_folder)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_wizard_review_after_a_failed_check(snap_compare, db_path, key_folder):
    """The key's token endpoint is unreachable: a key problem, confirmed past, then review."""

    async def run_before(pilot):
        await through_destination(pilot, key_folder, "analytics", "")
        type_into(pilot, "#source-dsn", "http://reader@clickhouse.internal:8123/posthog")
        await next_step(pilot)
        await finish_permission_check(pilot)
        await next_step(pilot)
        await pilot.click("#confirm")
        await pilot.pause()

    app = make_app(db_path, browse_from=key_folder)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.fixture
def checked_account(fake_google, tmp_path, monkeypatch):
    """An account without Job User, with a fixed name and dataset, and its key in keys/.

    The check names its probe table with uuid4: numbered here, so the details are the same in
    every run.
    """
    numbers = itertools.count(1)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(numbers)))
    dataset = "tui_snapshot_permissions"
    fake_google.admin_client(PROJECT).create_dataset(f"{PROJECT}.{dataset}", exists_ok=True)
    account = fake_google.new_account(
        PROJECT, "tui-snapshot-no-job-user", dataset_permissions={dataset: DATA_EDITOR}
    )
    monkeypatch.chdir(tmp_path)
    account.write_key(tmp_path / "keys" / "exporter.json")
    return dataset


def test_wizard_permission_checklist_with_a_missing_permission(
    snap_compare, db_path, fake_google, checked_account
):
    async def run_before(pilot):
        await through_destination(pilot, Path("keys"), checked_account, fake_google.api_endpoint)
        type_into(pilot, "#source-dsn", "http://reader@clickhouse.internal:8123/posthog")
        await next_step(pilot)
        await finish_permission_check(pilot)

    app = make_app(db_path, browse_from=Path("keys"))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_finished_run(snap_compare, db_path, add_daily_export):
    add_daily_export("tui_snapshot_run")

    async def run_before(pilot):
        await pilot.press("r")
        screen = pilot.app.screen
        await wait_until(pilot, lambda: screen.finished)
        await pilot.pause()

    assert snap_compare(make_app(db_path), terminal_size=SIZE, run_before=run_before)
