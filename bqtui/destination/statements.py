"""The SQL bqtui runs in BigQuery: the MERGE of a stage into the final table, the removal of
duplicate copies, and query parameters from Python values."""

from datetime import UTC, date, datetime, timedelta

from google.cloud import bigquery

from bqtui.destination.table_plan import TablePlan
from bqtui.models.base import ExportModel

# Query parameters as Python values: datetime → TIMESTAMP, date → DATE, int → INT64, str →
# STRING; a list of one of those → an ARRAY of it.
QueryValue = datetime | date | int | str
QueryParameters = dict[str, QueryValue | list[datetime] | list[date] | list[int] | list[str]]
QueryParameter = bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter


def _bigquery_type(value: QueryValue) -> str:
    if isinstance(value, datetime):  # before date: a datetime is a date too
        return "TIMESTAMP"
    if isinstance(value, date):
        return "DATE"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"no BigQuery parameter type for {type(value).__name__}")
    return "INT64" if isinstance(value, int) else "STRING"


def query_parameters(parameters: QueryParameters | None) -> list[QueryParameter]:
    built: list[QueryParameter] = []
    for name, value in (parameters or {}).items():
        if isinstance(value, list):
            kind = _bigquery_type(value[0]) if value else "STRING"
            built.append(bigquery.ArrayQueryParameter(name, kind, value))
        else:
            built.append(bigquery.ScalarQueryParameter(name, _bigquery_type(value), value))
    return built


def quote(ref: str) -> str:
    return f"`{ref}`"


def timestamp_literal(value: datetime) -> str:
    return f"TIMESTAMP '{value.astimezone(UTC).isoformat(timespec='microseconds')}'"


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
        f"({{alias}}timestamp >= {timestamp_literal(start)} AND "
        f"{{alias}}timestamp < {timestamp_literal(start + timedelta(days=1))})"
        for start in (datetime(d.year, d.month, d.day, tzinfo=UTC) for d in sorted(days))
    )
    listed = f"{{alias}}`{key}` IN UNNEST(@keys) AND ({days_filter})"
    column_list = ", ".join(f"`{c}`" for c in columns)
    values = ", ".join(f"kept.`{c}`" for c in columns)
    return (
        f"MERGE {quote(table_ref)} AS t\n"
        f"USING (SELECT * FROM {quote(table_ref)} WHERE {listed.format(alias='')}\n"
        f"  QUALIFY ROW_NUMBER() OVER (PARTITION BY `{key}` ORDER BY {order_by}) = 1) AS kept\n"
        "ON FALSE\n"
        f"WHEN NOT MATCHED BY SOURCE AND {listed.format(alias='t.')} THEN DELETE\n"
        f"WHEN NOT MATCHED THEN INSERT ({column_list}) VALUES ({values})"
    )


def newest_first(plan: TablePlan, model: ExportModel) -> tuple[str, str]:
    """(PARTITION BY, ORDER BY) that rank a key's rows newest first: versions descending, ties
    broken by the next columns so the outcome is deterministic. The MERGE keeps the first of a
    stage's rows per key by it; the ``_latest`` view of an append-mode table the first of all."""
    source_names = [f.name for f in plan.source_fields]
    key = [k for k in model.merge_key if k in source_names]
    versions = [v for v in model.ordering_versions if v in source_names]
    tie_breakers = [n for n in source_names if n not in key and n not in versions]
    order = [f"`{v}` DESC" for v in versions] + [f"TO_JSON_STRING(`{n}`)" for n in tie_breakers[:3]]
    return ", ".join(f"`{k}`" for k in key), ", ".join(order) or "1"


def partition_filter(
    plan: TablePlan,
    model: ExportModel,
    timestamp_range: tuple[datetime, datetime] | None,
    alias: str = "final",
) -> str | None:
    """A constant filter on the table's partition column naming the days of the stage's rows,
    so that BigQuery reads (and bills) only those partitions; None where the table lacks the
    column. A row's partition value follows from its key (sessions: the time in the id), so
    every stored row a staged row can match lies in that range; rows without a value (ids
    that are not UUIDv7) lie in the NULL partition, which is named too."""
    field = model.partition_field
    if field is None or field not in {f.name for f in plan.fields}:
        return None
    column = f"{alias}.`{field}`"
    between = None
    if timestamp_range:
        low, high = timestamp_range
        between = f"{column} BETWEEN {timestamp_literal(low)} AND {timestamp_literal(high)}"
    if not model.partition_nullable:
        return between
    return f"({between} OR {column} IS NULL)" if between else f"{column} IS NULL"


def merge_statement(
    plan: TablePlan,
    stage_ref: str,
    model: ExportModel,
    timestamp_range: tuple[datetime, datetime] | None = None,
) -> str:
    """The MERGE of a stage table into the final table.

    The stage may hold several rows per key; the newest versions win, ties broken by the
    remaining columns so the outcome is deterministic (``newest_first``).
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
    versions = [v for v in model.ordering_versions if v in source_names]
    partition_by, order_by = newest_first(plan, model)
    deduplicated = (
        f"SELECT * EXCEPT (_bqtui_rank) FROM (SELECT *, ROW_NUMBER() OVER "
        f"(PARTITION BY {partition_by} ORDER BY {order_by}) AS _bqtui_rank "
        f"FROM {quote(stage_ref)}) WHERE _bqtui_rank = 1"
    )
    on = " AND ".join(f"final.`{k}` = stage.`{k}`" for k in key)
    partitions = partition_filter(plan, model, timestamp_range)
    if partitions:
        on += f" AND {partitions}"
    column_list = ", ".join(f"`{n}`" for n in names)
    values = ", ".join(value(n) for n in names)
    statement = (
        f"MERGE {quote(plan.table_ref)} AS final\nUSING ({deduplicated}) AS stage\nON {on}\n"
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
