"""The BigQuery destination: tables, load jobs, stage + MERGE, and what its errors mean.

Every job id is deterministic per export, window, attempt and step, so a job resubmitted after
a lost response is recognised (409 Already Exists) and awaited instead of run twice.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from google.api_core import exceptions as api_errors
from google.cloud import bigquery

from bqtui.core import checkpoints
from bqtui.core.config import AuthKind
from bqtui.core.errors import CredentialProblem, DestinationError, TransientJobFailure
from bqtui.destination.credentials import GoogleCredentials, resolve_credentials
from bqtui.destination.failures import API_FAILURES, TRANSIENT_REASONS, first_errors, make_retry
from bqtui.destination.job_stats import QueryJobStats, query_job_stats
from bqtui.destination.keyfile import ServiceAccountKey
from bqtui.destination.permissions import describe_api_error
from bqtui.destination.statements import (
    QueryParameters,
    deduplicate_statement,
    merge_statement,
    query_parameters,
)
from bqtui.destination.table_plan import TablePlan, plan_table
from bqtui.models.base import ExportModel

log = logging.getLogger(__name__)

STAGE_TABLE_TTL = timedelta(hours=12)
DEFAULT_RETRY_DEADLINE = 120.0
JOB_TIMEOUT = 6 * 3600.0
# Per HTTP request: a stalled connection fails (and is retried) instead of hanging a run.
REQUEST_TIMEOUT = 300.0
# A job as BigQuery returns it: what bqtui submits (loads, queries), or any job by its id.
Job = (
    bigquery.LoadJob
    | bigquery.QueryJob
    | bigquery.CopyJob
    | bigquery.ExtractJob
    | bigquery.UnknownJob
)


@dataclass(frozen=True)
class TableSize:
    num_bytes: int
    num_rows: int
    partition_field: str | None  # None: not partitioned by a column


@dataclass(frozen=True)
class JobOutcome:
    """What BigQuery says of a job by its id: missing, running, done or failed."""

    state: str
    job: Job | None = None
    error: str | None = None


def job_labels(export_name: str, export_uid: str, window: str) -> dict[str, str]:
    # Label values: lowercase letters, digits, '_' and '-', at most 63 characters.
    def clean(value: str) -> str:
        return "".join(c if c.isalnum() or c in "_-" else "_" for c in value.lower())[:63]

    return {
        "bqtui_export": clean(export_name),
        "bqtui_export_uid": clean(export_uid),
        "bqtui_window": clean(window),
    }


def parquet_load_config(labels: dict[str, str], *, first: bool) -> bigquery.LoadJobConfig:
    """A Parquet load into an existing table; the first load of a stage replaces it."""
    disposition = bigquery.WriteDisposition
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=disposition.WRITE_TRUNCATE if first else disposition.WRITE_APPEND,
        create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
        labels=labels,
    )
    parquet_options = bigquery.ParquetOptions()
    parquet_options.enable_list_inference = True  # REPEATED fields from Parquet LISTs
    config.parquet_options = parquet_options
    return config


class BigQueryDestination:
    """One BigQuery project reached as one principal (a key's, a login's, an impersonated
    service account's: see ``credentials``)."""

    def __init__(
        self,
        credentials: GoogleCredentials | ServiceAccountKey,
        *,
        project_id: str | None = None,
        endpoint: str | None = None,
        location: str | None = None,
        retry_deadline: float = DEFAULT_RETRY_DEADLINE,
        max_bytes_billed: int | None = None,
    ):
        if isinstance(credentials, ServiceAccountKey):
            credentials = resolve_credentials(
                AuthKind.KEY, key_info=credentials.info, project_id=project_id
            )
        project = project_id or credentials.project_id
        if not project:
            raise CredentialProblem(
                f"bqtui cannot tell which Google Cloud project to run BigQuery jobs in: "
                f"{credentials.principal.label} names none. Set the export's project with "
                "--project-id (bqtui add … --project-id PROJECT)."
            )
        self.project: str = project
        self.location = location
        self.endpoint = endpoint
        self.retry = make_retry(retry_deadline)
        self.google = credentials
        self.credentials = credentials.credentials
        self.client = bigquery.Client(
            project=self.project,
            credentials=self.credentials,
            location=location,
            client_options={"api_endpoint": endpoint} if endpoint else None,
        )
        self._dataset_locations: dict[str, str | None] = {}
        # BigQuery's maximumBytesBilled on every query job: over it, the job never runs.
        self.max_bytes_billed = max_bytes_billed
        # Told of every finished query job (MERGE, verify, repair): what it was billed.
        self.on_query_done: Callable[[QueryJobStats], None] | None = None

    def _query_config(self, **settings: Any) -> bigquery.QueryJobConfig:
        config = bigquery.QueryJobConfig(**settings)
        if self.max_bytes_billed is not None and not settings.get("dry_run"):
            config.maximum_bytes_billed = self.max_bytes_billed
        return config

    def _finished(self, kind: str, job: Job) -> None:
        if self.on_query_done is not None and isinstance(job, bigquery.QueryJob):
            self.on_query_done(query_job_stats(kind, job))

    @property
    def service_account_email(self) -> str:
        """Who BigQuery sees (the email once known), for messages."""
        return self.google.principal.label

    def close(self) -> None:
        self.client.close()

    def table_ref(self, dataset_id: str, table_id: str) -> str:
        return f"{self.project}.{dataset_id}.{table_id}"

    def translate(
        self, error: Exception, doing: str, dataset_id: str | None = None
    ) -> DestinationError:
        """A user-facing error for a failed API call (permission problems are precise)."""
        return describe_api_error(
            error,
            doing=doing,
            project=self.project,
            dataset=dataset_id,
            service_account=self.service_account_email,
            iam_member=self.google.principal.member,
            token_refused=self.google.describe,
        )

    # -- tables -----------------------------------------------------------------------------

    def prepare_table(
        self, dataset_id: str, table_id: str, model: ExportModel, json_type: bool
    ) -> TablePlan:
        """Create the table with the model's schema if missing; else use the fields it has."""
        ref = self.table_ref(dataset_id, table_id)
        created = False
        try:
            try:
                table = self.client.get_table(ref, retry=self.retry, timeout=REQUEST_TIMEOUT)
            except api_errors.NotFound:
                self._require_dataset(dataset_id)
                table = bigquery.Table(ref, schema=model.schema(json_type))
                if model.partition_field:
                    table.time_partitioning = bigquery.TimePartitioning(
                        type_=bigquery.TimePartitioningType.DAY, field=model.partition_field
                    )
                if model.cluster_fields:
                    table.clustering_fields = list(model.cluster_fields)
                try:
                    table = self.client.create_table(
                        table, retry=self.retry, timeout=REQUEST_TIMEOUT
                    )
                    created = True
                except api_errors.Conflict:  # created meanwhile by another client
                    table = self.client.get_table(ref, retry=self.retry, timeout=REQUEST_TIMEOUT)
        except API_FAILURES as error:
            raise self.translate(error, f"preparing table {ref}", dataset_id) from None
        return plan_table(ref, table.schema, model, json_type, created)

    def _require_dataset(self, dataset_id: str) -> None:
        try:
            self.client.get_dataset(
                f"{self.project}.{dataset_id}", retry=self.retry, timeout=REQUEST_TIMEOUT
            )
        except api_errors.NotFound:
            raise DestinationError(
                f"Dataset {dataset_id} does not exist in project {self.project}. Create it "
                f"(bq mk --dataset {self.project}:{dataset_id}) or fix the dataset ID."
            ) from None

    def create_stage_table(self, plan: TablePlan, stage_table_id: str) -> str:
        """An unpartitioned, expiring stage table; JSON columns are STRING here.

        A stage left by an earlier attempt is reused: the first load truncates it, which needs
        no tables.delete (events exports do not require that permission).
        """
        dataset_id = plan.table_ref.split(".")[1]
        ref = self.table_ref(dataset_id, stage_table_id)
        schema = [
            bigquery.SchemaField(f.name, f.bq_type, mode="REPEATED" if f.repeated else "NULLABLE")
            for f in plan.source_fields
        ]
        table = bigquery.Table(ref, schema=schema)
        table.expires = datetime.now(UTC) + STAGE_TABLE_TTL
        try:
            self.client.create_table(
                table, exists_ok=True, retry=self.retry, timeout=REQUEST_TIMEOUT
            )
        except API_FAILURES as error:
            raise self.translate(error, f"creating stage table {ref}", dataset_id) from None
        return ref

    def drop_table(self, ref: str) -> Exception | None:
        """Drop a table; return the error instead of raising (the table expires anyway)."""
        try:
            self.client.delete_table(
                ref, not_found_ok=True, retry=self.retry, timeout=REQUEST_TIMEOUT
            )
        except API_FAILURES as error:
            return self.translate(error, f"dropping stage table {ref}", ref.split(".")[1])
        return None

    # -- jobs -------------------------------------------------------------------------------

    def _submit(self, submit: Callable[[], Job], job_id: str, doing: str, dataset_id: str) -> Job:
        """Submit a job with retries; a 409 means an earlier submission took effect."""
        try:
            try:
                return self.retry(submit)()
            except api_errors.Conflict:
                log.info("job %s was already submitted; waiting for it", job_id)
                return self.client.get_job(
                    job_id,
                    project=self.project,
                    location=self.job_location(dataset_id),
                    retry=self.retry,
                    timeout=REQUEST_TIMEOUT,
                )
        except API_FAILURES as error:
            raise self.translate(error, doing, dataset_id) from None

    def wait_for(self, job: Job, doing: str, dataset_id: str) -> Job:
        """Wait for a job; a job that failed for a transient reason raises
        ``TransientJobFailure`` (the caller runs a new attempt), naming the job and its errors."""
        try:
            job.result(retry=self.retry, timeout=JOB_TIMEOUT)
        except API_FAILURES as error:
            job_errors = getattr(job, "errors", None) or []
            reason = (getattr(job, "error_result", None) or {}).get("reason")
            if reason in TRANSIENT_REASONS:
                raise TransientJobFailure(
                    f"While {doing}: job {job.job_id} failed ({reason}): "
                    f"{first_errors(job_errors) or error}"
                ) from None
            translated = self.translate(error, doing, dataset_id)
            if job_errors and getattr(job, "job_id", None):
                translated = type(translated)(
                    f"{translated} (job {job.job_id}: {first_errors(job_errors)})"
                )
            raise translated from None
        if isinstance(job, bigquery.QueryJob):
            self._finished(job.query.lstrip().split(None, 1)[0].lower(), job)
        return job

    def job_location(self, dataset_id: str | None) -> str | None:
        """Where the export's jobs run: the export's location, else its dataset's (BigQuery
        finds a job outside the US only when told its location)."""
        if self.location or not dataset_id:
            return self.location
        if dataset_id not in self._dataset_locations:
            try:
                dataset = self.client.get_dataset(
                    f"{self.project}.{dataset_id}", retry=self.retry, timeout=REQUEST_TIMEOUT
                )
                self._dataset_locations[dataset_id] = dataset.location
            except API_FAILURES as error:
                # Never "no location": outside the US a job looked up without it reads as
                # missing, and its window would be MERGEd again while the job may still run.
                raise self.translate(
                    error, f"looking up the location of dataset {dataset_id}", dataset_id
                ) from None
        return self._dataset_locations[dataset_id]

    def job_outcome(self, job_id: str, dataset_id: str | None = None) -> JobOutcome:
        """Look a job up by its deterministic id (an earlier attempt's MERGE)."""
        try:
            job = self.client.get_job(
                job_id,
                project=self.project,
                location=self.job_location(dataset_id),
                retry=self.retry,
                timeout=REQUEST_TIMEOUT,
            )
        except api_errors.NotFound:
            return JobOutcome("missing")
        except API_FAILURES as error:
            raise self.translate(error, f"looking up job {job_id}", None) from None
        if job.state != "DONE":
            return JobOutcome("running", job)
        if job.error_result:
            return JobOutcome("failed", job, first_errors(job.errors or [job.error_result]))
        return JobOutcome("done", job)

    def load_file(
        self, path: Path, stage_ref: str, job_id: str, labels: dict[str, str], *, first: bool
    ) -> Job:
        """Load a Parquet file into the stage; the window's first file replaces its contents."""
        config = parquet_load_config(labels, first=first)

        def submit() -> Job:
            # Retries are ours (the whole upload again): a job created by a lost final
            # request is then recognised by its id. No size: resumable uploads for any size.
            with open(path, "rb") as file:
                return self.client.load_table_from_file(
                    file,
                    stage_ref,
                    job_id=job_id,
                    job_config=config,
                    num_retries=0,
                    timeout=REQUEST_TIMEOUT,
                )

        doing, dataset_id = f"loading into {stage_ref}", stage_ref.split(".")[1]
        job = self._submit(submit, job_id, doing, dataset_id)
        checkpoints.reached("load_submitted")
        return self.wait_for(job, doing, dataset_id)

    def load_uris(
        self, uris: list[str], target_ref: str, job_id: str, labels: dict[str, str], *, first: bool
    ) -> Job:
        """Load Parquet objects from Cloud Storage (wildcard URIs) in one job, as the export's
        principal; rows go from the bucket to BigQuery, not through this process."""
        config = parquet_load_config(labels, first=first)

        def submit() -> Job:
            return self.client.load_table_from_uri(
                uris, target_ref, job_id=job_id, job_config=config, timeout=REQUEST_TIMEOUT
            )

        doing, dataset_id = f"loading into {target_ref}", target_ref.split(".")[1]
        job = self._submit(submit, job_id, doing, dataset_id)
        checkpoints.reached("load_submitted")
        return self.wait_for(job, doing, dataset_id)

    # -- reading: what verify, repair and the TUI ask of a table ----------------------------

    def query_rows(
        self, sql: str, parameters: QueryParameters | None = None, *, doing: str, dataset_id: str
    ) -> list[dict]:
        """Run a query (``@name`` parameters from Python values) and return its rows."""
        config = self._query_config(query_parameters=query_parameters(parameters))
        try:
            job = self.client.query(sql, job_config=config, timeout=REQUEST_TIMEOUT)
            rows = [dict(row) for row in job.result(retry=self.retry, timeout=JOB_TIMEOUT)]
        except API_FAILURES as error:
            raise self.translate(error, doing, dataset_id) from None
        self._finished("verify", job)
        return rows

    def estimate_bytes(
        self, sql: str, parameters: QueryParameters | None = None, *, doing: str, dataset_id: str
    ) -> int:
        """What a query would scan, from a dry run (nothing runs, nothing is billed)."""
        config = bigquery.QueryJobConfig(
            dry_run=True, use_query_cache=False, query_parameters=query_parameters(parameters)
        )
        try:
            job = self.client.query(sql, job_config=config, timeout=REQUEST_TIMEOUT)
        except API_FAILURES as error:
            raise self.translate(error, doing, dataset_id) from None
        return int(job.total_bytes_processed or 0)

    def table_size(self, table_ref: str) -> TableSize | None:
        """The table's size and layout from its metadata (free); None when it does not exist."""
        table = self._table_or_none(table_ref)
        if table is None:
            return None
        partitioning = table.time_partitioning
        return TableSize(
            num_bytes=int(table.num_bytes or 0),
            num_rows=int(table.num_rows or 0),
            partition_field=partitioning.field if partitioning else None,
        )

    def table_columns(self, table_ref: str) -> list[str] | None:
        """The table's column names; None when it does not exist (other failures raise)."""
        table = self._table_or_none(table_ref)
        return None if table is None else [f.name for f in table.schema]

    def _table_or_none(self, table_ref: str) -> bigquery.Table | None:
        try:
            return self.client.get_table(table_ref, retry=self.retry, timeout=REQUEST_TIMEOUT)
        except api_errors.NotFound:
            return None
        except API_FAILURES as error:
            raise self.translate(
                error, f"reading table {table_ref}", table_ref.split(".")[1]
            ) from None

    def remove_duplicate_copies(
        self, table_ref: str, key: str, keys: list[str], days: list[date]
    ) -> int:
        """Leave one row (the first loaded) per listed key in the listed days; return the
        copies removed. One statement: it happens whole or not at all."""
        dataset_id = table_ref.split(".")[1]
        try:
            table = self.client.get_table(table_ref, retry=self.retry, timeout=REQUEST_TIMEOUT)
            columns = [f.name for f in table.schema]
            order_by = "bq_ingested_timestamp" if "bq_ingested_timestamp" in columns else "1"
            sql = deduplicate_statement(table_ref, columns, key, order_by, days)
            config = self._query_config(
                query_parameters=[bigquery.ArrayQueryParameter("keys", "STRING", keys)]
            )
            job = self.client.query(sql, job_config=config, timeout=REQUEST_TIMEOUT)
            job.result(retry=self.retry, timeout=JOB_TIMEOUT)
        except API_FAILURES as error:
            raise self.translate(error, f"removing duplicates in {table_ref}", dataset_id) from None
        self._finished("repair", job)
        stats = job.dml_stats
        if stats is not None:  # deleted every copy, inserted one back per key
            return int(stats.deleted_row_count) - int(stats.inserted_row_count)
        affected = job.num_dml_affected_rows
        return int(affected) - 2 * len(keys) if affected is not None else -1

    def submit_merge(
        self,
        plan: TablePlan,
        stage_ref: str,
        model: ExportModel,
        job_id: str,
        labels: dict[str, str],
        timestamp_range: tuple[datetime, datetime] | None = None,
    ) -> Job:
        """Submit the MERGE (not waiting for it): see ``wait_for``."""
        sql = merge_statement(plan, stage_ref, model, timestamp_range)
        config = self._query_config(labels=labels, use_legacy_sql=False)

        def submit() -> Job:
            return self.client.query(
                sql,
                job_config=config,
                job_id=job_id,
                job_retry=None,
                retry=None,  # type: ignore[arg-type]  # the retries are _submit's
                timeout=REQUEST_TIMEOUT,
            )

        return self._submit(
            submit, job_id, f"merging into {plan.table_ref}", plan.table_ref.split(".")[1]
        )
