"""ClickHouse's HTTP interface (port 8123), played by chdb in a separate process.

The product reaches a production ClickHouse through clickhouse-connect over HTTP(S). This module
serves that interface from chdb (the ClickHouse engine, in-process) so the real client code runs
unchanged against a real engine, with the wire behaviour clickhouse-connect actually depends on:

- the query from the POST body and/or the ``query`` URL parameter (URL part first, then a line
  feed, then the body), ``database``, ``default_format``, ``param_*`` server-side parameters,
  ``session_id`` sessions, every other URL parameter applied as a ClickHouse setting;
  multipart/form-data queries and external tables;
- output bytes exactly as the engine produces them for the requested format (Native for
  ``query()``, Arrow for ``query_arrow()``, ArrowStream for ``query_arrow_stream()``), streamed
  block by block with chunked transfer encoding unless ``wait_end_of_query=1``;
- ``INSERT ... FORMAT x`` with the data streamed from the body into the engine;
- request ``Content-Encoding`` and, with ``enable_http_compression=1``, response compression
  chosen from ``Accept-Encoding`` the way ClickHouse chooses (zstd, br, lz4, gzip, deflate);
- the response headers (``X-ClickHouse-Summary``, ``-Format``, ``-Timezone``, ``-Query-Id``,
  ``-Server-Display-Name``, ``-Exception-Tag``, ``-Exception-Code``), ClickHouse's exception
  text and its HTTP status for each error code;
- an error after the headers went out the way ClickHouse >= 25.11 writes it: the tagged
  ``__exception__`` block at the end of the body, then a broken chunked stream;
- HTTP basic auth, ``X-ClickHouse-User``/``X-ClickHouse-Key`` and ``user``/``password``
  parameters (checked only when the server was started with ``--user``/``--password``);
- optional TLS (``--tls-cert``/``--tls-key``; see tests.harness.ca).

chdb allows one data path per process and the test process holds its own, so the server runs as
its own process::

    python -m tests.harness.clickhouse_http --path DIR [--host 127.0.0.1] [--port 0]
        [--user U --password P] [--tls-cert F --tls-key F] [--seed-demo [--seed-database DB]]
        [--control-token T] [--record FILE]

It prints ``LISTENING <port>`` once it accepts connections and serves until SIGTERM, SIGINT or
the end of its stdin. `ClickHouseHttpServer` starts and stops it from tests.

Faults and inspection go through ``/_standin/<control-token>/...`` on the same port; without
the token (random when not given) that path is an ordinary query path, as on ClickHouse:

- ``POST fault?kind=K&times=N[&match=TEXT][&delay=S][&code=C][&message=M]`` queues a fault for
  the next N query requests (whose SQL contains TEXT, if given):
  ``exception_midstream`` (part of the result, then ClickHouse's mid-stream exception block,
  code C, default 395), ``drop_midstream`` (part of the result, then the TCP connection is
  cut), ``timeout`` (sleep S seconds, default 5, before answering), ``error_516`` (the answer to
  a wrong password), ``error`` (the HTTP answer to exception code C, default 159 =
  TIMEOUT_EXCEEDED), ``drop_connection`` (close without any answer). The two midstream kinds
  only apply to statements that return rows.
- ``POST clear_faults``, ``GET faults``, ``GET requests`` (recent requests: method, path, URL
  parameters, headers, body), ``POST clear_requests``, ``GET active`` (responses in flight).
- ``POST pretend_version?version=V`` (or ``--pretend-version V``; an empty V ends it) answers
  like an old server of version V (before 19.x, e.g. Debian's 18.16.1): ``version()`` says V,
  its error texts read ``Code: N, e.displayText() = DB::Exception: …, e.what() = …``, and what
  that server lacks fails as it did there, i.e. a ``readonly`` column of ``system.settings``
  (clickhouse-connect's second query when it connects): ``Code: 47 … Unknown identifier:
  readonly``. Only the driver's handshake is played; queries otherwise run on the real engine.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http
import json
import os
import queue
import re
import secrets
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]

CONTROL_PREFIX = "/_standin/"


def _words(text: str) -> list[str]:
    return text.split()


# URL parameters ClickHouse's HTTP handler consumes itself; every other parameter is a setting
# (``param_*`` are query parameters, ``<table>_structure|_types|_format`` describe external data).
RESERVED_PARAMS = frozenset(
    _words(
        "query database default_format user password quota_key query_id stacktrace role buffer_size "
        "wait_end_of_query session_id session_timeout session_check close_session "
        "client_protocol_version compress decompress"
    )
)

# Output formats whose per-block encodings concatenate into one valid stream. ArrowStream is
# stitched (one schema, the record batches, one end-of-stream marker); the rest (Arrow, Parquet,
# JSON, *WithNames, Pretty...) have a global header or footer and are produced in one piece.
STREAMABLE_FORMATS = frozenset(
    _words(
        "native tabseparated tsv tabseparatedraw tsvraw csv rowbinary jsoneachrow jsoncompacteachrow "
        "jsonstringseachrow values arrowstream"
    )
)

# Statements that return rows (ClickHouse's ASTQueryWithOutput): they get X-ClickHouse-Format.
OUTPUT_STATEMENTS = frozenset(
    _words("SELECT WITH SHOW DESCRIBE DESC EXISTS EXPLAIN CHECK KILL FROM WATCH")
)
# What a GET (readonly=2 on ClickHouse) may run.
READONLY_STATEMENTS = OUTPUT_STATEMENTS | {"SET", "USE"}

_TSV = "text/tab-separated-values; charset=UTF-8"
_CONTENT_TYPES = {
    **dict.fromkeys(
        _words(
            "tabseparated tsv tabseparatedwithnames tabseparatedwithnamesandtypes tabseparatedraw"
        ),
        _TSV,
    ),
    "csv": "text/csv; charset=UTF-8; header=absent",
    "csvwithnames": "text/csv; charset=UTF-8; header=present",
    "json": "application/json; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
    "jsoncompacteachrow": "application/x-ndjson; charset=UTF-8",
    "xml": "application/xml; charset=UTF-8",
}
_BINARY_FORMATS = tuple(
    _words("native arrow parquet orc avro rowbinary msgpack protobuf capnproto npy")
)

# exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp), by error name;
# every other exception is a 500.
_HTTP_STATUS_BY_ERROR = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        _words(
            "UNKNOWN_USER WRONG_PASSWORD AUTHENTICATION_FAILED SET_NON_GRANTED_ROLE ACCESS_DENIED"
        ),
        403,
    ),
    **dict.fromkeys(
        _words(
            "BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE "
            "CANNOT_PARSE_QUOTED_STRING CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME CANNOT_PARSE_NUMBER "
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING CANNOT_PARSE_IPV4 CANNOT_PARSE_IPV6 "
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED CANNOT_PARSE_UUID DUPLICATE_COLUMN ILLEGAL_COLUMN "
            "UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE THERE_IS_NO_COLUMN TOO_DEEP_AST "
            "TOO_BIG_AST UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR INCORRECT_DATA TYPE_MISMATCH "
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"
        ),
        400,
    ),
    **dict.fromkeys(
        _words(
            "UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE "
            "UNKNOWN_DATABASE UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING UNKNOWN_AGGREGATE_FUNCTION "
            "UNKNOWN_FORMAT UNKNOWN_DATABASE_ENGINE UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE"
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

# Error names of the codes this module raises itself (the engine's table fills in the rest).
_KNOWN_ERROR_NAMES = {
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    47: "UNKNOWN_IDENTIFIER",
    48: "NOT_IMPLEMENTED",
    62: "SYNTAX_ERROR",
    115: "UNKNOWN_SETTING",
    159: "TIMEOUT_EXCEEDED",
    164: "READONLY",
    209: "SOCKET_TIMEOUT",
    372: "SESSION_NOT_FOUND",
    373: "SESSION_IS_LOCKED",
    395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
    516: "AUTHENTICATION_FAILED",
    1001: "STD_EXCEPTION",
}

FAULT_KINDS = frozenset(
    {"exception_midstream", "drop_midstream", "timeout", "error_516", "error", "drop_connection"}
)
_MIDSTREAM_FAULTS = frozenset({"exception_midstream", "drop_midstream"})

_ARROW_CONTINUATION = b"\xff\xff\xff\xff"
_ARROW_EOS = _ARROW_CONTINUATION + b"\x00\x00\x00\x00"
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE_IN_MESSAGE = re.compile(r"Code: (\d+)\.")
_NAME_IN_MESSAGE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")
_HEAD_LIMIT = 1 << 20  # how much of an INSERT body is read to find where its data starts
_OUT_PIECE = 1 << 20  # write size for buffered (wait_end_of_query) answers
_SESSION_DEFAULT_TIMEOUT = 60.0


# ---------------------------------------------------------------------------------------------
# SQL: just enough lexing to find the statement kind, its FORMAT and where INSERT data starts.
# Text is handled as latin-1 so that offsets are byte offsets into the request.
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<comment>--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<string>'(?:[^'\\]|\\.|'')*(?:'|\Z))
    |(?P<ident>"(?:[^"\\]|\\.|"")*(?:"|\Z)|`(?:[^`\\]|\\.|``)*(?:`|\Z))
    |(?P<word>[^\W\d]\w*)
    |(?P<number>\d[\w.]*)
    |(?P<other>.)""",
    re.X | re.S,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int


def _tokens(text: str) -> Iterator[_Token]:
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "other"
        if kind in ("space", "comment"):
            continue
        yield _Token(kind, match.group(), match.start(), match.end())


def _unquote_identifier(text: str) -> str:
    if len(text) >= 2 and text[0] in '`"' and text[-1] == text[0]:
        return text[1:-1].replace(text[0] * 2, text[0])
    return text


def statement_kind(text: str) -> str:
    """The first keyword of a statement, upper-cased (`SELECT`, `INSERT`, `CREATE`...)."""
    for token in _tokens(text):
        if token.text == "(":
            continue
        return token.text.upper() if token.kind == "word" else token.text
    return ""


def output_format(text: str) -> str | None:
    """The format named by a top-level trailing ``FORMAT x`` clause of a statement, if any."""
    tokens = list(_tokens(text))
    depth = 0
    found = None
    for index, token in enumerate(tokens):
        if token.text in ("(", "["):
            depth += 1
        elif token.text in (")", "]"):
            depth -= 1
        elif (
            depth == 0
            and token.kind == "word"
            and token.text.upper() == "FORMAT"
            and index + 1 < len(tokens)
            and tokens[index + 1].kind in ("word", "ident")
        ):
            after = tokens[index + 2] if index + 2 < len(tokens) else None
            if after is None or after.text == ";" or after.text.upper() == "SETTINGS":
                found = _unquote_identifier(tokens[index + 1].text)
    return found


@dataclass(frozen=True)
class _InsertLayout:
    kind: str  # "format": data follows FORMAT name; "inline": VALUES or SELECT, run as one query
    statement_end: int = 0
    format: str = ""
    data_start: int = 0


def insert_layout(text: str, complete: bool) -> _InsertLayout | None:
    """Where an INSERT's data starts; None when the text seen so far does not tell yet."""
    depth = 0
    tokens = _tokens(text)
    for token in tokens:
        if token.text == "(":
            depth += 1
            continue
        if token.text == ")":
            depth -= 1
            continue
        if depth or token.kind != "word":
            continue
        word = token.text.upper()
        if word == "FORMAT":
            name = next(tokens, None)
            if name is None or name.kind not in ("word", "ident"):
                return None if not complete else _InsertLayout("inline")
            if name.end >= len(text) and not complete:
                return None  # the format name may go on in the next bytes
            position = name.end
            while position < len(text) and text[position] in " \t\f":
                position += 1
            if position < len(text) and text[position] == "\r":
                position += 1
            if position < len(text) and text[position] == "\n":
                position += 1
            return _InsertLayout("format", token.start, _unquote_identifier(name.text), position)
        if word in ("VALUES", "SELECT", "WITH"):
            return _InsertLayout("inline")
    return _InsertLayout("inline") if complete else None


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote_value(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ClickHouseError(Exception):
    """A ClickHouse exception: its code and its text (``Code: N. DB::Exception: ... (NAME)``)."""

    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code
        self.text = text

    @classmethod
    def make(cls, code: int, message: str, name: str | None = None) -> ClickHouseError:
        name = name or _KNOWN_ERROR_NAMES.get(code, "UNKNOWN_EXCEPTION")
        return cls(code, f"Code: {code}. DB::Exception: {message}. ({name})")

    @classmethod
    def from_engine(cls, error: BaseException) -> ClickHouseError:
        text = str(error).strip()
        start = text.find("Code: ")
        if start >= 0:
            text = text[start:]
            match = _CODE_IN_MESSAGE.match(text)
            if match:
                return cls(int(match.group(1)), text)
        return cls.make(1001, text or type(error).__name__)

    @property
    def name(self) -> str | None:
        match = _NAME_IN_MESSAGE.search(self.text.split(" (version ")[0])
        return match.group(1) if match else _KNOWN_ERROR_NAMES.get(self.code)

    def http_status(self) -> int:
        return _HTTP_STATUS_BY_ERROR.get(self.name or "", 500)

    def body(self, version: str) -> bytes:
        text = self.text
        if "(version " not in text:
            text = f"{text} (version {version} (official build))"
        return (text.rstrip("\n") + "\n").encode()


class OldServerError(ClickHouseError):
    """An exception as ClickHouse before 19.x wrote it (no error name, no version suffix)."""

    @classmethod
    def old(cls, code: int, message: str) -> OldServerError:
        return cls(
            code,
            f"Code: {code}, e.displayText() = DB::Exception: {message}, e.what() = DB::Exception",
        )

    @property
    def name(self) -> str | None:
        return _KNOWN_ERROR_NAMES.get(self.code)

    def body(self, version: str) -> bytes:
        return (self.text.rstrip("\n") + "\n").encode()


# What a server before 19.x lacks that clickhouse-connect asks for when it connects.
_OLD_SERVER_LACKS = re.compile(
    r"\bsystem\.settings\b.*\breadonly\b|\breadonly\b.*\bsystem\.settings\b",
    re.IGNORECASE | re.DOTALL,
)
_VERSION_CALL = re.compile(rb"\bversion\(\s*\)", re.IGNORECASE)


def exception_block(message: bytes, tag: str) -> bytes:
    """What ClickHouse (>= 25.11) appends to a body when a query fails after the headers went out."""
    message = message.rstrip(b"\n") + b"\n"
    return (
        b"\r\n__exception__\r\n"
        + tag.encode()
        + b"\r\n"
        + message
        + f"{len(message)} {tag}".encode()
        + b"\r\n__exception__\r\n"
    )


# ---------------------------------------------------------------------------------------------
# Compression
# ---------------------------------------------------------------------------------------------


def _zstd():
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
    except ImportError:
        from backports import zstd  # type: ignore[import-not-found,no-redef]
    return zstd


def _brotli():
    try:
        import brotli  # type: ignore[import-not-found]
    except ImportError:
        return None
    return brotli


def _lz4_frame():
    try:
        import lz4.frame as lz4_frame
    except ImportError:
        return None
    return lz4_frame


def choose_encoding(accept_encoding: str) -> str | None:
    """ClickHouse's chooseHTTPCompressionMethod: the first of its preference order mentioned."""
    for name in ("zstd", "br", "lz4", "gzip", "deflate"):
        if name in accept_encoding:
            if name == "br" and _brotli() is None:
                continue
            if name == "lz4" and _lz4_frame() is None:
                continue
            return name
    return None


class _Encoder:
    """Streaming response compression; every piece is flushed so the client can decode it."""

    def __init__(self, encoding: str):
        self.encoding = encoding
        if encoding == "zstd":
            zstd = _zstd()
            self._zstd = zstd.ZstdCompressor()
            self._flush_block = zstd.ZstdCompressor.FLUSH_BLOCK
            self._flush_frame = zstd.ZstdCompressor.FLUSH_FRAME
        elif encoding == "lz4":
            self._lz4 = _lz4_frame().LZ4FrameCompressor(auto_flush=True)
            self._lz4_header = self._lz4.begin()
        elif encoding in ("gzip", "deflate"):
            self._zlib = zlib.compressobj(3, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
        elif encoding == "br":
            self._br = _brotli().Compressor()
        else:
            raise ValueError(f"unsupported encoding {encoding}")

    def encode(self, data: bytes) -> bytes:
        if self.encoding == "zstd":
            return self._zstd.compress(data, self._flush_block)
        if self.encoding == "lz4":
            out = self._lz4_header + (self._lz4.compress(data) if data else b"")
            self._lz4_header = b""
            return out
        if self.encoding in ("gzip", "deflate"):
            return self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        return self._br.process(data) + self._br.flush()

    def finish(self) -> bytes:
        if self.encoding == "zstd":
            return self._zstd.flush(self._flush_frame)
        if self.encoding == "lz4":
            out = self._lz4_header + self._lz4.flush()
            self._lz4_header = b""
            return out
        if self.encoding in ("gzip", "deflate"):
            return self._zlib.flush(zlib.Z_FINISH)
        return self._br.finish()


class _Decoder:
    """Streaming request-body decompression for a Content-Encoding (several frames allowed)."""

    def __init__(self, encoding: str):
        self.encoding = encoding
        self._new()

    def _new(self) -> None:
        if self.encoding == "zstd":
            self._d = _zstd().ZstdDecompressor()
        elif self.encoding == "lz4":
            lz4_frame = _lz4_frame()
            if lz4_frame is None:
                raise ClickHouseError.make(48, "lz4 request bodies need the lz4 package")
            self._d = lz4_frame.LZ4FrameDecompressor()
        elif self.encoding == "gzip":
            self._d = zlib.decompressobj(47)
        elif self.encoding == "deflate":
            self._d = zlib.decompressobj(15)
        elif self.encoding == "br":
            brotli = _brotli()
            if brotli is None:
                raise ClickHouseError.make(48, "br request bodies need the brotli package")
            self._d = brotli.Decompressor()
        else:
            raise ClickHouseError.make(
                48,
                f"Unknown HTTP Content-Encoding of the request body: {self.encoding}",
                "NOT_IMPLEMENTED",
            )

    def decode(self, data: bytes) -> bytes:
        if self.encoding == "br":
            return self._d.process(data)
        out = []
        while data:
            out.append(self._d.decompress(data))
            if getattr(self._d, "eof", False) and self._d.unused_data:
                data = self._d.unused_data
                self._new()
            else:
                data = b""
        return b"".join(out)


# ---------------------------------------------------------------------------------------------
# Request body
# ---------------------------------------------------------------------------------------------


class _RequestBody:
    """The request body, de-chunked and decoded, read incrementally; keeps a raw copy of its head."""

    RAW_KEEP = 64 * 1024

    def __init__(self, rfile, headers):
        self._rfile = rfile
        self._chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self._remaining = 0 if self._chunked else int(headers.get("Content-Length") or 0)
        self._chunk_left = 0
        self._raw_done = not self._chunked and self._remaining == 0
        encoding = (headers.get("Content-Encoding") or "").strip().lower()
        self._decoder = _Decoder(encoding) if encoding and encoding != "identity" else None
        self.raw_head = bytearray()
        self.raw_length = 0

    @property
    def done(self) -> bool:
        return self._raw_done

    def _read_raw(self, size: int = 256 * 1024) -> bytes:
        if self._raw_done:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                line = self._rfile.readline(65537)
                if not line:
                    raise ConnectionError("request body ended early")
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    self._raw_done = True
                    return b""
                self._chunk_left = length
            data = self._rfile.read(min(size, self._chunk_left))
            if not data:
                raise ConnectionError("request body ended early")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                self._rfile.readline(3)
        else:
            data = self._rfile.read(min(size, self._remaining))
            if not data:
                raise ConnectionError("request body ended early")
            self._remaining -= len(data)
            if self._remaining == 0:
                self._raw_done = True
        self.raw_length += len(data)
        if len(self.raw_head) < self.RAW_KEEP:
            self.raw_head += data[: self.RAW_KEEP - len(self.raw_head)]
        return data

    def read_chunk(self) -> bytes:
        """The next decoded bytes; b"" at the end."""
        while not self._raw_done:
            raw = self._read_raw()
            data = self._decoder.decode(raw) if self._decoder else raw
            if data:
                return data
        return b""

    def read_up_to(self, limit: int) -> bytes:
        parts, size = [], 0
        while size < limit:
            data = self.read_chunk()
            if not data:
                break
            parts.append(data)
            size += len(data)
        return b"".join(parts)

    def read_all(self) -> bytes:
        parts = []
        while True:
            data = self.read_chunk()
            if not data:
                return b"".join(parts)
            parts.append(data)

    def drain(self) -> None:
        with contextlib.suppress(Exception):
            while not self._raw_done:
                self._read_raw()


def _parse_multipart(
    data: bytes, content_type: str
) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ClickHouseError.make(27, "multipart/form-data without a boundary")
    boundary = b"--" + match.group(1).encode()
    fields: dict[str, str] = {}
    files: list[tuple[str, bytes]] = []
    for part in data.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        part = part.removeprefix(b"\r\n")
        head, _, payload = part.partition(b"\r\n\r\n")
        payload = payload.removesuffix(b"\r\n")
        disposition = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                disposition = line
        name = re.search(r'\bname="([^"]*)"', disposition)
        if not name:
            continue
        if re.search(r'\bfilename="', disposition):
            files.append((name.group(1), payload))
        else:
            fields[name.group(1)] = payload.decode("utf-8", "surrogateescape")
    return fields, files


# ---------------------------------------------------------------------------------------------
# Engine: chdb handles. A request gets a fresh handle (its own session state); a session_id
# keeps one handle across requests, as a ClickHouse HTTP session keeps its context.
# ---------------------------------------------------------------------------------------------


@dataclass
class _Session:
    conn: Any
    timeout: float
    last_used: float
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Stats:
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    result_bytes: int = 0

    def add(self, result: Any) -> None:
        with contextlib.suppress(Exception):
            self.read_rows += int(result.storage_rows_read())
            self.read_bytes += int(result.storage_bytes_read())
            self.result_rows += int(result.rows_read())
            self.result_bytes += int(result.bytes_read())
            self.written_rows += int(result.rows_written())
            self.written_bytes += int(result.bytes_written())

    def summary(self, elapsed_ns: int) -> str:
        return json.dumps(
            {
                "read_rows": str(self.read_rows),
                "read_bytes": str(self.read_bytes),
                "written_rows": str(self.written_rows),
                "written_bytes": str(self.written_bytes),
                "total_rows_to_read": str(self.read_rows),
                "result_rows": str(self.result_rows),
                "result_bytes": str(self.result_bytes),
                "elapsed_ns": str(elapsed_ns),
            },
            separators=(",", ":"),
        )


class Engine:
    def __init__(self, path: Path):
        import chdb

        self._chdb = chdb
        self.path = str(path)
        # Held for the server's lifetime: the engine stays up between requests.
        self._anchor = chdb.connect(self.path)
        version, timezone = (
            self._anchor.query("SELECT version(), timezone()", "TabSeparated")
            .bytes()
            .decode()
            .strip()
            .split("\t")
        )
        self.version = version
        self.timezone = timezone
        # 1 by default on recent versions: then Accept-Encoding alone turns compression on.
        self.http_compression_default = (
            self._anchor.query(
                "SELECT value FROM system.settings WHERE name = 'enable_http_compression'",
                "TabSeparated",
            )
            .bytes()
            .decode()
            .strip()
            or "0"
        )
        self._sessions: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()

    def connect(self) -> Any:
        return self._chdb.connect(self.path)

    @contextlib.contextmanager
    def handle(
        self, session_id: str | None, timeout: float, check: bool
    ) -> Iterator[tuple[Any, _Session | None]]:
        if not session_id:
            conn = self.connect()
            try:
                yield conn, None
            finally:
                with contextlib.suppress(Exception):
                    conn.close()
            return
        now = time.monotonic()
        with self._sessions_lock:
            self._expire(now)
            session = self._sessions.get(session_id)
            if session is None:
                if check:
                    raise ClickHouseError.make(372, f"Session {session_id} not found")
                session = _Session(self.connect(), timeout, now)
                self._sessions[session_id] = session
            session.timeout = timeout
        if not session.lock.acquire(blocking=False):
            raise ClickHouseError.make(
                373, f"Session {session_id} is locked by a concurrent client"
            )
        try:
            yield session.conn, session
        finally:
            session.last_used = time.monotonic()
            session.lock.release()

    def _expire(self, now: float) -> None:
        for session_id, session in list(self._sessions.items()):
            if now - session.last_used > session.timeout and not session.lock.locked():
                del self._sessions[session_id]
                with contextlib.suppress(Exception):
                    session.conn.close()

    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            with contextlib.suppress(Exception):
                session.conn.close()
        with contextlib.suppress(Exception):
            self._anchor.close()


def _run(
    conn: Any, sql: str | bytes, fmt: str = "TabSeparated", params: dict[str, str] | None = None
) -> Any:
    try:
        return conn.query(sql, fmt, params=params or {})
    except Exception as error:  # noqa: BLE001 - every engine error is a ClickHouse exception
        raise ClickHouseError.from_engine(error) from None


def _apply_context(
    conn: Any, session: _Session | None, database: str | None, settings: dict[str, str]
) -> Callable[[], None]:
    """USE the request's database and SET its settings; returns what undoes both (in a session)."""
    undo: list[str] = []
    for name in settings:
        if not _SETTING_NAME.match(name):
            raise ClickHouseError.make(115, f"Unknown setting '{name}'")
    if session is not None and database:
        current = _run(conn, "SELECT currentDatabase()").bytes().decode().strip()
        undo.append(f"USE {_quote_identifier(current)}")
    if session is not None and settings:
        names = ", ".join(_quote_value(name) for name in settings)
        rows = _run(
            conn,
            f"SELECT name, value, changed FROM system.settings WHERE name IN ({names})",
            "JSONEachRow",
        )
        known = {}
        for line in rows.bytes().splitlines():
            row = json.loads(line)
            known[row["name"]] = row
        for name in settings:
            row = known.get(name)
            if row and row["changed"]:
                undo.append(f"SET {name} = {_quote_value(row['value'])}")
            else:
                undo.append(f"SET {name} = DEFAULT")

    def restore() -> None:
        for statement in undo:
            with contextlib.suppress(Exception):
                conn.query(statement, "TabSeparated")

    try:
        if database:
            _run(conn, f"USE {_quote_identifier(database)}")
        for name, value in settings.items():
            _run(conn, f"SET {name} = {_quote_value(value)}")
    except BaseException:
        restore()
        raise
    return restore


def _arrow_stitcher() -> Callable[[bytes], bytes]:
    """Turns chdb's per-block ArrowStream encodings (schema, batches, EOS each) into one stream."""
    schema: list[bytes] = []

    def stitch(data: bytes) -> bytes:
        if data.endswith(_ARROW_EOS):
            data = data[: -len(_ARROW_EOS)]
        if len(data) < 8 or not data.startswith(_ARROW_CONTINUATION):
            return data
        schema_end = 8 + int.from_bytes(data[4:8], "little")
        if not schema:
            schema.append(data[:schema_end])
            return data
        if data[:schema_end] != schema[0]:
            raise ClickHouseError.make(1001, "ArrowStream schema changed between blocks")
        return data[schema_end:]

    return stitch


# Native's BlockInfo (is_overflows = false, bucket_num = -1), which ClickHouse writes before every
# block when the client sent a client_protocol_version (NativeWriter, client_revision > 0).
_NATIVE_BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"


def _varuint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def _with_block_info(data: bytes, rows: int) -> bytes:
    """A Native block as ClickHouse writes it for a client with a protocol revision."""
    if not data:
        return data
    _, position = _varuint(data, 0)
    block_rows, _ = _varuint(data, position)
    if block_rows != rows:
        raise ClickHouseError.make(
            1001, "the stand-in cannot add Native BlockInfo: an engine chunk holds several blocks"
        )
    return _NATIVE_BLOCK_INFO + data


def _stream_pieces(
    conn: Any, sql: bytes, fmt: str, params: dict[str, str], stats: _Stats, protocol: int = 0
) -> Iterator[bytes]:
    """The result of a query with a streamable format, block by block, as it is produced."""
    lower = fmt.lower()
    arrow = lower == "arrowstream"
    if arrow:
        stitch = _arrow_stitcher()

        def transform(data: bytes, rows: int) -> bytes:
            return stitch(data)

    elif lower == "native" and protocol > 0:
        transform = _with_block_info
    else:

        def transform(data: bytes, rows: int) -> bytes:
            return data

    try:
        stream = conn.send_query(sql, fmt, params=params)
    except Exception as error:  # noqa: BLE001
        if "Streaming query is not supported" not in str(error):
            raise ClickHouseError.from_engine(error) from None
        # chdb streams SELECTs only (not DESCRIBE, SHOW, EXPLAIN...): answer those in one piece.
        result = _run(conn, sql, fmt, params)
        stats.add(result)
        data = result.bytes() or b""
        yield data if arrow else transform(data, result.rows_read())
        return
    # chdb's StreamingResult.fetch() drops the zero-row block that ends a stream, and with it the
    # header an empty result has in some formats (ArrowStream's schema); read the blocks directly.
    c_conn, c_result = stream._conn, stream._result
    finished = False
    try:
        first = True
        while True:
            try:
                result = c_conn.streaming_fetch_result(c_result)
            except Exception as error:  # noqa: BLE001
                finished = True
                raise ClickHouseError.from_engine(error) from None
            if result is None:
                break
            if hasattr(result, "has_error") and result.has_error():
                finished = True
                raise ClickHouseError.from_engine(RuntimeError(result.error_message()))
            stats.add(result)
            rows = result.rows_read()
            data = result.bytes() or b""
            if rows == 0:
                if first and data:
                    yield transform(data, rows)
                    first = False
                break
            first = False
            piece = transform(data, rows)
            if piece:
                yield piece
        finished = True
        if arrow and not first:
            yield _ARROW_EOS
    finally:
        stream._exhausted = True
        if not finished:
            with contextlib.suppress(Exception):
                c_conn.streaming_cancel_query(c_result)


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str
    times: int = 1
    match: str | None = None
    delay: float = 5.0
    code: int | None = None
    message: str | None = None


class _Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._queue: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._queue.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.__dict__.copy() for fault in self._queue]

    def take(self, sql: str, returns_rows: bool) -> Fault | None:
        with self._lock:
            for fault in self._queue:
                if fault.kind in _MIDSTREAM_FAULTS and not returns_rows:
                    continue
                if fault.match and fault.match not in sql:
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._queue.remove(fault)
                return fault
        return None


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------


class _ClientGone(Exception):
    """The client closed the connection while the answer was being written."""


class _Reply:
    """One HTTP/1.1 answer: status line and headers once, then a chunked (optionally compressed) body.

    Every piece but the latest goes out at once; the latest is held back until `end()`, which the
    request calls after it released the engine handle: a client must not see an answer complete
    (ArrowStream's end-of-stream marker is enough for pyarrow) while its session is still taken.
    """

    def __init__(
        self, handler: BaseHTTPRequestHandler, encoding: str | None, on_bytes: Callable[[int], None]
    ):
        self._handler = handler
        self._encoder = _Encoder(encoding) if encoding else None
        self.encoding = encoding
        self.started = False
        self.done = False  # the last chunk is due or written, or the connection is cut
        self._cut_pending = False
        self._held = b""
        self._on_bytes = on_bytes

    def _raw(self, data: bytes) -> None:
        try:
            self._handler.wfile.write(data)
        except (OSError, ValueError) as error:
            raise _ClientGone() from error

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}"]
        lines.append(f"Date: {formatdate(usegmt=True)}")
        lines.append("Connection: Keep-Alive")
        lines += [f"{name}: {value}" for name, value in headers]
        if self._encoder:
            lines.append(f"Content-Encoding: {self.encoding}")
        lines.append("Transfer-Encoding: chunked")
        lines.append("Keep-Alive: timeout=10, max=10000")
        self._raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.started = True

    @staticmethod
    def _framed(data: bytes) -> bytes:
        return f"{len(data):X}\r\n".encode() + data + b"\r\n" if data else b""

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._on_bytes(len(data))
        encoded = self._encoder.encode(data) if self._encoder else data
        held, self._held = self._held, encoded
        if held:
            self._raw(self._framed(held))

    def _flush_held(self) -> None:
        held, self._held = self._held, b""
        if held:
            self._raw(self._framed(held))

    def end(self) -> None:
        """The held piece, then the last chunk (or the deferred cut)."""
        if self._cut_pending:
            self._cut_pending = False
            with contextlib.suppress(_ClientGone):
                self._flush_held()
            self._cut()
        else:
            self.finish()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        tail = self._held + (self._encoder.finish() if self._encoder else b"")
        self._held = b""
        self._raw(self._framed(tail) + b"0\r\n\r\n")

    def break_with_exception(self, message: bytes, tag: str, defer: bool = False) -> None:
        """ClickHouse's cancelWithException after the headers: the tagged block, then no last chunk."""
        with contextlib.suppress(_ClientGone):
            self.write(exception_block(message, tag))
        self.abort(defer)

    def abort(self, defer: bool = False) -> None:
        """Cut the connection after what was written (at `end()` with `defer`)."""
        self.done = True
        if defer:
            self._cut_pending = True
            return
        with contextlib.suppress(_ClientGone):
            self._flush_held()
        self._cut()

    def _cut(self) -> None:
        handler = self._handler
        handler.close_connection = True
        with contextlib.suppress(OSError, ValueError):
            handler.wfile.flush()
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------------------------------------
# The HTTP server
# ---------------------------------------------------------------------------------------------


@dataclass
class _Active:
    query_id: str
    sql: str
    started: float
    bytes_sent: int = 0


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        engine: Engine,
        *,
        user: str | None,
        password: str | None,
        control_token: str | None,
        record_path: Path | None,
        tls: ssl.SSLContext | None,
        verbose: bool = False,
    ):
        super().__init__(address, _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        self.engine = engine
        self.user = user
        self.password = password
        self.control_prefix = f"{CONTROL_PREFIX}{control_token or secrets.token_urlsafe(24)}/"
        self.faults = _Faults()
        self.pretend_version: str | None = None  # answer like this old server (see above)
        self.display_name = socket.gethostname()
        self.verbose = verbose
        self._record_path = record_path
        self._record_lock = threading.Lock()
        self.requests: deque[dict[str, Any]] = deque(maxlen=500)
        self.active: dict[int, _Active] = {}
        self._active_lock = threading.Lock()
        self._active_ids = iter(range(1, 1 << 62))

    def authenticate(self, user: str, password: str) -> bool:
        if self.user is None and self.password is None:
            return True
        return secrets.compare_digest(user, self.user or "default") and secrets.compare_digest(
            password, self.password or ""
        )

    def record(self, entry: dict[str, Any]) -> None:
        with self._record_lock:
            self.requests.append(entry)
            if self._record_path:
                with open(self._record_path, "a", encoding="utf-8") as file:
                    file.write(json.dumps(entry) + "\n")

    def track(self, active: _Active) -> int:
        with self._active_lock:
            key = next(self._active_ids)
            self.active[key] = active
            return key

    def untrack(self, key: int) -> None:
        with self._active_lock:
            self.active.pop(key, None)

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if self.verbose and not isinstance(error, ConnectionError | ssl.SSLError | TimeoutError):
            super().handle_error(request, client_address)


def _describes_external_table(name: str, tables: set[str]) -> bool:
    return any(
        name == f"{table}_{suffix}"
        for table in tables
        for suffix in ("structure", "types", "format")
    )


def _credentials(headers, params: dict[str, str]) -> tuple[str, str]:
    authorization = headers.get("Authorization", "")
    if authorization.lower().startswith("basic "):
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            user, _, password = base64.b64decode(authorization[6:].strip()).decode().partition(":")
            return user or "default", password
    if "X-ClickHouse-User" in headers or "X-ClickHouse-Key" in headers:
        return headers.get("X-ClickHouse-User") or "default", headers.get("X-ClickHouse-Key") or ""
    return params.get("user") or "default", params.get("password") or ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandinServer

    def setup(self) -> None:
        # Headers, chunks and the last chunk go out as separate writes: without this, Nagle's
        # algorithm and the client's delayed ACK add ~40 ms to every answer.
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(15)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        self._plain(200, b"")

    def _plain(
        self, status: int, body: bytes, content_type: str = "text/html; charset=UTF-8"
    ) -> None:
        self.send_response_only(status)
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("Connection", "Keep-Alive")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        pairs = parse_qsl(url.query, keep_blank_values=True)
        if url.path.startswith(self.server.control_prefix):
            self._control(url.path[len(self.server.control_prefix) :], dict(pairs))
            return
        if (
            url.path == "/ping"
            or url.path == "/replicas_status"
            or (url.path in ("", "/") and self.command == "GET" and not pairs)
        ):
            _RequestBody(self.rfile, self.headers).drain()
            self._plain(200, b"Ok.\n")
            return
        _Query(self, url.path, pairs).serve()

    def _control(self, action: str, params: dict[str, str]) -> None:
        server = self.server
        _RequestBody(self.rfile, self.headers).drain()
        answer: Any = {"ok": True}
        if action == "fault" and self.command == "POST":
            kind = params.get("kind", "")
            if kind not in FAULT_KINDS:
                self._plain(400, f"unknown fault kind {kind!r}\n".encode(), "text/plain")
                return
            server.faults.add(
                Fault(
                    kind=kind,
                    times=int(params.get("times", "1")),
                    match=params.get("match") or None,
                    delay=float(params.get("delay", "5")),
                    code=int(params["code"]) if params.get("code") else None,
                    message=params.get("message") or None,
                )
            )
        elif action == "clear_faults" and self.command == "POST":
            server.faults.clear()
        elif action == "pretend_version" and self.command == "POST":
            server.pretend_version = params.get("version") or None
        elif action == "faults":
            answer = server.faults.pending()
        elif action == "requests":
            answer = list(server.requests)
        elif action == "clear_requests" and self.command == "POST":
            server.requests.clear()
        elif action == "active":
            now = time.monotonic()
            answer = [
                {
                    "query_id": a.query_id,
                    "sql": a.sql,
                    "bytes_sent": a.bytes_sent,
                    "seconds": now - a.started,
                }
                for a in list(server.active.values())
            ]
        else:
            self._plain(404, b"unknown control action\n", "text/plain")
            return
        self._plain(200, json.dumps(answer).encode(), "application/json")


class _Query:
    """One request to the query handler."""

    def __init__(self, handler: _Handler, path: str, pairs: list[tuple[str, str]]):
        self.handler = handler
        self.server = handler.server
        self.engine = handler.server.engine
        self.path = path
        self.pairs = pairs
        self.params = dict(pairs)
        self.started = time.monotonic_ns()
        self.query_id = self.params.get("query_id") or str(uuid.uuid4())
        self.tag = "".join(secrets.choice(string.ascii_lowercase) for _ in range(16))
        self.stats = _Stats()
        self.reply: _Reply | None = None
        self.status = 0
        self.active_key: int | None = None
        self.body: _RequestBody | None = None
        self.encoding: str | None = None
        self.settings: dict[str, str] = {}
        self._recorded = False
        try:
            # The Native protocol revision the client speaks (it adds BlockInfo to every block).
            self.protocol = int(self.params.get("client_protocol_version") or 0)
        except ValueError:
            self.protocol = 0

    # -- helpers ------------------------------------------------------------------------------

    def _base_headers(self) -> list[tuple[str, str]]:
        return [
            (
                "Access-Control-Expose-Headers",
                "X-ClickHouse-Query-Id,X-ClickHouse-Summary,X-ClickHouse-Server-Display-Name,"
                "X-ClickHouse-Format,X-ClickHouse-Timezone,X-ClickHouse-Exception-Code,"
                "X-ClickHouse-Exception-Tag",
            ),
            ("X-ClickHouse-Server-Display-Name", self.server.display_name),
            ("X-ClickHouse-Query-Id", self.query_id),
        ]

    def _summary(self) -> tuple[str, str]:
        return ("X-ClickHouse-Summary", self.stats.summary(time.monotonic_ns() - self.started))

    def _on_bytes(self, size: int) -> None:
        if self.active_key is not None:
            active = self.server.active.get(self.active_key)
            if active:
                active.bytes_sent += size

    def _new_reply(self, encoding: str | None) -> _Reply:
        self.reply = _Reply(self.handler, encoding, self._on_bytes)
        return self.reply

    def _send_error(self, error: ClickHouseError, encoding: str | None = None) -> None:
        reply = (
            self.reply
            if self.reply is not None and not self.reply.started
            else self._new_reply(encoding)
        )
        self.status = error.http_status()
        headers = [
            *self._base_headers(),
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("X-ClickHouse-Exception-Code", str(error.code)),
            ("X-ClickHouse-Exception-Tag", self.tag),
            self._summary(),
        ]
        if error.code == 194:
            headers.append(("WWW-Authenticate", 'Basic realm="ClickHouse server HTTP API"'))
        reply.start(self.status, headers)
        reply.write(error.body(self.engine.version))  # end() finishes it

    def _record(self) -> None:
        self._recorded = True
        body = self.body
        raw = bytes(body.raw_head) if body else b""
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(),
            "method": self.handler.command,
            "path": self.path,
            "params": [list(pair) for pair in self.pairs],
            "headers": [[name, value] for name, value in self.handler.headers.items()],
            "body_length": body.raw_length if body else 0,
            "status": self.status,
            "response_encoding": self.reply.encoding if self.reply else None,
        }
        try:
            entry["body"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            entry["body_b64"] = base64.b64encode(raw).decode()
        self.server.record(entry)

    # -- the request --------------------------------------------------------------------------

    def serve(self) -> None:
        handler = self.handler
        try:
            try:
                self._serve()
            except _ClientGone:
                raise
            except Exception as error:  # noqa: BLE001 - a bug here must still answer like a server
                if isinstance(error, ClickHouseError):
                    clickhouse_error = error
                else:
                    if self.server.verbose:
                        import traceback

                        traceback.print_exc()
                    clickhouse_error = ClickHouseError.make(
                        1001, f"{type(error).__name__}: {error}"
                    )
                if self.reply is None or not self.reply.started:
                    self._send_error(clickhouse_error, self.encoding)
                elif not self.reply.done:
                    self.reply.break_with_exception(
                        clickhouse_error.body(self.engine.version), self.tag
                    )
            # The end of the answer (the held piece and the last chunk, or the cut of a faulted
            # answer) goes out only now, after the engine handle and a session's lock were
            # released, and the request was logged: a client that acts on seeing the end of this
            # answer must find its session free and its request in the log.
            self._record()
            if self.reply is not None and self.reply.started:
                self.reply.end()
        except _ClientGone:
            handler.close_connection = True
        finally:
            if self.active_key is not None:
                self.server.untrack(self.active_key)
            if self.body is not None and not self.body.done and not handler.close_connection:
                handler.close_connection = True  # unread body: this connection cannot be reused
            if not self._recorded:
                self._record()

    def _serve(self) -> None:
        handler = self.handler
        headers = handler.headers
        self.body = body = _RequestBody(handler.rfile, headers)

        params = dict(self.params)
        files: list[tuple[str, bytes]] = []
        content_type = headers.get("Content-Type", "")
        multipart = content_type.lower().startswith("multipart/form-data")
        if multipart:
            fields, files = _parse_multipart(body.read_all(), content_type)
            params.update(fields)

        # The query: the URL part, a line feed, then the body (ClickHouse's ConcatReadBuffer).
        url_query = params.get("query", "").encode("utf-8", "surrogateescape")
        head = b"" if multipart else body.read_up_to(_HEAD_LIMIT)
        text = url_query + (b"\n" if url_query and not multipart else b"") + head
        kind = statement_kind(text.decode("latin-1"))
        layout = None
        if kind == "INSERT":
            layout = insert_layout(text.decode("latin-1"), complete=body.done)
        if layout is None or layout.kind != "format":
            text += body.read_all()
            if kind == "INSERT":
                layout = insert_layout(text.decode("latin-1"), complete=True)
        sql_text = text.decode("utf-8", "replace")
        returns_rows = kind in OUTPUT_STATEMENTS
        statement = sql_text
        if layout is not None and layout.kind == "format":
            statement = text[: layout.statement_end].decode("utf-8", "replace")

        accept = headers.get("Accept-Encoding", "")
        settings: dict[str, str] = {}
        query_params: dict[str, str] = {}
        external = {name for name, _ in files}
        for name, value in params.items():
            if name.startswith("param_"):
                query_params[name[len("param_") :]] = value
            elif name in RESERVED_PARAMS or _describes_external_table(name, external):
                continue
            else:
                settings[name] = value
        self.settings = settings
        encoding = None
        compression = settings.get("enable_http_compression", self.engine.http_compression_default)
        if compression.lower() in ("1", "true") and accept:
            encoding = choose_encoding(accept)

        fault = self.server.faults.take(statement, returns_rows)
        if fault is not None:
            if fault.kind == "drop_connection":
                handler.close_connection = True
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.kind == "timeout":
                time.sleep(fault.delay)
            elif fault.kind == "error_516":
                user, _ = _credentials(headers, params)
                self._send_auth_failure(user)
                return
            elif fault.kind == "error":
                code = fault.code or 159
                message = fault.message or f"Injected failure (stand-in fault 'error', code {code})"
                name = _KNOWN_ERROR_NAMES.get(code)
                raise ClickHouseError.make(code, message, name)

        user, password = _credentials(headers, params)
        if not self.server.authenticate(user, password):
            self._send_auth_failure(user)
            return
        self.encoding = encoding  # from here on, errors come through the compressed output too
        pretend = self.server.pretend_version
        if pretend and kind != "INSERT":
            if _OLD_SERVER_LACKS.search(sql_text):
                raise OldServerError.old(47, "Unknown identifier: readonly")
            text = _VERSION_CALL.sub(f"'{pretend}'".encode(), text)
            sql_text = text.decode("utf-8", "replace")

        if not sql_text.strip():
            raise ClickHouseError.make(62, "Empty query", "SYNTAX_ERROR")
        if params.get("compress") in ("1", "true") or params.get("decompress") in ("1", "true"):
            raise ClickHouseError.make(
                48,
                "The ClickHouse HTTP stand-in does not implement ClickHouse's native compression "
                "(compress=1 / decompress=1); use HTTP compression",
            )
        if handler.command == "GET" and kind not in READONLY_STATEMENTS:
            raise ClickHouseError.make(
                164,
                "Cannot execute query in readonly mode. For queries over HTTP, method GET implies "
                "readonly. You should use method POST for modifying queries",
            )

        database = params.get("database") or headers.get("X-ClickHouse-Database") or None
        default_format = (
            params.get("default_format") or headers.get("X-ClickHouse-Format") or "TabSeparated"
        )
        wait_end = params.get("wait_end_of_query", "0").lower() in ("1", "true") or settings.get(
            "http_wait_end_of_query", "0"
        ).lower() in ("1", "true")
        session_id = params.get("session_id") or None
        try:
            session_timeout = float(params.get("session_timeout") or _SESSION_DEFAULT_TIMEOUT)
        except ValueError:
            raise ClickHouseError.make(36, "Invalid session timeout", "BAD_ARGUMENTS") from None
        session_check = params.get("session_check", "0") in ("1", "true")

        self.active_key = self.server.track(
            _Active(self.query_id, statement[:200], time.monotonic())
        )
        with self.engine.handle(session_id, session_timeout, session_check) as (conn, session):
            restore = _apply_context(conn, session, database, settings)
            try:
                dropped_tables = self._external_tables(conn, files, params)
                try:
                    if layout is not None and layout.kind == "format":
                        self._insert(conn, text, layout, encoding)
                    elif returns_rows:
                        fmt = output_format(sql_text) or default_format
                        self._select(conn, text, fmt, query_params, encoding, wait_end, fault)
                    else:
                        self._command(conn, text, query_params, encoding)
                finally:
                    for table in dropped_tables:
                        with contextlib.suppress(Exception):
                            conn.query(
                                f"DROP TEMPORARY TABLE IF EXISTS {_quote_identifier(table)}",
                                "TabSeparated",
                            )
            finally:
                restore()

    def _send_auth_failure(self, user: str) -> None:
        if self.body is not None:
            self.body.drain()
        self._send_error(
            ClickHouseError.make(
                516,
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
            )
        )

    def _external_tables(
        self, conn: Any, files: list[tuple[str, bytes]], params: dict[str, str]
    ) -> list[str]:
        created = []
        for table, data in files:
            structure = params.get(f"{table}_structure")
            if not structure:
                types = [
                    t.strip() for t in params.get(f"{table}_types", "").split(",") if t.strip()
                ]
                if not types:
                    raise ClickHouseError.make(
                        36,
                        f"Neither structure nor types have not been provided for external table {table}",
                        "BAD_ARGUMENTS",
                    )
                structure = ", ".join(f"_{i} {t}" for i, t in enumerate(types, start=1))
            fmt = params.get(f"{table}_format", "TabSeparated")
            _run(
                conn,
                f"CREATE TEMPORARY TABLE {_quote_identifier(table)} ({structure}) ENGINE = Memory",
            )
            created.append(table)
            try:
                inserter = conn.send_insert(f"INSERT INTO {_quote_identifier(table)}", fmt)
                inserter.append(data)
                inserter.finish()
            except ClickHouseError:
                raise
            except Exception as error:  # noqa: BLE001
                raise ClickHouseError.from_engine(error) from None
        return created

    def _insert(self, conn: Any, text: bytes, layout: _InsertLayout, encoding: str | None) -> None:
        body = self.body
        assert body is not None
        statement = text[: layout.statement_end].decode("utf-8", "replace").rstrip()
        try:
            inserter = conn.send_insert(statement, layout.format)
        except Exception as error:  # noqa: BLE001
            raise ClickHouseError.from_engine(error) from None
        try:
            first = text[layout.data_start :]
            if first:
                inserter.append(first)
            while True:
                data = body.read_chunk()
                if not data:
                    break
                inserter.append(data)
            result = inserter.finish()
        except Exception as error:  # noqa: BLE001
            with contextlib.suppress(Exception):
                inserter.cancel()
            if isinstance(error, ClickHouseError):
                raise
            raise ClickHouseError.from_engine(error) from None
        rows = int(getattr(result, "rows_written", 0) or 0)
        size = int(getattr(result, "bytes_written", 0) or 0)
        self.stats.written_rows = self.stats.read_rows = self.stats.result_rows = rows
        self.stats.written_bytes = self.stats.read_bytes = self.stats.result_bytes = size
        reply = self._new_reply(encoding)
        self.status = 200
        reply.start(
            200,
            [
                *self._base_headers(),
                ("Content-Type", "text/plain; charset=UTF-8"),
                ("X-ClickHouse-Exception-Tag", self.tag),
                self._summary(),
            ],
        )

    def _command(
        self, conn: Any, text: bytes, query_params: dict[str, str], encoding: str | None
    ) -> None:
        result = _run(conn, text, "TabSeparated", query_params)
        self.stats.add(result)
        data = result.bytes() or b""
        headers = [*self._base_headers(), ("Content-Type", "text/plain; charset=UTF-8")]
        if data:
            headers += [
                ("X-ClickHouse-Format", "TabSeparated"),
                ("X-ClickHouse-Timezone", self.engine.timezone),
            ]
        reply = self._new_reply(encoding)
        self.status = 200
        reply.start(200, [*headers, ("X-ClickHouse-Exception-Tag", self.tag), self._summary()])
        reply.write(data)

    def _select(
        self,
        conn: Any,
        text: bytes,
        fmt: str,
        query_params: dict[str, str],
        encoding: str | None,
        wait_end: bool,
        fault: Fault | None,
    ) -> None:
        lower = fmt.lower()
        if lower in STREAMABLE_FORMATS:
            pieces: Iterator[bytes] = _stream_pieces(
                conn, text, fmt, query_params, self.stats, self.protocol
            )
        else:
            result = _run(conn, text, fmt, query_params)
            self.stats.add(result)
            pieces = iter([result.bytes() or b""])
        content_type = _CONTENT_TYPES.get(lower) or (
            "application/octet-stream"
            if lower.startswith(_BINARY_FORMATS)
            else "text/plain; charset=UTF-8"
        )
        timezone = self.settings.get("session_timezone") or self.engine.timezone
        try:
            spool = None
            if wait_end:
                spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115
                for piece in pieces:
                    spool.write(piece)
                spool.seek(0)
                pieces = iter(lambda: spool.read(_OUT_PIECE), b"")
            first = next(pieces, b"")
            headers = [
                *self._base_headers(),
                ("Content-Type", content_type),
                ("X-ClickHouse-Format", fmt),
                ("X-ClickHouse-Timezone", timezone),
                ("X-ClickHouse-Exception-Tag", self.tag),
                self._summary(),
            ]
            reply = self._new_reply(encoding)
            self.status = 200
            reply.start(200, headers)
            if fault is not None and fault.kind in _MIDSTREAM_FAULTS:
                self._midstream_fault(reply, first, pieces, fault)
                return
            reply.write(first)
            for piece in pieces:
                reply.write(piece)
        finally:
            close = getattr(pieces, "close", None)
            if close:
                close()

    def _midstream_fault(
        self, reply: _Reply, first: bytes, pieces: Iterator[bytes], fault: Fault
    ) -> None:
        second = next(pieces, None)
        reply.write(first if second is not None else first[: max(1, len(first) // 2)])
        close = getattr(pieces, "close", None)
        if close:
            close()
        if fault.kind == "drop_midstream":
            reply.abort(defer=True)
            return
        code = fault.code or 395
        message = fault.message or (
            "Value passed to 'throwIf' function is non-zero: injected by the ClickHouse HTTP "
            "stand-in (fault exception_midstream)"
        )
        error = ClickHouseError.make(code, message, _KNOWN_ERROR_NAMES.get(code))
        reply.break_with_exception(error.body(self.engine.version), self.tag, defer=True)


# ---------------------------------------------------------------------------------------------
# The process
# ---------------------------------------------------------------------------------------------

DEMO_START = datetime(2024, 5, 1, tzinfo=UTC)
DEMO_END = datetime(2024, 5, 4, tzinfo=UTC)


def seed_demo(path: Path, database: str) -> None:
    """The source tables and the project's deterministic demo data (seed 42, 2024-05-01..04)."""
    import clickhouse_connect

    from bqtui.demo import data as demo_data

    admin = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    try:
        admin.command(f"CREATE DATABASE IF NOT EXISTS {_quote_identifier(database)}")
    finally:
        admin.close()
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}?{urlencode({'database': database})}")
    try:
        demo_data.create_source_tables(client)
        if client.command("SELECT count() FROM events") == 0:
            demo_data.generate(client, seed=42, start=DEMO_START, end=DEMO_END)
    finally:
        client.close()


def _tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.clickhouse_http",
        description="ClickHouse's HTTP interface served by chdb (a test stand-in).",
    )
    parser.add_argument("--path", required=True, type=Path, help="chdb data directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--user", default=None)
    parser.add_argument("--password", default=None)
    parser.add_argument("--tls-cert", type=Path, default=None)
    parser.add_argument("--tls-key", type=Path, default=None)
    parser.add_argument(
        "--seed-demo", action="store_true", help="create and fill the demo source tables"
    )
    parser.add_argument("--seed-database", default="default")
    parser.add_argument(
        "--control-token", default=os.environ.get("CLICKHOUSE_STANDIN_CONTROL_TOKEN")
    )
    parser.add_argument(
        "--record", type=Path, default=None, help="append every request as JSON lines"
    )
    parser.add_argument("--ignore-stdin", action="store_true", help="do not stop when stdin ends")
    parser.add_argument(
        "--pretend-version", default=None, help="answer like an old server of this version"
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")

    args.path.mkdir(parents=True, exist_ok=True)
    engine = Engine(args.path)
    if args.seed_demo:
        seed_demo(args.path, args.seed_database)
    tls = _tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    server = StandinServer(
        (args.host, args.port),
        engine,
        user=args.user,
        password=args.password,
        control_token=args.control_token,
        record_path=args.record,
        tls=tls,
        verbose=args.verbose,
    )
    server.pretend_version = args.pretend_version
    stop = threading.Event()
    # chdb installs its own SIGTERM handler; ours replaces it so that a stop is quick and clean.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not args.ignore_stdin:

        def watch_stdin() -> None:
            with contextlib.suppress(Exception):
                while sys.stdin.buffer.read(4096):
                    pass
            stop.set()

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    print(f"LISTENING {server.server_address[1]}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    closer = threading.Thread(target=engine.close, daemon=True)
    closer.start()
    closer.join(5)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# ---------------------------------------------------------------------------------------------
# The test side: start, stop and steer the server process (this part never imports chdb).
# ---------------------------------------------------------------------------------------------


class ClickHouseHttpServer:
    """Runs the stand-in as a subprocess; a context manager.

    ``user``/``password`` other than ``default``/empty turn authentication on. ``tls`` is a
    (certificate, key) pair of PEM files (see tests.harness.ca). ``extra_args`` go to the
    command line (e.g. ``["--seed-demo"]``).
    """

    def __init__(
        self,
        path: Path,
        *,
        user: str = "default",
        password: str = "",
        tls: tuple[Path, Path] | None = None,
        extra_args: tuple[str, ...] | list[str] = (),
        host: str = "127.0.0.1",
        startup_timeout: float = 120.0,
    ):
        self.path = Path(path)
        self.user = user
        self.password = password
        self.tls = tls
        self.extra_args = list(extra_args)
        self.host = host
        self.startup_timeout = startup_timeout
        self.control_token = secrets.token_urlsafe(18)
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self._stderr: deque[str] = deque(maxlen=200)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ClickHouseHttpServer:
        command = [
            sys.executable,
            "-m",
            "tests.harness.clickhouse_http",
            "--path",
            str(self.path),
            "--host",
            self.host,
            "--port",
            "0",
            f"--control-token={self.control_token}",
        ]
        if self.user != "default" or self.password:
            command += [f"--user={self.user}", f"--password={self.password}"]
        if self.tls:
            command += [f"--tls-cert={self.tls[0]}", f"--tls-key={self.tls[1]}"]
        command += self.extra_args
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(
            stream, sink: Callable[[str], None], then: Callable[[], None] | None = None
        ) -> None:
            for raw in iter(stream.readline, b""):
                sink(raw.decode("utf-8", "replace").rstrip("\n"))
            if then:
                then()

        threading.Thread(
            target=pump, args=(self.process.stdout, lines.put, lambda: lines.put(None)), daemon=True
        ).start()
        threading.Thread(
            target=pump, args=(self.process.stderr, self._stderr.append), daemon=True
        ).start()
        deadline = time.monotonic() + self.startup_timeout
        while self.port is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None
                if time.monotonic() < deadline:
                    continue
            if line is None:
                self.stop()
                raise RuntimeError(f"the ClickHouse HTTP stand-in did not start:\n{self.log()}")
            if line.startswith("LISTENING "):
                self.port = int(line.split()[1])
        return self

    def stop(self, timeout: float = 15.0) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.stdin.close()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.process = None

    def __enter__(self) -> ClickHouseHttpServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log(self) -> str:
        """The server's recent stderr."""
        return "\n".join(self._stderr)

    # -- addresses ----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        assert self.port is not None, "not started"
        return f"{self.scheme}://{self.host}:{self.port}"

    def dsn(self, database: str = "default", with_password: bool = True, **options: str) -> str:
        """A DSN, e.g. ``http://user:pass@127.0.0.1:PORT/db``; ``options`` become query parameters.

        clickhouse-connect 1.12 takes the database from the path and the credentials from the
        netloc, but ignores the scheme: it speaks TLS only with ``interface="https"`` /
        ``secure=True`` passed to get_client, or on port 443/8443 (``?secure=true`` in the DSN
        is passed on to HttpClient and raises TypeError). ``ca_cert=...`` works as an option.
        """
        assert self.port is not None, "not started"
        credentials = quote(self.user, safe="")
        if with_password and self.password:
            credentials += ":" + quote(self.password, safe="")
        suffix = f"?{urlencode(options)}" if options else ""
        return f"{self.scheme}://{credentials}@{self.host}:{self.port}/{quote(database, safe='')}{suffix}"

    def client(self, **kwargs: Any):
        """A clickhouse-connect client for this server (kwargs go to get_client)."""
        import clickhouse_connect

        assert self.port is not None, "not started"
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "password": self.password,
            "interface": self.scheme,
        }
        options.update(kwargs)
        return clickhouse_connect.get_client(**options)

    # -- control ------------------------------------------------------------------------------

    def _control(self, method: str, action: str, params: dict[str, Any] | None = None) -> Any:
        import http.client

        assert self.port is not None, "not started"
        path = f"{CONTROL_PREFIX}{self.control_token}/{action}"
        if params:
            path += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=30, context=context
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"control {action} failed: {response.status} {body!r}")
        return json.loads(body)

    def fault(
        self,
        kind: str,
        times: int = 1,
        *,
        match: str | None = None,
        delay: float | None = None,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Make the next `times` query requests (whose SQL contains `match`) fail as `kind`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(FAULT_KINDS)}")
        self._control(
            "POST",
            "fault",
            {
                "kind": kind,
                "times": times,
                "match": match,
                "delay": delay,
                "code": code,
                "message": message,
            },
        )

    def clear_faults(self) -> None:
        self._control("POST", "clear_faults")

    def pretend_version(self, version: str | None) -> None:
        """Answer like an old ClickHouse of ``version`` from now on (None: like itself)."""
        self._control("POST", "pretend_version", {"version": version or ""})

    def pending_faults(self) -> list[dict[str, Any]]:
        return self._control("GET", "faults")

    def requests(self) -> list[dict[str, Any]]:
        """The recent requests the server received (method, path, params, headers, body, status)."""
        return self._control("GET", "requests")

    def clear_requests(self) -> None:
        self._control("POST", "clear_requests")

    def active(self) -> list[dict[str, Any]]:
        """Responses being written right now (query_id, sql, bytes_sent)."""
        return self._control("GET", "active")

    def peak_rss(self) -> int:
        """The server process's peak resident memory, in bytes (Linux VmHWM)."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("VmHWM not available")


if __name__ == "__main__":
    sys.exit(main())
