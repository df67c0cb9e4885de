"""Events: every event once per uuid, selected by ingestion time."""

from ..config import ExportConfig, Model
from .base import INGESTED_AT, WINDOW_PARAMETERS, ExportModel, ModelField

FIELDS = (
    ModelField("uuid", "STRING"),
    ModelField("event", "STRING"),
    ModelField("properties", "STRING", json_capable=True),
    ModelField("elements", "STRING"),
    ModelField("set", "STRING", json_capable=True),
    ModelField("set_once", "STRING", json_capable=True),
    ModelField("distinct_id", "STRING"),
    ModelField("team_id", "INT64"),
    ModelField("ip", "STRING"),
    ModelField("site_url", "STRING"),
    ModelField("timestamp", "TIMESTAMP"),
    ModelField("bq_ingested_timestamp", "TIMESTAMP", from_source=False),
)


def event_filters(export: ExportConfig) -> str:
    filters = ""
    if export.include_events:
        filters += " AND event IN {include_events:Array(String)}"
    if export.exclude_events:
        filters += " AND event NOT IN {exclude_events:Array(String)}"
    return filters


def build_query(export: ExportConfig) -> str:
    start, end = WINDOW_PARAMETERS
    return f"""
SELECT
    toString(uuid) AS uuid,
    event,
    properties,
    elements_chain AS elements,
    nullIf(JSONExtractRaw(properties, '$set'), '') AS set,
    nullIf(JSONExtractRaw(properties, '$set_once'), '') AS set_once,
    distinct_id,
    team_id,
    nullIf(JSONExtractString(properties, '$ip'), '') AS ip,
    '' AS site_url,
    timestamp
FROM events
WHERE team_id = {{team_id:Int64}}
    AND {INGESTED_AT} >= {start}
    AND {INGESTED_AT} < {end}{event_filters(export)}
"""


EVENTS = ExportModel(
    model=Model.EVENTS,
    fields=FIELDS,
    merge_key=("uuid",),
    version_fields=(),
    update_on_equal_version=False,
    insert_only=True,
    partition_field="timestamp",
    build_query=build_query,
)
