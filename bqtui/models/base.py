"""What every export model declares: destination fields, the ClickHouse query, merge rules."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
from google.cloud.bigquery import SchemaField

from bqtui.core.config import ExportConfig, Model

# The export window's bounds, as server-side query parameters.
WINDOW_PARAMETERS = "{window_start:DateTime64(6, 'UTC')}", "{window_end:DateTime64(6, 'UTC')}"
# Ingestion time of an event: when it reached ClickHouse (late events land in later windows).
INGESTED_AT = "COALESCE(inserted_at, toDateTime64(_timestamp, 6, 'UTC'))"


def ingested_in_window() -> str:
    """``INGESTED_AT`` in the window, written so that a skip index on ``inserted_at`` (and
    one on ``_timestamp`` for rows without it) prunes the scan on any ClickHouse version:
    plain ranges on the columns themselves, no function around them."""
    start, end = WINDOW_PARAMETERS
    return (
        f"((inserted_at >= {start} AND inserted_at < {end}) OR (inserted_at IS NULL "
        f"AND _timestamp >= toDateTime({start}) AND _timestamp < toDateTime({end})))"
    )


# ClickHouse's JSON functions read nothing from text with raw control characters or unpaired
# surrogate escapes. For extracting fields (not for exporting the text itself), such rows are
# made parseable: control characters become spaces, surrogate escapes become U+FFFD.
PARSEABLE_PROPERTIES = (
    r"if(match(properties, '[\x00-\x1f]|\\\\u[dD][89a-fA-F]'), "
    r"replaceRegexpAll(replaceRegexpAll(properties, '[\x00-\x1f]', ' '), "
    r"'\\\\u[dD][89a-fA-F][0-9a-fA-F]{2}', '\\\\ufffd'), properties)"
)

ARROW_TYPES = {
    "STRING": pa.string(),
    "JSON": pa.string(),  # JSON travels as text and is parsed by BigQuery in the MERGE
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    "BOOL": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class ModelField:
    name: str
    bq_type: str  # STRING, INT64, FLOAT64, BOOL, TIMESTAMP
    json_capable: bool = False  # STRING or JSON, per the export's choice
    repeated: bool = False
    from_source: bool = True  # False: filled in BigQuery at load time
    repetitive: bool = True  # few distinct values: worth a Parquet dictionary
    # Filled only where the user's table has it: new tables are created without it and its
    # absence is not reported (PostHog added ``_inserted_at`` to exported events later).
    optional: bool = False

    def destination_type(self, json_type: bool) -> str:
        return "JSON" if self.json_capable and json_type else self.bq_type

    def schema_field(self, json_type: bool) -> SchemaField:
        mode = "REPEATED" if self.repeated else "NULLABLE"
        return SchemaField(self.name, self.destination_type(json_type), mode=mode)

    def arrow_type(self) -> pa.DataType:
        value_type = ARROW_TYPES[self.bq_type]
        return pa.list_(value_type) if self.repeated else value_type


@dataclass(frozen=True)
class ExportModel:
    model: Model
    fields: tuple[ModelField, ...]
    merge_key: tuple[str, ...]
    # Compared in order; a staged row replaces a stored one only when its versions are newer.
    version_fields: tuple[str, ...]
    # Sessions are re-exported with the same end_timestamp when a late event changes them.
    update_on_equal_version: bool
    insert_only: bool  # events: append new uuids, never update
    # New tables are partitioned by DAY on it; a MERGE names the days its stage touches.
    partition_field: str | None
    build_query: Callable[[ExportConfig], str]
    # Fixes a batch where ClickHouse could not compute a field (see events).
    repair_batch: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None
    # Rows of a batch whose source rows were looked up in the team's whole history (sessions
    # without UUIDv7 ids), and the window's log line about them: what the window cost.
    full_history_rows: Callable[[pa.RecordBatch], int] | None = None
    # The same count where ClickHouse wrote the Parquet: the rows whose value of this column is
    # NULL, from the footers' null counts (no row is read back).
    full_history_null_column: str | None = None
    full_history_note: Callable[[int, int], str] | None = None
    # Rows may have no partition value (NULL): a MERGE then also names the NULL partition.
    partition_nullable: bool = False
    # New tables are clustered by these (the merge key): a MERGE reads only the blocks of its
    # keys within the partitions it names.
    cluster_fields: tuple[str, ...] = ()
    # Compared after version_fields where the table has them (tables made before they were
    # added lack them): they order rows of equal versions by what the row knows, so that the
    # MERGE, a grouped stage and the _latest view all keep the same one.
    later_version_fields: tuple[str, ...] = ()

    @property
    def ordering_versions(self) -> tuple[str, ...]:
        """Every field that orders a key's rows, newest first: versions, then later ones."""
        return (*self.version_fields, *self.later_version_fields)

    @property
    def required_fields(self) -> tuple[str, ...]:
        """Fields a destination table must have: without them a MERGE would merge rows that
        are not the same (a key) or could not tell the newer row (a version)."""
        versions = () if self.insert_only else self.version_fields
        return tuple(dict.fromkeys((*self.merge_key, *versions)))

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> ModelField:
        for model_field in self.fields:
            if model_field.name == name:
                return model_field
        raise KeyError(name)

    def schema(self, json_type: bool) -> list[SchemaField]:
        return [f.schema_field(json_type) for f in self.fields if not f.optional]

    def query_parameters(
        self, export: ExportConfig, window_start: datetime, window_end: datetime
    ) -> dict:
        parameters = {
            "team_id": export.team_id,
            "window_start": window_start,
            "window_end": window_end,
        }
        if export.include_events:
            parameters["include_events"] = list(export.include_events)
        if export.exclude_events:
            parameters["exclude_events"] = list(export.exclude_events)
        return parameters
