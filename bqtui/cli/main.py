"""The headless command line: parses, calls the core, prints, sets the exit code.

Exit codes: 0 success, 1 a window or check failed, 2 usage or configuration error.
"""

import argparse
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

from bqtui import __version__
from bqtui.core.config import (
    DEFAULT_SETTLE_SECONDS,
    MODEL_DESCRIPTIONS,
    ExportConfig,
    parse_alert_after,
    parse_event_names,
    parse_interval,
    parse_model,
    parse_settle_seconds,
    parse_team_id,
    parse_timestamp,
)
from bqtui.core.errors import BqtuiError, Cancelled, ConfigError, SecretsError
from bqtui.core.paths import default_db_path, default_source_dsn
from bqtui.destination.keyfile import load_key_file
from bqtui.ops.export_setup import create_export, remove_export
from bqtui.ops.status import alert_after, export_status, lag_text
from bqtui.pipeline.runner import (
    CancelToken,
    ExportRunner,
    LogEvent,
    ProgressEvent,
    RunFinished,
    RunResult,
)
from bqtui.source.dsn import redact_dsn, split_secrets
from bqtui.state import secrets
from bqtui.state.store import Store, describe_database_error, to_iso, utcnow
from bqtui.state.windows import first_window_start, next_run_at

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def now():
    """The current time; ``BQTUI_NOW`` (ISO 8601) sets it, for tests of timing only."""
    fixed = os.environ.get("BQTUI_NOW")
    return parse_timestamp(fixed, "BQTUI_NOW") if fixed else utcnow()


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, with where to read more (not the whole usage block)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: {message}. See: {self.prog} --help\n")


def _db_option() -> argparse.ArgumentParser:
    parent = _Parser(add_help=False)
    parent.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="the SQLite config/run-state file (default: $BQTUI_DB or the user data dir)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    db = _db_option()
    parser = _Parser(
        prog="bqtui",
        description="Export product-analytics data from ClickHouse to BigQuery. "
        "Without a command, opens the TUI.",
        parents=[db],
    )
    parser.add_argument("--version", action="version", version=f"bqtui {__version__}")
    parser.add_argument(
        "--run-all",
        action="store_true",
        help="run every due window of every enabled export (for cron/CI); logs on stderr, a "
        "summary on stdout; exit 0 if all succeeded, 1 if any window failed",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    add = commands.add_parser("add", parents=[db], help="create an export")
    add.add_argument("--name", required=True, help="a short unique name for the export")
    add.add_argument("--key-file", required=True, help="the service-account JSON key file")
    add.add_argument("--dataset-id", required=True, help="bare BigQuery dataset ID")
    add.add_argument("--table-id", required=True, help="bare BigQuery table ID")
    add.add_argument(
        "--model",
        default="events",
        help="; ".join(f"{m.value}: {d}" for m, d in MODEL_DESCRIPTIONS.items()),
    )
    add.add_argument(
        "--json-type",
        action="store_true",
        help="store properties, set and set_once as BigQuery JSON instead of STRING",
    )
    add.add_argument("--interval", default="hour", help="5m, hour, day or week (default hour)")
    add.add_argument(
        "--start",
        help="first window start (ISO 8601, UTC if no zone); default: the next period boundary",
    )
    add.add_argument("--team-id", default="1", help="the ClickHouse team_id to export")
    add.add_argument(
        "--settle",
        default=str(DEFAULT_SETTLE_SECONDS),
        metavar="SECONDS",
        help="export a window this long after it ends, so rows that become visible late are "
        f"in it (default {DEFAULT_SETTLE_SECONDS})",
    )
    add.add_argument(
        "--source-dsn",
        help="ClickHouse DSN, e.g. http://user:pass@host:8123/db (password goes to the "
        "keyring); default: the embedded ClickHouse",
    )
    add.add_argument(
        "--alert-after",
        metavar="SECONDS",
        help="bqtui status fails when the export is further behind than this (default: two "
        "intervals + the settle delay + 10 minutes)",
    )
    add.add_argument("--bigquery-endpoint", help="BigQuery API URL (emulators, private endpoints)")
    add.add_argument("--project-id", help="BigQuery project (default: the key file's project)")
    add.add_argument(
        "--location", help="BigQuery location of the dataset, e.g. US or EU (default: inferred)"
    )
    add.add_argument("--include-events", help="only these event names, comma-separated")
    add.add_argument("--exclude-events", help="all but these event names, comma-separated")

    status = commands.add_parser(
        "status",
        parents=[db],
        help="how far each export is behind now; exit 1 when any lags or failed (monitoring)",
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")

    listing = commands.add_parser("list", parents=[db], help="list exports")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = commands.add_parser("show", parents=[db], help="show an export and its recent runs")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    for name, text in (
        ("pause", "stop scheduling an export"),
        ("resume", "schedule a paused export again"),
    ):
        commands.add_parser(name, parents=[db], help=text).add_argument("name")
    remove = commands.add_parser(
        "remove", parents=[db], help="delete an export, its history and its keyring entries"
    )
    remove.add_argument("name")
    remove.add_argument(
        "--force",
        action="store_true",
        help="if the export is running, stop that run at its next safe point first",
    )
    set_key = commands.add_parser("set-key", parents=[db], help="replace an export's key")
    set_key.add_argument("name")
    set_key.add_argument("--key-file", required=True)

    set_source = commands.add_parser(
        "set-source",
        parents=[db],
        help="replace an export's ClickHouse DSN (its credentials go to the keyring)",
    )
    set_source.add_argument("name")
    set_source.add_argument("--source-dsn", required=True)

    run = commands.add_parser(
        "run", parents=[db], help="run an export's due windows now, or backfill a range"
    )
    run.add_argument("name")
    run.add_argument("--start", help="backfill from (ISO 8601); requires --end")
    run.add_argument("--end", help="backfill until (exclusive, ISO 8601)")

    verify = commands.add_parser(
        "verify",
        parents=[db],
        help="compare BigQuery with ClickHouse for the windows done; exit 1 if they differ",
    )
    verify.add_argument("name")
    verify.add_argument("--start", help="events from this day (ISO 8601; by event timestamp)")
    verify.add_argument("--end", help="events before this day (exclusive)")
    verify.add_argument("--json", action="store_true", help="JSON alone on stdout")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="re-export the windows holding missing or stale rows and delete duplicate "
        "copies, then verify again (asks first on a terminal)",
    )
    verify.add_argument("--yes", action="store_true", help="repair without asking")
    verify.add_argument(
        "--max-bytes", type=int, metavar="N", help="refuse if BigQuery would scan more"
    )
    verify.add_argument(
        "--max-listed", type=int, default=20, metavar="N", help="keys listed per kind (20)"
    )

    schedule = commands.add_parser(
        "schedule",
        parents=[db],
        help="run `bqtui --run-all` every minute: a systemd user timer, else a crontab entry",
    )
    schedule.add_argument("action", choices=("install", "show", "remove"))
    schedule.add_argument(
        "--every", type=int, default=1, metavar="MINUTES", help="minutes between runs (1)"
    )

    check = commands.add_parser(
        "check", parents=[db], help="check the key and every BigQuery permission an export needs"
    )
    check.add_argument("name")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    demo = commands.add_parser(
        "demo",
        help="start the demo (embedded ClickHouse with demo data, a local BigQuery emulator, "
        "demo exports) and open the TUI on it",
    )
    demo.add_argument("--folder", help="where the demo keeps its data (default: data dir/demo)")
    demo.add_argument(
        "--run", action="store_true", help="run the demo exports headless instead of the TUI"
    )
    return parser


def _open_store(args) -> Store:
    return Store(getattr(args, "db", None) or default_db_path())


# -- commands ------------------------------------------------------------------------------


def cmd_add(args, store: Store) -> int:
    key = load_key_file(args.key_file)
    source_dsn, source_secrets = split_secrets(args.source_dsn or default_source_dsn())
    interval = parse_interval(args.interval)
    start = parse_timestamp(args.start, "start") if args.start else None
    config = ExportConfig(
        name=args.name,
        dataset_id=args.dataset_id,
        table_id=args.table_id,
        model=parse_model(args.model),
        interval=interval,
        json_type=args.json_type,
        team_id=parse_team_id(args.team_id),
        settle_seconds=parse_settle_seconds(args.settle),
        alert_after_seconds=parse_alert_after(args.alert_after),
        source_dsn=source_dsn,
        bigquery_endpoint=args.bigquery_endpoint,
        project_id=args.project_id or None,
        location=args.location or None,
        include_events=parse_event_names(args.include_events),
        exclude_events=parse_event_names(args.exclude_events),
        start_at=first_window_start(utcnow(), interval, start),
    )
    export = create_export(store, config, key, source_secrets)
    print(
        f'Added export "{export.name}": {export.model} from team {export.team_id} to '
        f"{export.project_id or key.project_id}.{export.destination_label}, every "
        f"{export.interval}, first window from {export.start_at:%Y-%m-%d %H:%M} UTC."
    )
    print(f"Key for {key.client_email} stored in the keyring ({secrets.backend_name()}).")
    print(f"Check permissions with: bqtui check {export.name}")
    return EXIT_OK


def export_summary(store: Store, export: ExportConfig) -> dict:
    last = store.last_run(export.saved_id)
    done = store.done_window_starts(export.saved_id)
    return {
        "name": export.name,
        "model": export.model.value,
        "dataset_id": export.dataset_id,
        "table_id": export.table_id,
        "project_id": export.project_id,
        "location": export.location,
        "interval": export.interval.value,
        "json_type": export.json_type,
        "team_id": export.team_id,
        "source_dsn": redact_dsn(export.source_dsn),
        "bigquery_endpoint": export.bigquery_endpoint,
        "include_events": list(export.include_events),
        "exclude_events": list(export.exclude_events),
        "start_at": to_iso(export.start_at),
        "settle_seconds": export.settle_seconds,
        "alert_after_seconds": round(alert_after(export).total_seconds()),
        "enabled": export.enabled,
        "windows_done": len(done),
        "last_run": None
        if last is None
        else {
            "status": last.status,
            "rows": last.rows,
            "windows_done": last.windows_done,
            "started_at": to_iso(last.started_at),
            "finished_at": to_iso(last.finished_at),
            "error": last.error,
        },
        "next_run_at": to_iso(next_run_at(export, now(), done)) if export.enabled else None,
    }


def cmd_list(args, store: Store) -> int:
    summaries = [export_summary(store, e) for e in store.list_exports()]
    if args.json:
        print(json.dumps(summaries, indent=2))
        return EXIT_OK
    if not summaries:
        print("No exports yet. Create one with: bqtui add --help (or run bqtui for the wizard).")
        return EXIT_OK
    header = f"{'NAME':<20} {'MODEL':<9} {'DESTINATION':<32} {'EVERY':<5} {'STATE':<7} LAST RUN"
    print(header)
    for s in summaries:
        last = s["last_run"]
        last_text = (
            f"{last['status']} {last['rows']:,} rows {last['started_at'][:16]}" if last else "never"
        )
        print(
            f"{s['name']:<20} {s['model']:<9} {s['dataset_id'] + '.' + s['table_id']:<32} "
            f"{s['interval']:<5} {'enabled' if s['enabled'] else 'paused':<7} {last_text}"
        )
    return EXIT_OK


def cmd_status(args, store: Store) -> int:
    at = now()
    statuses = [export_status(store, e, at) for e in store.list_exports()]
    healthy = all(s.healthy for s in statuses)
    if args.json:
        print(
            json.dumps({"healthy": healthy, "exports": [s.to_dict() for s in statuses]}, indent=2)
        )
        return EXIT_OK if healthy else EXIT_FAILED
    from bqtui.ops import schedule_install

    installed = schedule_install.show()
    if not statuses:
        print("No exports yet.")
    else:
        print(
            f"{'NAME':<20} {'STATE':<7} {'EXPORTED THROUGH (UTC)':<22} {'LAG':>9} "
            f"{'WAITING':>7}  HEALTH"
        )
    for s in statuses:
        through = f"{s.exported_through:%Y-%m-%d %H:%M}" if s.exported_through else "nothing yet"
        health = "ok" if s.healthy else "ALERT: " + "; ".join(s.problems)
        if not s.enabled:
            health = "paused"
        print(
            f"{s.name:<20} {'enabled' if s.enabled else 'paused':<7} {through:<22} "
            f"{lag_text(s.lag):>9} {s.windows_waiting:>7}  {health}"
        )
    if installed.kind == "none":
        print("Not scheduled: bqtui schedule install runs bqtui --run-all every minute.")
    else:
        print(f"Scheduled ({installed.kind}); runs' logs: {installed.log}")
    return EXIT_OK if healthy else EXIT_FAILED


def cmd_show(args, store: Store) -> int:
    export = store.require_export(args.name)
    summary = export_summary(store, export)
    runs = store.list_runs(export.id, limit=10)
    summary["runs"] = [
        {
            "id": r.id,
            "trigger": r.trigger,
            "status": r.status,
            "started_at": to_iso(r.started_at),
            "finished_at": to_iso(r.finished_at),
            "windows": f"{r.windows_done}/{r.windows_total}",
            "rows": r.rows,
            "bytes": r.bytes,
            "error": r.error,
        }
        for r in runs
    ]
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    for key, value in summary.items():
        if key not in ("runs", "last_run"):
            print(f"{key:<18} {value}")
    print("recent runs:")
    for run in summary["runs"] or [{"status": "none yet"}]:
        print("  " + "  ".join(f"{k}={v}" for k, v in run.items() if v is not None))
    return EXIT_OK


def cmd_pause_resume(args, store: Store) -> int:
    export = store.require_export(args.name)
    enabled = args.command == "resume"
    store.set_enabled(export.saved_id, enabled)
    print(f'Export "{export.name}" {"resumed" if enabled else "paused"}.')
    return EXIT_OK


def cmd_remove(args, store: Store) -> int:
    export = store.require_export(args.name)
    remove_export(store, export, force=args.force)
    print(f'Removed export "{export.name}" and its keyring entries. BigQuery data is untouched.')
    return EXIT_OK


def cmd_set_source(args, store: Store) -> int:
    export = store.require_export(args.name)
    source_dsn, source_secrets = split_secrets(args.source_dsn)
    secrets.store_clickhouse_secrets(export.uid, source_secrets)
    store.update_export(export.with_changes(source_dsn=source_dsn))
    stored = " (credentials → keyring)" if source_secrets else ""
    print(f'Export "{export.name}" now reads from {source_dsn}{stored}.')
    return EXIT_OK


def cmd_set_key(args, store: Store) -> int:
    export = store.require_export(args.name)
    key = load_key_file(args.key_file)
    secrets.store_service_account_key(export.uid, key.to_json())
    print(f'Key for {key.client_email} stored for export "{export.name}".')
    return EXIT_OK


class _Console:
    """Logs on stderr; during a run of several windows, progress with the time left: a bar
    redrawn in place on a terminal, a plain line every ``PLAIN_EVERY`` seconds otherwise."""

    PLAIN_EVERY = 10.0
    BAR = 24

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.bar_shown = False
        self.last_plain = 0.0

    def __call__(self, event) -> None:
        if isinstance(event, LogEvent):
            self._clear_bar()
            stamp = event.at.strftime("%Y-%m-%dT%H:%M:%SZ")
            print(
                f"{stamp} [{event.export_name}] {event.level.upper()} {event.message}",
                file=self.stream,
                flush=True,
            )
        elif isinstance(event, ProgressEvent) and event.windows_total > 1:
            self._progress(event)
        elif isinstance(event, RunFinished):
            self._clear_bar()

    def _progress(self, event: ProgressEvent) -> None:
        if self.terminal:
            filled = self.BAR * event.windows_done // event.windows_total
            bar = "█" * filled + "·" * (self.BAR - filled)
            self.stream.write(f"\r\033[K[{event.export_name}] {bar} {event.text()}")
            self.stream.flush()
            self.bar_shown = True
        elif time.monotonic() - self.last_plain >= self.PLAIN_EVERY:
            self.last_plain = time.monotonic()
            print(f"[{event.export_name}] progress: {event.text()}", file=self.stream, flush=True)

    def _clear_bar(self) -> None:
        if self.bar_shown:
            self.stream.write("\r\033[K")
            self.bar_shown = False


def _print_summary(results: list[RunResult]) -> None:
    for r in results:
        line = (
            f"{r.export_name}: {r.status}, {r.windows_done}/{r.windows_total} windows, "
            f"{r.rows:,} rows, {r.seconds:.1f}s"
        )
        if r.windows_left:
            line += f", {r.windows_left} window(s) left for later (not yet due)"
        if r.error and r.status != "succeeded":
            line += f" — {r.error.splitlines()[0]}"
        print(line)


class _Signals:
    """SIGTERM and SIGINT stop a headless run at its next safe point (the window in progress
    is not written; the next run exports it), and set the exit code to 128 + the signal."""

    def __init__(self, cancel: CancelToken):
        self.received: int | None = None
        self.cancel = cancel
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._handle)

    def _handle(self, number, _frame) -> None:
        if self.received is not None:  # a second signal: stop now
            raise SystemExit(128 + number)
        self.received = number
        name = signal.Signals(number).name
        print(f"bqtui: {name} received; stopping at the next safe point.", file=sys.stderr)
        self.cancel.cancel(
            Cancelled(
                f"Stopped by {name} at a safe point; the window in progress was not written "
                "and is exported by the next run."
            )
        )

    def exit_code(self, code: int) -> int:
        return 128 + self.received if self.received is not None else code


def cmd_run(args, store: Store) -> int:
    export = store.require_export(args.name)
    signals = _Signals(cancel := CancelToken())
    runner = ExportRunner(store, on_event=_Console(), now=now, cancel=cancel)
    if args.start or args.end:
        if not (args.start and args.end):
            raise ConfigError("A backfill needs both --start and --end.")
        start, end = parse_timestamp(args.start, "start"), parse_timestamp(args.end, "end")
        if end <= start:
            raise ConfigError("--end must be after --start.")
        result = runner.backfill(export, start, end)
    else:
        result = runner.run_export(export)
    _print_summary([result])
    return signals.exit_code(EXIT_FAILED if result.failed or result.status == "busy" else EXIT_OK)


def cmd_run_all(args, store: Store) -> int:
    signals = _Signals(cancel := CancelToken())
    results = ExportRunner(store, on_event=_Console(), now=now, cancel=cancel).run_all()
    _print_summary(results)
    if not results:
        print("No enabled exports.")
    return signals.exit_code(EXIT_FAILED if any(r.failed for r in results) else EXIT_OK)


def cmd_verify(args, store: Store) -> int:
    from bqtui.ops.verify import Verifier
    from bqtui.pipeline.runner import (
        bigquery_destination,
        clickhouse_source,
        retry_deadline_from_env,
    )

    export = store.require_export(args.name)
    start = parse_timestamp(args.start, "start") if args.start else None
    end = parse_timestamp(args.end, "end") if args.end else None
    if start and end and end <= start:
        raise ConfigError("--end must be after --start.")
    if args.max_listed < 0 or (args.max_bytes is not None and args.max_bytes < 0):
        raise ConfigError("--max-listed and --max-bytes cannot be negative.")
    destination = bigquery_destination(export, retry_deadline_from_env())
    with clickhouse_source(export) as source:
        verifier = Verifier(
            store,
            export,
            source,
            destination,
            now=now,
            listed=args.max_listed,
            max_bytes=args.max_bytes,
        )
        report = verifier.run(start, end)
        repair = None
        if args.repair and not report.ok:
            repair = _repair(args, store, export, verifier, report)
            report = verifier.run(start, end) if repair.get("done") else report
    destination.close()
    if args.json:
        print(json.dumps({**report.to_dict(), "repair": repair}, indent=2, default=str))
    else:
        if repair and repair.get("done"):
            print("After the repair:")
        print("\n".join(report.lines()))
    return EXIT_OK if report.ok else EXIT_FAILED


def _repair(args, store: Store, export: ExportConfig, verifier, report) -> dict:
    """Name everything a repair changes, ask (or --yes), then do it."""
    out = sys.stderr if args.json else sys.stdout
    if not args.json:
        print("\n".join(report.lines()), file=out)
    windows = verifier.windows_to_reexport(report)
    plan = {
        "reexport_windows": [w.label() for w in windows],
        "delete_duplicate_copies": report.duplicated.count,
        "duplicated_uuids": report.duplicate_keys,
        "done": False,
    }
    if not windows and not report.duplicate_keys:
        print("Repair: nothing bqtui can repair (extra rows are left as they are).", file=out)
        return plan
    print("Repair plan:", file=out)
    for window in windows:
        print(
            f"  re-export window {window.label()} (the MERGE adds only what is missing)", file=out
        )
    if report.duplicate_keys:
        print(
            f"  delete {report.duplicated.count:,} duplicate copies, keeping the first "
            f"loaded copy of each of: {', '.join(report.duplicate_keys)}",
            file=out,
        )
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError("--repair changes BigQuery: confirm on a terminal, or pass --yes.")
        answer = input("Repair now? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing was changed.", file=out)
            return plan
    from bqtui.ops.verify import repair

    plan.update(repair(store, verifier, report, now, on_event=_Console()), done=True)
    return plan


def cmd_schedule(args) -> int:
    from bqtui.ops import schedule_install

    if args.action == "install":
        installed = schedule_install.install(args.every, getattr(args, "db", None))
        print(
            f"Installed ({installed.kind}): bqtui --run-all every "
            f"{'minute' if args.every == 1 else f'{args.every} minutes'}."
        )
    elif args.action == "remove":
        installed = schedule_install.remove()
        print("Removed bqtui's schedule." if installed.kind == "none" else "Nothing removed.")
        return EXIT_OK
    else:
        installed = schedule_install.show()
        if installed.kind == "none":
            print("No schedule installed. Install one with: bqtui schedule install")
            return EXIT_OK
    print(installed.text)
    print(f"Logs: {installed.log}")
    return EXIT_OK


def cmd_check(args, store: Store) -> int:
    from bqtui.ops.permission_check import run_check_command

    return run_check_command(store.require_export(args.name), as_json=args.json)


def cmd_demo(args) -> int:
    from bqtui.demo.environment import start_demo

    environment = start_demo(args.folder, log=lambda text: print(text, file=sys.stderr))
    try:
        if args.run:
            store = Store(environment.db_path)
            results = ExportRunner(store, on_event=_Console()).run_all()
            _print_summary(results)
            return EXIT_FAILED if any(r.failed for r in results) else EXIT_OK
        from bqtui.tui.app import run_tui

        return run_tui(db_path=environment.db_path, demo=environment)
    finally:
        environment.stop()


COMMANDS = {
    "add": cmd_add,
    "list": cmd_list,
    "show": cmd_show,
    "status": cmd_status,
    "pause": cmd_pause_resume,
    "resume": cmd_pause_resume,
    "remove": cmd_remove,
    "set-key": cmd_set_key,
    "set-source": cmd_set_source,
    "run": cmd_run,
    "check": cmd_check,
    "verify": cmd_verify,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if not args.command and not args.run_all:
        from bqtui.tui.app import run_tui  # Textual is imported only for the TUI

        return run_tui(db_path=getattr(args, "db", None))
    if args.command and args.run_all:
        parser.error("--run-all takes no command")
    try:
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "schedule":
            return cmd_schedule(args)
        store = _open_store(args)
        try:
            if args.run_all:
                return cmd_run_all(args, store)
            return COMMANDS[args.command](args, store)
        finally:
            store.close()
    except ConfigError as error:
        print(f"bqtui: {error}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.Error as error:  # the disk filled up, the file was made read-only …
        path = getattr(args, "db", None) or default_db_path()
        print(f"bqtui: {describe_database_error(Path(path), error)}", file=sys.stderr)
        return EXIT_FAILED
    except SecretsError as error:
        print(f"bqtui: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BqtuiError as error:
        print(f"bqtui: {error}", file=sys.stderr)
        return EXIT_FAILED
