"""The permission check: the key first, then every BigQuery permission an export needs.

Each permission is tested on its own: ``tables.testIamPermissions`` where a table exists, and
real probes for the rest (get the dataset, list tables, create an expiring probe table, load a
row into it, read it back, a dry-run query, delete the probe). The probe table expires within
the hour even when deleting it is not allowed.
"""

import io
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import google.auth.transport.requests
from google.api_core import exceptions as api_errors
from google.auth import exceptions as auth_errors
from google.cloud import bigquery

from bqtui.core.config import ExportConfig
from bqtui.destination.bigquery import (
    TRANSIENT_NETWORK_ERRORS,
    BigQueryDestination,
    missing_key_message,
)
from bqtui.destination.keyfile import ServiceAccountKey
from bqtui.destination.permissions import (
    PERMISSION_IN_MESSAGE,
    REQUIRED_PERMISSIONS,
    Fix,
    describe_token_error,
    fix_for,
    required_permissions,
)
from bqtui.models import get_model

PROBE_TTL = timedelta(hours=1)
ALL_CHECKED = tuple(sorted({*REQUIRED_PERMISSIONS, "bigquery.tables.delete"}))
# Permissions that testIamPermissions can answer on a table (they are table-level).
TABLE_LEVEL = (
    "bigquery.tables.get",
    "bigquery.tables.getData",
    "bigquery.tables.updateData",
    "bigquery.tables.delete",
)
API_ERRORS = (api_errors.GoogleAPIError, *TRANSIENT_NETWORK_ERRORS)

GRANTED, MISSING, UNKNOWN = "granted", "missing", "unknown"


@dataclass
class PermissionResult:
    permission: str
    required: bool
    status: str = UNKNOWN  # granted | missing | unknown
    detail: str = "not tested"
    level: str = "dataset"
    fix: Fix | None = None


@dataclass
class Problem:
    """A finding that is not one permission: the key, the project, the dataset."""

    subject: str  # key | project | dataset | table
    detail: str


@dataclass
class CheckReport:
    export_name: str
    service_account: str
    project: str
    dataset: str
    table: str
    problems: list[Problem] = field(default_factory=list)
    permissions: list[PermissionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(
            p.status == GRANTED for p in self.permissions if p.required
        )

    @property
    def missing(self) -> list[PermissionResult]:
        return [p for p in self.permissions if p.required and p.status == MISSING]

    def to_dict(self) -> dict:
        def permission(p: PermissionResult) -> dict:
            entry = asdict(p)
            entry["fix"] = (
                {
                    "level": p.fix.level,
                    "role": p.fix.role,
                    "role_title": p.fix.role_title,
                    "commands": list(p.fix.commands),
                }
                if p.fix
                else None
            )
            return entry

        return {
            "export": self.export_name,
            "service_account": self.service_account,
            "project": self.project,
            "dataset": self.dataset,
            "table": self.table,
            "ok": self.ok,
            "problems": [asdict(p) for p in self.problems],
            "permissions": [permission(p) for p in self.permissions],
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        out = [
            f'Permission check for export "{self.export_name}" as {self.service_account} on '
            f"{self.project}:{self.dataset}.{self.table}"
        ]
        for problem in self.problems:
            out.append(f"  ✗ {problem.subject:<28} {problem.detail}")
        for p in self.permissions:
            mark = {GRANTED: "✓", MISSING: "✗", UNKNOWN: "?"}[p.status]
            need = "" if p.required else " (not needed by this model)"
            where = f" on the {p.level}" if p.status == MISSING else ""
            out.append(f"  {mark} {p.permission:<28} {p.status}{where}{need}: {p.detail}")
        fixes = [p for p in self.permissions if p.fix and p.status == MISSING and p.required]
        if fixes:
            out.append("How to fix:")
            for p in fixes:
                out.extend("  " + line for line in p.fix.lines())
        out.extend(f"Note: {note}" for note in self.notes)
        out.append(
            "All required permissions are granted."
            if self.ok
            else "Not ready: fix the findings above, then run the check again."
        )
        return out


def _denied_permission(error: Exception) -> str | None:
    if isinstance(error, api_errors.Forbidden):
        match = PERMISSION_IN_MESSAGE.search(getattr(error, "message", "") or str(error))
        return match.group(1) if match else None
    return None


def _short(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0][:300] if text.strip() else type(error).__name__


class _Checker:
    def __init__(self, export: ExportConfig, key: ServiceAccountKey, destination, on_step):
        self.export = export
        self.key = key
        self.destination: BigQueryDestination = destination
        self.client: bigquery.Client = destination.client
        self.retry = destination.retry
        self.on_step = on_step
        required = set(required_permissions(export.model))
        self.report = CheckReport(
            export.name,
            key.client_email,
            destination.project,
            export.dataset_id,
            export.table_id,
            permissions=[PermissionResult(p, p in required) for p in ALL_CHECKED],
        )
        self.dataset_ref = f"{destination.project}.{export.dataset_id}"

    def result(self, permission: str) -> PermissionResult:
        return next(p for p in self.report.permissions if p.permission == permission)

    def mark(self, permission: str, status: str, detail: str) -> None:
        result = self.result(permission)
        if result.status != UNKNOWN and status == UNKNOWN:
            return  # an earlier probe already decided it
        if result.status == GRANTED and status == MISSING:
            return
        result.status, result.detail = status, detail
        result.fix = None
        if status == MISSING:
            result.fix = fix_for(
                permission, self.destination.project, self.export.dataset_id, self.key.client_email
            )
            result.level = result.fix.level
        elif permission == "bigquery.jobs.create":
            result.level = "project"

    def denied_or_raise(self, error: Exception, expected: str, doing: str) -> None:
        """A 403 naming a permission marks it missing; anything else is 'unknown'."""
        permission = _denied_permission(error)
        if permission:
            self.mark(permission, MISSING, f"denied when {doing}")
            if permission != expected:
                self.mark(expected, UNKNOWN, f"could not be tested: {permission} is missing")
        else:
            self.mark(expected, UNKNOWN, f"could not be tested ({doing}): {_short(error)}")

    def step(self, text: str) -> None:
        self.on_step(text)

    # -- the check --------------------------------------------------------------------------

    def run(self) -> CheckReport:
        self.result("bigquery.jobs.create").level = "project"
        if not self.check_key():
            self.undetermined("the key cannot get an access token")
            return self.report
        if not self.check_dataset():
            return self.report
        self.check_list_tables()
        table_exists = self.check_destination_table()
        probe = self.create_probe_table()
        if probe:
            self.probe_load_read_and_delete(probe)
        else:
            self.check_jobs_create_with_dry_run()
        if table_exists:
            self.test_iam_on_table(
                self.destination.table_ref(self.export.dataset_id, self.export.table_id),
                "the destination table",
            )
        for permission in ALL_CHECKED:
            result = self.result(permission)
            if result.status == UNKNOWN and result.detail == "not tested":
                result.detail = "could not be tested: no table to test it on"
        return self.report

    def undetermined(self, why: str) -> None:
        for p in self.report.permissions:
            if p.status == UNKNOWN:
                p.detail = f"could not be determined: {why}"

    def check_key(self) -> bool:
        self.step("Exchanging the key for an access token")
        try:
            self.destination.credentials.refresh(google.auth.transport.requests.Request())
        except (auth_errors.GoogleAuthError, *TRANSIENT_NETWORK_ERRORS) as error:
            self.report.problems.append(
                Problem("key", describe_token_error(error, self.key.token_uri))
            )
            return False
        return True

    def check_dataset(self) -> bool:
        self.step(f"Getting dataset {self.dataset_ref}")
        try:
            dataset = self.client.get_dataset(self.dataset_ref, retry=self.retry)
        except api_errors.NotFound as error:
            message = _short(error)
            if "Project" in message:
                self.report.problems.append(
                    Problem(
                        "project",
                        f"Project {self.destination.project} does not exist, or "
                        f"{self.key.client_email} cannot see it. Check project_id in the key "
                        "or the export's project.",
                    )
                )
                self.undetermined(f"project {self.destination.project} was not found")
            else:
                self.report.problems.append(
                    Problem(
                        "dataset",
                        f"Dataset {self.export.dataset_id} does not exist in project "
                        f"{self.destination.project}. Create it (bq mk --dataset "
                        f"{self.destination.project}:{self.export.dataset_id}) or fix the "
                        "dataset ID.",
                    )
                )
                self.undetermined(f"dataset {self.export.dataset_id} does not exist")
            return False
        except API_ERRORS as error:
            self.denied_or_raise(error, "bigquery.datasets.get", "getting the dataset")
            return True
        self.mark("bigquery.datasets.get", GRANTED, f"dataset found (location {dataset.location})")
        wanted = self.destination.location
        if wanted and dataset.location and wanted.lower() != dataset.location.lower():
            self.report.problems.append(
                Problem(
                    "dataset",
                    f"Dataset {self.export.dataset_id} is in location {dataset.location}, but the "
                    f"export runs jobs in {wanted}. Set the export's location to "
                    f"{dataset.location}, or use a dataset in {wanted}.",
                )
            )
        return True

    def check_list_tables(self) -> None:
        self.step("Listing tables")
        try:
            list(self.client.list_tables(self.dataset_ref, max_results=1, retry=self.retry))
        except API_ERRORS as error:
            self.denied_or_raise(error, "bigquery.tables.list", "listing tables")
            return
        self.mark("bigquery.tables.list", GRANTED, "listed the dataset's tables")

    def check_destination_table(self) -> bool:
        ref = self.destination.table_ref(self.export.dataset_id, self.export.table_id)
        self.step(f"Getting table {ref}")
        try:
            table = self.client.get_table(ref, retry=self.retry)
        except api_errors.NotFound:
            self.report.notes.append(
                f"Table {self.export.table_id} does not exist yet; the first run creates it."
            )
            return False
        except API_ERRORS as error:
            self.denied_or_raise(error, "bigquery.tables.get", "getting the destination table")
            return True  # it may well exist: testIamPermissions will tell
        self.mark("bigquery.tables.get", GRANTED, "read the destination table")
        model = get_model(self.export.model)
        columns = {f.name for f in table.schema}
        lacking = [name for name in model.required_fields if name not in columns]
        if lacking:
            self.report.problems.append(
                Problem("table", missing_key_message(ref, model, self.export.json_type, lacking))
            )
        return True

    def test_iam_on_table(self, ref: str, which: str) -> None:
        self.step("Asking BigQuery which table permissions are granted (testIamPermissions)")
        try:
            response = self.client.test_iam_permissions(ref, list(TABLE_LEVEL), retry=self.retry)
        except api_errors.NotFound:
            return
        except API_ERRORS as error:
            status = getattr(error, "code", None) or type(error).__name__
            self.report.notes.append(
                f"BigQuery did not answer testIamPermissions on {which} ({status}); the probes "
                "decided instead."
            )
            return
        granted = set(response.get("permissions", []))
        for permission in TABLE_LEVEL:
            if permission in granted:
                self.mark(permission, GRANTED, f"per testIamPermissions on {which}")
            else:
                self.mark(permission, MISSING, f"not granted, per testIamPermissions on {which}")

    def create_probe_table(self) -> str | None:
        probe_id = f"_bqtui_permission_probe_{uuid.uuid4().hex[:12]}"
        ref = self.destination.table_ref(self.export.dataset_id, probe_id)
        self.step(f"Creating probe table {probe_id} (expires in 1 hour)")
        table = bigquery.Table(ref, schema=[bigquery.SchemaField("probe", "STRING")])
        table.expires = datetime.now(UTC) + PROBE_TTL
        try:
            self.client.create_table(table, retry=self.retry)
        except API_ERRORS as error:
            self.denied_or_raise(error, "bigquery.tables.create", "creating a probe table")
            return None
        self.mark("bigquery.tables.create", GRANTED, "created an expiring probe table")
        try:
            self.client.get_table(ref, retry=self.retry)
            self.mark("bigquery.tables.get", GRANTED, "read the probe table")
        except API_ERRORS as error:
            self.denied_or_raise(error, "bigquery.tables.get", "getting the probe table")
        return ref

    def probe_load_read_and_delete(self, ref: str) -> None:
        self.step("Loading one row into the probe table")
        row = io.BytesIO(json.dumps({"probe": "bqtui"}).encode() + b"\n")
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            labels={"bqtui_permission_check": "true"},
        )
        try:
            job = self.client.load_table_from_file(
                row, ref, job_config=config, job_id_prefix="bqtui_check_", num_retries=0
            )
            job.result(retry=self.retry, timeout=120)
            self.mark("bigquery.jobs.create", GRANTED, "ran a load job")
            self.mark("bigquery.tables.updateData", GRANTED, "loaded a row into the probe")
        except API_ERRORS as error:
            permission = _denied_permission(error)
            self.denied_or_raise(error, permission or "bigquery.tables.updateData", "loading a row")
            if permission == "bigquery.tables.updateData":
                self.check_jobs_create_with_dry_run()
        self.step("Reading the probe table back")
        try:
            # With the schema given, list_rows reads rows only (no tables.get).
            schema = [bigquery.SchemaField("probe", "STRING")]
            rows = self.client.list_rows(
                ref, selected_fields=schema, max_results=1, retry=self.retry
            )
            list(rows)
            self.mark("bigquery.tables.getData", GRANTED, "read rows of the probe table")
        except API_ERRORS as error:
            self.denied_or_raise(error, "bigquery.tables.getData", "reading rows")
        if self.result("bigquery.jobs.create").status == UNKNOWN:
            self.check_jobs_create_with_dry_run(f"SELECT probe FROM `{ref}`")
        # Answers the table-level permissions a failed job could not (e.g. no jobs.create).
        self.test_iam_on_table(ref, "the probe table")
        self.step("Deleting the probe table")
        try:
            self.client.delete_table(ref, not_found_ok=True, retry=self.retry)
            self.mark("bigquery.tables.delete", GRANTED, "deleted the probe table")
        except API_ERRORS as error:
            self.denied_or_raise(error, "bigquery.tables.delete", "deleting the probe table")
            self.report.notes.append(
                f"The probe table {ref.split('.')[-1]} could not be deleted; it expires within "
                "the hour."
            )

    def check_jobs_create_with_dry_run(self, sql: str = "SELECT 1") -> None:
        self.step("Running a dry-run query")
        config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False)
        try:
            self.client.query(sql, job_config=config, retry=self.retry, job_retry=None)
        except API_ERRORS as error:
            self.denied_or_raise(error, "bigquery.jobs.create", "running a dry-run query")
            return
        self.mark("bigquery.jobs.create", GRANTED, "ran a dry-run query")


def check_permissions(
    export: ExportConfig,
    key: ServiceAccountKey,
    *,
    retry_deadline: float = 30.0,
    on_step: Callable[[str], None] | None = None,
) -> CheckReport:
    """Check the key and each permission the export needs; never raises for a finding."""
    destination = BigQueryDestination(
        key,
        project_id=export.project_id,
        endpoint=export.bigquery_endpoint,
        location=export.location,
        retry_deadline=retry_deadline,
    )
    try:
        return _Checker(export, key, destination, on_step or (lambda text: None)).run()
    finally:
        destination.close()


def run_check_command(export: ExportConfig, *, as_json: bool) -> int:
    """``bqtui check NAME``: print the report; exit 0 only when every permission is granted."""
    from bqtui.destination.keyfile import parse_key_text
    from bqtui.source.check import check_source
    from bqtui.state import secrets

    key = parse_key_text(secrets.load_service_account_key(export.uid, export.name))
    report = check_permissions(export, key)
    source = check_source(export, secrets.load_clickhouse_secrets(export.uid))
    ok = report.ok and source.ok  # ready only when every part is
    if as_json:
        print(
            json.dumps(
                {**report.to_dict(), "ok": ok, "source": source.to_dict()},
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        lines = report.lines() + [""] + source.lines()
        if report.ok and not source.ok:
            lines.append("Not ready: fix the ClickHouse findings above, then run the check again.")
        print("\n".join(lines))
    return 0 if ok else 1
