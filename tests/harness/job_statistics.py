"""What BigQuery says a query job cost, played for the emulator (which says 0).

The model is deterministic, so tests can compute the figures they expect:

* **bytes processed** — for each distinct table the statement reads (a backquoted
  ``project.dataset.table`` after ``FROM``, ``JOIN``, ``USING``, ``MERGE [INTO]`` or
  ``UPDATE``), its row count × ``BYTES_PER_ROW``. The row count is the table's whole count,
  except for a table partitioned by DAY on a column the statement filters with constants
  (``[alias.]`col` BETWEEN TIMESTAMP '…' AND TIMESTAMP '…'``, ``col >= TIMESTAMP '…' AND
  col < TIMESTAMP '…'``, ``col IS NULL``): then only the rows of the days those ranges touch
  (BigQuery prunes whole day partitions), plus the NULL partition when ``IS NULL`` is named.
  A filter counts when it names the column unqualified or qualified by one of the table's
  aliases; the model does not check that the filter is a conjunct. DDL (CREATE/DROP/ALTER
  without a SELECT, views) reads nothing. Counts come from the emulator directly (a
  ``COUNT(*)`` query), as the table is before the statement runs.
* **bytes billed** — BigQuery's on-demand rule: per table referenced, its bytes rounded up
  to the MiB with a minimum of ``MIN_BILLED_PER_TABLE`` (10 MiB); 0 for dry runs and for
  projects on a reservation.
* **slot time** — ``1 + bytes processed // 10_000`` milliseconds.

A job whose ``maximumBytesBilled`` is below its bytes billed fails before it runs with
BigQuery's ``bytesBilledLimitExceeded`` (never on a reservation: nothing is billed there).
Figures a test dictates (``StatsOverride``) replace the model's and count for that limit.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

BYTES_PER_ROW = 100
MIB = 1024 * 1024
MIN_BILLED_PER_TABLE = 10 * MIB
RESERVATION_ID = "bqtui-test:US.bqtui-reservation"

# (method, target, body, headers) -> (status, JSON payload); talks to the emulator directly.
EmulatorCall = Callable[[str, str, bytes, dict[str, str]], tuple[int, Any]]

_TABLE_READ = re.compile(
    r"\b(?:FROM|JOIN|USING|MERGE(?:\s+INTO)?|UPDATE)\s+`(?P<name>[^`]+)`"
    r"(?:\s+(?:AS\s+)?(?P<alias>[A-Za-z_]\w*))?",
    re.IGNORECASE,
)
_NOT_ALIASES = {
    "where", "on", "when", "qualify", "group", "order", "limit", "join", "left", "right",
    "inner", "full", "cross", "union", "set", "using", "window", "having", "except",
    "intersect", "for", "as", "tablesample",
}  # fmt: skip
_DDL = re.compile(
    r"^\s*(?:DROP|ALTER|TRUNCATE|CREATE(?:\s+OR\s+REPLACE)?\s+(?:\w+\s+)*VIEW)\b", re.I
)


@dataclass(frozen=True)
class JobStatistics:
    """The figures of one query job, as integers."""

    processed: int
    billed: int
    slot_ms: int
    dry_run: bool = False
    reservation: bool = False

    def job_fields(self) -> dict[str, Any]:
        """The ``statistics`` members of a job resource (int64 as strings, as BigQuery)."""
        query: dict[str, Any] = {
            "totalBytesProcessed": str(self.processed),
            "totalBytesBilled": str(self.billed),
            "billingTier": 1,
            "cacheHit": False,
        }
        statistics: dict[str, Any] = {"totalBytesProcessed": str(self.processed)}
        if not self.dry_run:
            query["totalSlotMs"] = str(self.slot_ms)
            statistics["totalSlotMs"] = str(self.slot_ms)
        if self.reservation and not self.dry_run:
            statistics["reservation_id"] = RESERVATION_ID
            statistics["reservationUsage"] = [
                {"name": RESERVATION_ID.rsplit(".", 1)[-1], "slotMs": str(self.slot_ms)}
            ]
        statistics["query"] = query
        return statistics

    def query_response_fields(self) -> dict[str, Any]:
        """The top-level members of a ``jobs.query`` / ``getQueryResults`` answer."""
        fields: dict[str, Any] = {
            "totalBytesProcessed": str(self.processed),
            "totalBytesBilled": str(self.billed),
            "cacheHit": False,
        }
        if not self.dry_run:
            fields["totalSlotMs"] = str(self.slot_ms)
        return fields


@dataclass(frozen=True)
class StatsOverride:
    """Figures a test dictates for matching jobs; None keeps (or derives) the model's."""

    job_id: re.Pattern[str]
    processed: int | None = None
    billed: int | None = None
    slot_ms: int | None = None


@dataclass
class _TableScan:
    ref: str  # project.dataset.table
    aliases: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _PartitionFilter:
    days: frozenset[date]
    includes_null: bool


def billed_for(table_bytes: list[int]) -> int:
    """BigQuery's on-demand bytes billed for tables read with these bytes each."""
    return sum(max(-(-scanned // MIB) * MIB, MIN_BILLED_PER_TABLE) for scanned in table_bytes)


def slot_ms_for(processed: int) -> int:
    return 1 + processed // 10_000


def with_override(stats: JobStatistics, override: StatsOverride) -> JobStatistics:
    """``stats`` with the figures ``override`` dictates, the others following from them."""
    processed = stats.processed if override.processed is None else override.processed
    billed, slot_ms = stats.billed, stats.slot_ms
    if override.processed is not None:
        billed, slot_ms = billed_for([processed]), slot_ms_for(processed)
    return replace(
        stats,
        processed=processed,
        billed=billed if override.billed is None else override.billed,
        slot_ms=slot_ms if override.slot_ms is None else override.slot_ms,
    )


def limit_exceeded_message(limit: int, billed: int) -> str:
    """BigQuery's ``bytesBilledLimitExceeded`` message."""
    return f"Query exceeded limit for bytes billed: {limit}. {billed} or higher required."


def tables_read(sql: str, default_project: str) -> list[_TableScan]:
    """The distinct tables a statement reads, with the aliases it gives them."""
    if _DDL.match(sql):
        return []
    scans: dict[str, _TableScan] = {}
    for found in _TABLE_READ.finditer(sql):
        parts = found.group("name").split(".")
        if len(parts) == 2:
            parts = [default_project, *parts]
        if len(parts) != 3 or any(p.upper() == "INFORMATION_SCHEMA" for p in parts):
            continue
        scan = scans.setdefault(".".join(parts), _TableScan(".".join(parts)))
        alias = found.group("alias")
        if alias and alias.lower() not in _NOT_ALIASES:
            scan.aliases.add(alias)
    return list(scans.values())


def _column_ref(column: str, group: str) -> str:
    return rf"(?<![\w.`])(?:(?P<{group}>\w+)\s*\.\s*)?`?{re.escape(column)}`?(?![\w`])"


def _timestamp(literal: str) -> datetime:
    value = datetime.fromisoformat(literal.strip())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _days_between(low: datetime, high: datetime) -> set[date]:
    days, day = set(), low.date()
    while day <= high.date():
        days.add(day)
        day += timedelta(days=1)
    return days


def partition_filter(sql: str, column: str, scan: _TableScan) -> _PartitionFilter | None:
    """The days (and NULL partition) constant filters on ``column`` keep; None: no filter."""
    literal = r"TIMESTAMP\s*'(?P<{}>[^']+)'"
    between = re.compile(
        _column_ref(column, "q")
        + r"\s+BETWEEN\s+"
        + literal.format("low")
        + r"\s+AND\s+"
        + literal.format("high"),
        re.I,
    )
    half_open = re.compile(
        _column_ref(column, "q")
        + r"\s*>=\s*"
        + literal.format("low")
        + r"\s+AND\s+"
        + _column_ref(column, "q2")
        + r"\s*<\s*"
        + literal.format("high"),
        re.I,
    )
    is_null = re.compile(_column_ref(column, "q") + r"\s+IS\s+NULL", re.I)

    def ours(found: re.Match[str]) -> bool:
        qualifier = found.group("q")
        return qualifier is None or qualifier in scan.aliases | {scan.ref.rsplit(".", 1)[-1]}

    days: set[date] = set()
    found_any = False
    for found in filter(ours, between.finditer(sql)):
        found_any = True
        days |= _days_between(_timestamp(found["low"]), _timestamp(found["high"]))
    for found in filter(ours, half_open.finditer(sql)):
        found_any = True
        high = _timestamp(found["high"]) - timedelta(microseconds=1)
        days |= _days_between(_timestamp(found["low"]), high)
    includes_null = any(ours(found) for found in is_null.finditer(sql))
    if not found_any and not includes_null:
        return None
    return _PartitionFilter(frozenset(days), includes_null)


class JobCostModel:
    """Computes ``JobStatistics`` for a statement, reading counts from the emulator."""

    def __init__(self, emulator_call: EmulatorCall) -> None:
        self._call = emulator_call

    def estimate(self, sql: str, project: str) -> tuple[int, list[int]]:
        """(bytes processed, bytes per table read)."""
        per_table = [
            self._rows_scanned(sql, scan) * BYTES_PER_ROW for scan in tables_read(sql, project)
        ]
        return sum(per_table), per_table

    def statistics(
        self,
        sql: str,
        project: str,
        *,
        dry_run: bool = False,
        reservation: bool = False,
        override: StatsOverride | None = None,
    ) -> JobStatistics:
        processed, per_table = self.estimate(sql, project)
        stats = JobStatistics(
            processed, billed_for(per_table), slot_ms_for(processed), dry_run, reservation
        )
        if override is not None:
            stats = with_override(stats, override)
        return replace(stats, billed=0) if dry_run or reservation else stats

    def _rows_scanned(self, sql: str, scan: _TableScan) -> int:
        column = self._day_partition_column(scan.ref)
        pruned = partition_filter(sql, column, scan) if column else None
        if column is None or pruned is None:
            return self._count(scan.ref, None)
        conditions = [
            f"(`{column}` >= TIMESTAMP '{start.isoformat()}' AND "
            f"`{column}` < TIMESTAMP '{end.isoformat()}')"
            for start, end in _day_ranges(pruned.days)
        ]
        if pruned.includes_null:
            conditions.append(f"`{column}` IS NULL")
        return self._count(scan.ref, " OR ".join(conditions)) if conditions else 0

    def _day_partition_column(self, ref: str) -> str | None:
        project, dataset, table = ref.split(".")
        status, table_resource = self._call(
            "GET", f"/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}", b"", {}
        )
        partitioning = (table_resource or {}).get("timePartitioning") if status == 200 else None
        if not isinstance(partitioning, dict) or partitioning.get("type", "DAY") != "DAY":
            return None
        return partitioning.get("field")

    def _count(self, ref: str, where: str | None) -> int:
        project = ref.split(".")[0]
        sql = f"SELECT COUNT(*) FROM `{ref}`" + (f" WHERE {where}" if where else "")
        body = json.dumps({"query": sql, "useLegacySql": False}).encode()
        status, answer = self._call(
            "POST",
            f"/bigquery/v2/projects/{project}/queries",
            body,
            {"Content-Type": "application/json"},
        )
        rows = (answer or {}).get("rows") if status == 200 else None
        if not rows:
            return 0  # a table that does not exist (yet) reads nothing
        return int(rows[0]["f"][0]["v"])


def _day_ranges(days: frozenset[date]) -> list[tuple[datetime, datetime]]:
    """Consecutive days merged into [start, end) ranges, in UTC."""
    ranges: list[tuple[datetime, datetime]] = []
    for day in sorted(days):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], start + timedelta(days=1))
        else:
            ranges.append((start, start + timedelta(days=1)))
    return ranges


def exceeded_limit(query_config: dict, statistics: JobStatistics) -> int | None:
    """The job's maximumBytesBilled when it would bill more, else None."""
    limit = query_config.get("maximumBytesBilled")
    if limit is None or statistics.billed <= int(limit):
        return None
    return int(limit)


def with_statistics(payload: Any, statistics: JobStatistics | None) -> Any:
    """A job resource or query answer carrying the job's figures (merged into what the
    emulator reports, so its ``statementType`` or ``dmlStats`` stay)."""
    if statistics is None or not isinstance(payload, dict):
        return payload
    if (payload.get("status") or {}).get("errorResult"):
        return payload  # a job that failed: what the emulator says
    if payload.get("kind") in ("bigquery#queryResponse", "bigquery#getQueryResultsResponse"):
        return {**payload, **statistics.query_response_fields()}
    fields = statistics.job_fields()
    existing = payload.get("statistics") or {}
    query = {**(existing.get("query") or {}), **fields.pop("query")}
    return {**payload, "statistics": {**existing, **fields, "query": query}}


def refused_job_resource(
    project: str, job_id: str, location: str, configuration: dict, limit: int, billed: int
) -> dict:
    """The job BigQuery answers for a query over its maximumBytesBilled: DONE, failed."""
    error = {"reason": "bytesBilledLimitExceeded", "message": limit_exceeded_message(limit, billed)}
    now = str(int(time.time() * 1000))
    return {
        "kind": "bigquery#job",
        "id": f"{project}:{location}.{job_id}",
        "jobReference": {"projectId": project, "jobId": job_id, "location": location},
        "configuration": {**configuration, "jobType": "QUERY"},
        "status": {"state": "DONE", "errorResult": error, "errors": [error]},
        "statistics": {"creationTime": now, "startTime": now, "endTime": now},
    }


@dataclass(frozen=True)
class QueryJobRecord:
    """A query job a client asked for (``jobs.insert`` with a query, or ``jobs.query``)."""

    operation: str
    job_id: str | None  # None for jobs.query: BigQuery names the job
    query: str
    labels: dict[str, str]
    maximum_bytes_billed: int | None
    dry_run: bool
    account: str | None
    status: int | None


def query_job_record(
    operation: str | None, body: Any, account: str | None, status: int | None
) -> QueryJobRecord | None:
    """The query job in a recorded request body, None when it holds none."""
    if not isinstance(body, dict):
        return None
    settings: Any
    if operation == "jobs.query":
        settings, labels, job_id = body, body.get("labels"), None
        dry_run = bool(body.get("dryRun"))
    elif operation == "jobs.insert":
        configuration = body.get("configuration") or {}
        settings = configuration.get("query")
        labels, job_id = configuration.get("labels"), (body.get("jobReference") or {}).get("jobId")
        dry_run = bool(configuration.get("dryRun"))
    else:
        return None
    if not isinstance(settings, dict) or not isinstance(settings.get("query"), str):
        return None
    limit = settings.get("maximumBytesBilled")
    return QueryJobRecord(
        operation,
        job_id,
        settings["query"],
        dict(labels or {}),
        int(limit) if limit is not None else None,
        dry_run,
        account,
        status,
    )
