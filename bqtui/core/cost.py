"""What BigQuery bills an export: the write mode, the bytes guard and the price per TiB.

Loads are free; queries and DML are billed by the bytes they read. A MERGE reads its stage
and the target table (only the partitions a constant filter names), so the write mode and the
table's layout decide whether a window costs what it holds or what the table holds.
"""

import re
from enum import StrEnum

from bqtui.core.errors import ConfigError

# BigQuery's on-demand price per TiB billed (US multi-region, 2024); --price-per-tib overrides.
DEFAULT_PRICE_PER_TIB = 6.25
TIB = 2**40
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15}
_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "PIB": 2**50})


class WriteMode(StrEnum):
    """How a mutable model (persons, sessions) reaches its table."""

    MERGE = "merge"  # stage table + MERGE: one row per key in the table (billed per MERGE)
    APPEND = "append"  # every new version loaded (free); a view returns the newest per key


def parse_write_mode(value: str) -> WriteMode:
    try:
        return WriteMode(value.strip().lower())
    except ValueError:
        raise ConfigError(f'Unknown write mode "{value}". Choose one of: merge, append.') from None


def parse_bytes(value: str | int | None, what: str = "--max-bytes-billed") -> int | None:
    """A byte count: 1000000, 500MB, 10GB, 1TiB … (None or '' for none)."""
    if value is None or str(value).strip() == "":
        return None
    match = _SIZE.match(str(value))
    if not match:
        raise ConfigError(
            f'{what} must be a number of bytes, e.g. 10000000000, 10GB or 1TiB, not "{value}".'
        )
    amount = float(match.group(1)) * _UNITS[(match.group(2) or "").upper()]
    if amount < 1 or amount >= 2**63:
        raise ConfigError(f"{what} must be at least 1 byte and less than 8 EiB.")
    return int(amount)


def parse_price_per_tib(value: str | float | None) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        price = float(str(value).strip().lstrip("$"))
    except ValueError:
        raise ConfigError(
            f'--price-per-tib must be a price in US dollars, e.g. 6.25, not "{value}".'
        ) from None
    if not 0 <= price < 1_000_000:
        raise ConfigError("--price-per-tib must be between 0 and 1,000,000 dollars.")
    return price


def bytes_text(count: int | None) -> str:
    """1.2 GB, 850 MB, 10 MB: as BigQuery's console shows bytes billed (decimal units)."""
    if count is None:
        return "-"
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def usd(bytes_billed: int, price_per_tib: float | None) -> float:
    """What bytes billed cost on demand."""
    price = DEFAULT_PRICE_PER_TIB if price_per_tib is None else price_per_tib
    return bytes_billed / TIB * price


def projected_month_usd(
    bytes_billed_30d: int, days_recorded: float, price_per_tib: float | None
) -> float:
    """A 30-day month at the rate of what was billed over the recorded days (at most 30)."""
    days = min(max(days_recorded, 1.0), 30.0)
    return round(usd(bytes_billed_30d, price_per_tib) * 30.0 / days, 2)
