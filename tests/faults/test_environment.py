"""The environment does not change what bqtui does (the real CLI in subprocesses).

- A ClickHouse ``config.xml`` in the working folder: the embedded engine reads one from the
  current folder when it starts, and chdb starts an engine when it is imported. bqtui starts
  it only for an export or a connection test, always with its own configuration: ``--help``,
  ``--version``, ``list``, ``show``, ``status`` and the TUI's home screen leave such a folder as
  it was even where its config names a running server's data path, and an export from there
  still reads the export's own engine.
- An old ClickHouse server (the stand-in answering like Debian's 18.16.1): ``check``, ``run``
  and ``check --json`` name its version and the oldest one bqtui supports, and the top-level
  ``ok`` is false when any part fails.
"""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bqtui.source.dsn import redact_dsn
from tests.faults.conftest import BQTUI, HOURS, PER_HOUR, Result, World
from tests.harness.clickhouse_http import ClickHouseHttpServer

from .test_http_source import http_world

REPO = Path(__file__).resolve().parents[2]


def server_config(folder: Path, data: Path) -> str:
    """A ClickHouse server's config.xml as an install has one, its data path ``data``."""
    return textwrap.dedent(f"""\
        <?xml version="1.0"?>
        <clickhouse>
            <logger>
                <level>information</level>
                <log>{folder}/log/clickhouse-server.log</log>
                <errorlog>{folder}/log/clickhouse-server.err.log</errorlog>
                <size>1000M</size>
                <count>10</count>
            </logger>
            <http_port>8123</http_port>
            <tcp_port>9000</tcp_port>
            <listen_host>127.0.0.1</listen_host>
            <max_connections>4096</max_connections>
            <keep_alive_timeout>3</keep_alive_timeout>
            <max_concurrent_queries>100</max_concurrent_queries>
            <path>{data}/</path>
            <tmp_path>{data}/tmp/</tmp_path>
            <user_files_path>{data}/user_files/</user_files_path>
            <format_schema_path>{data}/format_schemas/</format_schema_path>
            <users_config>users.xml</users_config>
            <default_profile>default</default_profile>
            <default_database>default</default_database>
            <timezone>UTC</timezone>
        </clickhouse>
        """)


def files_under(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_size if p.is_file() else -1
        for p in sorted(folder.rglob("*"))
    }


def bqtui_in(world: World, folder: Path, *args: str) -> Result:
    done = subprocess.run(
        [BQTUI, *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=folder,
        env=world.environ(),
        stdin=subprocess.DEVNULL,
    )
    return Result(done.returncode, done.stdout, done.stderr)


# The CLI in-process, saying afterwards whether the embedded engine (chdb) was even imported.
_CLI_AND_ENGINE = """
import sys
from bqtui.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("chdb imported:", "chdb" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def engine_imported(world: World, folder: Path, *args: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", _CLI_AND_ENGINE, *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=folder,
        env=world.environ(),
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1] == "chdb imported: True"


# A running server's engine on its data path (it holds the flock on <path>/status).
_HOLD_SCRIPT = """
import sys, chdb
connection = chdb.connect(sys.argv[1])
connection.query("CREATE TABLE IF NOT EXISTS server_table (x UInt8) ENGINE = MergeTree ORDER BY x")
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def busy_server_path(tmp_path):
    """The data path of a running ClickHouse (an engine that holds it, in another process)."""
    data = tmp_path / "server-data"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_SCRIPT, str(data)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert holder.stdout.readline().strip() == "holding", holder.stderr.read()
        yield data
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_a_servers_config_xml_in_the_working_folder_changes_nothing(
    events_world: World, tmp_path, busy_server_path
):
    world = events_world
    folder = tmp_path / "etc-clickhouse-server"
    folder.mkdir()
    (folder / "config.xml").write_text(server_config(folder, busy_server_path))
    before, server_before = files_under(folder), files_under(busy_server_path)

    for args in (["--version"], ["--help"], ["list"], ["show", "ev"], ["status"]):
        result = bqtui_in(world, folder, *args)
        assert "Traceback" not in result.err and "Cannot lock file" not in result.err, args
        assert result.code == (1 if args == ["status"] else 0), (args, result.err)  # 3 h behind
        assert files_under(folder) == before, args
        assert not engine_imported(world, folder, *args), args
    assert files_under(busy_server_path) == server_before
    assert engine_imported(world, folder, "check", "ev")  # a connection test starts it

    exported = bqtui_in(world, folder, "run", "ev")
    assert exported.code == 0, exported.err
    assert f"ev: succeeded, {HOURS}/{HOURS} windows, {HOURS * PER_HOUR} rows" in exported.out
    world.assert_exactly_once_and_clean()
    caught_up = bqtui_in(world, folder, "status")
    assert caught_up.code == 0, caught_up.out + caught_up.err
    assert files_under(folder) == before
    assert files_under(busy_server_path) == server_before


_HOME_SCREEN = """
import asyncio, sys
from pathlib import Path
from bqtui.tui.app import create_app

async def main():
    app = create_app(Path(sys.argv[1]), cursor_blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.pause(0.5)
        print(type(app.screen).__name__, "chdb" in sys.modules, flush=True)

asyncio.run(main())
"""


def test_the_tui_home_screen_does_not_start_the_embedded_engine(events_world: World, tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "config.xml").write_text(server_config(folder, folder / "data"))
    done = subprocess.run(
        [sys.executable, "-c", _HOME_SCREEN, str(events_world.db_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env={**events_world.environ(), "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["HomeScreen", "False"], done.stdout  # chdb not even imported
    assert sorted(p.name for p in folder.iterdir()) == ["config.xml"]


# -- an old ClickHouse server -----------------------------------------------------------------


@pytest.fixture
def server(tmp_path):
    with ClickHouseHttpServer(tmp_path / "server", user="reader", password="r3ader-pw") as started:
        yield started


def too_old(dsn: str, version: str) -> str:
    return (
        f"ClickHouse at {redact_dsn(dsn)} is version {version}; bqtui supports ClickHouse 22.6 "
        "or newer, as it needs query parameters over HTTP (19.11), DateTime64 (20.1), the "
        "ArrowStream format (20.5), system.data_skipping_indices (21.8, read by check) and "
        "output_format_arrow_string_as_string (22.6). Upgrade the server, or read from a newer "
        "one: bqtui set-source NAME --source-dsn 'https://user@host:8443/db'"
    )


def test_an_old_server_is_named_with_its_version_and_the_oldest_supported(
    world: World, server: ClickHouseHttpServer
):
    world = http_world(world, server)
    dsn = server.dsn("default")
    server.pretend_version("18.16.1")  # Debian's clickhouse-server

    checked = world.bqtui("check", "ev")
    assert checked.code == 1
    assert "All required permissions are granted." in checked.out  # the BigQuery side is fine
    assert f"  ✗ {too_old(dsn, '18.16.1')}" in checked.out
    assert "Unknown identifier: readonly" not in checked.out
    assert checked.out.rstrip().endswith(
        "Not ready: fix the ClickHouse findings above, then run the check again."
    )

    as_json = world.bqtui("check", "ev", "--json")
    assert as_json.code == 1
    report = json.loads(as_json.out)
    assert report["ok"] is False  # a part failed: the whole is not ok
    assert report["problems"] == [] and report["source"]["ok"] is False
    assert report["source"]["problems"] == [too_old(dsn, "18.16.1")]

    started = time.monotonic()
    refused = world.bqtui("run", "ev")
    assert refused.code == 1
    assert too_old(dsn, "18.16.1") in refused.err and "Traceback" not in refused.err
    assert time.monotonic() - started < 60
    assert world.sql("SELECT count(*) FROM windows WHERE status = 'done'") == [(0,)]

    server.pretend_version("21.8.15.7")  # the driver connects; bqtui still needs 22.6
    refused = world.bqtui("run", "ev")
    assert refused.code == 1 and too_old(dsn, "21.8.15.7") in refused.err
    assert world.sql("SELECT count(*) FROM windows WHERE status = 'done'") == [(0,)]

    server.pretend_version(None)  # upgraded
    upgraded = world.bqtui("check", "ev", "--json")
    assert json.loads(upgraded.out)["ok"] is True, upgraded.out
    assert world.bqtui("run", "ev").code == 0
    world.assert_exactly_once_and_clean()


@pytest.mark.parametrize(
    "version, refused",
    [
        ("18.16.1", True),
        ("21.8.15.7-lts", True),
        ("22.5.9.1", True),
        ("22.6.1.1", False),
        ("22.8.20.11-lts", False),
        ("26.9.2.1", False),
        ("", False),
        ("unknown", False),
    ],
)
def test_the_oldest_supported_version_is_22_6(version, refused):
    from bqtui.source.failures import old_server_message as _old_server

    said = _old_server("http://reader:pw@ch:8123/db", version)
    assert bool(said) is refused
    if refused:
        assert said.startswith(f"ClickHouse at http://reader@ch:8123/db is version {version};")
        assert "pw" not in said
