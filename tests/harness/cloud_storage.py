"""Cloud Storage's XML API, offline: objects as files under ``ROOT/BUCKET/OBJECT``.

Point ClickHouse's ``s3()`` and bqtui (``BQTUI_GCS_ENDPOINT``) at ``url``; give the BigQuery
emulator the same root as ``BQEMU_GCS_LOCAL_ROOT`` and it loads ``gs://BUCKET/…`` from what
was written. Requests must carry a valid AWS Signature V4 of a registered HMAC key, as at
Google: a wrong secret is answered 403 SignatureDoesNotMatch, an unknown access ID 403
InvalidAccessKeyId. Served: PUT, GET (with Range), HEAD, DELETE, ListObjectsV2, multipart
upload and multi-object delete (POST ?delete).
"""

from __future__ import annotations

import hashlib
import threading
import urllib.parse
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.harness import sigv4

CREATE, GET, LIST, DELETE = (
    f"storage.objects.{verb}" for verb in ("create", "get", "list", "delete")
)
_MESSAGES = {
    "SignatureDoesNotMatch": "The request signature we calculated does not match the signature "
    "you provided. Check your Google secret key and signing method.",
    "InvalidAccessKeyId": "The Google Cloud Storage access key Id you provided does not exist "
    "in our records.",
    "AccessDenied": "Access denied.",
    "NoSuchBucket": "The specified bucket does not exist.",
    "NoSuchKey": "The specified key does not exist.",
    "NoSuchUpload": "The requested upload was not found.",
    "InvalidRange": "The requested range cannot be satisfied.",
    "XAmzContentSHA256Mismatch": "The provided 'x-amz-content-sha256' header does not match.",
}


@dataclass(frozen=True)
class StorageCall:
    """One request as tests see it: ``path`` is ``/BUCKET/OBJECT`` decoded."""

    method: str
    path: str
    query: dict[str, str]
    access_id: str | None
    status: int
    code: str | None = None  # the XML error code of a refusal


class _Refused(Exception):
    def __init__(self, status: int, code: str, details: str = "") -> None:
        super().__init__(code)
        self.status, self.code, self.details = status, code, details


class CloudStorage:
    """A threaded XML API server on 127.0.0.1 storing objects under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.page_size = 1000  # ListObjectsV2's max-keys when the client gives none
        # Cloud Storage answered POST ?delete with NotImplemented until 2026: play that with False.
        self.multi_object_delete = True
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        self._denied: dict[str, set[str]] = {}
        self._uploads: dict[str, dict[int, bytes]] = {}
        # Writes under a prefix after the first N are held until released (a writer "during"
        # its INSERT, for kill tests): (prefix, writes let through, the release).
        self._hold: tuple[str, int, threading.Event] | None = None
        self._calls: list[StorageCall] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.storage = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-cloud-storage", daemon=True
        )

    @property
    def url(self) -> str:
        """The XML API's base URL (``BQTUI_GCS_ENDPOINT``)."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> CloudStorage:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> CloudStorage:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what tests arrange and read -------------------------------------------------

    def add_bucket(self, bucket: str) -> Path:
        folder = self.root / bucket
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def register_key(self, access_id: str, secret: str) -> None:
        with self._lock:
            self._secrets[access_id] = secret

    def deny(self, access_id: str, *permissions: str) -> None:
        """Refuse the key's calls that need these permissions (403 AccessDenied)."""
        with self._lock:
            self._denied.setdefault(access_id, set()).update(permissions)

    def deny_writes(self, access_id: str) -> None:
        self.deny(access_id, CREATE)

    def hold_writes(self, prefix: str, after: int) -> threading.Event:
        """Let ``after`` object writes under ``prefix`` through, then hold every later one
        until the returned event is set (``reset`` sets it)."""
        release = threading.Event()
        with self._lock:
            self._hold = (prefix, after, release)
        return release

    def _wait_if_held(self, name: str) -> None:
        with self._lock:
            hold = self._hold
            if hold is None or not name.startswith(hold[0]):
                return
            prefix, after, release = hold
            if after > 0:
                self._hold = (prefix, after - 1, release)
                return
        release.wait(timeout=120)

    def reset(self) -> None:
        """Forget keys, denials, uploads in progress, calls and settings (objects stay)."""
        self.page_size, self.multi_object_delete = 1000, True
        with self._lock:
            hold, self._hold = self._hold, None
        if hold is not None:
            hold[2].set()
        with self._lock:
            self._secrets.clear()
            self._denied.clear()
            self._uploads.clear()
            self._calls.clear()

    @property
    def calls(self) -> list[StorageCall]:
        with self._lock:
            return list(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def objects(self, bucket: str, prefix: str = "") -> list[str]:
        """The names of the bucket's objects that start with ``prefix``, sorted."""
        folder = self.root / bucket
        # Walk only the folder that holds the prefix (as Cloud Storage lists by prefix).
        top = folder / prefix.rsplit("/", 1)[0] if "/" in prefix else folder
        if not top.is_dir():
            return []
        names = (p.relative_to(folder).as_posix() for p in top.rglob("*") if p.is_file())
        # Objects being written are hidden files ".NAME.<hex>.partial" beside their target.
        return sorted(n for n in names if n.startswith(prefix) and not n.endswith(".partial"))

    # -- serving ---------------------------------------------------------------------

    def answer(self, handler: _Handler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        split = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        bucket, _, name = urllib.parse.unquote(split.path).lstrip("/").partition("/")
        headers = {key.lower(): value for key, value in handler.headers.items()}
        with self._lock:
            secrets = dict(self._secrets)
        verdict = sigv4.verify(handler.command, split.path, split.query, headers, body, secrets.get)
        try:
            if verdict.code is not None:
                raise _Refused(400 if "SHA256" in verdict.code else 403, verdict.code)
            status, reply_headers, reply = self._serve(
                handler.command, bucket, name, query, headers, body, verdict.access_id or ""
            )
            code = None
        except _Refused as refused:
            status, code, reply_headers = refused.status, refused.code, {}
            reply = _error_xml(refused.code, refused.details)
        call = StorageCall(
            handler.command, f"/{bucket}/{name}", query, verdict.access_id, status, code
        )
        with self._lock:
            self._calls.append(call)
        return status, reply_headers, reply

    def _serve(self, method, bucket, name, query, headers, body, access_id):
        if not bucket or not (self.root / bucket).is_dir():
            raise _Refused(404, "NoSuchBucket")
        if not name:
            if method == "GET":
                self._check(access_id, LIST)
                return 200, {}, self._list(bucket, query)
            if method == "POST" and "delete" in query:
                if not self.multi_object_delete:
                    raise _Refused(501, "NotImplemented", "POST ?delete is not implemented.")
                self._check(access_id, DELETE)
                return 200, {}, self._delete_many(bucket, body)
            raise _Refused(405, "MethodNotAllowed")
        path = self._object_path(bucket, name)
        if method in ("GET", "HEAD"):
            self._check(access_id, GET)
            return _read(path, headers.get("range"), method == "HEAD")
        if method == "DELETE":
            self._check(access_id, DELETE)
            if "uploadId" in query:
                with self._lock:
                    self._uploads.pop(query["uploadId"], None)
            elif path.is_file():
                path.unlink()
            return 204, {}, b""
        self._check(access_id, CREATE)
        if method == "PUT":
            self._wait_if_held(name)
        if method == "PUT" and "uploadId" in query:
            return self._put_part(query, body)
        if method == "PUT":
            return 200, {"ETag": _write(path, body)}, b""
        if method == "POST" and "uploads" in query:
            return 200, {}, self._initiate(bucket, name)
        if method == "POST" and "uploadId" in query:
            return self._complete(bucket, name, path, query["uploadId"], body)
        raise _Refused(405, "MethodNotAllowed")

    def _check(self, access_id: str, permission: str) -> None:
        with self._lock:
            denied = permission in self._denied.get(access_id, ())
        if denied:
            details = f"{access_id} does not have {permission} access to the object."
            raise _Refused(403, "AccessDenied", details)

    def _object_path(self, bucket: str, name: str) -> Path:
        path = (self.root / bucket / name).resolve()
        if not path.is_relative_to((self.root / bucket).resolve()):
            raise _Refused(400, "InvalidArgument", "Object names may not leave the bucket.")
        return path

    def _list(self, bucket: str, query: dict[str, str]) -> bytes:
        names = self.objects(bucket, query.get("prefix", ""))
        after = query.get("continuation-token") or query.get("start-after") or ""
        names = [name for name in names if name > after]
        page = names[: int(query.get("max-keys") or self.page_size)]
        root = _element("ListBucketResult", Name=bucket, Prefix=query.get("prefix", ""))
        _add(root, KeyCount=len(page), IsTruncated=str(len(page) < len(names)).lower())
        if len(page) < len(names):
            _add(root, NextContinuationToken=page[-1])
        for name in page:
            stat = (self.root / bucket / name).stat()
            _add(ElementTree.SubElement(root, "Contents"), Key=name, Size=stat.st_size)
        return _xml(root)

    def _delete_many(self, bucket: str, body: bytes) -> bytes:
        request = ElementTree.fromstring(body)
        quiet = (_find_text(request, "Quiet") or "").lower() == "true"
        result = _element("DeleteResult")
        for item in (child for child in request if _local(child.tag) == "Object"):
            name = _find_text(item, "Key") or ""
            self._object_path(bucket, name).unlink(missing_ok=True)
            if not quiet:
                _add(ElementTree.SubElement(result, "Deleted"), Key=name)
        return _xml(result)

    def _initiate(self, bucket: str, name: str) -> bytes:
        upload_id = uuid.uuid4().hex
        with self._lock:
            self._uploads[upload_id] = {}
        result = _element("InitiateMultipartUploadResult", Bucket=bucket, Key=name)
        _add(result, UploadId=upload_id)
        return _xml(result)

    def _put_part(self, query: dict[str, str], body: bytes):
        with self._lock:
            parts = self._uploads.get(query["uploadId"])
            if parts is None:
                raise _Refused(404, "NoSuchUpload")
            parts[int(query.get("partNumber", "0"))] = body
        return 200, {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}, b""

    def _complete(self, bucket: str, name: str, path: Path, upload_id: str, body: bytes):
        with self._lock:
            parts = self._uploads.pop(upload_id, None)
        if parts is None:
            raise _Refused(404, "NoSuchUpload")
        listed = [int(_find_text(p, "PartNumber") or 0) for p in ElementTree.fromstring(body)]
        etag = _write(path, b"".join(parts[number] for number in sorted(listed)))
        result = _element("CompleteMultipartUploadResult", Bucket=bucket, Key=name, ETag=etag)
        return 200, {}, _xml(result)


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    partial.write_bytes(data)
    partial.replace(path)  # readers (the emulator) never see half an object
    return f'"{hashlib.md5(data).hexdigest()}"'


def _read(path: Path, range_header: str | None, head: bool):
    if not path.is_file():
        raise _Refused(404, "NoSuchKey")
    data = path.read_bytes()
    headers = {"ETag": f'"{hashlib.md5(data).hexdigest()}"', "Accept-Ranges": "bytes"}
    headers["Content-Type"] = "application/octet-stream"
    status = 200
    if range_header and range_header.startswith("bytes="):
        first, _, last = range_header.removeprefix("bytes=").partition("-")
        start = len(data) - int(last) if not first else int(first)
        end = len(data) - 1 if not first or not last else min(int(last), len(data) - 1)
        if start >= len(data) or start < 0:
            raise _Refused(416, "InvalidRange")
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        data, status = data[start : end + 1], 206
    headers["Content-Length"] = str(len(data))
    return status, headers, b"" if head else data


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find_text(element: ElementTree.Element, name: str) -> str | None:
    return next((child.text for child in element if _local(child.tag) == name), None)


def _element(tag: str, **children: object) -> ElementTree.Element:
    root = ElementTree.Element(tag, xmlns="http://doc.s3.amazonaws.com/2006-03-01")
    _add(root, **children)
    return root


def _add(parent: ElementTree.Element, **children: object) -> None:
    for tag, text in children.items():
        ElementTree.SubElement(parent, tag).text = str(text)


def _xml(root: ElementTree.Element) -> bytes:
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _error_xml(code: str, details: str) -> bytes:
    root = ElementTree.Element("Error")
    _add(root, Code=code, Message=_MESSAGES.get(code, code))
    if details:
        _add(root, Details=details)
    return _xml(root)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # http.server sends a response's headers and body apart: with Nagle's algorithm the body
    # would wait for the client's delayed ACK (40 ms a request), which Cloud Storage never costs.
    disable_nagle_algorithm = True

    def _any(self) -> None:
        storage: CloudStorage = self.server.storage  # type: ignore[attr-defined]
        status, headers, body = storage.answer(self, self._body())
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        if body and "Content-Type" not in headers:
            self.send_header("Content-Type", "application/xml")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr lines."""
