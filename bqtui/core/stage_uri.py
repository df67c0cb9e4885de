"""The Cloud Storage stage of an export as the user types it: gs://BUCKET/PREFIX, and the
HMAC key's access ID. A minimal check until bqtui.stage's parser takes this over."""

import ipaddress
import re

from bqtui.core.errors import ConfigError

EXAMPLE = "gs://my-bucket/bqtui-stage"
# Bucket names as Cloud Storage allows them (the dotted, domain-named form aside).
BUCKET = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$")
# ClickHouse's s3() reads these as globs or partition patterns: a stage names one folder.
WILDCARDS = frozenset("*?[]{}")
# Folder names stay plain so they pass unquoted through URLs and SQL string literals.
PREFIX_FOLDER = re.compile(r"^[A-Za-z0-9_.=-]+$")
MAX_PREFIX_CHARS = 512  # object names are at most 1024 bytes; leave room for what bqtui adds
# Cloud Storage's HMAC access IDs are letters and digits (GOOG1E…); test servers may add - _ .
HMAC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _shown(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text)} characters)"


def parse_stage_uri(text: str) -> str:
    """``text`` as gs://BUCKET[/PREFIX] without a trailing slash, or a ``ConfigError``."""
    uri = (text or "").strip()
    scheme, separator, rest = uri.partition("://")
    if not separator or scheme.lower() != "gs":
        raise ConfigError(
            f"--stage must be a Cloud Storage URI like {EXAMPLE}; got {_shown(uri) or 'nothing'}."
        )
    found = sorted(WILDCARDS.intersection(uri))
    if found:
        raise ConfigError(
            f"--stage names one folder and takes no wildcards ({' '.join(found)}); got "
            f"{_shown(uri)}, type e.g. {EXAMPLE}."
        )
    bucket, _, prefix = rest.partition("/")
    if not BUCKET.match(bucket) or ".." in bucket:
        raise ConfigError(
            f'--stage names the bucket "{_shown(bucket)}", which is not a Cloud Storage bucket '
            "name: use 3-63 lowercase letters, digits, '-', '_' or '.', starting and ending "
            f"with a letter or digit, e.g. {EXAMPLE}."
        )
    if _reserved_bucket(bucket):
        raise ConfigError(
            f'--stage names the bucket "{bucket}", a name Cloud Storage reserves (an IP '
            'address, or "goog…" or "google" in it); type your own bucket, e.g. '
            f"{EXAMPLE}."
        )
    prefix = prefix.rstrip("/")
    if len(prefix) > MAX_PREFIX_CHARS:
        raise ConfigError(
            f"--stage's folder is {len(prefix)} characters long; use at most "
            f"{MAX_PREFIX_CHARS}, e.g. {EXAMPLE}."
        )
    if prefix and not all(_plain_folder(part) for part in prefix.split("/")):
        raise ConfigError(
            "--stage's folder names may use only letters, digits, '-', '_', '.' and '=' "
            f"(no empty, '.' or '..' names); got {_shown(uri)}, type e.g. {EXAMPLE}."
        )
    return f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"


def _reserved_bucket(bucket: str) -> bool:
    try:
        ipaddress.ip_address(bucket)
    except ValueError:
        return bucket.startswith("goog") or "google" in bucket or "g00gle" in bucket
    return True


def _plain_folder(name: str) -> bool:
    return bool(PREFIX_FOLDER.match(name)) and name not in (".", "..")


def parse_hmac_id(text: str) -> str:
    """An HMAC key's access ID (not a secret: it names the key), or a ``ConfigError``."""
    access_id = (text or "").strip()
    if not HMAC_ID.match(access_id):
        # Not echoed: a secret pasted into the wrong flag must not reach a terminal or log.
        raise ConfigError(
            "--stage-hmac-id must be an HMAC key's access ID, letters and digits like "
            "GOOG1EABCDEF (Cloud Storage > Settings > Interoperability); what was given is not "
            "one (not shown, in case it is the secret)."
        )
    return access_id
