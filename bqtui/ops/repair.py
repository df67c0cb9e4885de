"""`bqtui verify --repair`: delete the duplicate copies of events, then re-export exactly the
windows that hold missing or stale rows (the MERGE makes a re-export safe)."""

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bqtui.core.config import Model
from bqtui.models.base import INGESTED_AT
from bqtui.state.locks import ExportLock
from bqtui.state.store import Store
from bqtui.state.windows import STEP, Window, floor_to_interval

if TYPE_CHECKING:  # verify imports this module: at run time the types are not needed
    from bqtui.ops.verify import Verifier
    from bqtui.ops.verify_report import VerifyReport

# When each kind of key was ingested, by the keys a repair acts on.
INGESTION_TIMES_SQL = {
    Model.EVENTS: (
        f"SELECT DISTINCT {INGESTED_AT} FROM events WHERE team_id = {{team:Int64}} "
        "AND toString(uuid) IN {keys:Array(String)}"
    ),
    Model.PERSONS: (
        "SELECT DISTINCT toDateTime64(_timestamp, 6, 'UTC') FROM person_distinct_id2 "
        "WHERE team_id = {team:Int64} AND distinct_id IN {keys:Array(String)} UNION "
        "DISTINCT SELECT DISTINCT toDateTime64(p._timestamp, 6, 'UTC') FROM person AS p "
        "WHERE team_id = {team:Int64} AND id IN (SELECT person_id FROM "
        "person_distinct_id2 WHERE team_id = {team:Int64} AND distinct_id IN "
        "{keys:Array(String)})"
    ),
    Model.SESSIONS: (
        f"SELECT max({INGESTED_AT}) FROM events WHERE team_id = {{team:Int64}} AND "
        "JSONExtractString(properties, '$session_id') IN {keys:Array(String)} "
        "GROUP BY JSONExtractString(properties, '$session_id')"
    ),
}


def windows_to_reexport(verifier: "Verifier", report: "VerifyReport") -> list[Window]:
    """The windows holding the missing or stale keys, by their ingestion time."""
    if not report.repair_keys:
        return []
    export = verifier.export
    times = verifier.ch(
        INGESTION_TIMES_SQL[Model(export.model)],
        {"team": export.team_id, "keys": report.repair_keys},
    )
    done = verifier.store.done_window_starts(export.saved_id)
    starts = {floor_to_interval(row[0], export.interval) for row in times}
    step = STEP[export.interval]
    return sorted(Window(s, s + step) for s in starts if s in done)


def delete_duplicates(verifier: "Verifier", report: "VerifyReport") -> int:
    """Leave the first loaded copy of every duplicated event, in the days that hold them
    (one statement: it happens whole or not at all)."""
    if not report.duplicate_keys:
        return 0
    removed = verifier.destination.remove_duplicate_copies(
        verifier.table, "uuid", report.duplicate_keys, report.duplicate_days
    )
    return removed if removed >= 0 else report.duplicated.count


def repair(
    store: Store,
    verifier: "Verifier",
    report: "VerifyReport",
    now: Callable[[], datetime],
    on_event: Callable[[object], None] | None = None,
) -> dict:
    """Delete the duplicate copies, then re-export the windows holding missing or stale rows;
    the plan (what changes) is returned, and was shown to the user before."""
    from bqtui.pipeline.runner import ExportRunner

    windows = windows_to_reexport(verifier, report)
    outcome: dict[str, Any] = {
        "reexported_windows": [w.label() for w in windows],
        "deleted_copies": 0,
    }
    lock = ExportLock(store, verifier.export.saved_id).acquire()  # no runner MERGEs meanwhile
    try:
        outcome["deleted_copies"] = delete_duplicates(verifier, report)
    finally:
        lock.release()
    verifier.source.close()  # the runner opens the source itself
    if windows:
        result = ExportRunner(store, on_event=on_event, now=now).run_export(
            verifier.export, windows=windows, trigger="repair"
        )
        outcome["reexport_status"] = result.status
    return outcome
