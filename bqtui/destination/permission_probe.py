"""The permission check's probes: each BigQuery call the check makes, one typed method each.

A probe either succeeds or raises ``ProbeFailure`` saying what BigQuery answered (not found,
a permission denied by name, or another error, in one short line). The token comes first,
from the destination's credentials (``GoogleCredentials.refresh``). Which probe runs when, and what a failure means for the
report, is the check's business (``bqtui.ops.permission_check``).
"""

import io
import json
from datetime import datetime

from google.api_core import exceptions as api_errors
from google.cloud import bigquery

from bqtui.destination.bigquery import BigQueryDestination
from bqtui.destination.failures import TRANSIENT_NETWORK_ERRORS
from bqtui.destination.permissions import PERMISSION_IN_MESSAGE

# What a probe catches: API errors (403, 404, 5xx after retries …) and dropped connections.
API_ERRORS = (api_errors.GoogleAPIError, *TRANSIENT_NETWORK_ERRORS)
PROBE_COLUMN = "probe"
PROBE_JOB_PREFIX = "bqtui_check_"
PROBE_LOAD_TIMEOUT = 120


class ProbeFailure(Exception):
    """A probe BigQuery refused or could not answer."""

    def __init__(self, detail: str, *, status: int | str, not_found: bool, denied: str | None):
        super().__init__(detail)
        self.detail = detail  # BigQuery's message, first line
        self.status = status  # the HTTP status, else the error's type name
        self.not_found = not_found
        self.denied_permission = denied  # the permission a 403 names, if any


def _short(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0][:300] if text.strip() else type(error).__name__


def _denied_permission(error: Exception) -> str | None:
    if isinstance(error, api_errors.Forbidden):
        match = PERMISSION_IN_MESSAGE.search(getattr(error, "message", "") or str(error))
        return match.group(1) if match else None
    return None


def _failure(error: Exception) -> ProbeFailure:
    return ProbeFailure(
        _short(error),
        status=getattr(error, "code", None) or type(error).__name__,
        not_found=isinstance(error, api_errors.NotFound),
        denied=_denied_permission(error),
    )


class PermissionProbe:
    """The probes of one destination (its client, project and retry policy)."""

    def __init__(self, destination: BigQueryDestination):
        self._destination = destination
        self._client = destination.client
        self._retry = destination.retry

    def dataset_location(self, dataset_ref: str) -> str | None:
        """Get the dataset (``project.dataset``); return its location."""
        try:
            return self._client.get_dataset(dataset_ref, retry=self._retry).location
        except API_ERRORS as error:
            raise _failure(error) from None

    def list_tables(self, dataset_ref: str) -> None:
        """List (at most one of) the dataset's tables."""
        try:
            list(self._client.list_tables(dataset_ref, max_results=1, retry=self._retry))
        except API_ERRORS as error:
            raise _failure(error) from None

    def table_columns(self, table_ref: str) -> list[str]:
        """Get the table; return its column names."""
        try:
            table = self._client.get_table(table_ref, retry=self._retry)
        except API_ERRORS as error:
            raise _failure(error) from None
        return [f.name for f in table.schema]

    def granted_table_permissions(self, table_ref: str, permissions: list[str]) -> set[str]:
        """Which of the table-level permissions BigQuery says are granted (testIamPermissions)."""
        try:
            response = self._client.test_iam_permissions(table_ref, permissions, retry=self._retry)
        except API_ERRORS as error:
            raise _failure(error) from None
        return set(response.get("permissions", []))

    def create_probe_table(self, table_ref: str, expires: datetime) -> None:
        """Create a one-column table that BigQuery deletes at ``expires``."""
        table = bigquery.Table(table_ref, schema=[bigquery.SchemaField(PROBE_COLUMN, "STRING")])
        table.expires = expires
        try:
            self._client.create_table(table, retry=self._retry)
        except API_ERRORS as error:
            raise _failure(error) from None

    def load_probe_row(self, table_ref: str) -> None:
        """Load one row into the probe table with a load job, and wait for it."""
        row = io.BytesIO(json.dumps({PROBE_COLUMN: "bqtui"}).encode() + b"\n")
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            labels={"bqtui_permission_check": "true"},
        )
        try:
            job = self._client.load_table_from_file(
                row, table_ref, job_config=config, job_id_prefix=PROBE_JOB_PREFIX, num_retries=0
            )
            job.result(retry=self._retry, timeout=PROBE_LOAD_TIMEOUT)
        except API_ERRORS as error:
            raise _failure(error) from None

    def read_probe_rows(self, table_ref: str) -> None:
        """Read a row of the probe table."""
        try:
            # With the schema given, list_rows reads rows only (no tables.get).
            schema = [bigquery.SchemaField(PROBE_COLUMN, "STRING")]
            rows = self._client.list_rows(
                table_ref, selected_fields=schema, max_results=1, retry=self._retry
            )
            list(rows)
        except API_ERRORS as error:
            raise _failure(error) from None

    def delete_table(self, table_ref: str) -> None:
        try:
            self._client.delete_table(table_ref, not_found_ok=True, retry=self._retry)
        except API_ERRORS as error:
            raise _failure(error) from None

    def dry_run_query(self, sql: str) -> None:
        """Plan a query without running it (needs bigquery.jobs.create)."""
        config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False)
        try:
            self._client.query(sql, job_config=config, retry=self._retry, job_retry=None)
        except API_ERRORS as error:
            raise _failure(error) from None
