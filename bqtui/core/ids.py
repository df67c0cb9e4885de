"""BigQuery dataset and table IDs: bare IDs only, with a suggestion when a full name is given."""

import re

from bqtui.core.errors import ConfigError

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


# A project ID: 6–30 lowercase letters, digits and hyphens, starting with a letter and not
# ending with a hyphen; legacy domain-scoped projects prefix it with their domain and a colon
# (example.com:my-project).
PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
PROJECT_DOMAIN = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)
MAX_PROJECT_DOMAIN = 253


def _is_project_id(value: str) -> bool:
    domain, colon, project = value.rpartition(":")
    if not colon:
        return bool(PROJECT_ID.match(value))
    return (
        len(domain) <= MAX_PROJECT_DOMAIN
        and bool(PROJECT_DOMAIN.match(domain))
        and bool(PROJECT_ID.match(project))
    )


def validate_project_id(value: str | None) -> str | None:
    """A BigQuery project ID, or None (empty: the key file's project). It is written into
    MERGE, verify and DELETE statements, so nothing else gets through."""
    value = (value or "").strip()
    if not value:
        return None
    if _is_project_id(value):
        return value
    domain, colon, rest = value.partition(":")
    scoped = bool(colon) and "." in domain  # example.com:my-project…
    parts = _split_qualified(value)
    project = f"{domain}:{rest.split('.')[0]}" if scoped else (parts[0] if parts else "")
    qualified = "." in (rest if scoped else value) or (colon and not scoped)  # project.dataset…
    if qualified and _is_project_id(project):
        raise ConfigError(
            f'"{value}" is a qualified name, not a project ID. Use the bare project ID '
            f'"{project}"; the dataset and table have their own settings.'
        )
    head, sep, tail = value.rpartition(":")  # a domain's own spelling is not guessed at
    fixed = head.lower() + sep + tail.lower().replace("_", "-").replace(" ", "-")
    hint = f' "{fixed}" would do.' if fixed != value and _is_project_id(fixed) else ""
    raise ConfigError(
        f'"{value}" is not a valid project ID: use 6 to 30 lowercase letters, digits and '
        "hyphens, starting with a letter and not ending with a hyphen (e.g. my-project-123), "
        f"or a domain-scoped ID such as example.com:my-project.{hint}"
    )
