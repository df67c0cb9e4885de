"""What a subcommand is: its name, its help line, its arguments and what runs it."""

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from bqtui.core.paths import default_db_path
from bqtui.state.store import Store

Handler = Callable[[argparse.Namespace], int]
StoreHandler = Callable[[argparse.Namespace, Store], int]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Handler  # returns the exit code
    has_db_option: bool = True


def database_path(args: argparse.Namespace) -> str | None:
    """The --db given on the command line, if any."""
    return getattr(args, "db", None)


def open_store(args: argparse.Namespace) -> Store:
    return Store(database_path(args) or default_db_path())


def with_store(handler: StoreHandler) -> Handler:
    """Runs ``handler`` with the store opened, and closes it whatever happens."""

    def run(args: argparse.Namespace) -> int:
        store = open_store(args)
        try:
            return handler(args, store)
        finally:
            store.close()

    return run


def add_name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")


def add_json_option(parser: argparse.ArgumentParser, text: str = "machine-readable output") -> None:
    parser.add_argument("--json", action="store_true", help=text)
