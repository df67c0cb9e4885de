"""BigQuery's front door, played in front of the emulator.

bqemulator answers BigQuery's REST API but has no IAM, no projects, forgets some fields
and accepts duplicate job IDs. This proxy sits between the client and the emulator and
plays what BigQuery does there:

* authentication: ``Authorization: Bearer`` tokens issued by the token server;
* authorization: each call needs the permission BigQuery checks, granted per project or
  per dataset, and is refused with BigQuery's 403 body otherwise. A job whose execution
  would be denied (e.g. a query reading a table without ``tables.getData``) is refused
  at ``jobs.insert`` with 403, which is what BigQuery does for queries; for loads BigQuery
  may instead fail the job, which a client sees as the same ``Forbidden``;
* ``tables.testIamPermissions``, projects that do not exist, dataset locations, 409 for a
  reused job ID, and the caller's job IDs on upload (load) jobs;
* fault injection (HTTP errors, dropped connections) and a record of every call;
* what query jobs cost: ``statistics`` with bytes processed, billed and slot time from a
  deterministic model (``tests.harness.job_statistics``), dry-run estimates, a project on a
  reservation, and ``maximumBytesBilled`` (an over-limit job fails before it runs).
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness import roles
from tests.harness.job_statistics import (
    JobCostModel,
    JobStatistics,
    QueryJobRecord,
    StatsOverride,
    exceeded_limit,
    limit_exceeded_message,
    query_job_record,
    refused_job_resource,
    with_override,
    with_statistics,
)
from tests.harness.permissions import Grants, Need, job_needs, query_needs
from tests.harness.token_server import TokenServer

_GOOGLE_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "BAD_GATEWAY",
    503: "UNAVAILABLE",
}
_BIGQUERY_SCOPES = {
    "https://www.googleapis.com/auth/bigquery",
    "https://www.googleapis.com/auth/cloud-platform",
}
_HOP_BY_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
_EMULATOR_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class HttpFault:
    """An error answer in Google's shape, sent instead of forwarding the call."""

    status: int
    reason: str
    message: str


BACKEND_ERROR = HttpFault(
    503, "backendError", "Error encountered during execution. Retrying may solve the problem."
)
RATE_LIMIT_EXCEEDED = HttpFault(
    429,
    "rateLimitExceeded",
    "Exceeded rate limits: too many api requests per user per method for this user_method. "
    "For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas",
)
QUOTA_EXCEEDED = HttpFault(
    403,
    "quotaExceeded",
    "Quota exceeded: Your project exceeded quota for imports per project. "
    "For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas",
)
INTERNAL_ERROR = HttpFault(
    500,
    "internalError",
    "An internal error occurred and the request could not be completed. This is usually "
    "caused by a transient issue. Retrying the job with back-off as described in the "
    "BigQuery SLA should solve the problem: https://cloud.google.com/bigquery/sla.",
)
# Close the connection without forwarding the call.
DROP_BEFORE = "drop_before"
# Forward the call, so it takes effect, then close the connection without answering.
DROP_AFTER = "drop_after"

Fault = HttpFault | str


@dataclass(frozen=True)
class JobFailure:
    """A job that BigQuery accepted and then failed: ``jobs.get`` shows it DONE with this
    ``errorResult`` (the emulator ran it; the caller must act as if it had not)."""

    reason: str
    message: str


JOB_BACKEND_ERROR = JobFailure(
    "backendError", "Error encountered during execution. Retrying may solve the problem."
)


@dataclass
class RecordedCall:
    """One request the proxy received, as tests see it."""

    method: str
    path: str
    query: dict[str, str]
    # BigQuery's name for the call (``tables.insert``, ``jobs.insert``, ...), None if unknown.
    operation: str | None
    account: str | None = None
    # The JSON body; for a multipart upload, its JSON part (the job resource).
    json: Any = None
    # What the client was answered; for DROP_AFTER, what the emulator answered.
    status: int | None = None
    fault: str | None = None


@dataclass
class _InjectedFault:
    method: str | None
    path_pattern: re.Pattern[str]
    fault: Fault
    remaining: int


@dataclass(frozen=True)
class _Route:
    methods: tuple[str, ...]
    pattern: re.Pattern[str]
    operation: str
    # The permission the call needs; None when being authenticated is enough.
    permission: str | None = None


def _route(methods: str, template: str, operation: str, permission: str | None = None) -> _Route:
    regex = (
        template.replace("{project}", r"(?P<project>[^/]+)")
        .replace("{dataset}", r"(?P<dataset>[^/]+)")
        .replace("{table}", r"(?P<table>[^/:]+)")
        .replace("{job}", r"(?P<job>[^/]+)")
    )
    return _Route(tuple(methods.split()), re.compile(f"^{regex}$"), operation, permission)


_API_PREFIX = "/bigquery/v2"
_UPLOAD_PREFIX = "/upload/bigquery/v2"
_DATASET = "/projects/{project}/datasets/{dataset}"
_TABLE = _DATASET + "/tables/{table}"
_ROUTES = (
    _route("GET", "/projects", "projects.list"),
    _route("GET", "/projects/{project}/datasets", "datasets.list"),
    _route("POST", "/projects/{project}/datasets", "datasets.insert", roles.DATASETS_CREATE),
    _route("GET", _DATASET, "datasets.get", roles.DATASETS_GET),
    _route("PATCH PUT", _DATASET, "datasets.update", roles.DATASETS_UPDATE),
    _route("DELETE", _DATASET, "datasets.delete", roles.DATASETS_DELETE),
    _route("GET", _DATASET + "/tables", "tables.list", roles.TABLES_LIST),
    _route("POST", _DATASET + "/tables", "tables.insert", roles.TABLES_CREATE),
    _route("GET", _TABLE, "tables.get", roles.TABLES_GET),
    _route("PATCH PUT", _TABLE, "tables.update", roles.TABLES_UPDATE),
    _route("DELETE", _TABLE, "tables.delete", roles.TABLES_DELETE),
    _route("GET", _TABLE + "/data", "tabledata.list", roles.TABLES_GET_DATA),
    _route("POST", _TABLE + "/insertAll", "tabledata.insertAll", roles.TABLES_UPDATE_DATA),
    _route("POST", _TABLE + ":testIamPermissions", "tables.testIamPermissions"),
    _route("GET", "/projects/{project}/jobs", "jobs.list", roles.JOBS_LIST),
    _route("POST", "/projects/{project}/jobs", "jobs.insert"),
    # Job creators may read and cancel their own jobs without further permissions.
    _route("GET", "/projects/{project}/jobs/{job}", "jobs.get"),
    _route("POST", "/projects/{project}/jobs/{job}/cancel", "jobs.cancel"),
    _route("DELETE", "/projects/{project}/jobs/{job}/delete", "jobs.delete", roles.JOBS_DELETE),
    _route("POST", "/projects/{project}/queries", "jobs.query"),
    _route("GET", "/projects/{project}/queries/{job}", "jobs.getQueryResults"),
)
_UPLOAD_ROUTES = (
    _route("POST", "/projects/{project}/jobs", "jobs.insert"),
    # The data of a resumable upload; its job was authorized when the session started.
    _route("PUT", "/projects/{project}/jobs", "jobs.insert.upload"),
)


@dataclass(frozen=True)
class _Match:
    route: _Route
    regex_match: re.Match[str]
    prefix: str

    @property
    def operation(self) -> str:
        return self.route.operation

    def param(self, name: str) -> str | None:
        value = self.regex_match.groupdict().get(name)
        return urllib.parse.unquote(value) if value is not None else None


def _match_route(method: str, path: str) -> _Match | None:
    for prefix, routes in ((_UPLOAD_PREFIX, _UPLOAD_ROUTES), (_API_PREFIX, _ROUTES)):
        if not path.startswith(prefix + "/"):
            continue
        for route in routes:
            regex_match = route.pattern.match(path[len(prefix) :])
            if regex_match and method in route.methods:
                return _Match(route, regex_match, prefix)
    return None


@dataclass
class _Request:
    method: str
    path: str  # percent-encoded, as sent
    query: str
    headers: Message
    body: bytes


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for header_name, value in self.headers:
            if header_name.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def with_json(self, payload: Any) -> _Response:
        headers = [(name, value) for name, value in self.headers if name.lower() != "content-type"]
        headers.append(("Content-Type", "application/json; charset=UTF-8"))
        return _Response(self.status, json.dumps(payload).encode(), headers)


def _google_error(status: int, reason: str, message: str, **error_fields: str) -> _Response:
    """A response with Google's JSON error body."""
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason, **error_fields}],
            "status": _GOOGLE_STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }
    return _Response(status).with_json(body)


@dataclass
class _Job:
    location: str
    # The ID the emulator gave the job (it ignores the caller's on uploads); None while
    # the insert is in flight.
    emulator_job_id: str | None = None
    failure: JobFailure | None = None
    # A job the proxy failed before running it (over maximumBytesBilled): its resource.
    refused: dict | None = None


@dataclass(frozen=True)
class _UploadSession:
    project: str
    job_id: str | None
    location: str


class BigQueryProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of the emulator at ``emulator_url``."""

    def __init__(self, emulator_url: str, token_server: TokenServer) -> None:
        parsed = urllib.parse.urlsplit(emulator_url)
        self._emulator_base = f"{parsed.scheme}://{parsed.netloc}"
        self._emulator_host, self._emulator_port = parsed.hostname, parsed.port
        self._token_server = token_server
        self._lock = threading.Lock()
        self._projects: set[str] = set()
        self._grants = Grants()
        self._dataset_locations: dict[tuple[str, str], str] = {}
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._requested_job_ids: dict[tuple[str, str], str] = {}
        self._upload_sessions: dict[str, _UploadSession] = {}
        self._faults: list[_InjectedFault] = []
        self._job_failures: list[tuple[re.Pattern[str], JobFailure, list[int]]] = []
        # DML statistics BigQuery reports for matching DONE jobs (the emulator reports none).
        self._dml_stats: tuple[re.Pattern[str], dict] | None = None
        self._job_latency: tuple[float, re.Pattern[str]] | None = None
        self._job_ready_at: dict[tuple[str, str], float] = {}
        # What a dry run says it would scan (the emulator says 0); None: as the emulator says.
        self.dry_run_bytes: int | None = None
        self._cost_model = JobCostModel(self._emulator_json)
        self._stats_overrides: list[StatsOverride] = []
        self._reservation = False
        # The statistics of each query job, by (project, the job ID its client sees).
        self._job_statistics: dict[tuple[str, str], JobStatistics] = {}
        self._calls: list[RecordedCall] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyRequestHandler)
        self._server.daemon_threads = True
        self._server.proxy = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-google-bq-proxy", daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> BigQueryProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> BigQueryProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what exists and who may do what ---------------------------------------------

    def add_project(self, project_id: str) -> None:
        with self._lock:
            self._projects.add(project_id)

    def set_dataset_location(self, project_id: str, dataset_id: str, location: str) -> None:
        """The location BigQuery reports for the dataset, its tables and checks jobs against."""
        with self._lock:
            self._dataset_locations[(project_id, dataset_id)] = location

    def grant(
        self, account: str, permissions: Iterable[str], *, project: str, dataset: str | None = None
    ) -> None:
        """Grant permissions on a project (and so on all its datasets) or on one dataset."""
        self._grants.grant(account, permissions, project=project, dataset=dataset)

    def revoke(
        self, account: str, permissions: Iterable[str], *, project: str, dataset: str | None = None
    ) -> None:
        """Take back permissions granted at exactly that level."""
        self._grants.revoke(account, permissions, project=project, dataset=dataset)

    # -- faults and the call record --------------------------------------------------

    def inject(self, method: str | None, path_regex: str, fault: Fault, times: int = 1) -> None:
        """Answer the next ``times`` matching calls with ``fault``.

        ``method`` None matches any method; ``path_regex`` is searched in the request path
        (without the query string). Only calls that pass authentication and authorization
        reach a fault.
        """
        if not isinstance(fault, HttpFault) and fault not in (DROP_BEFORE, DROP_AFTER):
            raise ValueError(f"Unknown fault {fault!r}")
        with self._lock:
            self._faults.append(_InjectedFault(method, re.compile(path_regex), fault, times))

    def set_job_latency(self, seconds: float, job_id_regex: str = ".*") -> None:
        """Jobs created from now on whose id matches stay RUNNING for ``seconds`` (as real
        BigQuery's jobs take seconds whatever their size); 0 turns it off."""
        with self._lock:
            self._job_latency = (seconds, re.compile(job_id_regex)) if seconds else None

    def fail_jobs(self, job_id_regex: str, failure: JobFailure, times: int = 1) -> None:
        """The next ``times`` jobs whose id matches end in ``failure`` (seen on jobs.get)."""
        with self._lock:
            self._job_failures.append((re.compile(job_id_regex), failure, [times]))

    def report_dml_stats(
        self, job_id_regex: str, inserted: int, updated: int = 0, deleted: int = 0
    ) -> None:
        """DONE jobs whose id matches report these ``dmlStats``, as BigQuery does for DML."""
        with self._lock:
            self._dml_stats = (
                re.compile(job_id_regex),
                {
                    "insertedRowCount": str(inserted),
                    "updatedRowCount": str(updated),
                    "deletedRowCount": str(deleted),
                },
            )

    def report_job_stats(
        self,
        job_id_regex: str,
        processed: int | None = None,
        billed: int | None = None,
        slot_ms: int | None = None,
    ) -> None:
        """Query jobs created from now on whose id matches report these figures instead of
        the model's (a figure left None follows from the others as the model says); they
        count for ``maximumBytesBilled`` too. ``jobs.query`` calls have no id until they ran,
        so they match after running and an override does not guard them."""
        override = StatsOverride(re.compile(job_id_regex), processed, billed, slot_ms)
        with self._lock:
            self._stats_overrides.insert(0, override)

    def set_reservation(self, on_reservation: bool) -> None:
        """Play a project whose queries run on a reservation: bytes billed 0 (slots are paid
        for instead), ``reservation_id`` and ``reservationUsage`` reported with slot time."""
        with self._lock:
            self._reservation = on_reservation

    def query_jobs(self, text_regex: str | None = None) -> list[QueryJobRecord]:
        """The query jobs clients asked for (dry runs excluded: they create no job), in
        order; with ``text_regex``, those whose statement text it matches (searched)."""
        records = (
            query_job_record(call.operation, call.json, call.account, call.status)
            for call in self.calls
        )
        pattern = re.compile(text_regex) if text_regex is not None else None
        return [
            record
            for record in records
            if record is not None
            and not record.dry_run
            and (pattern is None or pattern.search(record.query))
        ]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._job_failures.clear()
            self._dml_stats = None
            self._job_latency = None
            self.dry_run_bytes = None
            self._stats_overrides.clear()
            self._reservation = False

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, operation: str) -> list[RecordedCall]:
        """The recorded calls of one operation, e.g. ``calls_to("tables.insert")``."""
        return [call for call in self.calls if call.operation == operation]

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for injected in self._faults:
                if injected.method not in (None, method):
                    continue
                if not injected.path_pattern.search(path):
                    continue
                injected.remaining -= 1
                if injected.remaining <= 0:
                    self._faults.remove(injected)
                return injected.fault
        return None

    # -- handling a call -------------------------------------------------------------

    def handle(self, request: _Request) -> _Response | None:
        """Answer one request; None means: close the connection without answering."""
        match = _match_route(request.method, request.path)
        call = RecordedCall(
            method=request.method,
            path=request.path,
            query=dict(urllib.parse.parse_qsl(request.query)),
            operation=match.operation if match else None,
            json=_json_payload(request),
        )
        with self._lock:
            self._calls.append(call)
        response = self._handle(request, match, call)
        if response is not None:
            call.status = response.status
        return response

    def _handle(
        self, request: _Request, match: _Match | None, call: RecordedCall
    ) -> _Response | None:
        token = _bearer_token(request.headers.get("Authorization", ""))
        issued = self._token_server.lookup(token) if token else None
        if issued is None:
            return _unauthenticated(missing=token is None)
        call.account = issued.client_email
        if not issued.scopes & _BIGQUERY_SCOPES:
            return _google_error(
                403, "insufficientPermissions", "Request had insufficient authentication scopes."
            )
        project = match.param("project") if match else None
        with self._lock:
            project_exists = project is None or project in self._projects
        if not project_exists:
            message = f"Not found: Project {project}"
            return _google_error(404, "notFound", message)
        refusal = self._authorize(match, call) if match else None
        if refusal is not None:
            return refusal

        fault = self._take_fault(request.method, request.path)
        if isinstance(fault, HttpFault):
            call.fault = f"{fault.status} {fault.reason}"
            return _google_error(fault.status, fault.reason, fault.message)
        if fault == DROP_BEFORE:
            call.fault = DROP_BEFORE
            return None

        response = self._perform(request, match, call)
        if fault == DROP_AFTER:
            call.fault, call.status = DROP_AFTER, response.status
            return None
        return response

    def _perform(self, request: _Request, match: _Match | None, call: RecordedCall) -> _Response:
        if match is None:
            return self._forward(request)
        operation = match.operation
        if operation == "tables.testIamPermissions":
            return self._test_iam_permissions(match, call)
        if operation == "jobs.insert" and match.prefix == _API_PREFIX:
            return self._insert_job(request, match, _json_object(call.json))
        if operation == "jobs.insert":
            return self._start_upload(request, match, _json_object(call.json))
        if operation == "jobs.insert.upload":
            return self._continue_upload(request)
        if operation == "jobs.query":
            return self._run_query(request, match, _json_object(call.json))
        if operation in ("jobs.get", "jobs.cancel", "jobs.getQueryResults"):
            refused = self._answer_for_refused_job(match)
            if refused is not None:
                return refused
        if operation in ("jobs.get", "jobs.cancel", "jobs.delete", "jobs.getQueryResults"):
            request = self._with_emulator_job_id(request, match)
        response = self._forward(request)
        if operation in ("jobs.get", "jobs.getQueryResults"):
            response = self._as_job_state(match.param("project"), match.param("job"), response)
        if operation == "datasets.insert" and response.status < 300:
            self._dataset_created(match.param("project"), call)
        if operation == "datasets.list" and response.status < 300:
            response = self._visible_datasets(response, call.account)
        return response

    # -- authorization ---------------------------------------------------------------

    def _authorize(self, match: _Match, call: RecordedCall) -> _Response | None:
        needs = self._needs(match, call)
        for need in needs:
            if not self._grants.allows(call.account, need):
                return _google_error(403, "accessDenied", need.denial_message())
        if match.operation in ("jobs.insert", "jobs.query"):
            return self._location_mismatch(needs, _job_location(match, _json_object(call.json)))
        return None

    def _needs(self, match: _Match, call: RecordedCall) -> list[Need]:
        project = match.param("project")
        body = _json_object(call.json)
        if match.operation == "jobs.insert":  # a job resource, or an upload's first part
            return job_needs(project, body, self._location_of)
        if match.operation == "jobs.query":
            dry_run = bool(body.get("dryRun"))
            return [
                Need(roles.JOBS_CREATE, project),
                *query_needs(project, body, dry_run=dry_run, location_of=self._location_of),
            ]
        if match.route.permission is None:
            return []
        if match.operation == "datasets.insert":
            return [Need(roles.DATASETS_CREATE, project)]
        dataset, table = match.param("dataset"), match.param("table")
        needs = [Need(match.route.permission, project, dataset, table)]
        if match.operation == "datasets.delete" and call.query.get("deleteContents") == "true":
            needs.append(Need(roles.TABLES_DELETE, project, dataset))
        return needs

    def _location_of(self, project: str, dataset: str) -> str:
        with self._lock:
            return self._dataset_locations.get((project, dataset), "US")

    def _location_mismatch(self, needs: list[Need], location: str | None) -> _Response | None:
        """BigQuery runs a job in one location and cannot find datasets in another."""
        if location is None:
            return None
        for need in needs:
            if need.dataset is None:
                continue
            with self._lock:
                dataset_location = self._dataset_locations.get((need.project, need.dataset))
            if dataset_location is not None and dataset_location.lower() != location.lower():
                message = (
                    f"Not found: Dataset {need.project}:{need.dataset} was not found in "
                    f"location {location}"
                )
                return _google_error(404, "notFound", message)
        return None

    # -- calls the proxy answers or completes itself --------------------------------

    def _test_iam_permissions(self, match: _Match, call: RecordedCall) -> _Response:
        project, dataset, table = (match.param(name) for name in ("project", "dataset", "table"))
        requested = _json_object(call.json).get("permissions") or []
        for permission in requested:
            # Assumption: IAM refuses to test a permission that does not apply to tables.
            if not permission.startswith("bigquery.tables."):
                message = f"Permission {permission} is not valid for this resource."
                return _google_error(400, "invalid", message)
        table_path = "/projects/{}/datasets/{}/tables/{}".format(
            *(urllib.parse.quote(part, safe="") for part in (project, dataset, table))
        )
        existing = self._emulator_request("GET", _API_PREFIX + table_path)
        if existing.status == 404:
            return _google_error(404, "notFound", f"Not found: Table {project}:{dataset}.{table}")
        granted = [
            permission
            for permission in requested
            if self._grants.allows(call.account, Need(permission, project, dataset, table))
        ]
        return _Response(200).with_json({"permissions": granted} if granted else {})

    def _insert_job(self, request: _Request, match: _Match, job: dict) -> _Response:
        project = match.param("project") or ""
        reference = job.get("jobReference") or {}
        configuration = job.get("configuration") or {}
        dry_run = bool(configuration.get("dryRun"))
        job_id = None if dry_run else reference.get("jobId")  # dry runs create no job
        location = reference.get("location") or "US"
        conflict = self._reserve_job_id(project, job_id, location)
        if conflict is not None:
            return conflict
        # Figures come from the tables as they are before the statement runs.
        statistics = self._query_statistics(project, configuration.get("query"), job_id, dry_run)
        if statistics is not None and job_id is not None:
            limit = exceeded_limit(configuration["query"], statistics)
            if limit is not None:  # BigQuery fails the job before it runs
                return self._refuse_job(project, job_id, location, job, limit, statistics)
            with self._lock:
                self._job_statistics[(project, job_id)] = statistics
        response = self._forward(request)
        if dry_run and statistics is not None and response.status < 300:
            # The emulator estimates nothing; BigQuery says what the query would scan.
            response = response.with_json(with_statistics(response.json(), statistics))
        return self._job_created(project, job_id, location, response)

    def _run_query(self, request: _Request, match: _Match, body: dict) -> _Response:
        """jobs.query: the same figures and limit as a query job, in a queryResponse."""
        project = match.param("project") or ""
        dry_run = bool(body.get("dryRun"))
        statistics = self._query_statistics(project, body, None, dry_run)
        if statistics is None:
            return self._forward(request)
        limit = exceeded_limit(body, statistics)
        if limit is not None:
            message = limit_exceeded_message(limit, statistics.billed)
            return _google_error(400, "bytesBilledLimitExceeded", message)
        response = self._forward(request)
        payload = response.json()
        if response.status >= 300 or not isinstance(payload, dict):
            return response
        job_id = (payload.get("jobReference") or {}).get("jobId")
        if job_id and not dry_run:
            override = self._override_for(job_id)
            statistics = with_override(statistics, override) if override else statistics
            with self._lock:
                self._job_statistics[(project, job_id)] = statistics
        return response.with_json(with_statistics(payload, statistics))

    def _override_for(self, job_id: str | None) -> StatsOverride | None:
        with self._lock:
            overrides = list(self._stats_overrides)
        return next((o for o in overrides if job_id and o.job_id.search(job_id)), None)

    def _query_statistics(
        self, project: str, query_config: Any, job_id: str | None, dry_run: bool
    ) -> JobStatistics | None:
        """What a query job reports; None when the configuration holds no query."""
        if not isinstance(query_config, dict) or not isinstance(query_config.get("query"), str):
            return None
        override = self._override_for(job_id)
        if dry_run and self.dry_run_bytes is not None:
            override = StatsOverride(re.compile(""), processed=self.dry_run_bytes)
        with self._lock:
            reservation = self._reservation
        return self._cost_model.statistics(
            query_config["query"],
            project,
            dry_run=dry_run,
            reservation=reservation,
            override=override,
        )

    def _refuse_job(
        self,
        project: str,
        job_id: str,
        location: str,
        job: dict,
        limit: int,
        statistics: JobStatistics,
    ) -> _Response:
        """A job over its maximumBytesBilled: created, DONE with BigQuery's error, not run."""
        resource = refused_job_resource(
            project, job_id, location, job.get("configuration") or {}, limit, statistics.billed
        )
        with self._lock:
            self._jobs[(project, job_id)] = _Job(location, refused=resource)
        return _Response(200).with_json(resource)

    def _answer_for_refused_job(self, match: _Match) -> _Response | None:
        with self._lock:
            job = self._jobs.get((match.param("project") or "", match.param("job") or ""))
        if job is None or job.refused is None:
            return None
        if match.operation == "jobs.getQueryResults":
            error = job.refused["status"]["errorResult"]
            return _google_error(400, error["reason"], error["message"])
        if match.operation == "jobs.cancel":
            return _Response(200).with_json(
                {"kind": "bigquery#jobCancelResponse", "job": job.refused}
            )
        return _Response(200).with_json(job.refused)

    def _start_upload(self, request: _Request, match: _Match, job: dict) -> _Response:
        project = match.param("project")
        reference = job.get("jobReference") or {}
        job_id, location = reference.get("jobId"), reference.get("location") or "US"
        if urllib.parse.parse_qs(request.query).get("uploadType") != ["resumable"]:
            return self._insert_job(_with_typed_media_part(request), match, job)
        # A resumable upload creates its job with its last chunk: a retried session start
        # must not collide with itself, so the ID is only checked here, not reserved.
        with self._lock:
            existing = self._jobs.get((project, job_id))
        if existing is not None:
            return _job_conflict(project, job_id, existing.location)
        response = self._forward(request)
        upload_id = response.header("X-GUploader-UploadID") if response.status < 300 else None
        if upload_id:
            with self._lock:
                self._upload_sessions[upload_id] = _UploadSession(project, job_id, location)
        return response

    def _continue_upload(self, request: _Request) -> _Response:
        upload_id = urllib.parse.parse_qs(request.query).get("upload_id", [""])[0]
        with self._lock:
            session = self._upload_sessions.get(upload_id)
        if session is None or not _is_last_chunk(request.headers.get("Content-Range", "")):
            return self._forward(request)
        conflict = self._reserve_job_id(session.project, session.job_id, session.location)
        if conflict is not None:
            return conflict
        response = self._forward(request)
        if response.status < 300:
            with self._lock:
                self._upload_sessions.pop(upload_id, None)
        return self._job_created(session.project, session.job_id, session.location, response)

    def _reserve_job_id(self, project: str, job_id: str | None, location: str) -> _Response | None:
        if job_id is None:
            return None
        with self._lock:
            existing = self._jobs.get((project, job_id))
            if existing is None:
                self._jobs[(project, job_id)] = _Job(location)
                return None
        return _job_conflict(project, job_id, existing.location)

    def _job_created(
        self, project: str, job_id: str | None, location: str, response: _Response
    ) -> _Response:
        """Record the outcome of a reserved insert and show the caller its own job ID."""
        if job_id is None:
            return response
        resource = response.json() if response.status < 300 else None
        reference = resource.get("jobReference") if isinstance(resource, dict) else None
        with self._lock:
            if not isinstance(reference, dict):
                self._jobs.pop((project, job_id), None)
                return response
            emulator_job_id = reference.get("jobId", job_id)
            failure = None
            for pattern, job_failure, remaining in self._job_failures:
                if remaining[0] > 0 and pattern.search(job_id):
                    remaining[0] -= 1
                    failure = job_failure
                    break
            self._jobs[(project, job_id)] = _Job(location, emulator_job_id, failure=failure)
            self._requested_job_ids[(project, emulator_job_id)] = job_id
            if self._job_latency and self._job_latency[1].search(job_id):
                self._job_ready_at[(project, job_id)] = time.monotonic() + self._job_latency[0]
        return self._as_job_state(
            project, job_id, response.with_json(self._as_bigquery_reports_it(resource))
        )

    def _as_job_state(self, project: str, job_id: str | None, response: _Response) -> _Response:
        """Show a job as still running (latency) or failed (an injected ``JobFailure``), and
        a finished query job with its statistics."""
        with self._lock:
            job = self._jobs.get((project, job_id))
            ready_at = self._job_ready_at.get((project, job_id), 0.0)
            statistics = self._job_statistics.get((project, job_id)) if job_id else None
        payload = response.json()
        if response.status >= 300 or not isinstance(payload, dict):
            return response
        if job is None:  # e.g. a job jobs.query created
            return response.with_json(with_statistics(payload, statistics))
        running = time.monotonic() < ready_at
        if payload.get("kind") == "bigquery#getQueryResultsResponse":
            if running:
                return response.with_json(
                    {
                        "kind": payload["kind"],
                        "jobReference": payload.get("jobReference"),
                        "jobComplete": False,
                    }
                )
            return response.with_json(with_statistics(payload, statistics))
        if running:
            payload["status"] = {"state": "RUNNING"}
        elif job.failure is not None:
            error = {"reason": job.failure.reason, "message": job.failure.message}
            payload["status"] = {"state": "DONE", "errorResult": error, "errors": [error]}
        else:
            if self._dml_stats and job_id and self._dml_stats[0].search(job_id):
                query = payload.setdefault("statistics", {}).setdefault("query", {})
                query["dmlStats"] = dict(self._dml_stats[1])
            payload = with_statistics(payload, statistics)
        return response.with_json(payload)

    def _with_emulator_job_id(self, request: _Request, match: _Match) -> _Request:
        with self._lock:
            job = self._jobs.get((match.param("project"), match.param("job")))
        if job is None or job.emulator_job_id in (None, match.param("job")):
            return request
        start, end = match.regex_match.span("job")
        offset = len(match.prefix)
        path = (
            request.path[: offset + start]
            + urllib.parse.quote(job.emulator_job_id, safe="")
            + request.path[offset + end :]
        )
        return _Request(request.method, path, request.query, request.headers, request.body)

    def _dataset_created(self, project: str, call: RecordedCall) -> None:
        dataset_resource = _json_object(call.json)
        dataset = (dataset_resource.get("datasetReference") or {}).get("datasetId")
        if not dataset:
            return
        with self._lock:
            self._dataset_locations.setdefault(
                (project, dataset), dataset_resource.get("location") or "US"
            )
        # BigQuery makes the creator of a dataset its owner.
        self.grant(call.account, roles.DATA_OWNER, project=project, dataset=dataset)

    def _visible_datasets(self, response: _Response, account: str) -> _Response:
        """datasets.list shows only the datasets the caller may get."""
        listing = response.json()
        if not isinstance(listing, dict) or "datasets" not in listing:
            return response
        visible = [
            entry
            for entry in listing["datasets"]
            if self._grants.allows(
                account,
                Need(
                    roles.DATASETS_GET,
                    entry["datasetReference"]["projectId"],
                    entry["datasetReference"]["datasetId"],
                ),
            )
        ]
        listing["datasets"] = visible
        return response.with_json(listing)

    # -- talking to the emulator -----------------------------------------------------

    def _forward(self, request: _Request) -> _Response:
        target = request.path + (f"?{request.query}" if request.query else "")
        headers = {
            name: value
            for name, value in request.headers.items()
            # The emulator need not see credentials; identity encoding keeps bodies editable.
            if name.lower() not in _HOP_BY_HOP_HEADERS | {"authorization", "accept-encoding"}
        }
        response = self._emulator_request(request.method, target, request.body, headers)
        return self._as_client_sees_it(response)

    def _emulator_json(
        self, method: str, target: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Any]:
        """A call straight to the emulator (no accounting): its status and JSON answer."""
        response = self._emulator_request(method, target, body, headers)
        return response.status, response.json()

    def _emulator_request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> _Response:
        connection = http.client.HTTPConnection(
            self._emulator_host, self._emulator_port, timeout=_EMULATOR_TIMEOUT_SECONDS
        )
        try:
            connection.request(method, target, body=body, headers=headers or {})
            reply = connection.getresponse()
            response_headers = [
                (name, value)
                for name, value in reply.getheaders()
                if name.lower() not in _HOP_BY_HOP_HEADERS | {"date", "server"}
            ]
            return _Response(reply.status, reply.read(), response_headers)
        finally:
            connection.close()

    def _as_client_sees_it(self, response: _Response) -> _Response:
        headers = [
            (name, self.url + value[len(self._emulator_base) :])
            if name.lower() == "location" and value.startswith(self._emulator_base)
            else (name, value)
            for name, value in response.headers
        ]
        response = _Response(response.status, response.body, headers)
        payload = response.json()
        if payload is None:
            return response
        return response.with_json(self._as_bigquery_reports_it(payload))

    def _as_bigquery_reports_it(self, payload: Any) -> Any:
        """Rewrite emulator output where it differs from BigQuery's, recursively."""
        if isinstance(payload, list):
            return [self._as_bigquery_reports_it(item) for item in payload]
        if not isinstance(payload, dict):
            return payload
        rewritten = {key: self._as_bigquery_reports_it(value) for key, value in payload.items()}
        if isinstance(rewritten.get("jobReference"), dict):
            self._rewrite_job_reference(rewritten)
        location = self._registered_location(rewritten)
        if location is not None:
            rewritten["location"] = location
        error = rewritten.get("error")
        if isinstance(error, dict):
            _rewrite_error_messages(error)
        return rewritten

    def _rewrite_job_reference(self, resource: dict) -> None:
        reference = resource["jobReference"]
        project, emulator_job_id = reference.get("projectId"), reference.get("jobId")
        with self._lock:
            job_id = self._requested_job_ids.get((project, emulator_job_id), emulator_job_id)
            job = self._jobs.get((project, job_id))
        if job is None:
            return
        reference["jobId"] = job_id
        reference["location"] = job.location
        if "id" in resource:
            resource["id"] = f"{project}:{job.location}.{job_id}"

    def _registered_location(self, resource: dict) -> str | None:
        """The location tests registered for a dataset, for that dataset and its tables."""
        if resource.get("kind") not in ("bigquery#dataset", "bigquery#table"):
            return None
        reference = resource.get("datasetReference") or resource.get("tableReference")
        if not isinstance(reference, dict):
            return None
        with self._lock:
            return self._dataset_locations.get(
                (reference.get("projectId"), reference.get("datasetId"))
            )


def _job_conflict(project: str, job_id: str, location: str) -> _Response:
    message = f"Already Exists: Job {project}:{location}.{job_id}"
    return _google_error(409, "duplicate", message)


def _is_last_chunk(content_range: str) -> bool:
    """Whether a resumable upload's ``Content-Range: bytes a-b/total`` completes the data."""
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", content_range.strip())
    return match is not None and int(match.group(2)) + 1 == int(match.group(3))


def _job_location(match: _Match, body: dict) -> str | None:
    if match.operation == "jobs.query":
        return body.get("location")
    return (body.get("jobReference") or {}).get("location")


# The emulator names resources "table:p.d.t"; BigQuery says "Table p:d.t".
_EMULATOR_RESOURCE_NAME = re.compile(r"\b(table|dataset):([^.\s]+)\.(\S+)")


def _rewrite_error_messages(error: dict) -> None:
    def bigquery_name(match: re.Match[str]) -> str:
        return f"{match.group(1).capitalize()} {match.group(2)}:{match.group(3)}"

    if isinstance(error.get("message"), str):
        error["message"] = _EMULATOR_RESOURCE_NAME.sub(bigquery_name, error["message"])
    for detail in error.get("errors") or []:
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            detail["message"] = _EMULATOR_RESOURCE_NAME.sub(bigquery_name, detail["message"])


def _bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _unauthenticated(*, missing: bool) -> _Response:
    help_url = "https://developers.google.com/identity/sign-in/web/devconsole-project"
    if missing:
        message = (
            "Request is missing required authentication credential. Expected OAuth 2 access "
            f"token, login cookie or other valid authentication credential. See {help_url}."
        )
        return _google_error(
            401, "required", message, location="Authorization", locationType="header"
        )
    message = (
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        f"cookie or other valid authentication credential. See {help_url}."
    )
    return _google_error(401, "authError", message, location="Authorization", locationType="header")


def _json_object(payload: Any) -> dict:
    return payload if isinstance(payload, dict) else {}


def _json_payload(request: _Request) -> Any:
    content_type = request.headers.get("Content-Type", "")
    body = request.body
    if content_type.startswith("multipart/related"):
        body = _first_multipart_part(content_type, body)
    elif "json" not in content_type:
        return None
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _with_typed_media_part(request: _Request) -> _Request:
    """google-cloud-bigquery sends the data part of a multipart upload as ``*/*``, which
    BigQuery accepts and the emulator refuses: name a type the emulator takes."""
    body = re.sub(
        rb"\r\ncontent-type: \*/\*\r\n",
        b"\r\ncontent-type: application/octet-stream\r\n",
        request.body,
        count=1,
        flags=re.IGNORECASE,
    )
    return _Request(request.method, request.path, request.query, request.headers, body)


def _first_multipart_part(content_type: str, body: bytes) -> bytes:
    """The first part of a multipart/related body: the job resource of an upload."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if boundary is None:
        return b""
    parts = body.split(b"--" + boundary.group(1).encode(), 2)
    if len(parts) < 3:
        return b""
    _headers, _, payload = parts[1].partition(b"\r\n\r\n")
    return payload.strip()


class _ProxyRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        request = _Request(self.command, path, query, self.headers, self._read_body())
        try:
            response = self.server.proxy.handle(request)
        except Exception as exc:  # a harness bug: say so instead of making clients retry
            traceback.print_exc(file=sys.stderr)
            response = _google_error(502, "harnessError", f"Test proxy failed: {exc!r}")
        if response is None:
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()  # the blank line after the last chunk
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr lines; tests read ``BigQueryProxy.calls``."""
