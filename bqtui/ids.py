"""BigQuery dataset and table IDs: bare IDs only, with a suggestion when a full name is given."""

import re

from .errors import ConfigError

DATASET_ID = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
# Table IDs may hold Unicode letters, marks, numbers, underscores, dashes and spaces.
TABLE_ID = re.compile(r"^[\w\- ]+$")
MAX_TABLE_ID_BYTES = 1024
QUALIFIED_NAME = re.compile(r"[.:]")


def _split_qualified(value: str) -> list[str]:
    return [part for part in QUALIFIED_NAME.split(value.strip("`")) if part]


def validate_dataset_id(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ConfigError("Dataset ID is required, e.g. posthog_exports.")
    if QUALIFIED_NAME.search(value):
        parts = _split_qualified(value)
        suggestion = parts[-1] if parts else value
        raise ConfigError(
            f'"{value}" is a qualified name, not a dataset ID. Use the bare dataset ID '
            f'"{suggestion}"; the project comes from the key file.'
        )
    if not DATASET_ID.match(value):
        fixed = re.sub(r"[^A-Za-z0-9_]", "_", value)[:1024]
        hint = (
            f' BigQuery allows no dashes or spaces there; "{fixed}" would do.'
            if (re.fullmatch(r"[A-Za-z0-9_\- ]+", value) and len(value) <= 1024)
            else ""
        )
        raise ConfigError(
            f'"{value}" is not a valid dataset ID: use only letters, numbers and underscores '
            f"(at most 1024).{hint}"
        )
    return value


def validate_table_id(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ConfigError("Table ID is required, e.g. events_export.")
    if QUALIFIED_NAME.search(value):
        parts = _split_qualified(value)
        table = parts[-1] if parts else value
        dataset_hint = f' and the dataset ID "{parts[-2]}"' if len(parts) >= 2 else ""
        raise ConfigError(
            f'"{value}" is a fully qualified name, not a table ID. Use the bare table ID '
            f'"{table}"{dataset_hint}; the project comes from the key file.'
        )
    if len(value.encode("utf-8")) > MAX_TABLE_ID_BYTES or not TABLE_ID.match(value):
        raise ConfigError(
            f'"{value}" is not a valid table ID: use letters, numbers, underscores, dashes '
            "and spaces (at most 1024 bytes)."
        )
    return value
