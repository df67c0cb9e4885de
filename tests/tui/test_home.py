"""The exports screen and what its keys do: pause, edit, backfill, delete, help, palette."""

import json
from datetime import UTC, datetime

import pytest
from textual.widgets import Input, Static

from bqtui.core.config import ExportConfig, Interval, validate_export
from bqtui.core.errors import SecretsError
from bqtui.state import secrets
from bqtui.state.store import Store
from bqtui.tui.screens.backfill import BackfillDialog
from bqtui.tui.screens.dialogs import ConfirmDialog
from bqtui.tui.screens.edit import EditExportScreen
from bqtui.tui.screens.help import HelpScreen
from bqtui.tui.screens.home import HomeScreen
from bqtui.tui.screens.run import RunScreen
from bqtui.tui.widgets.exports_table import ExportsTable
from bqtui.tui.widgets.form_field import FormField

from .conftest import SIZE, make_app, wait_until


def add_stored_export(db_path, name="web-events") -> ExportConfig:
    store = Store(db_path)
    export = store.add_export(
        validate_export(
            ExportConfig(
                name=name,
                dataset_id="analytics",
                table_id="events_export",
                interval=Interval.HOUR,
                source_dsn="http://127.0.0.1:9/never_contacted",
                start_at=datetime(2024, 5, 1, tzinfo=UTC),
            )
        )
    )
    secrets.store_service_account_key(export.uid, json.dumps({"type": "service_account"}))
    store.close()
    return export


async def test_empty_home_explains_how_to_start_and_greys_out_export_keys(db_path):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        empty = app.screen.query_one("#empty-state", Static)
        assert empty.display and "Press n" in str(empty.render())
        assert "bqtui demo" in str(empty.render())
        assert app.screen.check_action("run", ()) is None
        await pilot.press("r")  # nothing to run: nothing happens
        assert isinstance(app.screen, HomeScreen)


async def test_pause_and_resume(db_path):
    export = add_stored_export(db_path)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(ExportsTable)
        await pilot.press("p")  # saved by a worker; the table shows it once saved
        await wait_until(pilot, lambda: str(table.get_row(str(export.id))[1]) == "paused")
        assert not app.store.get_export(export.id).enabled
        await pilot.press("p")
        await wait_until(pilot, lambda: str(table.get_row(str(export.id))[1]) == "enabled")
        assert app.store.get_export(export.id).enabled


async def test_delete_asks_first_then_removes_the_export_and_its_secrets(db_path):
    export = add_stored_export(db_path)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("escape")  # Cancel: nothing deleted
        assert app.store.find_export(export.name)
        await pilot.press("d")
        await pilot.click("#confirm")  # removed by a worker; the table shows it once done
        await wait_until(pilot, lambda: app.screen.query_one("#empty-state").display)
        assert app.store.find_export(export.name) is None
    with pytest.raises(SecretsError):
        secrets.load_service_account_key(export.uid)


async def test_edit_validates_and_saves(db_path):
    export = add_stored_export(db_path)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        screen = app.screen
        assert isinstance(screen, EditExportScreen)
        screen.query_one("#table-id", Input).value = "proj:analytics.events_v2"
        await pilot.press("ctrl+s")
        error = screen.query_one("#field-table-id", FormField).query_one(".field-error", Static)
        assert "Use the bare table ID" in str(error.render())
        screen.query_one("#table-id", Input).value = "events_v2"
        screen.query_one("#include-events", Input).value = "$pageview, signed_up"
        await pilot.press("ctrl+s")  # saved by a worker: the screen closes once saved
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
    saved = Store(db_path).get_export(export.id)
    assert (saved.table_id, saved.include_events) == ("events_v2", ("$pageview", "signed_up"))


async def test_backfill_dialog_checks_the_dates_before_running(db_path):
    add_stored_export(db_path)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        dialog = app.screen
        assert isinstance(dialog, BackfillDialog)
        dialog.query_one("#backfill-start", Input).value = "May 1st"
        dialog.query_one("#backfill-end", Input).value = "2024-05-02"
        await pilot.click("#backfill")
        error = dialog.query_one("#field-start", FormField).query_one(".field-error", Static)
        assert 'The start "May 1st" is not an ISO 8601 time' in str(error.render())
        dialog.query_one("#backfill-start", Input).value = "2024-05-01"
        await pilot.pause()
        assert "24 window(s)" in str(dialog.query_one("#backfill-windows", Static).render())
        dialog.query_one("#backfill-end", Input).focus()
        await pilot.press("enter")
        assert isinstance(app.screen, RunScreen)
        assert app.screen.backfill == (
            datetime(2024, 5, 1, tzinfo=UTC),
            datetime(2024, 5, 2, tzinfo=UTC),
        )
        await app.workers.wait_for_complete()


async def test_help_and_command_palette_commands(db_path):
    add_stored_export(db_path)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"New export", "Run export now", "Check permissions", "Quit"} <= titles
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


@pytest.mark.parametrize(
    "field, value, message",
    [
        (
            "settle",
            "-1",
            "Settle delay must be between 0 and 86400 seconds (24 hours), not -1; "
            "the default is 60.",
        ),
        (
            "settle",
            "soon",
            'Settle delay must be a whole number of seconds, not "soon" (default 60).',
        ),
        (
            "dataset-id",
            "my-dataset",
            '"my-dataset" is not a valid dataset ID: use only letters, '
            "numbers and underscores (at most 1024). BigQuery allows no dashes or spaces there; "
            '"my_dataset" would do.',
        ),
        ("team-id", "x", 'Team ID must be a whole number, not "x".'),
        (
            "source-dsn",
            "clickhouse://ch:9000/db",
            '"clickhouse://" is ClickHouse\'s native '
            "protocol; bqtui speaks its HTTP interface. Use http://host:8123/database, or "
            "https://host:8443/database with TLS.",
        ),
    ],
)
async def test_the_edit_screen_refuses_bad_input_and_changes_nothing(
    db_path, field, value, message
):
    export = add_stored_export(db_path)
    before = db_path.read_bytes()
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        screen = app.screen
        screen.query_one(f"#{field}", Input).value = value
        await pilot.press("ctrl+s")
        assert app.screen is screen  # not saved
        error = screen.query_one(f"#field-{field}", FormField).query_one(".field-error", Static)
        assert str(error.render()) == message
    assert Store(db_path).get_export(export.id) == export
    assert db_path.read_bytes() == before


async def test_the_edit_screen_moves_a_new_clickhouse_password_to_the_keyring(db_path):
    export = add_stored_export(db_path)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        app.screen.query_one("#source-dsn", Input).value = "http://reader:n3w-pw@ch:8123/db"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
        await pilot.press("e")
        assert app.screen.query_one("#source-dsn", Input).value == "http://reader@ch:8123/db"
        app.screen.query_one("#source-password", Input).value = "0ther-pw"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, HomeScreen))
    saved = Store(db_path).get_export(export.id)
    assert saved.source_dsn == "http://reader@ch:8123/db"
    assert secrets.load_clickhouse_secrets(export.uid) == {"password": "0ther-pw"}
    data = b"".join(p.read_bytes() for p in db_path.parent.glob(f"{db_path.name}*"))
    assert b"n3w-pw" not in data and b"0ther-pw" not in data
