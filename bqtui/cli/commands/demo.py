"""`bqtui demo`: the demo environment, in the TUI or run headless."""

import argparse
import sys

from bqtui.cli.command import Command
from bqtui.cli.console import RunConsole, print_run_summary
from bqtui.cli.exit_codes import EXIT_FAILED, EXIT_OK
from bqtui.pipeline.runner import ExportRunner
from bqtui.state.store import Store


def add_arguments_of_demo(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--folder", help="where the demo keeps its data (default: data dir/demo)")
    demo.add_argument(
        "--run", action="store_true", help="run the demo exports headless instead of the TUI"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from bqtui.demo.environment import start_demo

    environment = start_demo(args.folder, log=lambda text: print(text, file=sys.stderr))
    try:
        if args.run:
            store = Store(environment.db_path)
            results = ExportRunner(store, on_event=RunConsole()).run_all()
            print_run_summary(results)
            return EXIT_FAILED if any(r.failed for r in results) else EXIT_OK
        from bqtui.tui.app import run_tui

        return run_tui(db_path=environment.db_path, demo=environment)
    finally:
        environment.stop()


COMMANDS = (
    Command(
        "demo",
        "start the demo (embedded ClickHouse with demo data, a local BigQuery emulator, "
        "demo exports) and open the TUI on it",
        add_arguments_of_demo,
        cmd_demo,  # the demo keeps its own database in its folder
        has_db_option=False,
    ),
)
