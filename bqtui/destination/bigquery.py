"""The BigQuery destination: tables, load jobs, stage + MERGE, and what its errors mean.

Every job id is deterministic per export, window, attempt and step, so a job resubmitted after
a lost response is recognised (409 Already Exists) and awaited instead of run twice.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import requests
from google.api_core import exceptions as api_errors
from google.api_core.retry import Retry
from google.auth import exceptions as auth_errors
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_RETRY
from google.oauth2 import service_account

from bqtui.core import checkpoints
from bqtui.core.errors import DestinationError, TransientJobFailure
from bqtui.destination.keyfile import ServiceAccountKey
from bqtui.destination.permissions import describe_api_error, error_reason
from bqtui.models.base import ExportModel, ModelField

log = logging.getLogger(__name__)

BIGQUERY_SCOPE = "https://www.googleapis.com/auth/bigquery"
STAGE_TABLE_TTL = timedelta(hours=12)
DEFAULT_RETRY_DEADLINE = 120.0
JOB_TIMEOUT = 6 * 3600.0
# Per HTTP request: a stalled connection fails (and is retried) instead of hanging a run.
REQUEST_TIMEOUT = 300.0
TRANSIENT_NETWORK_ERRORS = (
    ConnectionError,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.Timeout,
)
# BigQuery's reasons that say "try again", whatever HTTP status carries them.
TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "backendError", "internalError"})
# Everything a BigQuery call can fail with that ``translate`` turns into a user message.
API_FAILURES = (api_errors.GoogleAPIError, auth_errors.GoogleAuthError, *TRANSIENT_NETWORK_ERRORS)


# Query parameters as Python values: datetime → TIMESTAMP, date → DATE, int → INT64, str →
# STRING; a list of one of those → an ARRAY of it.
QueryValue = datetime | date | int | str
QueryParameters = dict[str, QueryValue | list[datetime] | list[date] | list[int] | list[str]]


def _bigquery_type(value: QueryValue) -> str:
    if isinstance(value, datetime):  # before date: a datetime is a date too
        return "TIMESTAMP"
    if isinstance(value, date):
        return "DATE"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"no BigQuery parameter type for {type(value).__name__}")
    return "INT64" if isinstance(value, int) else "STRING"


def _query_parameters(parameters: QueryParameters | None) -> list:
    built: list = []
    for name, value in (parameters or {}).items():
        if isinstance(value, list):
            kind = _bigquery_type(value[0]) if value else "STRING"
            built.append(bigquery.ArrayQueryParameter(name, kind, value))
        else:
            built.append(bigquery.ScalarQueryParameter(name, _bigquery_type(value), value))
    return built


@dataclass(frozen=True)
class TablePlan:
    """What a run writes to: the table's fields that the model knows, and their types."""

    table_ref: str
    fields: list[ModelField]  # model fields the table has, in model order
    json_fields: set[str]  # of those, the ones stored as JSON in the table
    missing_fields: list[str]  # model fields the table lacks (left out)
    created: bool = False
    table_type_by_field: dict[str, str] = field(default_factory=dict)

    @property
    def source_fields(self) -> list[ModelField]:
        return [f for f in self.fields if f.from_source]


def _is_transient(error: Exception) -> bool:
    """Worth retrying: BigQuery's transient reasons, 5xx, 429 and dropped connections.

    Not a certificate that does not verify (retrying cannot fix it), not ``quotaExceeded``
    (it lasts until the quota resets), not a permission.
    """
    if isinstance(error, requests.exceptions.SSLError):
        return False
    if isinstance(error, TRANSIENT_NETWORK_ERRORS):
        return True
    if isinstance(error, api_errors.GoogleAPICallError):
        reason = error_reason(error)
        if reason in TRANSIENT_REASONS:
            return True
        if reason == "quotaExceeded":
            return False
        return isinstance(
            error, api_errors.TooManyRequests | api_errors.ServerError
        ) or DEFAULT_RETRY._predicate(error)
    return False


def make_retry(deadline: float) -> Retry:
    return Retry(predicate=_is_transient, initial=1.0, maximum=30.0, timeout=deadline)


@dataclass(frozen=True)
class JobOutcome:
    """What BigQuery says of a job by its id: missing, running, done or failed."""

    state: str
    job: object | None = None
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


class BigQueryDestination:
    """One BigQuery project reached with a service-account key."""

    def __init__(
        self,
        key: ServiceAccountKey,
        *,
        project_id: str | None = None,
        endpoint: str | None = None,
        location: str | None = None,
        retry_deadline: float = DEFAULT_RETRY_DEADLINE,
    ):
        self.project = project_id or key.project_id
        self.location = location
        self.endpoint = endpoint
        self.retry = make_retry(retry_deadline)
        self.credentials = service_account.Credentials.from_service_account_info(
            key.info, scopes=[BIGQUERY_SCOPE]
        )
        self.client = bigquery.Client(
            project=self.project,
            credentials=self.credentials,
            location=location,
            client_options={"api_endpoint": endpoint} if endpoint else None,
        )
        self.service_account_email = key.client_email
        self._dataset_locations: dict[str, str | None] = {}

    def close(self) -> None:
        self.client.close()

    def table_ref(self, dataset_id: str, table_id: str) -> str:
        return f"{self.project}.{dataset_id}.{table_id}"

    def translate(self, error: Exception, doing: str, dataset_id: str | None = None):
        """A user-facing error for a failed API call (permission problems are precise)."""
        return describe_api_error(
            error,
            doing=doing,
            project=self.project,
            dataset=dataset_id,
            service_account=self.service_account_email,
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
                try:
                    table = self.client.create_table(
                        table, retry=self.retry, timeout=REQUEST_TIMEOUT
                    )
                    created = True
                except api_errors.Conflict:  # created meanwhile by another client
                    table = self.client.get_table(ref, retry=self.retry, timeout=REQUEST_TIMEOUT)
        except API_FAILURES as error:
            raise self.translate(error, f"preparing table {ref}", dataset_id) from None
        return self._plan(ref, table.schema, model, json_type, created)

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

    @staticmethod
    def _plan(ref, schema, model: ExportModel, json_type: bool, created: bool) -> TablePlan:
        table_types = {f.name: (f.field_type, f.mode) for f in schema}
        lacking = [name for name in model.required_fields if name not in table_types]
        if lacking:
            raise DestinationError(missing_key_message(ref, model, json_type, lacking))
        fields, json_fields, missing = [], set(), []
        for model_field in model.fields:
            if model_field.name not in table_types:
                if not model_field.optional:
                    missing.append(model_field.name)
                continue
            table_type, mode = table_types[model_field.name]
            expected = {"JSON", "STRING"} if model_field.json_capable else {model_field.bq_type}
            aliases = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
            table_type = aliases.get(table_type, table_type)
            if table_type not in expected or (model_field.repeated != (mode == "REPEATED")):
                raise DestinationError(
                    f"Column {model_field.name} of {ref} is {mode} {table_type}, but the "
                    f"{model.model.value} model writes "
                    f"{model_field.schema_field(json_type).mode} "
                    f"{model_field.destination_type(json_type)}. Fix the column or export to "
                    "a new table."
                )
            fields.append(model_field)
            if table_type == "JSON":
                json_fields.add(model_field.name)
        return TablePlan(ref, fields, json_fields, missing, created)

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

    def _submit(self, submit, job_id: str, doing: str, dataset_id: str):
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

    def wait_for(self, job, doing: str, dataset_id: str):
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
                    f"{_first_errors(job_errors) or error}"
                ) from None
            translated = self.translate(error, doing, dataset_id)
            if job_errors and getattr(job, "job_id", None):
                translated = type(translated)(
                    f"{translated} (job {job.job_id}: {_first_errors(job_errors)})"
                )
            raise translated from None
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
            return JobOutcome("failed", job, _first_errors(job.errors or [job.error_result]))
        return JobOutcome("done", job)

    def load_file(self, path, stage_ref: str, job_id: str, labels: dict[str, str], *, first: bool):
        """Load a Parquet file into the stage; the window's first file replaces its contents."""
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

        def submit():
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

    # -- reading: what verify, repair and the TUI ask of a table ----------------------------

    def query_rows(
        self, sql: str, parameters: QueryParameters | None = None, *, doing: str, dataset_id: str
    ) -> list[dict]:
        """Run a query (``@name`` parameters from Python values) and return its rows."""
        config = bigquery.QueryJobConfig(query_parameters=_query_parameters(parameters))
        try:
            job = self.client.query(sql, job_config=config, timeout=REQUEST_TIMEOUT)
            return [dict(row) for row in job.result(retry=self.retry, timeout=JOB_TIMEOUT)]
        except API_FAILURES as error:
            raise self.translate(error, doing, dataset_id) from None

    def estimate_bytes(
        self, sql: str, parameters: QueryParameters | None = None, *, doing: str, dataset_id: str
    ) -> int:
        """What a query would scan, from a dry run (nothing runs, nothing is billed)."""
        config = bigquery.QueryJobConfig(
            dry_run=True, use_query_cache=False, query_parameters=_query_parameters(parameters)
        )
        try:
            job = self.client.query(sql, job_config=config, timeout=REQUEST_TIMEOUT)
        except API_FAILURES as error:
            raise self.translate(error, doing, dataset_id) from None
        return int(job.total_bytes_processed or 0)

    def table_columns(self, table_ref: str) -> list[str] | None:
        """The table's column names; None when it does not exist (other failures raise)."""
        try:
            table = self.client.get_table(table_ref, retry=self.retry, timeout=REQUEST_TIMEOUT)
        except api_errors.NotFound:
            return None
        except API_FAILURES as error:
            raise self.translate(
                error, f"reading table {table_ref}", table_ref.split(".")[1]
            ) from None
        return [f.name for f in table.schema]

    def remove_duplicate_copies(self, table_ref: str, key: str, keys: list[str], days: list) -> int:
        """Leave one row (the first loaded) per listed key in the listed days; return the
        copies removed. One statement: it happens whole or not at all."""
        dataset_id = table_ref.split(".")[1]
        try:
            table = self.client.get_table(table_ref, retry=self.retry, timeout=REQUEST_TIMEOUT)
            columns = [f.name for f in table.schema]
            order_by = "bq_ingested_timestamp" if "bq_ingested_timestamp" in columns else "1"
            sql = deduplicate_statement(table_ref, columns, key, order_by, days)
            config = bigquery.QueryJobConfig(
                query_parameters=[bigquery.ArrayQueryParameter("keys", "STRING", keys)]
            )
            job = self.client.query(sql, job_config=config, timeout=REQUEST_TIMEOUT)
            job.result(retry=self.retry, timeout=JOB_TIMEOUT)
        except API_FAILURES as error:
            raise self.translate(error, f"removing duplicates in {table_ref}", dataset_id) from None
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
    ):
        """Submit the MERGE (not waiting for it): see ``wait_for``."""
        sql = merge_statement(plan, stage_ref, model, timestamp_range)
        config = bigquery.QueryJobConfig(labels=labels, use_legacy_sql=False)

        def submit():
            return self.client.query(
                sql,
                job_config=config,
                job_id=job_id,
                job_retry=None,
                retry=None,
                timeout=REQUEST_TIMEOUT,
            )

        return self._submit(
            submit, job_id, f"merging into {plan.table_ref}", plan.table_ref.split(".")[1]
        )


def deduplicate_statement(
    table_ref: str, columns: list[str], key: str, order_by: str, days: list
) -> str:
    """One MERGE that leaves one row per duplicated key (the first by ``order_by``), copies
    made at the same instant included (they are identical: no DELETE can tell them apart).

    Every copy of the listed keys in the listed days is deleted and one copy inserted back, in
    one atomic statement; the day ranges are constants, so BigQuery scans and rewrites only
    those partitions of a table partitioned by day on ``timestamp``.
    """
    days_filter = " OR ".join(
        f"({{alias}}timestamp >= {_timestamp_literal(start)} AND "
        f"{{alias}}timestamp < {_timestamp_literal(start + timedelta(days=1))})"
        for start in (datetime(d.year, d.month, d.day, tzinfo=UTC) for d in sorted(days))
    )
    listed = f"{{alias}}`{key}` IN UNNEST(@keys) AND ({days_filter})"
    column_list = ", ".join(f"`{c}`" for c in columns)
    values = ", ".join(f"kept.`{c}`" for c in columns)
    return (
        f"MERGE {_quote(table_ref)} AS t\n"
        f"USING (SELECT * FROM {_quote(table_ref)} WHERE {listed.format(alias='')}\n"
        f"  QUALIFY ROW_NUMBER() OVER (PARTITION BY `{key}` ORDER BY {order_by}) = 1) AS kept\n"
        "ON FALSE\n"
        f"WHEN NOT MATCHED BY SOURCE AND {listed.format(alias='t.')} THEN DELETE\n"
        f"WHEN NOT MATCHED THEN INSERT ({column_list}) VALUES ({values})"
    )


def missing_key_message(ref: str, model: ExportModel, json_type: bool, lacking: list[str]) -> str:
    """Why a table without the model's merge key or versions is refused, and the fix."""
    adds = ", ".join(
        f"ADD COLUMN `{name}` {model.field(name).destination_type(json_type)}" for name in lacking
    )
    return (
        f"Table {ref} lacks {', '.join(lacking)}, which the {model.model.value} model needs "
        f"to merge rows without overwriting others; nothing was exported. Add "
        f"{'it' if len(lacking) == 1 else 'them'}: ALTER TABLE `{ref}` {adds}; — or export to "
        "a new table (bqtui creates it with the full schema)."
    )


def _first_errors(errors: list, limit: int = 3) -> str:
    """The first few error messages of a job, as one line."""
    messages = [
        str(e.get("message") or e.get("reason")) if isinstance(e, dict) else str(e)
        for e in errors[:limit]
    ]
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(messages) + more


def _quote(ref: str) -> str:
    return f"`{ref}`"


def _timestamp_literal(value: datetime) -> str:
    return f"TIMESTAMP '{value.astimezone(UTC).isoformat(timespec='microseconds')}'"


def merge_statement(
    plan: TablePlan,
    stage_ref: str,
    model: ExportModel,
    timestamp_range: tuple[datetime, datetime] | None = None,
) -> str:
    """The MERGE of a stage table into the final table.

    The stage may hold several rows per key; the newest versions win, ties broken by the
    remaining columns so the outcome is deterministic.
    """

    def value(name: str) -> str:
        if name == "bq_ingested_timestamp":
            return "CURRENT_TIMESTAMP()"
        if name in plan.json_fields:
            # Text that still is not JSON is kept as a JSON string rather than dropped.
            return (
                f"IF(stage.`{name}` IS NULL, NULL, COALESCE(SAFE.PARSE_JSON(stage.`{name}`, "
                f"wide_number_mode => 'round'), TO_JSON(stage.`{name}`)))"
            )
        return f"stage.`{name}`"

    names = [f.name for f in plan.fields]
    source_names = [f.name for f in plan.source_fields]
    key = [k for k in model.merge_key if k in source_names]
    versions = [v for v in model.version_fields if v in source_names]
    tie_breakers = [n for n in source_names if n not in key and n not in versions]
    order = [f"`{v}` DESC" for v in versions] + [f"TO_JSON_STRING(`{n}`)" for n in tie_breakers[:3]]
    order_by = ", ".join(order) or "1"
    partition_by = ", ".join(f"`{k}`" for k in key)
    deduplicated = (
        f"SELECT * EXCEPT (_bqtui_rank) FROM (SELECT *, ROW_NUMBER() OVER "
        f"(PARTITION BY {partition_by} ORDER BY {order_by}) AS _bqtui_rank "
        f"FROM {_quote(stage_ref)}) WHERE _bqtui_rank = 1"
    )
    on = " AND ".join(f"final.`{k}` = stage.`{k}`" for k in key)
    if timestamp_range and model.partition_field in names:
        low, high = timestamp_range
        on += (
            f" AND final.`{model.partition_field}` BETWEEN {_timestamp_literal(low)} "
            f"AND {_timestamp_literal(high)}"
        )
    column_list = ", ".join(f"`{n}`" for n in names)
    values = ", ".join(value(n) for n in names)
    statement = (
        f"MERGE {_quote(plan.table_ref)} AS final\nUSING ({deduplicated}) AS stage\nON {on}\n"
    )
    if not model.insert_only and versions:
        comparison = ">=" if model.update_on_equal_version else ">"
        newer = _lexicographic_newer(versions, comparison)
        updates = ", ".join(f"`{n}` = {value(n)}" for n in names if n not in key)
        statement += f"WHEN MATCHED AND ({newer}) THEN UPDATE SET {updates}\n"
    statement += f"WHEN NOT MATCHED THEN INSERT ({column_list}) VALUES ({values})"
    return statement


def _lexicographic_newer(versions: list[str], last_comparison: str) -> str:
    """(a, b) newer than (x, y): a > x OR (a = x AND b > y); a missing stored value is oldest."""

    def stored(name: str) -> str:
        return f"final.`{name}`"

    clauses = []
    for index, name in enumerate(versions):
        equal_before = [f"stage.`{v}` = {stored(v)}" for v in versions[:index]]
        comparison = last_comparison if index == len(versions) - 1 else ">"
        newer = f"({stored(name)} IS NULL OR stage.`{name}` {comparison} {stored(name)})"
        clauses.append(" AND ".join([*equal_before, newer]))
    return " OR ".join(f"({c})" for c in clauses)
