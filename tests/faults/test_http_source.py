"""The production path: a ClickHouse server over HTTP(S) (the stand-in runs the real engine),
driven through the real CLI. Each network failure leaves nothing recorded half way, says what
happened, and the next run completes the window; TLS verifies certificates for real."""

import json
import socket

import pytest

from bqtui.source.dsn import redact_dsn
from tests.faults.conftest import World
from tests.harness.ca import make_test_pki
from tests.harness.clickhouse_http import ClickHouseHttpServer

from .conftest import HOURS, PER_HOUR, T0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    with ClickHouseHttpServer(tmp_path / "server", user="reader", password="r3ader-pw") as started:
        yield started


def http_world(world: World, server: ClickHouseHttpServer) -> World:
    """Point the world's source at the server: its tables and events, the export over HTTP."""
    world.source_dsn = server.dsn("default")
    world.chdb("create")
    world.insert_hours(T0, HOURS)
    world.add()
    return world


def test_the_models_tables_over_http_export_exactly_once(world: World, server):
    world = http_world(world, server)
    stored = world.sql("SELECT source_dsn FROM exports")[0][0]
    assert stored == f"http://reader@127.0.0.1:{server.port}/default"
    result = world.bqtui("run", "ev")
    assert result.code == 0, result.err
    assert f"ev: succeeded, {HOURS}/{HOURS} windows, {HOURS * PER_HOUR} rows" in result.out
    assert "ClickHouse read " in result.err  # the server's summary header, in the log
    assert "r3ader-pw" not in result.err + result.out
    world.assert_exactly_once_and_clean()


def test_connection_refused_then_the_server_comes_up(world: World, tmp_path):
    port = free_port()
    world.source_dsn = f"http://127.0.0.1:{port}/default"
    world.add()
    refused = world.bqtui("run", "ev")
    assert refused.code == 1
    assert (
        f"Cannot connect to ClickHouse at http://127.0.0.1:{port}/default: connection refused. "
        "Check the host and port (HTTP 8123, TLS 8443) and that the server is running and "
        "reachable." in refused.err
    )
    assert world.sql("SELECT count(*) FROM windows") == [(0,)]
    with ClickHouseHttpServer(tmp_path / "late", extra_args=["--port", str(port)]) as late:
        assert late.port == port
        world.chdb("create")
        world.insert_hours(T0, HOURS)
        rerun = world.bqtui("run", "ev")
        assert rerun.code == 0, rerun.err
        world.assert_exactly_once_and_clean()


def test_a_wrong_password_is_516_and_set_source_fixes_it(world: World, server):
    world = http_world(world, server)
    wrong = server.dsn("default").replace("r3ader-pw", "not-it")
    assert world.bqtui("set-source", "ev", "--source-dsn", wrong).code == 0
    refused = world.bqtui("run", "ev")
    assert refused.code == 1
    assert (
        f"ClickHouse at http://reader@127.0.0.1:{server.port}/default refused the user or "
        "password (code 516, AUTHENTICATION_FAILED)." in refused.err
    )
    assert "not-it" not in refused.err
    assert world.sql("SELECT count(*) FROM windows WHERE status = 'done'") == [(0,)]
    fixed = world.bqtui("set-source", "ev", "--source-dsn", server.dsn("default"))
    assert fixed.out.strip() == (
        f'Export "ev" now reads from http://reader@127.0.0.1:{server.port}/default '
        "(credentials → keyring)."
    )
    assert world.bqtui("run", "ev").code == 0
    world.assert_exactly_once_and_clean()


@pytest.mark.parametrize(
    "fault, options, message",
    [
        (
            "exception_midstream",
            {},
            "stopped in the middle of the window's rows (the server "
            "raised an error after it began answering, or the connection dropped)",
        ),
        ("drop_midstream", {}, "stopped in the middle of the window's rows"),
        ("timeout", {"delay": 6}, "did not answer the window's query in time"),
    ],
)
def test_a_failure_mid_query_records_nothing_and_the_next_run_completes(
    world: World, server, fault, options, message
):
    world = http_world(world, server)
    if fault == "timeout":
        dsn = server.dsn("default", send_receive_timeout="2")
        assert world.bqtui("set-source", "ev", "--source-dsn", dsn).code == 0
    server.fault(fault, times=1, match="FROM events", **options)
    failed = world.bqtui("run", "ev")
    assert failed.code == 1, failed.err
    assert message in failed.err
    assert "Nothing" in failed.err and "next run" in failed.err
    statuses = [row[0] for row in world.sql("SELECT status FROM windows")]
    assert "done" not in statuses and statuses  # the window began and was not recorded done
    rerun = world.bqtui("run", "ev")
    assert rerun.code == 0, rerun.err
    world.assert_exactly_once_and_clean()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def test_tls_verifies_the_server_against_the_ca_the_export_names(world: World, tmp_path, pki):
    with ClickHouseHttpServer(tmp_path / "tls", tls=pki.server) as tls:
        world = http_world_tls(world, tls, f"?ca_cert={pki.ca_cert}")
        result = world.bqtui("run", "ev")
        assert result.code == 0, result.err
        world.assert_exactly_once_and_clean()
        # Without the CA: the system store does not trust the test CA.
        plain = tls.dsn("default")
        assert world.bqtui("set-source", "ev", "--source-dsn", plain).code == 0
        untrusted = world.bqtui("check", "ev", "--json")
        source = json.loads(untrusted.out)["source"]
        assert source["ok"] is False
        assert source["problems"] == [
            f"Cannot connect to ClickHouse at {redact_dsn(plain)}: the server's TLS certificate "
            "is not trusted (certificate verify failed). If it is signed by a private CA, add "
            "?ca_cert=/path/to/ca.pem to the DSN."
        ]


def test_an_untrusted_certificate_is_refused_unless_verification_is_skipped_by_name(
    world: World, tmp_path, pki
):
    with ClickHouseHttpServer(tmp_path / "self-signed", tls=pki.untrusted) as tls:
        world.source_dsn = tls.dsn("default") + "?insecure_skip_verify=true"
        world.chdb("create")  # the test's own setup, skipping verification
        world.insert_hours(T0, HOURS)
        world.source_dsn = tls.dsn("default") + f"?ca_cert={pki.ca_cert}"
        world.add()
        refused = world.bqtui("run", "ev")
        assert refused.code == 1
        assert "the server's TLS certificate is not trusted (certificate verify failed)" in (
            refused.err
        )
        assert world.sql("SELECT count(*) FROM windows") == [(0,)]
        skipping = tls.dsn("default") + "?insecure_skip_verify=true"
        assert world.bqtui("set-source", "ev", "--source-dsn", skipping).code == 0
        shown = world.bqtui("show", "ev", "--json")
        assert json.loads(shown.out)["source_dsn"] == redact_dsn(skipping)
        assert redact_dsn(skipping).endswith("/default?insecure_skip_verify=true")
        assert world.bqtui("run", "ev").code == 0
        world.source_dsn = skipping  # the test reads the source the same way
        world.assert_exactly_once_and_clean()


def http_world_tls(world: World, server: ClickHouseHttpServer, query: str) -> World:
    world.source_dsn = server.dsn("default") + query
    world.chdb("create")
    world.insert_hours(T0, HOURS)
    world.add()
    return world
