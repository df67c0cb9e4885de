"""What one sessions window costs ClickHouse as the history grows: rows and bytes read by the
sessions query before and after "sessions of any length are exact", for UUIDv7 session ids
and for ids that are not UUIDv7.

    .venv/bin/python benchmarks/bench_session_reads.py [--base 500000] [--factors 1 30] [--runs 3] [--days-back 0]

The data, the window and the measurement are bench_window_reads.py's: ``base × factor`` events
per team at the same rate (``base`` every two days, so a longer history is more days), PostHog's
layout, the minmax skip index on inserted_at that ``bqtui check`` suggests, and the engine's own
count of what the query read from storage. Two teams share the table: team 1's session ids are
UUIDv7 (made at the session's first event, as posthog-js does), team 2's are random UUIDv4. A
session is 4 consecutive events of one user (~48 minutes); users start their sessions at
staggered times, so every window ends some of them.

The queries are ``build_query`` of the sessions model with ``query_parameters``, as the runner
runs them: "old" is the model at commit OLD_COMMIT (the scan bounded by ±26 h around the
window's sessions' events), read from git at run time; "new" is the working tree's.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import types
from datetime import timedelta
from pathlib import Path

import chdb
from bench_window_reads import (
    DAYS_PER_BASE,
    ROOT,
    USERS,
    WINDOW,
    add_inserted_at_index,
    event_time,
    generate,
    optimize,
    read_stats,
)

from bqtui.core.config import ExportConfig, Model
from bqtui.models import ExportModel, get_model

# The last commit whose sessions query bounded the events scan by ±26 h (SESSION_SPAN_HOURS).
OLD_COMMIT = "55a7423"
EVENTS_PER_SESSION = 4
TEAMS = {1: "UUIDv7", 2: "UUIDv4 (not v7)"}
# Last, one long session is added to team 1: the window's UUIDv7 scan then starts at its start.
LONG_SESSION_DAYS = 10
LONG_SESSION_EVENTS = LONG_SESSION_DAYS * 4 + 1


def old_sessions_model():
    """bqtui/models/sessions.py as it was at OLD_COMMIT, imported beside the current one. Its
    relative imports (``..config``, ``.base``) are given today's modules, wherever they live."""
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:bqtui/models/sessions.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    package = f"_bqtui_at_{OLD_COMMIT}"
    for name, module in (
        (package, None),
        (f"{package}.models", None),
        (f"{package}.config", sys.modules[ExportConfig.__module__]),
        (f"{package}.models.base", sys.modules[ExportModel.__module__]),
    ):
        if module is None:
            module = types.ModuleType(name)
            module.__path__ = []
        sys.modules[name] = module
    old = types.ModuleType(f"{package}.models.sessions")
    old.__package__ = f"{package}.models"
    exec(compile(source, f"{OLD_COMMIT}:bqtui/models/sessions.py", "exec"), old.__dict__)
    return old.SESSIONS


def session_properties(rows: int, days: int, uuid7: bool) -> str:
    """Properties with ``$session_id``: user u's events k (event ``number`` = u + USERS·k) form
    sessions of EVENTS_PER_SESSION, offset per user; a UUIDv7 id carries the instant of its
    session's first event."""
    n = EVENTS_PER_SESSION
    user = f"(number % {USERS})"
    session = f"intDiv(intDiv(number, {USERS}) + {user} % {n}, {n})"
    first_event = f"({user} + {USERS} * greatest({n} * {session} - {user} % {n}, 0))"
    a = f"leftPad(lower(hex(cityHash64({user}, {session}, 1))), 16, '0')"
    b = f"leftPad(lower(hex(cityHash64({user}, {session}, 2))), 16, '0')"
    if uuid7:
        millis = f"toUnixTimestamp64Milli({event_time(first_event, rows, days)})"
        head = f"leftPad(lower(hex({millis})), 12, '0')"
    else:
        head = f"substring({b}, 5, 12)"
    version = "7" if uuid7 else "4"
    session_id = (
        f"concat(substring({head}, 1, 8), '-', substring({head}, 9, 4), '-{version}', "
        f"substring({a}, 1, 3), '-', ['8', '9', 'a', 'b'][1 + cityHash64({user}, {session}) % 4], "
        f"substring({a}, 4, 3), '-', substring({a}, 7, 10), substring({b}, 1, 2))"
    )
    return (
        'concat(\'{"$current_url": "https://example.com/\', toString(number % 1000), '
        f'\'", "$session_id": "\', {session_id}, \'"}}\')'
    )


def add_long_session(connection, team_id: int, window: tuple) -> str:
    """One UUIDv7 session of LONG_SESSION_DAYS: a $pageview every 6 hours, the last in the
    window (a small part of its own; the table is not merged again). Returns its distinct_id."""
    last = window[0] + timedelta(minutes=1)
    first = last - timedelta(days=LONG_SESSION_DAYS)
    millis = f"{int(first.timestamp() * 1000):012x}"
    session_id = f"{millis[:8]}-{millis[8:]}-7000-8000-000000000001"
    connection.query(
        "INSERT INTO events SELECT generateUUIDv4(), '$pageview', concat('{\"$current_url\": "
        f'"https://example.com/long", "$session_id": "{session_id}"}}\'), t, {team_id}, '
        "'long-session', '', t, generateUUIDv4(), t, toDateTime(t) FROM (SELECT "
        f"toDateTime64('{last:%Y-%m-%d %H:%M:%S}', 6, 'UTC') - toIntervalHour(6 * number) AS t "
        f"FROM numbers({LONG_SESSION_EVENTS}))"
    )
    return "long-session"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=int, default=500_000, help="events per team at 1×")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 30])
    parser.add_argument("--runs", type=int, default=3, help="runs per query (median time)")
    parser.add_argument(
        "--days-back",
        type=int,
        default=0,
        help="move the window this many days into the past (a backfill's or a catch-up's window)",
    )
    args = parser.parse_args()
    export = ExportConfig(name="bench", dataset_id="d", table_id="t", model=Model.SESSIONS)
    queries = {"old": old_sessions_model(), "new": get_model(Model.SESSIONS)}
    window = tuple(moment - timedelta(days=args.days_back) for moment in WINDOW)
    print(
        f"Window {window[0]:%Y-%m-%d %H:%M}–{window[1]:%H:%M} UTC ({args.days_back} days and "
        f"12 hours before the history's end), inserted_at index present."
    )
    print()
    print(
        "| history (per team) | session ids | query | exported | rows read | "
        "rows read / exported | bytes read | median time |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    notes = []

    def row(connection, rows: int, factor: int, team_id: int, kind: str, label: str) -> dict:
        model = queries[label]
        team_export = export.with_changes(team_id=team_id)
        m = read_stats(
            connection,
            model.build_query(team_export),
            model.query_parameters(team_export, *window),
            args.runs,
            keep=True,
        )
        ratio = m["read_rows"] / m["exported"] if m["exported"] else float("nan")
        print(
            f"| {rows:,} ({factor}×, {DAYS_PER_BASE * factor} days) | {kind} | {label} | "
            f"{m['exported']:,} | {m['read_rows']:,} | {ratio:,.0f} | "
            f"{m['read_bytes'] / 1e6:.1f} MB | {m['ms']:.0f} ms |",
            flush=True,
        )
        return m

    for factor in args.factors:
        path = Path(tempfile.mkdtemp(prefix="bqtui-bench-sessions-"))
        connection = chdb.connect(str(path))
        try:
            rows, days = args.base * factor, DAYS_PER_BASE * factor
            started = time.monotonic()
            for team_id in TEAMS:
                properties = session_properties(rows, days, uuid7=team_id == 1)
                generate(connection, rows, days, team_id=team_id, properties=properties)
            optimize(connection)
            add_inserted_at_index(connection)
            print(
                f"<!-- {len(TEAMS)} × {rows:,} rows generated and indexed in "
                f"{time.monotonic() - started:.0f} s -->",
                file=sys.stderr,
            )
            for team_id, kind in TEAMS.items():
                for label in queries:
                    row(connection, rows, factor, team_id, kind, label)
            distinct_id = add_long_session(connection, 1, window)
            kind = f"UUIDv7 + one {LONG_SESSION_DAYS}-day session"
            for label in queries:
                m = row(connection, rows, factor, 1, kind, label)
                found = [
                    r["pageview_count"]
                    for b in m["batches"]
                    for r in b.to_pylist()
                    if r["distinct_id"] == distinct_id
                ]
                notes.append(
                    f"{factor}×, {label} query: the {LONG_SESSION_DAYS}-day session "
                    f"has {found[0] if found else 'no row'} of its "
                    f"{LONG_SESSION_EVENTS} events"
                )
        finally:
            connection.close()
            shutil.rmtree(path, ignore_errors=True)
    print()
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
