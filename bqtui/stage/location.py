"""A stage location, gs://BUCKET/PREFIX, and the folders of one export's attempts in it.

An attempt writes under ``PREFIX/<export uid>/<window label>/attempt_<n>/``. The window label
is the UTC start of the window (for a group of windows, of its first window), rendered so
that it is safe in object names, URLs and SQL literals: ``20261205T1500Z``, with seconds
(``20261205T150030Z``) only when the start has them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from bqtui.core.errors import ConfigError
from bqtui.stage.endpoints import xml_api_base

EXAMPLE = "gs://my-bucket/bqtui-stage"
# ClickHouse's s3() reads these as globs or partition patterns, BigQuery's URIs as wildcards.
WILDCARDS = frozenset("*?[]{}")
BUCKET_CHARS = re.compile(r"^[a-z0-9_.-]+$")
# Folder names stay plain so they pass unquoted through URLs and SQL string literals.
FOLDER_NAME = re.compile(r"^[A-Za-z0-9_.=-]+$")
MAX_PREFIX_CHARS = 512  # object names are at most 1024 bytes; leave room for what bqtui adds
EXPORT_UID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PARQUET_WILDCARD = "*.parquet"


def _shown(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text)} characters)"


@dataclass(frozen=True)
class StageLocation:
    """A bucket and an optional prefix (folder names joined by "/", no slash at either end)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> StageLocation:
        """``gs://BUCKET[/PREFIX][/]`` as typed by a user, or a ``ConfigError`` saying what
        to type instead."""
        uri = (text or "").strip()
        scheme, separator, rest = uri.partition("://")
        if not separator or scheme.lower() != "gs":
            raise ConfigError(
                f"The stage must be a Cloud Storage location like {EXAMPLE}; "
                f"got {_shown(uri) or 'nothing'}."
            )
        found = sorted(WILDCARDS.intersection(uri))
        if found:
            raise ConfigError(
                f"The stage names one folder and takes no wildcards ({' '.join(found)}); "
                f"type its location like {EXAMPLE}, not {_shown(uri)}."
            )
        bucket, _, prefix = rest.partition("/")
        _check_bucket(bucket)
        return cls(bucket, _checked_prefix(uri, prefix.rstrip("/")))

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}" if self.prefix else f"gs://{self.bucket}"

    def __str__(self) -> str:
        return self.uri

    def export_prefix(self, export_uid: str) -> str:
        """The object-name prefix holding every attempt of one export (ends with "/")."""
        if not EXPORT_UID.match(export_uid or ""):
            raise ValueError(f"not an export uid: {export_uid!r}")
        return _joined(self.prefix, export_uid) + "/"

    def window_prefix(self, export_uid: str, window_start: datetime) -> str:
        """The folder of every attempt at one window (ends with "/")."""
        return f"{self.export_prefix(export_uid)}{window_label(window_start)}/"

    def attempt(self, export_uid: str, window_start: datetime, number: int) -> StageAttempt:
        """The folder of attempt ``number`` (1, 2, …) at the window (or group) starting at
        ``window_start``."""
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ValueError(f"attempt numbers start at 1, got {number!r}")
        prefix = f"{self.window_prefix(export_uid, window_start)}attempt_{number}/"
        return StageAttempt(self.bucket, prefix)


@dataclass(frozen=True)
class StageAttempt:
    """One attempt's folder: ClickHouse writes its parts there, BigQuery loads them."""

    bucket: str
    # The object-name prefix, ``PREFIX/<export uid>/<window label>/attempt_<n>/``.
    prefix: str

    @property
    def uri(self) -> str:
        """``gs://BUCKET/…/attempt_<n>/``."""
        return f"gs://{self.bucket}/{self.prefix}"

    @property
    def load_uri(self) -> str:
        """The wildcard URI BigQuery loads: every Parquet part of this attempt, nothing else."""
        return self.uri + PARQUET_WILDCARD

    def write_url(self, endpoint: str | None = None) -> str:
        """The attempt's folder on the XML API (path-style ``BASE/BUCKET/…/attempt_<n>/``), at
        ``endpoint`` or else ``$BQTUI_GCS_ENDPOINT`` (default Google's)."""
        base = (endpoint or xml_api_base()).rstrip("/")
        return f"{base}/{self.bucket}/{self.prefix}"


def window_label(window_start: datetime) -> str:
    """``20261205T1500Z``: the window's UTC start, safe in object names, URLs and SQL."""
    if window_start.tzinfo is None:
        raise ValueError("window starts must be timezone-aware (UTC)")
    start = window_start.astimezone(UTC)
    if start.microsecond:
        return start.strftime("%Y%m%dT%H%M%S%fZ")
    return start.strftime("%Y%m%dT%H%M%SZ" if start.second else "%Y%m%dT%H%MZ")


LABEL_FORMATS = ("%Y%m%dT%H%MZ", "%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S%fZ")


def window_of_label(label: str) -> datetime | None:
    """The window start a folder's label names (None: not a label bqtui writes)."""
    for layout in LABEL_FORMATS:
        try:
            return datetime.strptime(label, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _joined(*parts: str) -> str:
    return "/".join(part for part in parts if part)


def _check_bucket(bucket: str) -> None:
    if not bucket:
        raise ConfigError(f"The stage names no bucket; type gs://BUCKET/PREFIX, e.g. {EXAMPLE}.")
    problem = _bucket_problem(bucket)
    if problem:
        raise ConfigError(
            f'"{_shown(bucket)}" is not a Cloud Storage bucket name ({problem}); '
            f"type e.g. {EXAMPLE}."
        )


def _bucket_problem(bucket: str) -> str | None:
    """Why Cloud Storage would refuse this bucket name, or None."""
    if not BUCKET_CHARS.match(bucket):
        return "use lowercase letters, digits, '-', '_' and '.'"
    if not (bucket[0].isalnum() and bucket[-1].isalnum()):
        return "start and end it with a letter or digit"
    components = bucket.split(".")
    longest = 222 if len(components) > 1 else 63
    if not 3 <= len(bucket) <= longest:
        return "use 3-63 characters, or up to 222 with dots"
    if any(not 1 <= len(component) <= 63 for component in components):
        return "keep each dot-separated part 1-63 characters long"
    if _is_ip_address(bucket):
        return "it may not be an IP address"
    if bucket.startswith("goog") or "google" in bucket or "g00gle" in bucket:
        return 'it may not start with "goog" or contain "google"'
    return None


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _checked_prefix(uri: str, prefix: str) -> str:
    if not prefix:
        return ""
    if len(prefix) > MAX_PREFIX_CHARS:
        raise ConfigError(
            f"The stage's folder is {len(prefix)} characters long; use at most "
            f"{MAX_PREFIX_CHARS}, e.g. {EXAMPLE}."
        )
    names = prefix.split("/")
    if "" in names:
        raise ConfigError(
            f"The stage {_shown(uri)} has an empty folder name (//); type e.g. {EXAMPLE}."
        )
    if not all(FOLDER_NAME.match(name) and name not in (".", "..") for name in names):
        raise ConfigError(
            "The stage's folder names may use only letters, digits, '-', '_', '.' and '=' "
            f"(not '.' or '..' alone); got {_shown(uri)}, type e.g. {EXAMPLE}."
        )
    return prefix
