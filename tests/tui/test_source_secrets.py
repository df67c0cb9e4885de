"""No credential of a ClickHouse DSN in the database files, logs, --json output or any
screen: they live in the keyring only."""

import json

from bqtui.cli import main
from bqtui.state import secrets
from bqtui.state.store import Store
from bqtui.tui.screens.detail import ExportDetailScreen

from .conftest import SIZE, make_app, wait_until

PASSWORD, TOKEN = "pw-S3CRET-a1", "tok-S3CRET-b2"
DSN = f"http://reader:{PASSWORD}@127.0.0.1:1/posthog?max_threads=2"
SHOWN = "http://reader@127.0.0.1:1/posthog?max_threads=2"
TOKEN_DSN = f"https://127.0.0.1:1/posthog?access_token={TOKEN}"


def assert_no_secret(text: str) -> None:
    assert PASSWORD not in text and TOKEN not in text


async def test_dsn_credentials_live_in_the_keyring_only(db_path, key_file, dataset, capsys):
    assert (
        main(
            [
                "add",
                "--db",
                str(db_path),
                "--name",
                "ev",
                "--key-file",
                str(key_file),
                "--dataset-id",
                dataset,
                "--table-id",
                "t",
                "--source-dsn",
                DSN,
                "--start",
                "2024-05-01",
                "--interval",
                "day",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "add",
                "--db",
                str(db_path),
                "--name",
                "tok",
                "--key-file",
                str(key_file),
                "--dataset-id",
                dataset,
                "--table-id",
                "t2",
                "--source-dsn",
                TOKEN_DSN,
            ]
        )
        == 0
    )
    export = Store(db_path).require_export("ev")
    assert export.source_dsn == SHOWN
    assert secrets.load_clickhouse_secrets(export.uid) == {"password": PASSWORD}
    with_token = Store(db_path).require_export("tok")
    assert with_token.source_dsn == "https://127.0.0.1:1/posthog"
    assert secrets.load_clickhouse_secrets(with_token.uid) == {"access_token": TOKEN}
    for command in (["list", "--json"], ["show", "ev"], ["show", "ev", "--json"]):
        assert main([*command, "--db", str(db_path)]) == 0
    # A run that cannot connect: its message and its logs name the DSN, not its secrets.
    assert main(["run", "ev", "--db", str(db_path)]) == 1
    out, err = capsys.readouterr()
    assert SHOWN in out and "connection refused" in err
    assert_no_secret(out + err)
    assert json.loads(main_json(db_path))[0]["source_dsn"] == SHOWN
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(ExportDetailScreen(export.id))
        await wait_until(pilot, lambda: isinstance(app.screen, ExportDetailScreen))
        # Until the screen shows the DSN (the run's error names it): then it is there to see.
        await wait_until(
            pilot, lambda: "reader@127.0.0.1:1/posthog" in app.export_screenshot(), timeout=30
        )
        screen_text = app.export_screenshot()
        await pilot.press("3")  # the Config tab: the DSN as stored
        await wait_until(pilot, lambda: "Settle" in app.export_screenshot(), timeout=30)
        config_text = app.export_screenshot()
    assert "reader@127.0.0.1:1/posthog" in screen_text
    assert_no_secret(screen_text)
    assert "http://reader@127.0.0.1:1/posthog?max_threads=2" in config_text
    assert_no_secret(config_text)
    for path in db_path.parent.glob(f"{db_path.name}*"):  # the database, its WAL and SHM
        data = path.read_bytes()
        assert PASSWORD.encode() not in data and TOKEN.encode() not in data


def main_json(db_path) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(["list", "--json", "--db", str(db_path)])
    return buffer.getvalue()
