"""Persons: one row per (team_id, distinct_id) with the latest person and mapping versions."""

from bqtui.core.config import ExportConfig, Model
from bqtui.models.base import WINDOW_PARAMETERS, ExportModel, ModelField

FIELDS = (
    ModelField("team_id", "INT64"),
    ModelField("distinct_id", "STRING"),
    ModelField("person_id", "STRING"),
    ModelField("properties", "STRING", json_capable=True),
    ModelField("person_version", "INT64"),
    ModelField("person_distinct_id_version", "INT64"),
    ModelField("created_at", "TIMESTAMP"),
    ModelField("is_deleted", "BOOL"),
)


def build_query(export: ExportConfig) -> str:
    start, end = WINDOW_PARAMETERS
    # Rows whose person or distinct-id mapping changed in the window; the latest versions of
    # both are read with argMax because ReplacingMergeTree may not have merged yet. Aliases
    # reuse column names, hence prefer_column_name_to_alias.
    return f"""
WITH
    touched_distinct_ids AS (
        SELECT distinct_id FROM person_distinct_id2
        WHERE team_id = {{team_id:Int64}} AND _timestamp >= {start} AND _timestamp < {end}
    ),
    touched_persons AS (
        SELECT id FROM person
        WHERE team_id = {{team_id:Int64}} AND _timestamp >= {start} AND _timestamp < {end}
    ),
    latest_mappings AS (
        SELECT
            distinct_id,
            argMax(person_id, version) AS person_id,
            argMax(is_deleted, version) AS is_deleted,
            max(version) AS version
        FROM person_distinct_id2
        WHERE team_id = {{team_id:Int64}}
            AND (distinct_id IN touched_distinct_ids OR person_id IN touched_persons)
        GROUP BY distinct_id
    ),
    latest_persons AS (
        SELECT
            id,
            argMax(properties, version) AS properties,
            argMax(created_at, version) AS created_at,
            argMax(is_deleted, version) AS is_deleted,
            max(version) AS version
        FROM person
        WHERE team_id = {{team_id:Int64}} AND id IN (SELECT person_id FROM latest_mappings)
        GROUP BY id
    )
SELECT
    toInt64({{team_id:Int64}}) AS team_id,
    m.distinct_id AS distinct_id,
    toString(m.person_id) AS person_id,
    p.properties AS properties,
    toInt64(p.version) AS person_version,
    toInt64(m.version) AS person_distinct_id_version,
    toDateTime64(p.created_at, 6, 'UTC') AS created_at,
    (m.is_deleted = 1 OR ifNull(p.is_deleted, 0) = 1) AS is_deleted
FROM latest_mappings AS m
LEFT JOIN latest_persons AS p ON p.id = m.person_id
SETTINGS join_use_nulls = 1, prefer_column_name_to_alias = 1
"""


PERSONS = ExportModel(
    model=Model.PERSONS,
    fields=FIELDS,
    merge_key=("team_id", "distinct_id"),
    version_fields=("person_distinct_id_version", "person_version"),
    update_on_equal_version=False,
    insert_only=False,
    partition_field=None,
    build_query=build_query,
)
