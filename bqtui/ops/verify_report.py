"""What ``bqtui verify`` found: per day (events), per kind of key (missing, extra, duplicated,
stale), and the verdict, as text lines or JSON."""

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass
class DayCheck:
    day: date
    source: int  # distinct uuids that should be there
    bigquery: int  # rows in BigQuery
    missing: int = 0
    extra: int = 0
    duplicated: int = 0  # extra copies of a uuid
    checksum_differs: bool = False
    keys: list[str] = field(default_factory=list)  # the day's missing and extra uuids (some)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.duplicated or self.checksum_differs)


@dataclass
class Finding:
    """Keys of one kind (missing, extra, duplicated, stale): some listed, all counted."""

    count: int = 0
    listed: list[str] = field(default_factory=list)

    def add(self, key: str, limit: int) -> None:
        self.count += 1
        if len(self.listed) < limit:
            self.listed.append(key)


@dataclass
class VerifyReport:
    export: str
    model: str
    table: str
    compared_through: datetime | None
    bytes_estimate: int | None = None
    days: list[DayCheck] = field(default_factory=list)
    missing: Finding = field(default_factory=Finding)
    extra: Finding = field(default_factory=Finding)
    duplicated: Finding = field(default_factory=Finding)
    stale: Finding = field(default_factory=Finding)
    source_rows: int = 0
    bigquery_rows: int = 0
    by_ingestion: bool = False  # BigQuery's rows counted by _inserted_at, window by window
    # For a repair: every missing or stale key (up to REPAIR_CAP) and every duplicated uuid.
    repair_keys: list[str] = field(default_factory=list, repr=False)
    duplicate_keys: list[str] = field(default_factory=list, repr=False)
    duplicate_days: list[date] = field(default_factory=list, repr=False)  # the days they are in

    @property
    def ok(self) -> bool:
        return not (
            self.missing.count or self.extra.count or self.duplicated.count or self.stale.count
        ) and all(d.ok for d in self.days)

    def verdict(self) -> str:
        if self.compared_through is None:
            return "Nothing exported yet: nothing to compare."
        if self.ok:
            return (
                f"OK: BigQuery holds exactly what ClickHouse holds ({self.source_rows:,} "
                f"{'events' if self.model == 'events' else 'rows'}, through "
                f"{self.compared_through:%Y-%m-%d %H:%M} UTC)."
            )
        parts = [
            f"{finding.count:,} {name}"
            for name, finding in (
                ("missing", self.missing),
                ("extra", self.extra),
                ("duplicated", self.duplicated),
                ("stale", self.stale),
            )
            if finding.count
        ]
        return f"DIFFERS: {', '.join(parts) or 'checksums differ'}."

    def to_dict(self) -> dict:
        def finding(f: Finding) -> dict:
            return {"count": f.count, "listed": f.listed}

        return {
            "export": self.export,
            "model": self.model,
            "table": self.table,
            "compared_through": self.compared_through.isoformat()
            if self.compared_through
            else None,
            "bytes_estimate": self.bytes_estimate,
            "by_ingestion_window": self.by_ingestion,
            "ok": self.ok,
            "source_rows": self.source_rows,
            "bigquery_rows": self.bigquery_rows,
            "days": [
                {
                    "day": d.day.isoformat(),
                    "source": d.source,
                    "bigquery": d.bigquery,
                    "missing": d.missing,
                    "extra": d.extra,
                    "duplicated": d.duplicated,
                    "checksum_differs": d.checksum_differs,
                    "ok": d.ok,
                }
                for d in self.days
            ],
            "missing": finding(self.missing),
            "extra": finding(self.extra),
            "duplicated": finding(self.duplicated),
            "stale": finding(self.stale),
            "verdict": self.verdict(),
        }

    def lines(self) -> list[str]:
        out = [f"Verify {self.export} ({self.model}) against {self.table}"]
        if self.bytes_estimate is not None:
            out.append(f"BigQuery will scan about {self.bytes_estimate:,} bytes (dry run).")
        if self.days:
            out.append(
                f"{'DAY':<10} {'SOURCE':>9} {'BIGQUERY':>9} {'MISSING':>8} {'EXTRA':>6} "
                f"{'DUPLICATED':>10}  STATUS"
            )
            for d in self.days:
                status = (
                    "ok"
                    if d.ok
                    else (
                        "checksum differs"
                        if d.checksum_differs and not (d.missing or d.extra or d.duplicated)
                        else "DIFFERS"
                    )
                )
                out.append(
                    f"{d.day.isoformat():<10} {d.source:>9,} {d.bigquery:>9,} "
                    f"{d.missing:>8,} {d.extra:>6,} {d.duplicated:>10,}  {status}"
                )
        for name, finding in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("duplicated", self.duplicated),
            ("stale", self.stale),
        ):
            if finding.count:
                more = finding.count - len(finding.listed)
                out.append(
                    f"{name.capitalize()} ({finding.count:,}): {', '.join(finding.listed)}"
                    + (f" … and {more:,} more" if more else "")
                )
        out.append(self.verdict())
        return out
