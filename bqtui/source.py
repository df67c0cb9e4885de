"""The ClickHouse source: clickhouse-connect over a DSN; embedded chdb by default.

Queries use server-side parameters and stream Arrow record batches, so memory does not grow
with the size of a window.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.exceptions import ClickHouseError

from .errors import SourceError

# One client per DSN and process (chdb locks its data dir), shared by all exports, with a lock
# because one client runs one query at a time.
_clients: dict[str, tuple[object, threading.Lock]] = {}
_clients_lock = threading.Lock()

# Arrow blocks of ~64k rows keep batches small; strings as String (not Binary) for Parquet.
STREAM_SETTINGS = {
    "max_block_size": 65536,
    "output_format_arrow_string_as_string": 1,
    "output_format_arrow_low_cardinality_as_dictionary": 0,
}


def is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb:")


def split_password(dsn: str) -> tuple[str, str | None]:
    """Take a password out of a DSN so it can go to the keyring, not SQLite."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn, None
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}@{host}" if user else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), (
        parts.password
    )


def redact_dsn(dsn: str) -> str:
    return split_password(dsn)[0]


def _open_client(dsn: str, password: str | None):
    try:
        kwargs = {"password": password} if password else {}
        return clickhouse_connect.get_client(dsn=dsn, **kwargs)
    except Exception as error:  # noqa: BLE001 - every driver error becomes one clear message
        text = str(error)
        if "Cannot lock file" in text or "status" in text and "lock" in text.lower():
            raise SourceError(
                f"The embedded ClickHouse at {redact_dsn(dsn)} is in use by another process "
                "(another bqtui, or a runner from cron). Wait for it to finish, or point this "
                "export at a ClickHouse server with --source-dsn."
            ) from None
        raise SourceError(
            f"Cannot connect to ClickHouse at {redact_dsn(dsn)}: {_first_line(text)}"
        ) from None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line[:500]


class ClickHouseSource:
    """A ClickHouse database to read from."""

    def __init__(self, dsn: str, password: str | None = None):
        self.dsn = dsn
        self._password = password

    def _client_and_lock(self):
        with _clients_lock:
            if self.dsn not in _clients:
                _clients[self.dsn] = (_open_client(self.dsn, self._password), threading.Lock())
            return _clients[self.dsn]

    @property
    def client(self):
        return self._client_and_lock()[0]

    @property
    def _lock(self) -> threading.Lock:
        return self._client_and_lock()[1]

    @contextmanager
    def stream(self, sql: str, parameters: dict) -> Iterator[Iterator[pa.RecordBatch]]:
        """Run a query and yield an iterator of Arrow record batches."""
        with self._lock:
            try:
                with self.client.query_arrow_stream(
                    sql, parameters=parameters, settings=STREAM_SETTINGS
                ) as batches:
                    yield self._guarded(batches)
            except ClickHouseError as error:
                raise SourceError(f"ClickHouse query failed: {_first_line(str(error))}") from None

    @staticmethod
    def _guarded(batches) -> Iterator[pa.RecordBatch]:
        try:
            yield from batches
        except ClickHouseError as error:
            raise SourceError(f"ClickHouse query failed: {_first_line(str(error))}") from None

    def scalar(self, sql: str, parameters: dict | None = None):
        with self._lock:
            try:
                return self.client.query(sql, parameters=parameters or {}).first_row[0]
            except ClickHouseError as error:
                raise SourceError(f"ClickHouse query failed: {_first_line(str(error))}") from None

    def count_events(self, team_id: int | None = None) -> int:
        """Rows in the events table (for 'test connection')."""
        if team_id is None:
            return int(self.scalar("SELECT count() FROM events"))
        return int(
            self.scalar(
                "SELECT count() FROM events WHERE team_id = {team:Int64}", {"team": team_id}
            )
        )
