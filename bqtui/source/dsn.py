"""ClickHouse DSNs, parsed by bqtui rather than by clickhouse-connect (which ignores a DSN's
scheme and would send an ``https://`` DSN's password over plain HTTP).

Accepted: ``chdb:///path[?database=db]`` (the embedded engine), ``http://[user[:password]@]
host[:8123][/database][?options]`` and ``https://…[:8443]…`` (TLS, certificates verified).
Every credential of a DSN — the password of its user-info, and ``password``, ``key``,
``access_token`` or ``token`` query parameters — is split off for the keyring; what is stored
and shown is the DSN without them.

Options in the query: ``ca_cert=/path/ca.pem`` (a private CA bundle for https),
``insecure_skip_verify=true`` (skip certificate verification — named so that nobody turns it on
by accident), ``connect_timeout``/``send_receive_timeout`` (seconds), and ClickHouse settings
(any other ``name=value``).
"""

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit

from bqtui.core.errors import ConfigError

HTTP_PORTS = {"http": 8123, "https": 8443}
NATIVE_SCHEMES = {"clickhouse", "tcp", "native", "clickhouses"}
NATIVE_PORTS = {9000, 9440}
# Credential parameters and what they are: ClickHouse's key is the password (X-ClickHouse-Key).
SECRET_PARAMETERS = {
    "password": "password",
    "key": "password",
    "access_token": "access_token",
    "token": "access_token",
}
TLS_OPTIONS = ("ca_cert", "insecure_skip_verify")
CLIENT_OPTIONS = ("connect_timeout", "send_receive_timeout", "compress")
TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ClickHouseDsn:
    scheme: str  # chdb | http | https
    host: str = ""
    port: int | None = None
    username: str | None = None
    database: str | None = None
    path: str = ""  # chdb: the data dir
    options: dict = field(default_factory=dict)  # non-secret query parameters, in order

    @property
    def embedded(self) -> bool:
        return self.scheme == "chdb"

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def verify(self) -> bool:
        return str(self.options.get("insecure_skip_verify", "")).lower() not in TRUE

    def text(self) -> str:
        """The DSN without secrets: what bqtui stores and shows."""
        query = f"?{urlencode(self.options)}" if self.options else ""
        if self.embedded:
            return f"chdb://{self.path}{query}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        port = f":{self.port}" if self.port else ""
        database = f"/{quote(self.database, safe='')}" if self.database else ""
        return f"{self.scheme}://{user}{host}{port}{database}{query}"

    def client_arguments(self, secrets: dict[str, str]) -> dict:
        """Keyword arguments for ``clickhouse_connect.get_client`` (HTTP(S) only)."""
        settings = {k: v for k, v in self.options.items() if k not in TLS_OPTIONS + CLIENT_OPTIONS}
        arguments: dict = {
            "interface": self.scheme,
            "host": f"[{self.host}]" if ":" in self.host else self.host,
            "port": self.port or HTTP_PORTS[self.scheme],
            "username": self.username or ("" if "access_token" in secrets else "default"),
            "database": self.database or "__default__",
            "settings": settings,
        }
        if "password" in secrets:
            arguments["password"] = secrets["password"]
        if "access_token" in secrets:
            arguments["access_token"] = secrets["access_token"]
        for name in ("connect_timeout", "send_receive_timeout"):
            if name in self.options:
                arguments[name] = int(self.options[name])
        if "compress" in self.options:
            arguments["compress"] = self.options["compress"]
        if self.secure:
            arguments["verify"] = self.verify
            if self.options.get("ca_cert"):
                arguments["ca_cert"] = self.options["ca_cert"]
        return arguments


def parse_dsn(text: str) -> tuple[ClickHouseDsn, dict[str, str]]:
    """The DSN without its credentials, and the credentials (for the keyring)."""
    raw = (text or "").strip()
    if not raw:
        raise ConfigError("A ClickHouse DSN is required, e.g. https://reader@host:8443/posthog.")
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme in NATIVE_SCHEMES:
        raise ConfigError(
            f'"{scheme}://" is ClickHouse\'s native protocol; bqtui speaks its HTTP interface. '
            "Use http://host:8123/database, or https://host:8443/database with TLS."
        )
    if scheme == "chdb":
        return _parse_embedded(parts), {}
    if scheme not in HTTP_PORTS:
        shown = scheme or raw.split("/")[0]
        raise ConfigError(
            f'Unknown ClickHouse DSN scheme "{shown}": use http://host:8123/database, '
            "https://host:8443/database, or chdb:///path for the embedded engine."
        )
    host, port = _host_and_port(parts, scheme)
    secrets, options = _secrets_and_options(parts)
    database = unquote(parts.path.strip("/")) or options.pop("database", "")
    if "/" in (database or ""):
        raise ConfigError(
            f'"{database}" is not a database name: the DSN\'s path is one database, e.g. '
            "https://host:8443/posthog."
        )
    if "ca_cert" in options and scheme != "https":
        raise ConfigError("ca_cert applies to https:// DSNs only (TLS).")
    dsn = ClickHouseDsn(
        scheme=scheme,
        host=host,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        database=database,
        options=options,
    )
    return dsn, secrets


def _host_and_port(parts: SplitResult, scheme: str) -> tuple[str, int | None]:
    try:
        port = parts.port
        host = parts.hostname
    except ValueError as error:
        raise ConfigError(f"The ClickHouse DSN's host or port is not valid: {error}.") from None
    if not host:
        raise ConfigError(
            "The ClickHouse DSN has no host, e.g. https://reader@clickhouse.example.com:8443/db."
        )
    _check_host(host)
    if port in NATIVE_PORTS:
        raise ConfigError(
            f"Port {port} is ClickHouse's native protocol; bqtui speaks its HTTP interface: "
            f"use port {HTTP_PORTS[scheme]} ({'TLS' if scheme == 'https' else 'plain'} HTTP)."
        )
    return host, port


def _secrets_and_options(parts: SplitResult) -> tuple[dict[str, str], dict[str, str]]:
    """The DSN's password and secret parameters (for the keyring), and its other parameters."""
    secrets: dict[str, str] = {}
    if parts.password is not None:
        secrets["password"] = unquote(parts.password)
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in SECRET_PARAMETERS:
            secrets[SECRET_PARAMETERS[name.lower()]] = value
        else:
            options[name] = value
    if "password" in secrets and "access_token" in secrets:
        raise ConfigError(
            "The ClickHouse DSN has both a password and an access token: give one of them "
            "(an access token authenticates without a user name or password)."
        )
    return secrets, options


def _parse_embedded(parts: SplitResult) -> ClickHouseDsn:
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    path = (parts.netloc + parts.path) if parts.netloc not in ("", "localhost") else parts.path
    return ClickHouseDsn(
        scheme="chdb", path=path, database=options.get("database"), options=options
    )


def _check_host(host: str) -> None:
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f'"{host}" is not a valid IPv6 address.') from None


def split_secrets(text: str) -> tuple[str, dict[str, str]]:
    """The DSN text to store (no credentials) and the credentials for the keyring."""
    dsn, secrets = parse_dsn(text)
    return dsn.text(), secrets


def redact_dsn(text: str) -> str:
    """A DSN as it may be shown: without credentials, whatever was stored."""
    try:
        return parse_dsn(text)[0].text()
    except ConfigError:
        parts = urlsplit(text)
        return f"{parts.scheme}://{parts.hostname or ''}…" if parts.scheme else "(invalid DSN)"
