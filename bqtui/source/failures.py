"""What went wrong with ClickHouse, in one clear message each: connecting, a query, a stream
that broke off, a server older than bqtui supports. Messages never show the DSN's credentials.
"""

import re
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError

from bqtui.source.dsn import redact_dsn

# The oldest ClickHouse server bqtui reads from, and why (see the README's "ClickHouse versions").
MIN_SERVER_VERSION = (22, 6)
MIN_SERVER_REASONS = (
    "query parameters over HTTP (19.11), DateTime64 (20.1), the ArrowStream format (20.5), "
    "system.data_skipping_indices (21.8, read by check) and output_format_arrow_string_as_string "
    "(22.6)"
)
_VERSION_TEXT = re.compile(r"(\d+)\.(\d+)(\.\d+)*")


def old_server_message(dsn: str, version: str | None) -> str | None:
    """What to say when the server is older than bqtui supports; None when it is not (or
    its version is unknown)."""
    match = _VERSION_TEXT.match((version or "").strip())  # e.g. 18.16.1, 21.8.15.7-lts
    if version is None or not match:
        return None
    if (int(match.group(1)), int(match.group(2))) >= MIN_SERVER_VERSION:
        return None
    minimum = ".".join(map(str, MIN_SERVER_VERSION))
    return (
        f"ClickHouse at {redact_dsn(dsn)} is version {version.strip()}; bqtui supports "
        f"ClickHouse {minimum} or newer, as it needs {MIN_SERVER_REASONS}. Upgrade the server, "
        "or read from a newer one: bqtui set-source NAME --source-dsn 'https://user@host:8443/db'"
    )


def probe_server_version(arguments: dict) -> str | None:
    """The server's version from one plain ``SELECT version()`` (read-only GET), for a server
    that answered but refused the driver's first queries: an old ClickHouse says so this way.
    ``arguments`` are ``ClickHouseDsn.client_arguments``; None when this fails too."""
    import urllib3

    scheme = arguments.get("interface", "http")
    url = f"{scheme}://{arguments['host']}:{arguments['port']}/?query=SELECT%20version()"
    if arguments.get("access_token"):
        headers = {"Authorization": f"Bearer {arguments['access_token']}"}
    else:
        user = f"{arguments.get('username') or 'default'}:{arguments.get('password') or ''}"
        headers = urllib3.make_headers(basic_auth=user)
    tls: dict[str, Any] = {}
    if scheme == "https":
        tls["cert_reqs"] = "CERT_REQUIRED" if arguments.get("verify", True) else "CERT_NONE"
        if arguments.get("ca_cert"):
            tls["ca_certs"] = arguments["ca_cert"]
    seconds = float(arguments.get("connect_timeout") or 10)
    try:
        with urllib3.PoolManager(**tls) as pool:
            response = pool.request(
                "GET", url, headers=headers, retries=False, timeout=urllib3.Timeout(seconds)
            )
    except Exception:  # noqa: BLE001 - only a better message was at stake
        return None
    text = response.data[:100].decode("utf-8", "replace").strip()
    return text if response.status == 200 and re.fullmatch(r"\d+\.\d+[\w.-]*", text) else None


def connection_failure(dsn: str, error: Exception) -> str:
    """What went wrong connecting, and what to check; never the DSN's credentials."""
    text = first_line(str(error))
    where = redact_dsn(dsn)
    lowered = str(error).lower()
    if "certificate verify failed" in lowered or "certificate_verify_failed" in lowered:
        return (
            f"Cannot connect to ClickHouse at {where}: the server's TLS certificate is not "
            "trusted (certificate verify failed). If it is signed by a private CA, add "
            "?ca_cert=/path/to/ca.pem to the DSN."
        )
    if "wrong version number" in lowered or "record layer failure" in lowered:
        return (
            f"Cannot connect to ClickHouse at {where}: the server does not speak TLS on that "
            "port. Use http:// for a plain HTTP port (8123), or the server's TLS port (8443)."
        )
    if "516" in text or "authentication failed" in lowered:
        return (
            f"ClickHouse at {where} refused the user or password (code 516, "
            "AUTHENTICATION_FAILED). Check the user and password, and replace them with: "
            "bqtui set-source NAME --source-dsn 'https://user:password@host:8443/db'"
        )
    if "connection refused" in lowered or "failed to establish" in lowered:
        return (
            f"Cannot connect to ClickHouse at {where}: connection refused. Check the host and "
            "port (HTTP 8123, TLS 8443) and that the server is running and reachable."
        )
    if "timed out" in lowered or "timeout" in lowered:
        return (
            f"ClickHouse at {where} did not answer in time ({text}). Check the network, or "
            "raise send_receive_timeout in the DSN for slow queries."
        )
    return f"Cannot connect to ClickHouse at {where}: {text}"


def query_failure(dsn: str, error: Exception) -> str:
    """A query ClickHouse refused or could not answer, and what to check."""
    text = str(error)
    if "516" in text or "authentication failed" in text.lower():
        return connection_failure(dsn, error)
    if "timed out" in text.lower() or "timeout" in text.lower() or "159" in text:
        return (
            f"ClickHouse at {redact_dsn(dsn)} did not answer the window's query in time "
            f"({first_line(text)}). Nothing was recorded; the next run tries the window again. "
            "For a slow server raise send_receive_timeout in the DSN (seconds)."
        )
    if isinstance(error, ClickHouseError):
        return f"ClickHouse query failed: {first_line(text)}"
    return connection_failure(dsn, error)


def stream_failure(dsn: str, error: Exception) -> str:
    """The answer broke off after it had begun: an error on the server mid-query, or a
    dropped connection."""
    detail = first_line(str(error)) or type(error).__name__
    marker = re.search(r"Code: \d+\. DB::Exception: [^\r\n]+", str(error))
    if marker:
        detail = marker.group(0)[:500]
    return (
        f"ClickHouse at {redact_dsn(dsn)} stopped in the middle of the window's rows (the "
        f"server raised an error after it began answering, or the connection dropped): "
        f"{detail}. Nothing of the window was recorded; the next run exports it again."
    )


def first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line[:500]
