"""The argument parser: bqtui's own options, and one subparser per command of the table."""

import argparse
from typing import NoReturn

from bqtui import __version__
from bqtui.cli.command import Command
from bqtui.cli.commands import auth, cost, demo, exports, monitoring, running
from bqtui.cli.exit_codes import EXIT_USAGE

# The order `bqtui --help` lists the commands in.
HELP_ORDER = (
    "add",
    "status",
    "list",
    "show",
    "pause",
    "resume",
    "remove",
    "set-key",
    "set-auth",
    "set-cost",
    "set-source",
    "set-stage",
    "run",
    "verify",
    "schedule",
    "check",
    "demo",
)


def _commands_in_help_order() -> dict[str, Command]:
    groups = (
        exports.COMMANDS,
        auth.COMMANDS,
        cost.COMMANDS,
        monitoring.COMMANDS,
        running.COMMANDS,
        demo.COMMANDS,
    )
    by_name = {command.name: command for group in groups for command in group}
    if set(by_name) != set(HELP_ORDER):
        raise AssertionError(f"HELP_ORDER and the command groups differ: {sorted(by_name)}")
    return {name: by_name[name] for name in HELP_ORDER}


COMMANDS = _commands_in_help_order()


class UsageErrorParser(argparse.ArgumentParser):
    """Usage errors in one line, with where to read more (not the whole usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}. See: {self.prog} --help\n")


def _db_option() -> UsageErrorParser:
    parent = UsageErrorParser(add_help=False)
    parent.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="the SQLite config/run-state file (default: $BQTUI_DB or the user data dir)",
    )
    return parent


def build_parser() -> UsageErrorParser:
    db = _db_option()
    parser = UsageErrorParser(
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
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        subparser = subparsers.add_parser(
            command.name, parents=[db] if command.has_db_option else [], help=command.help
        )
        command.add_arguments(subparser)
    return parser
