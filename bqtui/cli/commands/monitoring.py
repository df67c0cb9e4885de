"""Commands that tell whether exports are healthy: status, check, verify (and its repair)."""

import argparse
import json
import sys
from typing import TYPE_CHECKING

from bqtui.cli.clock import now
from bqtui.cli.command import Command, add_json_option, with_store
from bqtui.cli.console import RunConsole
from bqtui.cli.exit_codes import EXIT_FAILED, EXIT_OK
from bqtui.core.config import ExportConfig, parse_timestamp
from bqtui.core.errors import ConfigError
from bqtui.ops.status import ExportStatus, export_status, lag_text
from bqtui.state.store import Store

if TYPE_CHECKING:  # imported when verify runs: `bqtui status` need not load it
    from bqtui.ops.verify import Verifier, VerifyReport


def cmd_status(args: argparse.Namespace, store: Store) -> int:
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
        print(_status_line(s))
    billed = [s for s in statuses if s.cost and s.cost.jobs_30d]
    if billed:
        print("BigQuery cost (query jobs; loads are free):")
        for s in billed:
            print(f"  {s.name:<20} {s.cost.line() if s.cost else ''}")
    if installed.kind == "none":
        print("Not scheduled: bqtui schedule install runs bqtui --run-all every minute.")
    else:
        print(f"Scheduled ({installed.kind}); runs' logs: {installed.log}")
    return EXIT_OK if healthy else EXIT_FAILED


def _status_line(s: ExportStatus) -> str:
    through = f"{s.exported_through:%Y-%m-%d %H:%M}" if s.exported_through else "nothing yet"
    health = "ok" if s.healthy else "ALERT: " + "; ".join(s.problems)
    if not s.enabled:
        health = "paused"
    lag = lag_text(s.lag) if s.lag is not None else "-"
    return (
        f"{s.name:<20} {'enabled' if s.enabled else 'paused':<7} {through:<22} "
        f"{lag:>9} {s.windows_waiting:>7}  {health}"
    )


def add_arguments_of_check(check: argparse.ArgumentParser) -> None:
    check.add_argument("name")
    add_json_option(check)


def cmd_check(args: argparse.Namespace, store: Store) -> int:
    from bqtui.ops.permission_check import run_check_command

    return run_check_command(store.require_export(args.name), as_json=args.json)


def add_arguments_of_verify(verify: argparse.ArgumentParser) -> None:
    verify.add_argument("name")
    verify.add_argument("--start", help="events from this day (ISO 8601; by event timestamp)")
    verify.add_argument("--end", help="events before this day (exclusive)")
    add_json_option(verify, "JSON alone on stdout")
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


def cmd_verify(args: argparse.Namespace, store: Store) -> int:
    from bqtui.ops.verify import Verifier
    from bqtui.pipeline.job_costs import record_job_costs
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
    destination.on_query_done = record_job_costs(store, export.saved_id)
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


def _repair(
    args: argparse.Namespace,
    store: Store,
    export: ExportConfig,
    verifier: "Verifier",
    report: "VerifyReport",
) -> dict:
    """Name everything a repair changes, ask (or --yes), then do it."""
    out = sys.stderr if args.json else sys.stdout
    if not args.json:
        print("\n".join(report.lines()), file=out)
    from bqtui.ops.repair import windows_to_reexport

    windows = windows_to_reexport(verifier, report)
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
    from bqtui.ops.repair import repair

    plan.update(repair(store, verifier, report, now, on_event=RunConsole()), done=True)
    return plan


def add_arguments_of_status(status: argparse.ArgumentParser) -> None:
    add_json_option(status)


COMMANDS = (
    Command(
        "status",
        "how far each export is behind now; exit 1 when any lags or failed (monitoring)",
        add_arguments_of_status,
        with_store(cmd_status),
    ),
    Command(
        "verify",
        "compare BigQuery with ClickHouse for the windows done; exit 1 if they differ",
        add_arguments_of_verify,
        with_store(cmd_verify),
    ),
    Command(
        "check",
        "check the key and every BigQuery permission an export needs",
        add_arguments_of_check,
        with_store(cmd_check),
    ),
)
