"""ClickHouse DSNs: credentials split off for the keyring, TLS for https, clear messages."""

import socket
import threading

import pytest

from bqtui.core.errors import ConfigError, SourceError
from bqtui.source.clickhouse import ClickHouseSource
from bqtui.source.dsn import parse_dsn, redact_dsn, split_secrets


def test_every_credential_of_a_dsn_goes_to_the_keyring():
    stored, secrets = split_secrets(
        "https://reader:p%40ss%3Aword@ch.example.com/posthog?max_threads=4"
    )
    assert stored == "https://reader@ch.example.com/posthog?max_threads=4"
    assert secrets == {"password": "p@ss:word"}
    _, query_password = split_secrets("http://ch:8123/db?key=s3cret")
    assert query_password == {"password": "s3cret"}
    stored, token = split_secrets("https://ch.example.com/db?access_token=tok&x=1")
    assert stored == "https://ch.example.com/db?x=1" and token == {"access_token": "tok"}
    with pytest.raises(ConfigError, match="has both a password and an access token"):
        parse_dsn("https://u:pw@ch/db?access_token=tok")


def test_https_means_tls_verified_on_8443_and_http_plain_on_8123():
    secure, _ = parse_dsn("https://reader@ch.example.com/posthog")
    arguments = secure.client_arguments({"password": "x"})
    assert arguments["interface"] == "https" and arguments["port"] == 8443
    assert arguments["verify"] is True and arguments["password"] == "x"
    plain, _ = parse_dsn("http://ch.example.com/posthog")
    assert plain.client_arguments({})["interface"] == "http"
    assert plain.client_arguments({})["port"] == 8123
    private, _ = parse_dsn("https://ch:9443/db?ca_cert=/etc/ca.pem")
    assert private.client_arguments({})["ca_cert"] == "/etc/ca.pem"
    skipped, _ = parse_dsn("https://ch/db?insecure_skip_verify=true")
    assert skipped.client_arguments({})["verify"] is False


def test_an_ipv6_host_keeps_its_brackets():
    dsn, _ = parse_dsn("http://user:pw@[::1]:8123/db")
    assert dsn.host == "::1" and dsn.text() == "http://user@[::1]:8123/db"
    assert dsn.client_arguments({})["host"] == "[::1]"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "ftp://host/db",
            'Unknown ClickHouse DSN scheme "ftp": use http://host:8123/database, '
            "https://host:8443/database, or chdb:///path for the embedded engine.",
        ),
        (
            "clickhouse://host:9000/db",
            '"clickhouse://" is ClickHouse\'s native protocol; bqtui '
            "speaks its HTTP interface. Use http://host:8123/database, or "
            "https://host:8443/database with TLS.",
        ),
        (
            "tcp://host/db",
            '"tcp://" is ClickHouse\'s native protocol; bqtui speaks its HTTP '
            "interface. Use http://host:8123/database, or https://host:8443/database with TLS.",
        ),
        (
            "http://host:9000/db",
            "Port 9000 is ClickHouse's native protocol; bqtui speaks its "
            "HTTP interface: use port 8123 (plain HTTP).",
        ),
        (
            "https://host:9440/db",
            "Port 9440 is ClickHouse's native protocol; bqtui speaks its "
            "HTTP interface: use port 8443 (TLS HTTP).",
        ),
        (
            "http:///db",
            "The ClickHouse DSN has no host, e.g. https://reader@clickhouse.example.com:8443/db.",
        ),
        (
            "http://host:99999/db",
            "The ClickHouse DSN's host or port is not valid: Port out of range 0-65535.",
        ),
    ],
)
def test_unusable_dsns_are_refused_with_what_to_do(text, message):
    with pytest.raises(ConfigError) as refused:
        parse_dsn(text)
    assert str(refused.value) == message


def test_redaction_never_shows_a_secret():
    assert redact_dsn("https://u:pw@h:8443/db?key=t&x=1") == "https://u@h:8443/db?x=1"


def test_an_https_dsn_starts_a_tls_handshake_and_sends_no_credential_in_clear():
    """A plain TCP listener stands where the server would: what arrives is a TLS
    ClientHello, never an HTTP request carrying the password."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received = bytearray()

    def accept():
        connection, _ = listener.accept()
        connection.settimeout(5)
        try:
            while chunk := connection.recv(65536):
                received.extend(chunk)
                if len(received) > 5:
                    break
        except OSError:
            pass
        connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    source = ClickHouseSource(
        f"https://reader@127.0.0.1:{port}/posthog?connect_timeout=3",
        {"password": "hunter2-secret"},
    )
    with pytest.raises(SourceError) as failed:
        source.open()
    thread.join(10)
    listener.close()
    assert received[:1] == b"\x16" and received[1:2] == b"\x03"  # TLS handshake record
    assert b"hunter2-secret" not in received and b"Authorization" not in received
    assert "hunter2-secret" not in str(failed.value)
    assert f"ClickHouse at https://reader@127.0.0.1:{port}/posthog" in str(failed.value)
