"""A small client of Cloud Storage's XML API for one bucket: list, delete, and "may this key
write here", signed with the export's HMAC key.

Every refusal becomes a ``StageError`` whose message names the bucket and the fix (see
``bqtui.stage.errors``); the secret is in no message and no log.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import urllib3

from bqtui.stage.endpoints import xml_api_base
from bqtui.stage.errors import Action, Refusal, StageError, error_for, unreachable
from bqtui.stage.hmac_key import HmacKey
from bqtui.stage.signing import signed_headers

# Multi-object delete takes at most this many keys per request.
DELETE_BATCH = 1000
PROBE_NAME = ".bqtui-write-check-"
_PROBE_BODY = b"bqtui checks that its HMAC key may write here; this object is deleted at once.\n"


@dataclass(frozen=True)
class StoredObject:
    """An object as the listing shows it."""

    name: str
    size: int


class StageClient:
    """Cloud Storage's XML API for ``bucket`` at ``endpoint`` (default: ``$BQTUI_GCS_ENDPOINT``,
    else Google's), signed with ``key``."""

    def __init__(
        self,
        bucket: str,
        key: HmacKey,
        *,
        endpoint: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.bucket = bucket
        self.endpoint = (endpoint or xml_api_base()).rstrip("/")
        self._key = key
        self._http = urllib3.PoolManager(
            retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout)
        )
        # Cloud Storage answered NotImplemented to a multi-object delete (older API versions).
        self._multi_delete = True

    def __repr__(self) -> str:
        return f"StageClient(bucket={self.bucket!r}, endpoint={self.endpoint!r}, key={self._key!r})"

    # -- listing ---------------------------------------------------------------------

    def list_objects(self, prefix: str) -> list[StoredObject]:
        """Every object whose name starts with ``prefix``, by name (ListObjectsV2, all pages)."""
        return list(self.iter_objects(prefix))

    def iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            root = self._xml(self._request("GET", "", query, action=Action.LIST), Action.LIST)
            for contents in _children(root, "Contents"):
                name = _text(contents, "Key")
                yield StoredObject(name, int(_text(contents, "Size") or 0))
            token = _text(root, "NextContinuationToken")
            if _text(root, "IsTruncated").lower() != "true" or not token:
                return

    # -- deleting --------------------------------------------------------------------

    def delete_object(self, name: str) -> None:
        """Delete one object; one that is already gone is fine."""
        self._request("DELETE", name, action=Action.DELETE, missing_ok=True)

    def delete_objects(self, names: Iterable[str]) -> int:
        """Delete these objects (multi-object delete, or one by one where Cloud Storage does
        not offer it); return how many were asked for."""
        pending = list(names)
        for start in range(0, len(pending), DELETE_BATCH):
            batch = pending[start : start + DELETE_BATCH]
            if not (self._multi_delete and self._delete_batch(batch)):
                for name in batch:
                    self.delete_object(name)
        return len(pending)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; return how many there were."""
        if not prefix:
            raise ValueError("refusing to delete a whole bucket: give a prefix")
        return self.delete_objects(stored.name for stored in self.list_objects(prefix))

    def _delete_batch(self, names: list[str]) -> bool:
        """POST ?delete; False when Cloud Storage does not implement it."""
        body = _delete_request_body(names)
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        try:
            answer = self._request(
                "POST",
                "",
                {"delete": ""},
                body=body,
                headers={"Content-MD5": md5, "Content-Type": "application/xml"},
                action=Action.DELETE,
                fallback_ok=True,
            )
        except _NotImplementedHere:
            self._multi_delete = False
            return False
        for error in _children(self._xml(answer, Action.DELETE), "Error"):
            if _text(error, "Code") != "NoSuchKey":
                refusal = Refusal(403, _text(error, "Code"), _text(error, "Message"))
                raise self._error(refusal, Action.DELETE)
        return True

    # -- reading and writing objects -------------------------------------------------

    def put_file(self, name: str, path: Path) -> None:
        """Upload a local file as one object (one PUT: Cloud Storage takes up to 5 TiB so;
        only files the host encoded itself go up this way)."""
        self._request("PUT", name, body=path.read_bytes(), action=Action.WRITE)

    def read_range(self, name: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (inclusive) of an object."""
        return self._request(
            "GET", name, headers={"Range": f"bytes={start}-{end}"}, action=Action.READ
        )

    # -- the write check -------------------------------------------------------------

    def check_can_write(self, prefix: str) -> None:
        """Write a tiny object under ``prefix`` and delete it again, or raise the
        ``StageError`` that says what to fix (wrong secret, no bucket, no permission)."""
        name = f"{prefix}{PROBE_NAME}{uuid.uuid4().hex}"
        self._request("PUT", name, body=_PROBE_BODY, action=Action.WRITE)
        self.delete_object(name)

    # -- the wire --------------------------------------------------------------------

    def _request(
        self,
        method: str,
        name: str,
        query: dict[str, str] | None = None,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        action: Action,
        missing_ok: bool = False,
        fallback_ok: bool = False,
    ) -> bytes:
        url = self._url(name, query or {})
        signed = signed_headers(self._key, method, url, body, headers)
        try:
            response = self._http.request(method, url, body=body, headers=signed)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise unreachable(self.endpoint, self.bucket, _reason(exc)) from None
        if response.status < 300 or (missing_ok and response.status == 404):
            return response.data
        refusal = _refusal(response.status, response.data)
        if fallback_ok and refusal.code == "NotImplemented":
            raise _NotImplementedHere
        if missing_ok and refusal.code == "NoSuchKey":
            return b""
        raise self._error(refusal, action)

    def _url(self, name: str, query: dict[str, str]) -> str:
        path = urllib.parse.quote(f"/{self.bucket}/{name}", safe="/-_.~")
        if not query:
            return self.endpoint + path
        encoded = "&".join(
            f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
            for k, v in sorted(query.items())
        )
        return f"{self.endpoint}{path}?{encoded}"

    def _xml(self, body: bytes, action: Action) -> ElementTree.Element:
        try:
            return ElementTree.fromstring(body)
        except ElementTree.ParseError:
            raise self._error(Refusal(200, "", "its answer was not XML"), action) from None

    def _error(self, refusal: Refusal, action: Action) -> StageError:
        return error_for(refusal, bucket=self.bucket, access_id=self._key.access_id, action=action)


class _NotImplementedHere(Exception):
    """Cloud Storage does not implement the request (multi-object delete, until 2026)."""


def _delete_request_body(names: list[str]) -> bytes:
    root = ElementTree.Element("Delete")
    ElementTree.SubElement(root, "Quiet").text = "true"
    for name in names:
        ElementTree.SubElement(ElementTree.SubElement(root, "Object"), "Key").text = name
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _refusal(status: int, body: bytes) -> Refusal:
    try:
        root = ElementTree.fromstring(body) if body else None
    except ElementTree.ParseError:
        root = None
    if root is None:  # HEAD answers and proxies' pages carry no XML error
        return Refusal(status, "")
    return Refusal(status, _text(root, "Code"), _text(root, "Message"))


def _local(tag: str) -> str:
    """A tag without its namespace (Cloud Storage and S3 use different ones)."""
    return tag.rsplit("}", 1)[-1]


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if _local(child.tag) == name]


def _text(element: ElementTree.Element, name: str) -> str:
    found = _children(element, name)
    return (found[0].text or "") if found else ""


def _reason(exc: BaseException) -> str:
    # Checked in this order: urllib3 derives NewConnectionError from ConnectTimeoutError.
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return "unknown host"
    if isinstance(exc, urllib3.exceptions.NewConnectionError | ConnectionError):
        return "connection failed"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS failed"
    return "connection failed"
