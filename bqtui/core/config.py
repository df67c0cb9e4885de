"""Typed export configuration and its validation."""

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from bqtui.core.cost import WriteMode
from bqtui.core.errors import ConfigError
from bqtui.core.ids import validate_dataset_id, validate_project_id, validate_table_id
from bqtui.core.stage_uri import parse_hmac_id, parse_stage_uri

EXPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
EVENT_NAME_LIST_LIMIT = 1000
# A window is exported this long after it ends, so rows stamped just before its end that
# become visible late (async inserts, a Distributed table's replication, clock skew between
# this host and ClickHouse) are still in it. See the README's "Guarantees".
DEFAULT_SETTLE_SECONDS = 60
MAX_SETTLE_SECONDS = 24 * 3600
# Product analytics begins well after 2000; bounds keep date arithmetic far from overflow.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)
# team_id is Int64 in ClickHouse and INTEGER (signed 64-bit) in bqtui's SQLite database.
MAX_TEAM_ID = 2**63 - 1


class Model(StrEnum):
    EVENTS = "events"
    PERSONS = "persons"
    SESSIONS = "sessions"

    @property
    def is_mutable(self) -> bool:
        return self is not Model.EVENTS


class AuthKind(StrEnum):
    """How an export authenticates to BigQuery (``auth`` in ``show``/``list --json``)."""

    KEY = "key"  # a service-account JSON key, kept in the keyring
    ADC = "adc"  # Application Default Credentials, found at run time
    CREDENTIALS_FILE = "credentials-file"  # a user login, workload identity or impersonation file


AUTH_DESCRIPTIONS = {
    AuthKind.KEY: "A service-account JSON key file (kept in the OS keyring).",
    AuthKind.ADC: (
        "This machine's Google login or workload identity (Application Default Credentials): "
        "gcloud auth application-default login, GOOGLE_APPLICATION_CREDENTIALS or a metadata "
        "server. bqtui stores nothing."
    ),
    AuthKind.CREDENTIALS_FILE: (
        "A credential configuration file: a user login (authorized_user), workload identity "
        "federation (external_account) or impersonated_service_account."
    ),
}
# Service accounts end in gserviceaccount.com (iam., developer., appspot., …).
SERVICE_ACCOUNT_EMAIL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}@[a-z0-9.-]+\.gserviceaccount\.com$")


class Interval(StrEnum):
    FIVE_MINUTES = "5m"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


MODEL_DESCRIPTIONS = {
    Model.EVENTS: "Every event, appended once per uuid (properties, person $set, ip, time).",
    Model.PERSONS: "One row per distinct_id with its person's latest properties, kept up to date.",
    Model.SESSIONS: "One row per session: entry/exit URLs, UTM, counts, duration, channel.",
}


@dataclass(frozen=True)
class ExportConfig:
    """An export as the user configured it. Secrets are referenced, never held."""

    name: str
    dataset_id: str
    table_id: str
    model: Model = Model.EVENTS
    interval: Interval = Interval.HOUR
    json_type: bool = False
    team_id: int = 1
    source_dsn: str = ""
    bigquery_endpoint: str | None = None
    project_id: str | None = None  # None: the key file's project
    location: str | None = None  # None: BigQuery infers it from the dataset
    include_events: tuple[str, ...] = ()
    exclude_events: tuple[str, ...] = ()
    start_at: datetime | None = None
    enabled: bool = True
    id: int | None = None
    uid: str = ""  # stable random id: names keyring entries, job ids and stage tables
    created_at: datetime | None = None
    settle_seconds: int = DEFAULT_SETTLE_SECONDS
    alert_after_seconds: int | None = None  # None: two intervals + settle + 10 minutes
    auth: AuthKind = AuthKind.KEY
    impersonate: str | None = None  # a service account every BigQuery call runs as
    # A credential file that holds no secret (e.g. workload identity); else in the keyring.
    credential_config: str | None = None
    write_mode: WriteMode = WriteMode.MERGE  # persons and sessions only
    max_bytes_billed: int | None = None  # BigQuery's maximumBytesBilled on every query job
    price_per_tib: float | None = None  # None: DEFAULT_PRICE_PER_TIB
    # gs://BUCKET/PREFIX that ClickHouse writes Parquet to and BigQuery loads from; None: the
    # rows pass through bqtui. The HMAC key's access ID is here, its secret in the keyring.
    stage: str | None = None
    stage_hmac_id: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def saved_id(self) -> int:
        """The export's id in the store; a ValueError for a config not saved yet."""
        if self.id is None:
            raise ValueError(f"export {self.name!r} has not been saved: it has no id yet")
        return self.id

    def with_changes(self, **changes) -> "ExportConfig":
        return replace(self, **changes)

    @property
    def settle(self) -> timedelta:
        return timedelta(seconds=self.settle_seconds)

    @property
    def destination_label(self) -> str:
        return f"{self.dataset_id}.{self.table_id}"


def validate_export_name(name: str) -> str:
    name = (name or "").strip()
    if not EXPORT_NAME.match(name):
        raise ConfigError(
            f'"{name}" is not a valid export name: start with a letter or digit and use '
            "letters, digits, '-', '_' or '.' (at most 63)."
        )
    return name


def validate_impersonate(email: str) -> str:
    email = (email or "").strip()
    if not SERVICE_ACCOUNT_EMAIL.match(email):
        raise ConfigError(
            f'"{email}" is not a service account email: --impersonate takes an address like '
            "exporter@my-project.iam.gserviceaccount.com."
        )
    return email


def service_account_project(email: str | None) -> str | None:
    """The project a service account belongs to (NAME@PROJECT.iam.gserviceaccount.com)."""
    domain = (email or "").partition("@")[2]
    suffix = ".iam.gserviceaccount.com"
    return domain.removesuffix(suffix) if domain.endswith(suffix) else None


def parse_model(value: str) -> Model:
    try:
        return Model(value.strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in Model)
        raise ConfigError(f'Unknown model "{value}". Choose one of: {choices}.') from None


def parse_interval(value: str) -> Interval:
    aliases = {"5min": "5m", "5-minutes": "5m", "hourly": "hour", "daily": "day", "weekly": "week"}
    value = value.strip().lower()
    try:
        return Interval(aliases.get(value, value))
    except ValueError:
        choices = ", ".join(i.value for i in Interval)
        raise ConfigError(f'Unknown interval "{value}". Choose one of: {choices}.') from None


def parse_timestamp(value: str, what: str = "time") -> datetime:
    """Parse an ISO 8601 time; a time without zone is UTC."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f'The {what} "{value}" is not an ISO 8601 time; use e.g. 2024-05-01 or '
            "2024-05-01T13:00:00Z."
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
        in_range = EARLIEST_TIME <= parsed <= LATEST_TIME
    except OverflowError:
        in_range = False
    if not in_range:
        raise ConfigError(
            f'The {what} "{value}" is outside the times bqtui exports: from '
            f"{EARLIEST_TIME:%Y-%m-%d} to {LATEST_TIME:%Y-%m-%d} (UTC)."
        )
    return parsed


def parse_event_names(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if len(names) > EVENT_NAME_LIST_LIMIT:
        raise ConfigError(f"At most {EVENT_NAME_LIST_LIMIT} event names may be listed.")
    return names


def parse_settle_seconds(value) -> int:
    try:
        seconds = int(str(value).strip())
    except (TypeError, ValueError):
        raise ConfigError(
            f'Settle delay must be a whole number of seconds, not "{value}" '
            f"(default {DEFAULT_SETTLE_SECONDS})."
        ) from None
    if not 0 <= seconds <= MAX_SETTLE_SECONDS:
        raise ConfigError(
            f"Settle delay must be between 0 and {MAX_SETTLE_SECONDS} seconds (24 hours), "
            f"not {seconds}; the default is {DEFAULT_SETTLE_SECONDS}."
        )
    return seconds


def parse_alert_after(value) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        seconds = int(str(value).strip())
    except ValueError:
        raise ConfigError(
            f'Alert-after must be a whole number of seconds, not "{value}".'
        ) from None
    if seconds <= 0:
        raise ConfigError("Alert-after must be a positive number of seconds.")
    return seconds


def parse_team_id(value) -> int:
    text = str(value).strip() if value is not None else ""
    # Digits beyond any 64-bit number are refused before int() (which stops at 4300 digits).
    if re.fullmatch(r"[+-]?[0-9]+", text) and len(text.lstrip("+-").lstrip("0")) > 19:
        if text.startswith("-"):
            raise ConfigError("Team ID cannot be negative.")
        raise ConfigError(_team_id_out_of_range(text))
    try:
        team_id = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f'Team ID must be a whole number, not "{value}".') from None
    if team_id < 0:
        raise ConfigError("Team ID cannot be negative.")
    if team_id > MAX_TEAM_ID:
        raise ConfigError(_team_id_out_of_range(text))
    return team_id


def _team_id_out_of_range(text: str) -> str:
    shown = text if len(text) <= 40 else f"{text[:20]}… ({len(text)} digits)"
    return (
        f"Team ID {shown} is out of range: ClickHouse's team_id is a signed 64-bit integer, "
        f"at most {MAX_TEAM_ID}."
    )


def validate_export(config: ExportConfig) -> ExportConfig:
    """Return the config with normalised fields, or raise ``ConfigError``."""
    include, exclude = set(config.include_events), set(config.exclude_events)
    both = sorted(include & exclude)
    if both:
        raise ConfigError(
            f"Events listed both to include and to exclude: {', '.join(both)}. Pick one."
        )
    model = parse_model(str(config.model))
    if config.write_mode == WriteMode.APPEND and not model.is_mutable:
        raise ConfigError(
            "--write-mode applies to persons and sessions; events are always appended, once "
            "per uuid."
        )
    endpoint = (config.bigquery_endpoint or "").strip() or None
    if endpoint and not re.match(r"^https?://[^/\s]+", endpoint):
        raise ConfigError(
            f'BigQuery endpoint "{endpoint}" is not an http(s) URL, e.g. http://127.0.0.1:9050.'
        )
    stage, stage_hmac_id = _validate_stage(config)
    return replace(
        config,
        stage=stage,
        stage_hmac_id=stage_hmac_id,
        name=validate_export_name(config.name),
        dataset_id=validate_dataset_id(config.dataset_id),
        table_id=validate_table_id(config.table_id),
        model=model,
        interval=parse_interval(str(config.interval)),
        team_id=parse_team_id(config.team_id),
        settle_seconds=parse_settle_seconds(config.settle_seconds),
        bigquery_endpoint=endpoint,
        project_id=validate_project_id(config.project_id),
    )


def _validate_stage(config: ExportConfig) -> tuple[str | None, str | None]:
    """The stage URI and its HMAC access ID, both or neither."""
    if not config.stage:
        return None, None
    stage = parse_stage_uri(config.stage)
    if not config.stage_hmac_id:
        raise ConfigError(
            "--stage needs the HMAC key that ClickHouse writes with: add --stage-hmac-id ID "
            "(its secret comes from --stage-hmac-secret-file FILE or a prompt)."
        )
    return stage, parse_hmac_id(config.stage_hmac_id)
