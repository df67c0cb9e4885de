"""Checking AWS Signature Version 4 the way Cloud Storage's XML API does with HMAC keys.

Written from the AWS specification with the standard library only, independently of the
product's signer (botocore): ClickHouse's AWS SDK and bqtui both have to satisfy it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

ALGORITHM = "AWS4-HMAC-SHA256"
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class Verdict:
    """The outcome: ``code`` None when the signature holds, else the XML API's error code."""

    access_id: str | None
    code: str | None = None


def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_of: Callable[[str], str | None],
) -> Verdict:
    """Check a request's ``Authorization`` header; ``headers`` keys in lower case."""
    match = _AUTHORIZATION.match(headers.get("authorization", "").strip())
    if not match:
        return Verdict(None, "AccessDenied")
    access_id, _, scope = match["credential"].partition("/")
    secret = secret_of(access_id)
    if secret is None:
        return Verdict(access_id, "InvalidAccessKeyId")
    payload_hash = headers.get("x-amz-content-sha256", "")
    if payload_hash != UNSIGNED_PAYLOAD and payload_hash != hashlib.sha256(body).hexdigest():
        return Verdict(access_id, "XAmzContentSHA256Mismatch")
    signed_names = match["signed"].split(";")
    canonical = "\n".join(
        [
            method,
            raw_path,
            canonical_query(raw_query),
            "".join(f"{name}:{_trimmed(headers.get(name, ''))}\n" for name in signed_names),
            match["signed"],
            payload_hash,
        ]
    )
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            headers.get("x-amz-date", ""),
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    expected = hmac.new(signing_key(secret, scope), string_to_sign.encode(), "sha256")
    if not hmac.compare_digest(expected.hexdigest(), match["signature"]):
        return Verdict(access_id, "SignatureDoesNotMatch")
    return Verdict(access_id)


def canonical_query(raw_query: str) -> str:
    """Parameters decoded, re-encoded the AWS way and sorted by name, then value."""
    pairs = urllib.parse.parse_qsl(raw_query, keep_blank_values=True)
    encoded = sorted((_aws_quote(name), _aws_quote(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def signing_key(secret: str, scope: str) -> bytes:
    """The key derived from the secret for ``DATE/REGION/SERVICE/aws4_request``."""
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), "sha256").digest()
    return key


def _aws_quote(text: str) -> str:
    return urllib.parse.quote(text, safe="-_.~")


def _trimmed(value: str) -> str:
    return " ".join(value.split())
