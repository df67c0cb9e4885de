"""Which storage permissions the export's principal holds on its stage's bucket: Cloud
Storage's JSON API ``GET {BASE}/storage/v1/b/BUCKET/iam/testPermissions``, asked with the
export's own Google credentials.

The answer lists the asked permissions that are held (none listed: none held); a bucket that
does not exist is answered 404; 403 means the principal may not even ask (for example a token
whose scopes do not reach Cloud Storage).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

import requests
from google.auth import exceptions as auth_errors
from google.auth.credentials import Credentials
from google.auth.transport.requests import AuthorizedSession

from bqtui.destination.permissions import BUCKET_PERMISSIONS


class BucketCheckFailed(Exception):
    """Cloud Storage gave no usable answer (unreachable, 5xx, a refused token …)."""


class NoSuchBucket(BucketCheckFailed):
    """Cloud Storage answered 404: the bucket does not exist."""


@dataclass(frozen=True)
class BucketAccess:
    """The answer: the asked permissions that are held, or that asking was refused."""

    bucket: str
    granted: frozenset[str]
    refused: str = ""  # 403 on the call itself: Google's message (nothing is known)

    @property
    def may_ask(self) -> bool:
        return not self.refused


def bucket_permissions(
    credentials: Credentials,
    bucket: str,
    endpoint: str,
    permissions: Iterable[str] = BUCKET_PERMISSIONS,
    *,
    timeout: float = 30.0,
) -> BucketAccess:
    """Ask Cloud Storage at ``endpoint`` (its JSON API's base URL) which of ``permissions``
    the credentials' principal holds on ``bucket``.

    Raises ``NoSuchBucket`` (404) or ``BucketCheckFailed`` (any other failure)."""
    asked = list(permissions)
    url = (
        f"{endpoint.rstrip('/')}/storage/v1/b/{urllib.parse.quote(bucket, safe='')}"
        "/iam/testPermissions"
    )
    session = AuthorizedSession(credentials)
    try:
        response = session.get(url, params={"permissions": asked}, timeout=timeout)
    except auth_errors.GoogleAuthError as error:
        raise BucketCheckFailed(
            f"no access token for Cloud Storage ({_first_line(error)})"
        ) from None
    except requests.RequestException as error:
        raise BucketCheckFailed(
            f"could not reach Cloud Storage's JSON API at {endpoint} ({type(error).__name__}); "
            "check the network, or BQTUI_GCS_JSON_ENDPOINT if it is set"
        ) from None
    finally:
        session.close()
    if response.status_code == 404:
        raise NoSuchBucket(
            f"Cloud Storage has no bucket {bucket}: create it, or point the stage at an "
            "existing bucket (gs://BUCKET/PREFIX)."
        )
    if response.status_code == 403:
        return BucketAccess(bucket, frozenset(), _error_message(response) or "403 Forbidden")
    if response.status_code != 200:
        message = _error_message(response)
        raise BucketCheckFailed(
            f"Cloud Storage answered {response.status_code}" + (f": {message}" if message else "")
        )
    try:
        body = response.json()
    except ValueError:
        raise BucketCheckFailed("Cloud Storage's answer was not JSON") from None
    held = body.get("permissions") if isinstance(body, dict) else None
    granted = frozenset(p for p in held or () if isinstance(p, str) and p in asked)
    return BucketAccess(bucket, granted)


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or "")[:200]
    return ""


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
