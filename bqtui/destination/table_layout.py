"""A table's layout and what it costs: new tables are partitioned and clustered so that a MERGE
reads only the days its stage touches; an existing table is never changed, but `bqtui check`
says when its layout makes every MERGE bill the whole table, and how to migrate it.
"""

from dataclasses import dataclass

from google.api_core import exceptions as api_errors
from google.cloud import bigquery

from bqtui.core.cost import WriteMode, bytes_text
from bqtui.core.errors import DestinationError
from bqtui.destination.bigquery import REQUEST_TIMEOUT, BigQueryDestination
from bqtui.destination.failures import API_FAILURES
from bqtui.models.base import ExportModel
from bqtui.models.sessions import UUID7_PATTERN

# The instant in a UUIDv7 session id, computed in BigQuery (the migration's backfill of the
# column): its first 48 bits, milliseconds since the epoch.
SESSION_ID_TIME_SQL = (
    f"IF(REGEXP_CONTAINS(session_id, r'{UUID7_PATTERN}'), TIMESTAMP_MILLIS(CAST(CONCAT('0x', "
    "SUBSTR(session_id, 1, 8), SUBSTR(session_id, 10, 4)) AS INT64)), NULL)"
)


@dataclass(frozen=True)
class TableLayout:
    """What a table's metadata says of its layout."""

    columns: frozenset[str]
    partition_field: str | None
    clustering_fields: tuple[str, ...]
    num_bytes: int = 0


def layout_of(table: bigquery.Table) -> TableLayout:
    partitioning = table.time_partitioning
    return TableLayout(
        frozenset(f.name for f in table.schema),
        partitioning.field if partitioning else None,
        tuple(table.clustering_fields or ()),
        int(table.num_bytes or 0),
    )


def read_layout(destination: BigQueryDestination, ref: str) -> TableLayout | None:
    """The table's layout from its metadata (free); None when it cannot be read (the
    permission check reports that on its own)."""
    try:
        table = destination.client.get_table(ref, retry=destination.retry, timeout=REQUEST_TIMEOUT)
    except API_FAILURES:
        return None
    return layout_of(table)


def new_table(ref: str, model: ExportModel, json_type: bool) -> bigquery.Table:
    """A table with the model's schema, partitioned by DAY on its partition field and
    clustered by its merge key (where the model has them)."""
    table = bigquery.Table(ref, schema=model.schema(json_type))
    if model.partition_field:
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=model.partition_field
        )
    if model.cluster_fields:
        table.clustering_fields = list(model.cluster_fields)
    return table


def create_table_if_missing(
    destination: BigQueryDestination,
    dataset_id: str,
    table_id: str,
    model: ExportModel,
    json_type: bool,
) -> bool:
    """Create the export's table with its layout unless it exists; return whether it was
    created here. An existing table is left exactly as it is."""
    ref = destination.table_ref(dataset_id, table_id)
    client, retry = destination.client, destination.retry
    try:
        try:
            client.get_table(ref, retry=retry, timeout=REQUEST_TIMEOUT)
            return False
        except api_errors.NotFound:
            pass
        try:
            client.get_dataset(
                f"{destination.project}.{dataset_id}", retry=retry, timeout=REQUEST_TIMEOUT
            )
        except api_errors.NotFound:
            raise DestinationError(
                f"Dataset {dataset_id} does not exist in project {destination.project}. Create "
                f"it (bq mk --dataset {destination.project}:{dataset_id}) or fix the dataset ID."
            ) from None
        try:
            client.create_table(
                new_table(ref, model, json_type), retry=retry, timeout=REQUEST_TIMEOUT
            )
        except api_errors.Conflict:  # created meanwhile by another client
            return False
    except API_FAILURES as error:
        raise destination.translate(error, f"preparing table {ref}", dataset_id) from None
    return True


def layout_advice(
    ref: str, layout: TableLayout, model: ExportModel, write_mode: WriteMode
) -> list[str]:
    """What `bqtui check` says of a table whose layout makes every MERGE bill all of it."""
    name = model.model.value
    if not model.model.is_mutable or write_mode == WriteMode.APPEND:
        return []
    if not model.partition_field:  # persons: a person may change at any time
        return [
            f"{name}: every MERGE into {ref} reads (and bills) the whole table "
            f"({bytes_text(layout.num_bytes)} now): a person can change at any time, so no "
            "partition bounds it. If the table is large, export "
            "to a new table with --write-mode append (bqtui add … --table-id NEW "
            "--write-mode append): each window is loaded (free) and the view NEW_latest "
            "returns the newest version per key (README: Write modes and cost)."
        ]
    field = model.partition_field
    if layout.partition_field == field:
        return []
    return [
        f"{name}: table {ref} is not partitioned by {field}, so every MERGE reads (and "
        "bills) the whole table. bqtui never changes an existing table; to migrate it, "
        "pause the export's schedule and run in BigQuery:\n"
        + "\n".join(f"  {statement}" for statement in migration_statements(ref, layout, model))
    ]


def migration_statements(ref: str, layout: TableLayout, model: ExportModel) -> list[str]:
    """Copy the table into a partitioned, clustered one, then swap the two by renaming."""
    field = model.partition_field
    project, dataset, table = ref.split(".")
    added = "" if field in layout.columns else f", {SESSION_ID_TIME_SQL} AS {field}"
    clustering = ", ".join(model.cluster_fields)
    return [
        f"CREATE TABLE `{ref}_partitioned` PARTITION BY TIMESTAMP_TRUNC({field}, DAY) "
        f"CLUSTER BY {clustering} AS SELECT *{added} FROM `{ref}`;",
        f"ALTER TABLE `{ref}` RENAME TO `{table}_unpartitioned`;",
        f"ALTER TABLE `{project}.{dataset}.{table}_partitioned` RENAME TO `{table}`;",
        f"-- then, once the export ran: DROP TABLE `{project}.{dataset}.{table}_unpartitioned`;",
    ]
