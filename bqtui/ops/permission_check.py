"""The permission check: the credential first (who the export runs as, and that it gets a
token), then every BigQuery permission an export needs.

Each permission is tested on its own: ``tables.testIamPermissions`` where a table exists, and
real probes for the rest (get the dataset, list tables, create an expiring probe table, load a
row into it, read it back, a dry-run query, delete the probe). The probe table expires within
the hour even when deleting it is not allowed.

An export with a Cloud Storage stage also gets its bucket checked: Cloud Storage's
testPermissions says which object permissions the export's principal holds there (BigQuery's
load job lists and reads the objects as that principal), and the stage's HMAC key writes,
lists and deletes a probe object under the export's folder (as bqtui and ClickHouse do).
"""

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from bqtui.core.config import AuthKind, ExportConfig
from bqtui.core.errors import BqtuiError, CredentialProblem
from bqtui.destination.bigquery import BigQueryDestination
from bqtui.destination.bucket_access import BucketCheckFailed, NoSuchBucket, bucket_permissions
from bqtui.destination.credentials import GoogleCredentials, resolve_credentials
from bqtui.destination.keyfile import ServiceAccountKey
from bqtui.destination.permission_probe import PermissionProbe, ProbeFailure
from bqtui.destination.permissions import (
    BUCKET_PERMISSIONS,
    PRINCIPAL_BUCKET_PERMISSIONS,
    REQUIRED_PERMISSIONS,
    Fix,
    bucket_fix,
    fix_for,
    required_permissions,
)
from bqtui.destination.table_layout import layout_advice, read_layout
from bqtui.destination.table_plan import missing_key_message
from bqtui.models import get_model
from bqtui.stage.endpoints import json_api_base
from bqtui.stage.errors import StageAccessProblem
from bqtui.stage.hmac_key import HmacKey
from bqtui.stage.location import StageLocation
from bqtui.stage.xml_client import StageClient
from bqtui.state import secrets

PROBE_TTL = timedelta(hours=1)
ALL_CHECKED = tuple(sorted({*REQUIRED_PERMISSIONS, "bigquery.tables.delete"}))
# Permissions that testIamPermissions can answer on a table (they are table-level).
TABLE_LEVEL = (
    "bigquery.tables.get",
    "bigquery.tables.getData",
    "bigquery.tables.updateData",
    "bigquery.tables.delete",
)

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

    subject: str  # key | project | dataset | table | bucket | stage
    detail: str


@dataclass
class StageCheck:
    """The Cloud Storage stage: where, and whether its HMAC key may write there (the key's
    secret is never kept here)."""

    uri: str  # gs://BUCKET/PREFIX
    bucket: str
    hmac_id: str
    status: str = UNKNOWN  # granted | missing | unknown: the HMAC key writes, lists, deletes
    detail: str = "not tested"


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
    runs_as: str = ""  # "runs as X (ADC)", "runs as SA, impersonated by Y (key file)"
    stage: StageCheck | None = None  # exports with a Cloud Storage stage

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
            "runs_as": self.runs_as,
            "project": self.project,
            "dataset": self.dataset,
            "table": self.table,
            "ok": self.ok,
            "problems": [asdict(p) for p in self.problems],
            "permissions": [permission(p) for p in self.permissions],
            "notes": self.notes,
            "stage": asdict(self.stage) if self.stage else None,
        }

    def lines(self) -> list[str]:
        out = [
            f'Permission check for export "{self.export_name}" as {self.service_account} on '
            f"{self.project}:{self.dataset}.{self.table}"
        ]
        if self.runs_as:
            out.append(f"  The export {self.runs_as}.")
        if self.stage:
            out.append(
                f"  It stages through {self.stage.uri}: ClickHouse and bqtui write there with "
                f"HMAC key {self.stage.hmac_id}, BigQuery loads from there as the export's "
                "principal."
            )
        for problem in self.problems:
            out.append(f"  ✗ {problem.subject:<28} {problem.detail}")
        marks = {GRANTED: "✓", MISSING: "✗", UNKNOWN: "?"}
        for p in self.permissions:
            need = ""
            if not p.required:
                need = (
                    " (not needed by the principal: bqtui uses the HMAC key for it)"
                    if p.level == "bucket"
                    else " (not needed by this model)"
                )
            where = f" on the {p.level}" if p.status == MISSING else ""
            out.append(
                f"  {marks[p.status]} {p.permission:<28} {p.status}{where}{need}: {p.detail}"
            )
        if self.stage and not any(p.subject == "stage" for p in self.problems):
            key = f"HMAC key {self.stage.hmac_id}"
            out.append(f"  {marks[self.stage.status]} {key:<28} {self.stage.detail}")
        fixes = [p.fix for p in self.permissions if p.fix and p.status == MISSING and p.required]
        if fixes:
            out.append("How to fix:")
            for fix in fixes:
                out.extend("  " + line for line in fix.lines())
        out.extend(f"Note: {note}" for note in self.notes)
        out.append(
            "All required permissions are granted."
            if self.ok
            else "Not ready: fix the findings above, then run the check again."
        )
        return out


class _Checker:
    def __init__(
        self,
        export: ExportConfig,
        destination: BigQueryDestination,
        on_step: Callable[[str], None],
        stage_secret: str | None = None,
    ):
        self.export = export
        # The wizard checks before the export (and its keyring entry) exists.
        self.stage_secret = stage_secret
        self.destination = destination
        self.google = destination.google
        self.probe = PermissionProbe(destination)
        self.on_step = on_step
        required = set(required_permissions(export.model))
        self.report = CheckReport(
            export.name,
            destination.service_account_email,
            destination.project,
            export.dataset_id,
            export.table_id,
            permissions=[PermissionResult(p, p in required) for p in ALL_CHECKED],
        )
        self.dataset_ref = f"{destination.project}.{export.dataset_id}"
        self.stage: StageLocation | None = None
        if export.stage:
            self.stage = StageLocation.parse(export.stage)
            self.report.stage = StageCheck(
                self.stage.uri, self.stage.bucket, export.stage_hmac_id or ""
            )
            self.report.permissions.extend(
                PermissionResult(p, p in PRINCIPAL_BUCKET_PERMISSIONS, level="bucket")
                for p in BUCKET_PERMISSIONS
            )

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
                permission,
                self.destination.project,
                self.export.dataset_id,
                self.google.principal.member,
            )
            result.level = result.fix.level
        elif permission == "bigquery.jobs.create":
            result.level = "project"

    def denied_or_raise(self, failure: ProbeFailure, expected: str, doing: str) -> None:
        """A 403 naming a permission marks it missing; anything else is 'unknown'."""
        permission = failure.denied_permission
        if permission:
            self.mark(permission, MISSING, f"denied when {doing}")
            if permission != expected:
                self.mark(expected, UNKNOWN, f"could not be tested: {permission} is missing")
        else:
            self.mark(expected, UNKNOWN, f"could not be tested ({doing}): {failure.detail}")

    def step(self, text: str) -> None:
        self.on_step(text)

    # -- the check --------------------------------------------------------------------------

    def run(self) -> CheckReport:
        self.result("bigquery.jobs.create").level = "project"
        has_token = self.check_credential()
        if has_token:
            self.check_bigquery()
        else:
            self.undetermined(f"{self.credential_name} cannot get an access token")
        if self.stage is not None:
            self.check_stage(self.stage, has_token)
        return self.report

    def check_bigquery(self) -> None:
        if not self.check_dataset():
            return
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

    def undetermined(self, why: str) -> None:
        for p in self.report.permissions:
            if p.status == UNKNOWN:
                p.detail = f"could not be determined: {why}"

    @property
    def credential_name(self) -> str:
        return "the key" if self.export.auth == AuthKind.KEY else "the credential"

    def check_credential(self) -> bool:
        """A token first (the caller's, then the impersonated one): who the export runs as."""
        self.step(f"Getting an access token: the export {self.google.runs_as}")
        try:
            self.google.refresh()
        except CredentialProblem as refused:
            subject = "key" if self.export.auth == AuthKind.KEY else "credentials"
            self.report.problems.append(Problem(subject, str(refused)))
            return False
        finally:
            self.report.runs_as = self.google.runs_as
            self.report.service_account = self.destination.service_account_email
        return True

    def check_dataset(self) -> bool:
        self.step(f"Getting dataset {self.dataset_ref}")
        try:
            location = self.probe.dataset_location(self.dataset_ref)
        except ProbeFailure as failure:
            if failure.not_found:
                self.dataset_not_found(failure)
                return False
            self.denied_or_raise(failure, "bigquery.datasets.get", "getting the dataset")
            return True
        self.mark("bigquery.datasets.get", GRANTED, f"dataset found (location {location})")
        wanted = self.destination.location
        if wanted and location and wanted.lower() != location.lower():
            self.report.problems.append(
                Problem(
                    "dataset",
                    f"Dataset {self.export.dataset_id} is in location {location}, but the "
                    f"export runs jobs in {wanted}. Set the export's location to "
                    f"{location}, or use a dataset in {wanted}.",
                )
            )
        return True

    def dataset_not_found(self, failure: ProbeFailure) -> None:
        """No project, or no dataset: nothing further can be tested."""
        project, dataset = self.destination.project, self.export.dataset_id
        if "Project" in failure.detail:
            self.report.problems.append(
                Problem(
                    "project",
                    f"Project {project} does not exist, or {self.destination.service_account_email} cannot see "
                    "it. Check project_id in the key or the export's project.",
                )
            )
            self.undetermined(f"project {project} was not found")
        else:
            self.report.problems.append(
                Problem(
                    "dataset",
                    f"Dataset {dataset} does not exist in project {project}. Create it (bq mk "
                    f"--dataset {project}:{dataset}) or fix the dataset ID.",
                )
            )
            self.undetermined(f"dataset {dataset} does not exist")

    def check_list_tables(self) -> None:
        self.step("Listing tables")
        try:
            self.probe.list_tables(self.dataset_ref)
        except ProbeFailure as failure:
            self.denied_or_raise(failure, "bigquery.tables.list", "listing tables")
            return
        self.mark("bigquery.tables.list", GRANTED, "listed the dataset's tables")

    def check_destination_table(self) -> bool:
        ref = self.destination.table_ref(self.export.dataset_id, self.export.table_id)
        self.step(f"Getting table {ref}")
        try:
            columns = set(self.probe.table_columns(ref))
        except ProbeFailure as failure:
            if failure.not_found:
                self.report.notes.append(
                    f"Table {self.export.table_id} does not exist yet; the first run creates it."
                )
                return False
            self.denied_or_raise(failure, "bigquery.tables.get", "getting the destination table")
            return True  # it may well exist: testIamPermissions will tell
        self.mark("bigquery.tables.get", GRANTED, "read the destination table")
        model = get_model(self.export.model)
        lacking = [name for name in model.required_fields if name not in columns]
        if lacking:
            self.report.problems.append(
                Problem("table", missing_key_message(ref, model, self.export.json_type, lacking))
            )
        if model.model.is_mutable:
            layout = read_layout(self.destination, ref)
            if layout is not None:
                self.report.notes.extend(layout_advice(ref, layout, model, self.export.write_mode))
        return True

    def test_iam_on_table(self, ref: str, which: str) -> None:
        self.step("Asking BigQuery which table permissions are granted (testIamPermissions)")
        try:
            granted = self.probe.granted_table_permissions(ref, list(TABLE_LEVEL))
        except ProbeFailure as failure:
            if not failure.not_found:
                self.report.notes.append(
                    f"BigQuery did not answer testIamPermissions on {which} ({failure.status}); "
                    "the probes decided instead."
                )
            return
        for permission in TABLE_LEVEL:
            if permission in granted:
                self.mark(permission, GRANTED, f"per testIamPermissions on {which}")
            else:
                self.mark(permission, MISSING, f"not granted, per testIamPermissions on {which}")

    def create_probe_table(self) -> str | None:
        probe_id = f"_bqtui_permission_probe_{uuid.uuid4().hex[:12]}"
        ref = self.destination.table_ref(self.export.dataset_id, probe_id)
        self.step(f"Creating probe table {probe_id} (expires in 1 hour)")
        try:
            self.probe.create_probe_table(ref, datetime.now(UTC) + PROBE_TTL)
        except ProbeFailure as failure:
            self.denied_or_raise(failure, "bigquery.tables.create", "creating a probe table")
            return None
        self.mark("bigquery.tables.create", GRANTED, "created an expiring probe table")
        try:
            self.probe.table_columns(ref)
            self.mark("bigquery.tables.get", GRANTED, "read the probe table")
        except ProbeFailure as failure:
            self.denied_or_raise(failure, "bigquery.tables.get", "getting the probe table")
        return ref

    def probe_load_read_and_delete(self, ref: str) -> None:
        self.probe_load(ref)
        self.step("Reading the probe table back")
        try:
            self.probe.read_probe_rows(ref)
            self.mark("bigquery.tables.getData", GRANTED, "read rows of the probe table")
        except ProbeFailure as failure:
            self.denied_or_raise(failure, "bigquery.tables.getData", "reading rows")
        if self.result("bigquery.jobs.create").status == UNKNOWN:
            self.check_jobs_create_with_dry_run(f"SELECT probe FROM `{ref}`")
        # Answers the table-level permissions a failed job could not (e.g. no jobs.create).
        self.test_iam_on_table(ref, "the probe table")
        self.step("Deleting the probe table")
        try:
            self.probe.delete_table(ref)
            self.mark("bigquery.tables.delete", GRANTED, "deleted the probe table")
        except ProbeFailure as failure:
            self.denied_or_raise(failure, "bigquery.tables.delete", "deleting the probe table")
            self.report.notes.append(
                f"The probe table {ref.split('.')[-1]} could not be deleted; it expires within "
                "the hour."
            )

    def probe_load(self, ref: str) -> None:
        self.step("Loading one row into the probe table")
        try:
            self.probe.load_probe_row(ref)
            self.mark("bigquery.jobs.create", GRANTED, "ran a load job")
            self.mark("bigquery.tables.updateData", GRANTED, "loaded a row into the probe")
        except ProbeFailure as failure:
            permission = failure.denied_permission
            self.denied_or_raise(
                failure, permission or "bigquery.tables.updateData", "loading a row"
            )
            if permission == "bigquery.tables.updateData":
                self.check_jobs_create_with_dry_run()

    def check_jobs_create_with_dry_run(self, sql: str = "SELECT 1") -> None:
        self.step("Running a dry-run query")
        try:
            self.probe.dry_run_query(sql)
        except ProbeFailure as failure:
            self.denied_or_raise(failure, "bigquery.jobs.create", "running a dry-run query")
            return
        self.mark("bigquery.jobs.create", GRANTED, "ran a dry-run query")

    # -- the Cloud Storage stage ------------------------------------------------------------

    def check_stage(self, stage: StageLocation, has_token: bool) -> None:
        bucket_exists = True
        if has_token:
            bucket_exists = self.check_bucket_permissions(stage.bucket)
        if bucket_exists:
            self.check_hmac_key(stage)
        elif self.report.stage is not None:
            self.report.stage.detail = f"not tested: bucket {stage.bucket} does not exist"

    def mark_bucket(self, permission: str, status: str, detail: str) -> None:
        result = self.result(permission)
        result.status, result.detail, result.level = status, detail, "bucket"
        result.fix = None
        if status == MISSING and self.stage is not None:
            result.fix = bucket_fix(permission, self.stage.bucket, self.google.principal.member)

    def check_bucket_permissions(self, bucket: str) -> bool:
        """testPermissions on the bucket as the export's principal; False: no such bucket."""
        self.step(f"Asking Cloud Storage which permissions are granted on bucket {bucket}")
        try:
            access = bucket_permissions(self.google.credentials, bucket, json_api_base())
        except NoSuchBucket as missing:
            self.report.problems.append(Problem("bucket", str(missing)))
            for permission in BUCKET_PERMISSIONS:
                self.mark_bucket(
                    permission, UNKNOWN, f"could not be tested: bucket {bucket} does not exist"
                )
            return False
        except BucketCheckFailed as failure:
            for permission in BUCKET_PERMISSIONS:
                self.mark_bucket(permission, UNKNOWN, f"could not be tested: {failure}")
            return True
        for permission in BUCKET_PERMISSIONS:
            if not access.may_ask:
                self.mark_bucket(
                    permission,
                    MISSING,
                    f"Cloud Storage refused to say whether it is granted on bucket {bucket} "
                    f"(403: {access.refused})",
                )
            elif permission in access.granted:
                self.mark_bucket(permission, GRANTED, f"per testPermissions on bucket {bucket}")
            else:
                self.mark_bucket(
                    permission, MISSING, f"not granted, per testPermissions on bucket {bucket}"
                )
        return True

    def check_hmac_key(self, stage: StageLocation) -> None:
        """Write, list and delete a probe object with the stage's HMAC key, as a run does."""
        result = self.report.stage
        if result is None:
            return
        hmac_id = self.export.stage_hmac_id or ""
        prefix = stage.export_prefix(self.export.uid) if self.export.uid else stage.prefix
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.step(
            f"Writing a probe object under gs://{stage.bucket}/{prefix} with HMAC key {hmac_id}"
        )
        try:
            secret = self.stage_secret or secrets.load_stage_hmac_secret(
                self.export.uid, self.export.name
            )
            key = HmacKey(hmac_id, secret)
            client = StageClient(stage.bucket, key)
            client.check_can_write(prefix)
            next(iter(client.iter_objects(prefix)), None)  # one page: may it list?
        except BqtuiError as refused:  # StageError: wrong secret, unknown key, no bucket …
            self.report.problems.append(Problem("stage", str(refused)))
            access_problem = isinstance(refused, StageAccessProblem)
            result.status = MISSING if access_problem else UNKNOWN
            result.detail = str(refused)
            return
        result.status = GRANTED
        result.detail = (
            f"wrote, listed and deleted a probe object under gs://{stage.bucket}/{prefix}"
        )


def check_permissions(
    export: ExportConfig,
    credentials: GoogleCredentials | ServiceAccountKey,
    *,
    retry_deadline: float = 30.0,
    on_step: Callable[[str], None] | None = None,
    stage_secret: str | None = None,
) -> CheckReport:
    """Check the credential and each permission the export needs; never raises for a
    finding. ``stage_secret``: the HMAC secret where the keyring does not hold it yet."""
    if isinstance(credentials, ServiceAccountKey):
        credentials = resolve_credentials(
            AuthKind.KEY,
            key_info=credentials.info,
            project_id=export.project_id,
            stage=bool(export.stage),
        )
    try:
        destination = BigQueryDestination(
            credentials,
            project_id=export.project_id,
            endpoint=export.bigquery_endpoint,
            location=export.location,
            retry_deadline=retry_deadline,
        )
    except CredentialProblem as problem:  # no project to check in
        report = CheckReport(
            export.name, credentials.principal.label, "?", export.dataset_id, export.table_id
        )
        report.problems.append(Problem("project", str(problem)))
        report.runs_as = credentials.runs_as
        return report
    try:
        return _Checker(export, destination, on_step or (lambda text: None), stage_secret).run()
    finally:
        destination.close()


def run_check_command(export: ExportConfig, *, as_json: bool) -> int:
    """``bqtui check NAME``: print the report; exit 0 only when every permission is granted."""
    from bqtui.pipeline.export_credentials import export_credentials
    from bqtui.source.check import check_source

    try:
        credentials = export_credentials(export)
    except CredentialProblem as problem:  # ADC found nothing, or an unreadable ADC file
        report = CheckReport(
            export.name, "?", export.project_id or "?", export.dataset_id, export.table_id
        )
        report.problems.append(Problem("credentials", str(problem)))
    else:
        report = check_permissions(export, credentials)
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
