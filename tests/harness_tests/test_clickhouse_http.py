"""The ClickHouse HTTP stand-in (tests.harness.clickhouse_http), checked against what the real
clickhouse-connect sends and expects, and against the bytes chdb itself produces."""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
import zlib
from pathlib import Path
from urllib.parse import urlencode

import clickhouse_connect
import pyarrow as pa
import pytest
import urllib3
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, StreamFailureError

from tests.harness.ca import make_test_pki
from tests.harness.clickhouse_http import ClickHouseHttpServer, exception_block

USER = "exporter"
PASSWORD = "s3cret pass/word"

# ---------------------------------------------------------------------------------------------
# What clickhouse-connect 1.12 sent, recorded on the wire (tests.harness.clickhouse_http
# --record) for: get_client() (3 requests), command(CREATE TABLE), insert() (DESCRIBE, then the
# lz4-compressed Native body, chunked), insert_arrow(), query() with a {low:UInt64} server-side
# parameter and a setting, query_arrow(), query_arrow_stream(). query_id values are left out;
# the session id is normalised; User-Agent and Host are dropped.
# test_client_sends_the_recorded_requests keeps this fixture honest against the installed client.
# ---------------------------------------------------------------------------------------------

_AUTH = ("Authorization", "Basic ZGVmYXVsdDo=")  # user "default", empty password
_SESSION = [
    ("date_time_input_format", "best_effort"),
    ("cast_string_to_dynamic_use_inference", "1"),
    ("session_id", "fixture-session"),
    ("cancel_http_readonly_queries_on_client_close", "1"),
]
_PROGRESS = [
    ("send_progress_in_http_headers", "1"),
    ("http_headers_progress_interval_ms", "120000"),
]
_WAIT = [("wait_end_of_query", "1")]
_PROTOCOL = [("client_protocol_version", "54405")]
_IDENTITY = ("Accept-Encoding", "identity")
_COMPRESSED = ("Accept-Encoding", "lz4,zstd,gzip,deflate")
_TEXT = ("Content-Type", "text/plain; charset=utf-8")
_OCTETS = ("Content-Type", "application/octet-stream")

RECORDED_REQUESTS = [
    # get_client(): server version and timezone, settings discovery, protocol-revision probe
    {
        "method": "POST",
        "params": [],
        "headers": [_IDENTITY, ("Content-Length", "28"), _AUTH],
        "body": "SELECT version(), timezone()",
    },
    {
        "method": "POST",
        "params": _WAIT,
        "headers": [_IDENTITY, ("Content-Length", "76"), _AUTH, _TEXT],
        "body": "SELECT name, value, readonly FROM system.settings LIMIT 10000\n FORMAT Native",
    },
    {
        "method": "POST",
        "params": _WAIT + _PROTOCOL,
        "headers": [_IDENTITY, ("Content-Length", "32"), _AUTH],
        "body": "SELECT 1 AS check\n FORMAT Native",
    },
    # command()
    {
        "method": "POST",
        "params": _SESSION + _PROGRESS,
        "headers": [_IDENTITY, ("Content-Length", "73"), _AUTH],
        "body": "CREATE TABLE fixture_t (a UInt64, s String) ENGINE = MergeTree ORDER BY a",
    },
    # insert(): the table's columns, then the statement and Native data, lz4 frames, chunked
    {
        "method": "POST",
        "params": _SESSION + _WAIT + _PROGRESS + _PROTOCOL,
        "headers": [("Content-Length", "41"), _AUTH, _COMPRESSED, _TEXT],
        "body": "DESCRIBE TABLE `fixture_t`\n FORMAT Native",
    },
    {
        "method": "POST",
        "params": _SESSION + _PROGRESS,
        "headers": [
            _IDENTITY,
            ("Transfer-Encoding", "chunked"),
            _AUTH,
            _OCTETS,
            ("Content-Encoding", "lz4"),
        ],
        "body_b64": "BCJNGEhAXQAAAAAAAAAOWgAAAPIvSU5TRVJUIElOVE8gYGZpeHR1cmVfdGAgKGBhYCwgYHNgKSBG"
        "T1JNQVQgTmF0aXZlCgICAWEGVUludDY0AQABABICBwDwAwABcwZTdHJpbmcDb25lA3R3bwAAAAA=",
    },
    # insert_arrow(): the statement in the URL, an Arrow file as the body
    {
        "method": "POST",
        "params": _SESSION
        + _PROGRESS
        + [("query", "INSERT INTO `fixture_t` (`a`, `s`) FORMAT Arrow")],
        "headers": [_IDENTITY, ("Content-Length", "714"), _AUTH, _OCTETS],
        "body_b64": "QVJST1cxAAD/////oAAAABAAAAAAAAoADAAGAAUACAAKAAAAAAEEAAwAAAAIAAgAAAAEAAgAAAAE"
        "AAAAAgAAAEAAAAAEAAAA2P///wAAAQUQAAAAGAAAAAQAAAAAAAAAAQAAAHMAAAAEAAQABAAAABAAFAAIAAYA"
        "BwAMAAAAEAAQAAAAAAABAhAAAAAYAAAABAAAAAAAAAABAAAAYQAGAAgABAAGAAAAQAAAAAAAAAD/////2AAA"
        "ABQAAAAAAAAADAAYAAYABQAIAAwADAAAAAADBAAcAAAAYAAAAAAAAAAAAAAADAAcABAABAAIAAwADAAAAHgA"
        "AAAcAAAAFAAAAAEAAAAAAAAAAAAAAAQABAAEAAAABQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB8AAAAA"
        "AAAAIAAAAAAAAAAAAAAAAAAAACAAAAAAAAAAHwAAAAAAAABAAAAAAAAAABwAAAAAAAAAAAAAAAIAAAABAAAA"
        "AAAAAAAAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAgAAAAAAAAABCJNGGBAgggAAIADAAAAAAAAAAAAAAAACAAA"
        "AAAAAAAEIk0YYECCCAAAgAAAAAAFAAAAAAAAAAAFAAAAAAAAAAQiTRhgQIIFAACAdGhyZWUAAAAAAAAAAP//"
        "//8AAAAAEAAAAAwAFAAGAAgADAAQAAwAAAAAAAQAOAAAACgAAAAEAAAAAQAAALAAAAAAAAAA4AAAAAAAAABg"
        "AAAAAAAAAAAAAAAAAAAACAAIAAAABAAIAAAABAAAAAIAAABAAAAABAAAANj///8AAAEFEAAAABgAAAAEAAAA"
        "AAAAAAEAAABzAAAABAAEAAQAAAAQABQACAAGAAcADAAAABAAEAAAAAAAAQIQAAAAGAAAAAQAAAAAAAAAAQAA"
        "AGEABgAIAAQABgAAAEAAAADIAAAAQVJST1cx",
    },
    # query() with a server-side parameter and a setting
    {
        "method": "POST",
        "params": _SESSION
        + _WAIT
        + _PROGRESS
        + _PROTOCOL
        + [("max_block_size", "2"), ("param_low", "1")],
        "headers": [("Content-Length", "75"), _AUTH, _COMPRESSED, _TEXT],
        "body": "SELECT a, s FROM fixture_t WHERE a > {low:UInt64} ORDER BY a\n FORMAT Native",
    },
    # query_arrow()
    {
        "method": "POST",
        "params": _SESSION + _WAIT + _PROGRESS,
        "headers": [_IDENTITY, ("Content-Length", "48"), _AUTH],
        "body": "SELECT number AS n FROM numbers(3)\n FORMAT Arrow",
    },
    # query_arrow_stream(): no wait_end_of_query, so the answer streams
    {
        "method": "POST",
        "params": _SESSION + _PROGRESS,
        "headers": [_IDENTITY, ("Content-Length", "54"), _AUTH],
        "body": "SELECT number AS n FROM numbers(3)\n FORMAT ArrowStream",
    },
]


def _run_recorded_calls(client) -> None:
    """The clickhouse-connect calls whose requests RECORDED_REQUESTS holds (after get_client)."""
    client.command("CREATE TABLE fixture_t (a UInt64, s String) ENGINE = MergeTree ORDER BY a")
    client.insert("fixture_t", [[1, "one"], [2, "two"]], column_names=["a", "s"])
    client.insert_arrow("fixture_t", pa.table({"a": pa.array([3], pa.uint64()), "s": ["three"]}))
    client.query(
        "SELECT a, s FROM fixture_t WHERE a > {low:UInt64} ORDER BY a",
        parameters={"low": 1},
        settings={"max_block_size": 2},
    )
    client.query_arrow("SELECT number AS n FROM numbers(3)")
    with client.query_arrow_stream("SELECT number AS n FROM numbers(3)") as stream:
        list(stream)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


class RawAnswer:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes, complete: bool):
        self.status = status
        self.headers = headers
        self.body = body
        self.complete = complete


def raw_request(
    server: ClickHouseHttpServer,
    method: str,
    params: list[tuple[str, str]] | dict[str, str] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    path: str = "/",
) -> RawAnswer:
    """One request as bytes on the wire; the body as sent (de-chunked, still compressed)."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        target = path + ("?" + urlencode(params) if params else "")
        header_items = list(headers.items() if isinstance(headers, dict) else headers or [])
        chunked = any(k.lower() == "transfer-encoding" for k, _ in header_items)
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in header_items:
            connection.putheader(name, value)
        if body is not None and not chunked:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        if body is not None:
            if chunked:
                for start in range(0, len(body), 40):
                    piece = body[start : start + 40]
                    connection.send(f"{len(piece):X}\r\n".encode() + piece + b"\r\n")
                connection.send(b"0\r\n\r\n")
            else:
                connection.send(body)
        response = connection.getresponse()
        complete = True
        try:
            data = response.read()
        except http.client.IncompleteRead as error:
            data, complete = error.partial, False
        return RawAnswer(response.status, response.headers, data, complete)
    finally:
        connection.close()


def decoded(answer: RawAnswer) -> bytes:
    encoding = answer.headers.get("Content-Encoding")
    if not encoding:
        return answer.body
    if encoding == "zstd":
        from backports import zstd

        return zstd.decompress(answer.body)
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.decompress(answer.body)
    if encoding == "gzip":
        return zlib.decompress(answer.body, 47)
    if encoding == "deflate":
        return zlib.decompress(answer.body)
    raise AssertionError(encoding)


def native_columns(data: bytes, block_info: bool = False) -> dict[str, list]:
    """Decode Native blocks of UInt8/UInt64/String columns (all the recorded queries return)."""
    position = 0

    def varuint() -> int:
        nonlocal position
        value = shift = 0
        while True:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def string() -> str:
        nonlocal position
        size = varuint()
        position += size
        return data[position - size : position].decode()

    columns: dict[str, list] = {}
    while position < len(data):
        if block_info:
            assert data[position : position + 8] == b"\x01\x00\x02\xff\xff\xff\xff\x00"
            position += 8
        column_count, row_count = varuint(), varuint()
        for _ in range(column_count):
            name, type_name = string(), string()
            if type_name in ("UInt8", "UInt64"):
                width = 1 if type_name == "UInt8" else 8
                values = [
                    int.from_bytes(
                        data[position + i * width : position + (i + 1) * width], "little"
                    )
                    for i in range(row_count)
                ]
                position += width * row_count
            elif type_name == "String":
                values = [string() for _ in range(row_count)]
            else:
                raise AssertionError(f"unexpected type {type_name}")
            columns.setdefault(name, []).extend(values)
    return columns


def read_arrow_stream(client, sql: str, **settings) -> int:
    rows = 0
    with client.query_arrow_stream(sql, settings=settings or None) as stream:
        for batch in stream:
            rows += batch.num_rows
    return rows


def assert_clickhouse_headers(answer: RawAnswer, fmt: str | None) -> None:
    assert answer.status == 200, answer.body
    assert answer.headers.get("X-ClickHouse-Query-Id")
    assert answer.headers.get("X-ClickHouse-Server-Display-Name")
    assert re.fullmatch(r"[a-z]{16}", answer.headers.get("X-ClickHouse-Exception-Tag", ""))
    summary = json.loads(answer.headers["X-ClickHouse-Summary"])
    for key in (
        "read_rows",
        "read_bytes",
        "written_rows",
        "written_bytes",
        "total_rows_to_read",
        "result_rows",
        "result_bytes",
        "elapsed_ns",
    ):
        assert isinstance(summary[key], str) and summary[key].isdigit(), (key, summary)
    assert answer.headers.get("X-ClickHouse-Format") == fmt
    assert (answer.headers.get("X-ClickHouse-Timezone") is not None) == (fmt is not None)
    assert answer.headers.get("Transfer-Encoding") == "chunked"
    assert answer.complete


@pytest.fixture(scope="module")
def engine(chdb_path):
    """The test process's own chdb: the bytes it produces are what the stand-in must answer."""
    import chdb

    connection = chdb.connect(str(chdb_path))
    yield lambda sql, fmt="TabSeparated": connection.query(sql, fmt).bytes()
    connection.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """The plain stand-in most tests share, with the demo data seeded into `default`."""
    with ClickHouseHttpServer(
        tmp_path_factory.mktemp("standin"), extra_args=["--seed-demo"]
    ) as server:
        yield server


@pytest.fixture
def standin(running):
    yield running
    running.clear_faults()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure_standin(tmp_path_factory, pki):
    """HTTPS with a certificate signed by the test CA, and a user with a password."""
    with ClickHouseHttpServer(
        tmp_path_factory.mktemp("secure"), user=USER, password=PASSWORD, tls=pki.server
    ) as server:
        yield server


# ---------------------------------------------------------------------------------------------
# The recorded conversation
# ---------------------------------------------------------------------------------------------


def _shape(request: dict) -> tuple:
    params = [
        ("session_id", "fixture-session") if name == "session_id" else (name, value)
        for name, value in request["params"]
        if name != "query_id"
    ]
    headers = [tuple(h) for h in request["headers"] if h[0] not in ("Host", "User-Agent")]
    return request["method"], params, headers, request.get("body"), request.get("body_b64")


def test_client_sends_the_recorded_requests(tmp_path):
    """The installed clickhouse-connect still sends exactly what the fixture holds."""
    with ClickHouseHttpServer(tmp_path / "live") as server:
        _run_recorded_calls(server.client())
        seen = [_shape(request) for request in server.requests()]
    assert seen == [_shape(request) for request in RECORDED_REQUESTS]


def test_stand_in_answers_the_recorded_requests(tmp_path, engine):
    """Each recorded request, replayed byte for byte, gets ClickHouse's answer: headers, and
    the bytes chdb produces for the requested format (Native with BlockInfo for a client that
    sent client_protocol_version, which is what clickhouse-connect's probe checks)."""
    with ClickHouseHttpServer(tmp_path / "replay") as server:
        answers = []
        for request in RECORDED_REQUESTS:
            body = (
                request["body"].encode()
                if "body" in request
                else base64.b64decode(request["body_b64"])
            )
            headers = [h for h in request["headers"] if h[0] != "Content-Length"]
            answers.append(raw_request(server, request["method"], request["params"], body, headers))
    version, settings, probe, create, describe, insert, insert_arrow, select, arrow, stream = (
        answers
    )

    assert_clickhouse_headers(version, "TabSeparated")
    assert version.body == engine("SELECT version(), timezone()")

    assert_clickhouse_headers(settings, "Native")
    names = native_columns(settings.body)["name"]
    assert {"max_block_size", "enable_http_compression", "date_time_input_format"} <= set(names)

    assert_clickhouse_headers(probe, "Native")
    assert probe.body[8:16] == b"\x01\x01\x05check"  # what clickhouse-connect's probe checks
    assert probe.body == b"\x01\x00\x02\xff\xff\xff\xff\x00" + engine("SELECT 1 AS check", "Native")

    for statement in (create, insert, insert_arrow):
        assert_clickhouse_headers(statement, None)
        assert statement.body == b""
    assert json.loads(insert.headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    assert json.loads(insert_arrow.headers["X-ClickHouse-Summary"])["written_rows"] == "1"

    assert_clickhouse_headers(describe, "Native")
    assert describe.headers["Content-Encoding"] == "zstd"  # zstd is ClickHouse's first choice
    assert native_columns(decoded(describe), block_info=True)["name"] == ["a", "s"]

    assert_clickhouse_headers(select, "Native")
    assert native_columns(decoded(select), block_info=True) == {"a": [2, 3], "s": ["two", "three"]}

    assert_clickhouse_headers(arrow, "Arrow")
    assert arrow.body == engine("SELECT number AS n FROM numbers(3)", "Arrow")
    assert_clickhouse_headers(stream, "ArrowStream")
    assert stream.body == engine("SELECT number AS n FROM numbers(3)", "ArrowStream")


def test_arrow_stream_of_many_blocks_is_the_engine_stream(standin, engine):
    """Blocks streamed one by one are stitched into exactly chdb's single ArrowStream."""
    sql = "SELECT number AS n, toString(number) AS s FROM numbers(10) SETTINGS max_block_size = 3"
    answer = raw_request(standin, "POST", {}, f"{sql} FORMAT ArrowStream".encode())
    assert_clickhouse_headers(answer, "ArrowStream")
    assert answer.body == engine(sql, "ArrowStream")
    batches = list(pa.ipc.open_stream(answer.body))
    assert [batch.num_rows for batch in batches] == [3, 3, 3, 1]
    empty = raw_request(standin, "POST", {}, b"SELECT 1 AS x WHERE 0 FORMAT ArrowStream")
    assert pa.ipc.open_stream(empty.body).read_all().schema.names == ["x"]


# ---------------------------------------------------------------------------------------------
# clickhouse-connect against the stand-in
# ---------------------------------------------------------------------------------------------


def test_get_client_handshake(standin, engine):
    client = standin.client()
    version, timezone = engine("SELECT version(), timezone()").decode().strip().split("\t")
    assert client.server_version == version
    assert client.command("SELECT 1") == 1
    assert client.protocol_version == 54405  # the Native BlockInfo probe passed


def test_dsn(standin):
    client = clickhouse_connect.get_client(dsn=standin.dsn("default"))
    assert client.command("SELECT currentDatabase()") == "default"
    assert standin.dsn("db", with_password=False) == f"http://default@127.0.0.1:{standin.port}/db"


def test_server_side_parameters(standin):
    standin.clear_requests()
    client = standin.client()
    value = "tab\there, quote ' and backslash \\ ünï"
    result = client.query(
        "SELECT {x:Int64} + 1 AS y, {s:String} AS s", parameters={"x": 41, "s": value}
    )
    assert result.result_rows == [(42, value)]
    request = standin.requests()[-1]
    params = dict(request["params"])
    assert params["param_x"] == "41"
    assert "{x:Int64}" in request["body"]  # bound by the server, not inlined by the client


def test_settings_are_applied(standin):
    client = standin.client()
    assert (
        client.command("SELECT getSetting('max_block_size')", settings={"max_block_size": 1234})
        == 1234
    )
    with client.query_arrow_stream(
        "SELECT number FROM numbers(5000)", settings={"max_block_size": 1000}
    ) as stream:
        assert [batch.num_rows for batch in stream] == [1000] * 5
    # The session the client uses does not keep a query's settings.
    assert client.command("SELECT getSetting('max_block_size')") != 1234


def test_summary_header(standin):
    client = standin.client()
    result = client.query("SELECT count() FROM numbers(100000)")
    assert result.summary["read_rows"] == "100000"
    assert result.summary["read_bytes"] == "800000"
    assert result.summary["result_rows"] == "1"
    assert result.summary["query_id"]
    client.command("CREATE TABLE IF NOT EXISTS summary_t (x UInt64) ENGINE = MergeTree ORDER BY x")
    assert client.insert("summary_t", [[1], [2], [3]], column_names=["x"]).written_rows == 3


def test_query_parts_database_and_readonly_get(standin):
    # The URL part, a line feed, then the body, as ClickHouse concatenates them.
    answer = raw_request(standin, "POST", {"query": "SELECT"}, b"42 AS x")
    assert (answer.status, answer.body) == (200, b"42\n")
    answer = raw_request(standin, "POST", {"database": "system"}, b"SELECT count() > 0 FROM tables")
    assert answer.body == b"1\n"
    answer = raw_request(standin, "GET", {"query": "SELECT 7", "default_format": "JSONEachRow"})
    assert (answer.body, answer.headers["X-ClickHouse-Format"]) == (b'{"7":7}\n', "JSONEachRow")
    answer = raw_request(standin, "GET", {"query": "CREATE TABLE nope (a Int8) ENGINE = Memory"})
    assert (answer.status, answer.headers["X-ClickHouse-Exception-Code"]) == (500, "164")
    assert b"method GET implies readonly" in answer.body
    assert raw_request(standin, "GET", path="/ping").body == b"Ok.\n"


def test_errors_carry_code_status_and_text(standin):
    answer = raw_request(standin, "POST", {}, b"SELECT * FROM no_such_table")
    assert answer.status == 404
    assert answer.headers["X-ClickHouse-Exception-Code"] == "60"
    assert re.fullmatch(
        rb"Code: 60\. DB::Exception: .*\(UNKNOWN_TABLE\) \(version [\d.]+ \(official build\)\)\n",
        answer.body,
        re.S,
    )
    assert raw_request(standin, "POST", {}, b"SELEC 1").status == 400
    assert raw_request(standin, "POST", {"no_such_setting": "1"}, b"SELECT 1").status == 404
    client = standin.client()
    with pytest.raises(DatabaseError) as raised:
        client.query("SELECT * FROM no_such_table")
    assert raised.value.code == 60


def test_response_compression(standin):
    body = b"SELECT number FROM numbers(1000) FORMAT TSV"
    plain = raw_request(standin, "POST", {}, body)
    for accept, chosen in [
        ("lz4,zstd,gzip,deflate", "zstd"),  # clickhouse-connect's default list
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("lz4", "lz4"),
    ]:
        answer = raw_request(standin, "POST", {}, body, {"Accept-Encoding": accept})
        assert answer.headers["Content-Encoding"] == chosen
        assert decoded(answer) == plain.body
    off = raw_request(
        standin, "POST", {"enable_http_compression": "0"}, body, {"Accept-Encoding": "gzip"}
    )
    assert "Content-Encoding" not in off.headers
    for compress in ("gzip", "lz4", "zstd"):
        client = standin.client(compress=compress)
        assert client.query("SELECT sum(number) FROM numbers(1000)").result_rows == [(499500,)]
        assert standin.requests()[-1]["response_encoding"] == compress


def test_insert_and_session_state(standin):
    client = standin.client()
    client.command(
        "CREATE TABLE IF NOT EXISTS insert_t (a UInt64, s String) ENGINE = MergeTree ORDER BY a"
    )
    client.command("TRUNCATE TABLE insert_t")
    client.insert(
        "insert_t", [[i, f"row {i}"] for i in range(1000)], column_names=["a", "s"]
    )  # lz4 body
    client.insert_arrow("insert_t", pa.table({"a": pa.array([1000], pa.uint64()), "s": ["arrow"]}))
    client.raw_insert("insert_t", ["a", "s"], "1001\tcsv-ish\n", fmt="TabSeparated")
    assert client.command("SELECT count() FROM insert_t") == 1002
    # A session (clickhouse-connect sends a session_id) keeps temporary tables between queries.
    client.command("CREATE TEMPORARY TABLE temp_t (x Int32)")
    client.command("INSERT INTO temp_t VALUES (1), (2)")
    assert client.command("SELECT sum(x) FROM temp_t") == 3


def test_seeded_demo_data(standin):
    client = standin.client()
    assert client.command("SELECT count() FROM events") > 1000
    assert client.command("SELECT count() FROM person") > 0
    assert client.command("SELECT count() FROM person_distinct_id2") > 0


def test_large_arrow_stream_is_streamed(standin):
    """1M rows (~200 MB) arrive batch by batch while the server is still writing them."""
    client = standin.client()
    sql = "SELECT number, randomPrintableASCII(200) AS pad FROM numbers(1000000)"
    started = time.monotonic()
    rows = size = 0
    sent_when_first_batch_was_read = None
    with client.query_arrow_stream(sql) as stream:
        for batch in stream:
            if sent_when_first_batch_was_read is None:
                first_batch_after = time.monotonic() - started
                time.sleep(0.3)  # the server blocks on a full socket meanwhile
                (active,) = [a for a in standin.active() if "randomPrintableASCII" in a["sql"]]
                sent_when_first_batch_was_read = active["bytes_sent"]
            rows += batch.num_rows
            size += batch.nbytes
    total_after = time.monotonic() - started
    assert rows == 1_000_000
    assert size > 200_000_000
    assert sent_when_first_batch_was_read < size / 2
    assert first_batch_after < total_after / 2


# ---------------------------------------------------------------------------------------------
# Authentication and TLS
# ---------------------------------------------------------------------------------------------


def test_authentication(secure_standin, pki):
    client = secure_standin.client(ca_cert=str(pki.ca_cert))
    assert client.command("SELECT 1") == 1
    for user, password in [(USER, "wrong"), ("default", "")]:
        with pytest.raises(DatabaseError) as raised:
            secure_standin.client(ca_cert=str(pki.ca_cert), username=user, password=password)
        assert raised.value.code == 516
        assert "516" in str(raised.value)
        assert f"{user}: Authentication failed: password is incorrect" in str(raised.value)


def test_credentials_in_headers_and_parameters(secure_standin, pki):
    import ssl

    context = ssl.create_default_context(cafile=str(pki.ca_cert))

    def ask(params: dict[str, str], headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", secure_standin.port, context=context, timeout=30
        )
        try:
            connection.request(
                "POST",
                "/?" + urlencode(params),
                body=b"SELECT currentUser() = currentUser()",
                headers=headers,
            )
            response = connection.getresponse()
            return (
                response.status,
                response.read(),
                response.getheader("X-ClickHouse-Exception-Code"),
            )
        finally:
            connection.close()

    assert ask({}, {"X-ClickHouse-User": USER, "X-ClickHouse-Key": PASSWORD})[:2] == (200, b"1\n")
    assert ask({"user": USER, "password": PASSWORD}, {})[:2] == (200, b"1\n")
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert ask({}, {"Authorization": f"Basic {basic}"})[:2] == (200, b"1\n")
    status, body, code = ask({"user": USER, "password": "nope"}, {})
    assert (status, code) == (403, "516")
    assert body.startswith(b"Code: 516. DB::Exception: exporter: Authentication failed")


def test_tls_verifies_against_the_test_ca(secure_standin, pki):
    client = secure_standin.client(ca_cert=str(pki.ca_cert), verify=True)
    assert client.command("SELECT 1") == 1
    with pytest.raises(OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        secure_standin.client(verify=True)  # the system store does not know the test CA


def test_untrusted_certificate_fails(tmp_path, pki):
    with (
        ClickHouseHttpServer(tmp_path / "untrusted", tls=pki.untrusted) as server,
        pytest.raises(OperationalError, match="SSL|CERTIFICATE_VERIFY_FAILED"),
    ):
        server.client(ca_cert=str(pki.ca_cert), verify=True)


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------

BIG = "SELECT number, toString(number) AS s FROM numbers(200000)"
# query_arrow_stream hands the HTTP response to pyarrow: a broken stream surfaces from urllib3
# (or from pyarrow, if it read the exception text as a message first), never as a short result.
BROKEN_STREAM = (urllib3.exceptions.ProtocolError, pa.ArrowInvalid)


def test_exception_midstream_is_what_clickhouse_writes(standin):
    standin.fault("exception_midstream")
    answer = raw_request(
        standin, "POST", {"max_block_size": "1000"}, b"SELECT number FROM numbers(5000) FORMAT TSV"
    )
    tag = answer.headers["X-ClickHouse-Exception-Tag"]
    assert answer.status == 200
    assert not answer.complete  # no last chunk: ClickHouse breaks the HTTP stream on purpose
    rows, _, block = answer.body.partition(b"\r\n__exception__\r\n")
    assert rows.startswith(b"0\n1\n2\n")
    # \r\n__exception__\r\n<tag>\r\n<message>\n<length of message + \n> <tag>\r\n__exception__\r\n
    match = re.fullmatch(
        rb"([a-z]{16})\r\n(Code: 395\. DB::Exception: [^\n]*)\n(\d+) \1\r\n__exception__\r\n", block
    )
    assert match and match.group(1).decode() == tag
    assert int(match.group(3)) == len(match.group(2)) + 1
    assert b"\r\n__exception__\r\n" + block == exception_block(match.group(2), tag)


def test_exception_midstream_raises_in_the_client(standin):
    client = standin.client()
    standin.fault("exception_midstream")
    with pytest.raises(StreamFailureError) as raised:
        client.query(BIG).result_rows  # noqa: B018 - the rows are read lazily
    assert raised.value.code == 395
    assert "Code: 395. DB::Exception" in str(raised.value)
    standin.fault("exception_midstream")
    with pytest.raises(BROKEN_STREAM):
        read_arrow_stream(client, BIG, max_block_size=10000)
    assert client.command("SELECT 1") == 1


def test_real_error_after_the_headers(standin):
    """An engine error after rows went out is written the same way."""
    client = standin.client()
    sql = (
        "SELECT throwIf(number = 150000) AS t FROM numbers(300000) SETTINGS max_block_size = 10000"
    )
    with pytest.raises(BROKEN_STREAM):
        read_arrow_stream(client, sql)
    # clickhouse-connect's query() asks wait_end_of_query=1: the error comes as an HTTP 500.
    with pytest.raises(DatabaseError) as raised:
        client.query(sql).result_rows  # noqa: B018
    assert raised.value.code == 395


def test_drop_midstream_raises_in_the_client(standin):
    client = standin.client()
    standin.fault("drop_midstream")
    with pytest.raises((StreamFailureError, OperationalError)):
        client.query(BIG).result_rows  # noqa: B018 - the rows are read lazily
    standin.fault("drop_midstream")
    with pytest.raises(BROKEN_STREAM):
        read_arrow_stream(client, BIG, max_block_size=10000)


def test_timeout_fault(standin):
    client = standin.client(send_receive_timeout=1)
    standin.fault("timeout", delay=2.5, match="sleepy")
    started = time.monotonic()
    with pytest.raises(OperationalError, match="timed out"):
        client.query("SELECT 'sleepy'")
    assert time.monotonic() - started < 2.4
    assert client.command("SELECT 'awake'") == "awake"


def test_error_faults(standin):
    client = standin.client()
    standin.fault("error_516")
    with pytest.raises(DatabaseError) as raised:
        client.query("SELECT 1")
    assert raised.value.code == 516
    # 503 (SOCKET_TIMEOUT) and a connection closed before the answer are retried by the client
    # for read-only queries; it gives up when they persist.
    standin.fault("error", code=209)
    assert client.query("SELECT 1").result_rows == [(1,)]
    standin.fault("drop_connection", times=5, match="persistent")
    with pytest.raises(OperationalError):
        client.query("SELECT 'persistent'")
    standin.clear_faults()
    assert standin.pending_faults() == []


def test_midstream_faults_skip_statements_without_rows(standin):
    client = standin.client()
    standin.fault("exception_midstream")
    client.command("CREATE TABLE IF NOT EXISTS skip_t (x UInt8) ENGINE = Memory")
    assert len(standin.pending_faults()) == 1
    with pytest.raises(StreamFailureError):
        client.query("SELECT 1").result_rows  # noqa: B018


def test_control_path_needs_the_token(standin):
    answer = raw_request(standin, "POST", {"kind": "error_516"}, b"", path="/_standin/guess/fault")
    assert answer.status == 400  # an ordinary (empty) query to ClickHouse, not a fault
    assert standin.pending_faults() == []


def test_the_stand_in_helper_stops_the_process(tmp_path):
    server = ClickHouseHttpServer(Path(tmp_path / "stop")).start()
    process = server.process
    server.stop()
    assert process.poll() is not None
