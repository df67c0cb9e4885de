"""What an export may cost in BigQuery: the cost flags of `add` and `set-cost`."""

import argparse

from bqtui.cli.command import Command, with_store
from bqtui.cli.exit_codes import EXIT_OK
from bqtui.core.config import ExportConfig, validate_export
from bqtui.core.cost import (
    DEFAULT_PRICE_PER_TIB,
    bytes_text,
    parse_bytes,
    parse_price_per_tib,
    parse_write_mode,
)
from bqtui.core.errors import ConfigError
from bqtui.state.store import Store


def add_cost_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--write-mode",
        metavar="merge|append",
        help="persons and sessions: merge (default; one row per key, each MERGE billed) or "
        "append (every version loaded for free; the view TABLE_latest gives the newest per key)",
    )
    parser.add_argument(
        "--max-bytes-billed",
        metavar="N",
        help="BigQuery's maximumBytesBilled on every query job of the export (e.g. 10GB): a "
        "job that would bill more fails before it runs, and nothing is written",
    )
    parser.add_argument(
        "--price-per-tib",
        metavar="USD",
        help=f"on-demand price per TiB billed, for status's projection (default "
        f"{DEFAULT_PRICE_PER_TIB})",
    )


def with_cost(config: ExportConfig, args: argparse.Namespace) -> ExportConfig:
    """``config`` with the cost flags given (those not given keep their value)."""
    changes: dict = {}
    if args.write_mode is not None:
        changes["write_mode"] = parse_write_mode(args.write_mode)
    if args.max_bytes_billed is not None:
        changes["max_bytes_billed"] = parse_bytes(args.max_bytes_billed)
    if args.price_per_tib is not None:
        changes["price_per_tib"] = parse_price_per_tib(args.price_per_tib)
    return config.with_changes(**changes)


def cost_summary(export: ExportConfig) -> dict:
    return {
        "write_mode": export.write_mode.value,
        "max_bytes_billed": export.max_bytes_billed,
        "price_per_tib": export.price_per_tib,
    }


def add_arguments_of_set_cost(set_cost: argparse.ArgumentParser) -> None:
    set_cost.add_argument("name")
    add_cost_arguments(set_cost)
    set_cost.add_argument(
        "--no-max-bytes-billed", action="store_true", help="remove the bytes guard"
    )


def cmd_set_cost(args: argparse.Namespace, store: Store) -> int:
    export = store.require_export(args.name)
    if args.no_max_bytes_billed and args.max_bytes_billed is not None:
        raise ConfigError("Give --max-bytes-billed N or --no-max-bytes-billed, not both.")
    changed = with_cost(export, args)
    if args.no_max_bytes_billed:
        changed = changed.with_changes(max_bytes_billed=None)
    if changed.write_mode != export.write_mode and store.done_window_starts(export.saved_id):
        raise ConfigError(
            f'Export "{export.name}" has exported windows in {export.write_mode} mode; its '
            f"table holds that layout. Export to a new table in {changed.write_mode} mode "
            "instead (bqtui add … --table-id NEW --write-mode …)."
        )
    store.update_export(validate_export(changed))
    guard = bytes_text(changed.max_bytes_billed) if changed.max_bytes_billed else "none"
    price = changed.price_per_tib if changed.price_per_tib is not None else DEFAULT_PRICE_PER_TIB
    print(
        f'Export "{export.name}": write mode {changed.write_mode}, bytes guard {guard}, '
        f"${price:g} per TiB."
    )
    return EXIT_OK


COMMANDS = (
    Command(
        "set-cost",
        "change an export's write mode, bytes guard (--max-bytes-billed) or price per TiB",
        add_arguments_of_set_cost,
        with_store(cmd_set_cost),
    ),
)
