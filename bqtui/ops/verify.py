"""`bqtui verify`: does BigQuery hold what ClickHouse holds, for what bqtui recorded as done?

Events are compared per day of their timestamp (BigQuery's partitions): rows, distinct uuids
and a checksum both engines compute the same way (the sum of the timestamps in microseconds).
A day that differs is narrowed to hours, then to the exact uuids missing, duplicated or extra.
Persons (one row per distinct_id) and sessions (one row per session_id) are compared key by
key: missing, extra, and rows older than ClickHouse's latest (in append mode, in the table's
``_latest`` view, which is what its readers see).

Only what should be there counts: the export's team and event filters, and rows ingested in
windows recorded done (persons and sessions: as of the end of the unbroken run of done
windows). A repair re-exports exactly the windows that hold missing or stale rows (the MERGE
makes that safe) and deletes duplicate copies of an event (keeping the first loaded).
"""

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bqtui.core.config import ExportConfig, Model
from bqtui.core.cost import WriteMode
from bqtui.core.errors import BqtuiError, ConfigError
from bqtui.destination.bigquery import BigQueryDestination
from bqtui.destination.latest_view import latest_view_ref
from bqtui.destination.statements import QueryParameters
from bqtui.models.base import INGESTED_AT, PARSEABLE_PROPERTIES
from bqtui.models.events import event_filters
from bqtui.ops.status import export_status
from bqtui.ops.verify_report import DayCheck, VerifyReport
from bqtui.source.clickhouse import ClickHouseSource
from bqtui.state.store import Store
from bqtui.state.windows import STEP

DEFAULT_LISTED = 20  # uuids or keys listed per kind; the rest are counted
REPAIR_CAP = 100_000  # keys a repair acts on at most in one go
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)
MAX_RANGES = 50  # done ranges spelled out in BigQuery's filter at most
# A session's end and its event counts, compared between the engines.
SESSION_COMPARED = ("end_timestamp", "pageview_count", "autocapture_count", "screen_count")


def done_ranges(store: Store, export: ExportConfig) -> list[tuple[datetime, datetime]]:
    """The windows recorded done, merged into ranges of ingestion time."""
    step = STEP[export.interval]
    ranges: list[list[datetime]] = []
    for start in sorted(store.done_window_starts(export.saved_id)):
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = start + step
        else:
            ranges.append([start, start + step])
    return [(a, b) for a, b in ranges]


class Verifier:
    def __init__(
        self,
        store: Store,
        export: ExportConfig,
        source: ClickHouseSource,
        destination: BigQueryDestination,
        *,
        now: Callable[[], datetime],
        listed: int = DEFAULT_LISTED,
        max_bytes: int | None = None,
    ):
        self.store = store
        self.export = export
        self.source = source
        self.destination = destination
        self.now = now
        self.listed = listed
        self.max_bytes = max_bytes
        self.table = destination.table_ref(export.dataset_id, export.table_id)
        # Append mode keeps every version in the table: its _latest view is what readers see.
        appends = export.model != Model.EVENTS and export.write_mode == WriteMode.APPEND
        self.keyed_table = latest_view_ref(self.table) if appends else self.table

    # -- the two engines -------------------------------------------------------------------

    def ch(self, sql: str, parameters: dict) -> list[tuple[Any, ...]]:
        """A ClickHouse query's rows; any failure is one clear ``SourceError``."""
        return self.source.query_rows(sql, parameters)

    def bq_rows(self, sql: str, parameters: QueryParameters | None = None) -> list[dict]:
        return self.destination.query_rows(
            sql, parameters, doing=f"verifying {self.table}", dataset_id=self.export.dataset_id
        )

    def estimate(self, sql: str, parameters: QueryParameters | None = None) -> int:
        return self.destination.estimate_bytes(
            sql,
            parameters,
            doing=f"estimating the scan of {self.table}",
            dataset_id=self.export.dataset_id,
        )

    def guard(self, report: VerifyReport, queries: list[tuple[str, QueryParameters]]) -> None:
        """Before anything runs: what BigQuery will scan, and the --max-bytes limit."""
        report.bytes_estimate = sum(self.estimate(sql, params) for sql, params in queries)
        if self.max_bytes is not None and report.bytes_estimate > self.max_bytes:
            raise ConfigError(
                f"Verify would scan about {report.bytes_estimate:,} bytes of {self.table}, "
                f"over --max-bytes {self.max_bytes:,}. Narrow it with --start/--end (days), "
                "or raise --max-bytes."
            )

    # -- the check --------------------------------------------------------------------------

    def run(self, start: datetime | None = None, end: datetime | None = None) -> VerifyReport:
        through = export_status(self.store, self.export, self.now()).exported_through
        report = VerifyReport(self.export.name, self.export.model.value, self.keyed_table, through)
        ranges = done_ranges(self.store, self.export)
        if not ranges:
            report.compared_through = None
            return report
        if self.export.model == Model.EVENTS:
            report.compared_through = ranges[-1][1]
            self._events(report, ranges, start, end)
        elif through is not None:
            self._keys(report, through)
        return report

    # -- events -----------------------------------------------------------------------------

    def _source_filter(self) -> str:
        return (
            "team_id = {team_id:Int64}"
            + event_filters(self.export)
            + f" AND arrayExists((s, e) -> {INGESTED_AT} >= s AND {INGESTED_AT} < e,"
            " {starts:Array(DateTime64(6, 'UTC'))}, {ends:Array(DateTime64(6, 'UTC'))})"
        )

    def _source_parameters(self, ranges, start, end) -> dict:
        parameters = {
            "team_id": self.export.team_id,
            "starts": [a for a, _ in ranges],
            "ends": [b for _, b in ranges],
            "low": start or EARLIEST,
            "high": end or LATEST,
        }
        if self.export.include_events:
            parameters["include_events"] = list(self.export.include_events)
        if self.export.exclude_events:
            parameters["exclude_events"] = list(self.export.exclude_events)
        return parameters

    def _ingested_filter(self, ranges) -> str | None:
        """With ``_inserted_at`` in the table, BigQuery's rows are counted by ingestion window
        exactly as ClickHouse's are (rows of windows not recorded done are left out)."""
        try:
            columns = self.destination.table_columns(self.table) or []
        except BqtuiError:  # the comparison runs without it
            return None
        if "_inserted_at" not in columns or len(ranges) > MAX_RANGES:
            return None

        def literal(moment: datetime) -> str:
            return f"TIMESTAMP '{moment.astimezone(UTC).isoformat(timespec='microseconds')}'"

        return (
            "("
            + " OR ".join(
                f"(_inserted_at >= {literal(a)} AND _inserted_at < {literal(b)})" for a, b in ranges
            )
            + ")"
        )

    def _events(self, report: VerifyReport, ranges, start, end) -> None:
        conditions: list[str] = []
        bq_parameters: QueryParameters = {}
        ingested = self._ingested_filter(ranges)
        if ingested:
            conditions.append(ingested)
            report.by_ingestion = True
        if start or end:
            conditions.append("timestamp >= @low AND timestamp < @high")
            bq_parameters = {"low": start or EARLIEST, "high": end or LATEST}
        bounds = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        self._ingested = ingested  # the drill-down counts the same rows
        by_day = (
            "SELECT DATE(timestamp) AS day, COUNT(*) AS rows, COUNT(DISTINCT uuid) AS uuids, "
            f"SUM(UNIX_MICROS(timestamp)) AS checksum FROM `{self.table}` {bounds} "
            "GROUP BY day ORDER BY day"
        )
        self.guard(report, [(by_day, bq_parameters)])
        bq_days = {row["day"]: row for row in self.bq_rows(by_day, bq_parameters)}
        parameters = self._source_parameters(ranges, start, end)
        source_days = {
            row[0]: row
            for row in self.ch(
                "SELECT toDate(first_ts) AS day, count() AS uuids, "
                "sum(toUnixTimestamp64Micro(first_ts)) AS checksum FROM ("
                "SELECT uuid, min(timestamp) AS first_ts FROM events WHERE "
                f"{self._source_filter()} AND timestamp >= {{low:DateTime64(6, 'UTC')}} "
                "AND timestamp < {high:DateTime64(6, 'UTC')} GROUP BY uuid) "
                "GROUP BY day ORDER BY day",
                parameters=parameters,
            )
        }
        for day in sorted(set(bq_days) | set(source_days)):
            source_count = int(source_days[day][1]) if day in source_days else 0
            source_sum = int(source_days[day][2]) if day in source_days else 0
            bq = bq_days.get(day, {"rows": 0, "uuids": 0, "checksum": 0})
            check = DayCheck(day, source_count, int(bq["rows"]))
            check.duplicated = int(bq["rows"]) - int(bq["uuids"])
            if source_count != int(bq["uuids"]) or source_sum != int(bq["checksum"] or 0):
                self._narrow_day(report, check, parameters)
            report.days.append(check)
            report.source_rows += source_count
            report.bigquery_rows += check.bigquery
        if any(d.duplicated for d in report.days):
            self._duplicates(report, [d.day for d in report.days if d.duplicated])

    def _and_ingested(self) -> str:
        return f"AND {self._ingested} " if getattr(self, "_ingested", None) else ""

    def _narrow_day(self, report: VerifyReport, check: DayCheck, parameters: dict) -> None:
        """A day that differs: hours, then the exact uuids of the hours that differ."""
        low = datetime.combine(check.day, datetime.min.time(), tzinfo=UTC)
        high = low + timedelta(days=1)
        day_parameters = {**parameters, "low": low, "high": high}
        bq_hours = {
            int(row["hour"]): int(row["uuids"])
            for row in self.bq_rows(
                f"SELECT EXTRACT(HOUR FROM timestamp) AS hour, COUNT(DISTINCT uuid) AS uuids "
                f"FROM `{self.table}` WHERE timestamp >= @low AND timestamp < @high "
                f"{self._and_ingested()}GROUP BY hour",
                {"low": low, "high": high},
            )
        }
        source_hours = dict(
            self.ch(
                "SELECT toHour(first_ts) AS hour, count() FROM (SELECT uuid, min(timestamp) "
                f"AS first_ts FROM events WHERE {self._source_filter()} AND timestamp >= "
                "{low:DateTime64(6, 'UTC')} AND timestamp < {high:DateTime64(6, 'UTC')} "
                "GROUP BY uuid) GROUP BY hour",
                parameters=day_parameters,
            )
        )
        differing = [h for h in range(24) if bq_hours.get(h, 0) != source_hours.get(h, 0)]
        if not differing:  # same counts, other uuids or times: compare the whole day
            differing = list(range(24))
        for hour in differing:
            self._compare_hour(report, check, day_parameters, low + timedelta(hours=hour))
        if not (check.missing or check.extra):
            check.checksum_differs = True  # same uuids, other timestamps

    def _compare_hour(
        self, report: VerifyReport, check: DayCheck, day_parameters: dict, hour_low: datetime
    ) -> None:
        """The exact uuids of one hour that are missing from BigQuery, or extra in it."""
        hour_high = hour_low + timedelta(hours=1)
        hour_parameters = {**day_parameters, "low": hour_low, "high": hour_high}
        source_uuids = {
            row[0]
            for row in self.ch(
                f"SELECT DISTINCT toString(uuid) FROM events WHERE {self._source_filter()} "
                "AND timestamp >= {low:DateTime64(6, 'UTC')} "
                "AND timestamp < {high:DateTime64(6, 'UTC')}",
                parameters=hour_parameters,
            )
        }
        bq_uuids = {
            row["uuid"]
            for row in self.bq_rows(
                f"SELECT DISTINCT uuid FROM `{self.table}` WHERE timestamp >= @low "
                f"AND timestamp < @high {self._and_ingested()}",
                {"low": hour_low, "high": hour_high},
            )
        }
        for uuid in sorted(source_uuids - bq_uuids):
            check.missing += 1
            report.missing.add(uuid, self.listed)
            if len(check.keys) < self.listed:
                check.keys.append(f"missing {uuid}")
            if len(report.repair_keys) < REPAIR_CAP:
                report.repair_keys.append(uuid)
        for uuid in sorted(bq_uuids - source_uuids):
            check.extra += 1
            report.extra.add(uuid, self.listed)
            if len(check.keys) < self.listed:
                check.keys.append(f"extra {uuid}")

    def _duplicates(self, report: VerifyReport, days: list[date]) -> None:
        rows = self.bq_rows(
            f"SELECT uuid, COUNT(*) AS copies FROM `{self.table}` WHERE DATE(timestamp) IN "
            "UNNEST(@days) GROUP BY uuid HAVING COUNT(*) > 1 ORDER BY uuid",
            {"days": days},
        )
        for row in rows:
            report.duplicated.add(f"{row['uuid']} ×{row['copies']}", self.listed)
            report.duplicate_keys.append(row["uuid"])
        report.duplicate_days = days
        report.duplicated.count = sum(int(r["copies"]) - 1 for r in rows)

    # -- persons and sessions: key by key ---------------------------------------------------

    def _keys(self, report: VerifyReport, through: datetime) -> None:
        persons = self.export.model == Model.PERSONS
        key, versions = (
            ("distinct_id", ("person_distinct_id_version", "person_version"))
            if persons
            else ("session_id", SESSION_COMPARED)
        )
        bq_sql = (
            f"SELECT {key} AS k, {', '.join(versions)}, COUNT(*) OVER (PARTITION BY {key}) "
            f"AS copies FROM `{self.keyed_table}` WHERE team_id = @team"
        )
        team: QueryParameters = {"team": self.export.team_id}
        self.guard(report, [(bq_sql, team)])
        bigquery_side: dict[str, tuple] = {}
        copies: Counter[str] = Counter()
        for row in self.bq_rows(bq_sql, team):
            bigquery_side[row["k"]] = tuple(row[v] for v in versions)
            copies[row["k"]] = int(row["copies"])
        source_side = self._persons_source(through) if persons else self._sessions_source(through)
        report.source_rows, report.bigquery_rows = len(source_side), sum(copies.values())
        for k in sorted(source_side):
            if k not in bigquery_side:
                report.missing.add(k, self.listed)
                report.repair_keys.append(k)
            elif _older(bigquery_side[k], source_side[k]) or (
                not persons and _utc_all(bigquery_side[k]) != _utc_all(source_side[k])
            ):  # a person is stale when older; a session when its end or counts differ
                report.stale.add(k, self.listed)
                report.repair_keys.append(k)
        for k in sorted(set(bigquery_side) - set(source_side)):
            report.extra.add(k, self.listed)
        for k, n in sorted(copies.items()):
            if n > 1:
                report.duplicated.add(f"{k} ×{n}", self.listed)

    def _persons_source(self, through: datetime) -> dict[str, tuple]:
        rows = self.ch(
            "SELECT m.distinct_id, toInt64(m.mapping_version), toInt64(p.person_version) FROM "
            "(SELECT distinct_id, argMax(person_id, version) AS latest_person, max(version) AS "
            "mapping_version FROM person_distinct_id2 WHERE team_id = {team:Int64} AND "
            "_timestamp < {through:DateTime64(6, 'UTC')} GROUP BY distinct_id) AS m LEFT JOIN "
            "(SELECT id, max(version) AS person_version FROM person WHERE team_id = {team:Int64} "
            "AND _timestamp < {through:DateTime64(6, 'UTC')} GROUP BY id) AS p "
            "ON p.id = m.latest_person SETTINGS join_use_nulls = 1",
            parameters={"team": self.export.team_id, "through": through},
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    def _sessions_source(self, through: datetime) -> dict[str, tuple]:
        # As the sessions model reads it: properties made parseable first.
        session = f"JSONExtractString({PARSEABLE_PROPERTIES}, '$session_id')"
        rows = self.ch(
            f"SELECT {session} AS s, max(timestamp), toInt64(countIf(event = '$pageview')), "
            "toInt64(countIf(event = '$autocapture')), toInt64(countIf(event = '$screen')) "
            "FROM (SELECT * FROM events WHERE team_id = {team:Int64} LIMIT 1 BY uuid) "
            f"WHERE s != '' GROUP BY s HAVING max({INGESTED_AT}) < "
            "{through:DateTime64(6, 'UTC')}",
            parameters={"team": self.export.team_id, "through": through},
        )
        return {r[0]: tuple(r[1:]) for r in rows}


def _older(stored: tuple, latest: tuple) -> bool:
    """Whether BigQuery's versions are older than ClickHouse's (NULL is oldest)."""

    def key(values):
        return tuple((v is not None, _utc(v)) for v in values)

    return key(stored) < key(latest)


def _utc(value):
    """ClickHouse gives naive UTC times where BigQuery gives aware ones."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _utc_all(values: tuple) -> tuple:
    return tuple(_utc(v) for v in values)
