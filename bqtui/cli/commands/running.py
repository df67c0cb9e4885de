"""Commands that run exports: run (due windows or a backfill), --run-all, and schedule (which
installs --run-all as a timer)."""

import argparse
import signal
import sys
from datetime import datetime
from types import FrameType

from bqtui.cli.clock import now
from bqtui.cli.command import Command, database_path, with_store
from bqtui.cli.console import RunConsole, print_run_summary
from bqtui.cli.exit_codes import EXIT_FAILED, EXIT_OK
from bqtui.core.config import ExportConfig, parse_timestamp
from bqtui.core.errors import BqtuiError, Cancelled, ConfigError
from bqtui.pipeline.runner import CancelToken, ExportRunner
from bqtui.state.store import Store


class StopOnSignal:
    """SIGTERM and SIGINT stop a headless run at its next safe point (the window in progress
    is not written; the next run exports it), and set the exit code to 128 + the signal."""

    def __init__(self, cancel: CancelToken):
        self.received: int | None = None
        self.cancel = cancel
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._handle)

    def _handle(self, number: int, _frame: FrameType | None) -> None:
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


def add_arguments_of_run(run: argparse.ArgumentParser) -> None:
    run.add_argument("name")
    run.add_argument("--start", help="backfill from (ISO 8601); requires --end")
    run.add_argument("--end", help="backfill until (exclusive, ISO 8601)")


def cmd_run(args: argparse.Namespace, store: Store) -> int:
    export = store.require_export(args.name)
    signals = StopOnSignal(cancel := CancelToken())
    runner = ExportRunner(store, on_event=RunConsole(), now=now, cancel=cancel)
    if args.start or args.end:
        if not (args.start and args.end):
            raise ConfigError("A backfill needs both --start and --end.")
        start, end = parse_timestamp(args.start, "start"), parse_timestamp(args.end, "end")
        if end <= start:
            raise ConfigError("--end must be after --start.")
        _say_estimate(export, start, end)
        result = runner.backfill(export, start, end)
    else:
        result = runner.run_export(export)
    print_run_summary([result])
    return signals.exit_code(EXIT_FAILED if result.failed or result.status == "busy" else EXIT_OK)


def _say_estimate(export: ExportConfig, start: datetime, end: datetime) -> None:
    """What the backfill will bill at most, before it runs (the table's metadata is free)."""
    from bqtui.ops.cost_estimate import estimate_backfill
    from bqtui.pipeline.runner import bigquery_destination, retry_deadline_from_env
    from bqtui.state.windows import backfill_windows

    windows = backfill_windows(export, start, end, now())[0]
    try:
        destination = bigquery_destination(export, retry_deadline_from_env())
        try:
            estimate = estimate_backfill(export, windows, destination)
        finally:
            destination.close()
    except BqtuiError as error:  # the run itself says what is wrong
        print(f"Estimate: not available ({error})", file=sys.stderr)
        return
    print(estimate.line(export), file=sys.stderr)
    note = estimate.limit_note(export)
    if note:
        print(note, file=sys.stderr)


def cmd_run_all(args: argparse.Namespace, store: Store) -> int:
    signals = StopOnSignal(cancel := CancelToken())
    results = ExportRunner(store, on_event=RunConsole(), now=now, cancel=cancel).run_all()
    print_run_summary(results)
    if not results:
        print("No enabled exports.")
    return signals.exit_code(EXIT_FAILED if any(r.failed for r in results) else EXIT_OK)


# `bqtui --run-all` is an option of bqtui itself, not a subcommand.
run_all = with_store(cmd_run_all)


def add_arguments_of_schedule(schedule: argparse.ArgumentParser) -> None:
    schedule.add_argument("action", choices=("install", "show", "remove"))
    schedule.add_argument(
        "--every", type=int, default=1, metavar="MINUTES", help="minutes between runs (1)"
    )


def cmd_schedule(args: argparse.Namespace) -> int:
    from bqtui.ops import schedule_install

    if args.action == "install":
        installed = schedule_install.install(args.every, database_path(args))
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


COMMANDS = (
    Command(
        "run",
        "run an export's due windows now, or backfill a range",
        add_arguments_of_run,
        with_store(cmd_run),
    ),
    Command(
        "schedule",
        "run `bqtui --run-all` every minute: a systemd user timer, else a crontab entry",
        add_arguments_of_schedule,
        cmd_schedule,  # writes a timer or crontab, not the database
    ),
)
