"""Events: every event once per uuid, selected by ingestion time."""

import json

import pyarrow as pa

from bqtui.core.config import ExportConfig, Model
from bqtui.models.base import INGESTED_AT, ExportModel, ModelField, ingested_in_window
from bqtui.models.json_text import suspicious_rows

FIELDS = (
    ModelField("uuid", "STRING", repetitive=False),
    ModelField("event", "STRING"),
    ModelField("properties", "STRING", json_capable=True, repetitive=False),
    ModelField("elements", "STRING"),
    ModelField("set", "STRING", json_capable=True, repetitive=False),
    ModelField("set_once", "STRING", json_capable=True, repetitive=False),
    ModelField("distinct_id", "STRING"),
    ModelField("team_id", "INT64"),
    ModelField("ip", "STRING"),
    ModelField("site_url", "STRING"),
    ModelField("timestamp", "TIMESTAMP", repetitive=False),
    ModelField("bq_ingested_timestamp", "TIMESTAMP", from_source=False),
    ModelField("_inserted_at", "TIMESTAMP", repetitive=False, optional=True),
)


def event_filters(export: ExportConfig) -> str:
    filters = ""
    if export.include_events:
        filters += " AND event IN {include_events:Array(String)}"
    if export.exclude_events:
        filters += " AND event NOT IN {exclude_events:Array(String)}"
    return filters


def build_query(export: ExportConfig) -> str:
    return f"""
SELECT
    toString(uuid) AS uuid,
    event,
    properties,
    elements_chain AS elements,
    -- the position test skips parsing the (many) events without $set
    if(position(properties, '"$set"') > 0,
        nullIf(JSONExtractRaw(properties, '$set'), ''), NULL) AS set,
    if(position(properties, '"$set_once"') > 0,
        nullIf(JSONExtractRaw(properties, '$set_once'), ''), NULL) AS set_once,
    distinct_id,
    team_id,
    nullIf(JSONExtractString(properties, '$ip'), '') AS ip,
    '' AS site_url,
    timestamp,
    -- when the event reached ClickHouse: its window; filled where the table has the column
    {INGESTED_AT} AS _inserted_at
FROM events
WHERE team_id = {{team_id:Int64}}
    AND {ingested_in_window()}{event_filters(export)}
"""


def _extract(properties: dict, name: str, as_json: bool):
    value = properties.get(name)
    if value is None:
        return None
    if as_json:  # ASCII escapes keep even unpaired surrogates exactly
        return json.dumps(value, separators=(",", ":"))
    return value if isinstance(value, str) and value else None


def reextract_unparsed(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Re-extract $set, $set_once and $ip where ClickHouse could not parse the properties.

    ClickHouse's JSON functions give up on text with raw control characters or unpaired
    surrogate escapes and return nothing; Python's parser reads them, so the event keeps them.
    """
    rows = suspicious_rows(batch.column("properties"))
    if not rows:
        return batch
    columns = {name: batch.column(name).to_pylist() for name in ("set", "set_once", "ip")}
    properties = batch.column("properties")
    for index in rows:
        try:
            parsed = json.loads(properties[index].as_py(), strict=False)
        except ValueError:
            continue
        if not isinstance(parsed, dict):
            continue
        columns["set"][index] = _extract(parsed, "$set", as_json=True)
        columns["set_once"][index] = _extract(parsed, "$set_once", as_json=True)
        columns["ip"][index] = _extract(parsed, "$ip", as_json=False)
    for name, values in columns.items():
        position = batch.schema.get_field_index(name)
        batch = batch.set_column(position, name, pa.array(values, type=pa.string()))
    return batch


EVENTS = ExportModel(
    model=Model.EVENTS,
    fields=FIELDS,
    merge_key=("uuid",),
    version_fields=(),
    update_on_equal_version=False,
    insert_only=True,
    partition_field="timestamp",
    build_query=build_query,
    repair_batch=reextract_unparsed,
)
