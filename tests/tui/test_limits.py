"""The wizard and the edit screen refuse a team ID beyond signed 64 bits with the command
line's message, and store nothing (it used to reach SQLite and end in an OverflowError); the
wizard's Test connection names an old ClickHouse server's version and the oldest supported."""

import json

from textual.widgets import Input, Static

from bqtui.source.dsn import redact_dsn
from bqtui.state.store import Store
from bqtui.tui.widgets.form_field import FormField
from tests.harness.clickhouse_http import ClickHouseHttpServer

from .conftest import SIZE, make_app, wait_until
from .test_home import add_stored_export
from .test_wizard import fake_key, text_of
from .wizard_driver import destination_step, key_step, next_step, open_wizard, type_into, wizard

TOO_BIG = (
    "Team ID {} is out of range: ClickHouse's team_id is a signed 64-bit integer, at most "
    "9223372036854775807."
)


async def test_the_wizard_refuses_a_team_id_beyond_64_bits(db_path, tmp_path):
    key = tmp_path / "key.json"
    key.write_text(json.dumps(fake_key()))
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_wizard(pilot)
        await key_step(pilot, str(key))
        await next_step(pilot)
        await destination_step(pilot, dataset="analytics", table="events", name="big-team")
        type_into(pilot, "#team-id", "99999999999999999999")
        await next_step(pilot)
        screen = wizard(pilot)
        assert screen.index == 1  # still on the destination step
        team = screen.query_one("#field-team-id", FormField)
        assert text_of(team.query_one(".field-error", Static)) == TOO_BIG.format(
            "99999999999999999999"
        )
        assert team.has_class("-invalid")
        type_into(pilot, "#team-id", "9223372036854775807")  # the largest is fine
        await next_step(pilot)
        assert wizard(pilot).index == 2
    assert Store(db_path).list_exports() == []


async def test_the_edit_screen_refuses_a_team_id_beyond_64_bits(db_path):
    export = add_stored_export(db_path)
    before = db_path.read_bytes()
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        screen = app.screen
        screen.query_one("#team-id", Input).value = "9223372036854775808"
        await pilot.press("ctrl+s")
        assert app.screen is screen  # not saved
        error = screen.query_one("#field-team-id", FormField).query_one(".field-error", Static)
        assert str(error.render()) == TOO_BIG.format("9223372036854775808")
    assert Store(db_path).get_export(export.id) == export
    assert db_path.read_bytes() == before


async def test_test_connection_names_an_old_servers_version_and_the_oldest_supported(
    db_path, tmp_path
):
    key = tmp_path / "key.json"
    key.write_text(json.dumps(fake_key()))
    with ClickHouseHttpServer(tmp_path / "old", extra_args=["--pretend-version", "18.16.1"]) as old:
        dsn = old.dsn("default")
        app = make_app(db_path)
        async with app.run_test(size=SIZE) as pilot:
            await open_wizard(pilot)
            await key_step(pilot, str(key))
            await next_step(pilot)
            await destination_step(pilot, dataset="analytics", table="events", name="old")
            await next_step(pilot)
            type_into(pilot, "#source-dsn", dsn)
            await pilot.click("#test-connection")
            result = wizard(pilot).query_one("#connection-result", Static)
            await wait_until(pilot, lambda: "Connecting" not in text_of(result))
            assert text_of(result) == (
                f"ClickHouse at {redact_dsn(dsn)} is version 18.16.1; bqtui supports ClickHouse "
                "22.6 or newer, as it needs query parameters over HTTP (19.11), DateTime64 "
                "(20.1), the ArrowStream format (20.5), system.data_skipping_indices (21.8, read "
                "by check) and output_format_arrow_string_as_string (22.6). Upgrade the server, "
                "or read from a newer one: bqtui set-source NAME --source-dsn "
                "'https://user@host:8443/db'"
            )
            assert result.has_class("error")
    assert Store(db_path).list_exports() == []
