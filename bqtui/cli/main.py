"""The headless command line: parses, calls the core, prints, sets the exit code.

Exit codes: 0 success, 1 a window or check failed, 2 usage or configuration error.
"""

import logging
import sqlite3
import sys
from pathlib import Path

from bqtui.cli.command import database_path
from bqtui.cli.commands.running import run_all
from bqtui.cli.exit_codes import EXIT_FAILED, EXIT_USAGE
from bqtui.cli.parser import COMMANDS, build_parser
from bqtui.core.errors import BqtuiError, ConfigError, SecretsError
from bqtui.core.paths import default_db_path
from bqtui.state.store import describe_database_error


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if not args.command and not args.run_all:
        from bqtui.tui.app import run_tui  # Textual is imported only for the TUI

        return run_tui(db_path=database_path(args))
    if args.command and args.run_all:
        parser.error("--run-all takes no command")
    run = run_all if args.run_all else COMMANDS[args.command].run
    try:
        return run(args)
    except ConfigError as error:
        print(f"bqtui: {error}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.Error as error:  # the disk filled up, the file was made read-only …
        path = database_path(args) or default_db_path()
        print(f"bqtui: {describe_database_error(Path(path), error)}", file=sys.stderr)
        return EXIT_FAILED
    except SecretsError as error:
        print(f"bqtui: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BqtuiError as error:
        print(f"bqtui: {error}", file=sys.stderr)
        return EXIT_FAILED
