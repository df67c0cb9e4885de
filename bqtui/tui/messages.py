"""The app's messages: what worker threads tell the screens.

Workers never touch widgets; they post one of these and the screen renders it on the UI thread.
"""

from dataclasses import dataclass, field
from datetime import datetime

from textual.message import Message

from bqtui.core.config import ExportConfig
from bqtui.core.errors import BqtuiError
from bqtui.destination.bigquery import TableSize
from bqtui.destination.credentials import GoogleCredentials
from bqtui.ops.permission_check import CheckReport
from bqtui.ops.verify_report import VerifyReport
from bqtui.pipeline.runner import LogEvent, ProgressEvent, RunResult, WindowFinished


@dataclass
class RunLogLines(Message):
    """Log lines of a run, gathered since the last flush (never more than ~10 a second)."""

    lines: list[LogEvent]


@dataclass
class RunProgressed(Message):
    """The latest progress of a run; older progress was dropped, not queued."""

    progress: ProgressEvent


@dataclass
class RunWindowsFinished(Message):
    """Windows that finished since the last flush, in order."""

    windows: list[WindowFinished]


@dataclass
class RunCompleted(Message):
    """The run is over: succeeded, failed, cancelled, busy or nothing due."""

    result: RunResult


@dataclass
class PermissionCheckStep(Message):
    """What the permission check is doing now (it makes several network calls)."""

    text: str


@dataclass
class PermissionCheckDone(Message):
    report: CheckReport


@dataclass
class ConnectionTested(Message):
    """The outcome of "Test connection": a row count, or the source's error message."""

    rows: int | None
    error: str | None = None
    details: list[str] = field(default_factory=list)  # server, tables, notes (source check)


@dataclass
class TableSchemaChecked(Message):
    """The destination table compared with the model: fields it lacks, or why it is unknown."""

    exists: bool
    missing_fields: list[str]
    error: str | None = None


@dataclass
class VerifyDone(Message):
    """A verify (or a repair, then a verify) finished: its report, or why it could not run."""

    report: VerifyReport | None
    error: str | None = None
    repaired: dict | None = None


@dataclass
class AutorunDone(Message):
    """The TUI ran every due window while open (as cron's runner does): the results."""

    results: list[RunResult]


@dataclass
class PermissionCheckAs(Message):
    """The check found the credentials: who it checks as, in which project."""

    principal: str
    project: str


@dataclass
class CredentialsLoaded(Message):
    """An export's credentials, from its configuration and the keyring, read in a worker
    (or why not)."""

    export: ExportConfig
    credentials: GoogleCredentials | None
    error: BqtuiError | None = None


@dataclass
class AdcDetected(Message):
    """What Application Default Credentials would use right now ("found: …", "none found")."""

    text: str


@dataclass
class ExportCreated(Message):
    """The wizard's export and its secrets were stored (keyring and database), or why not."""

    export: ExportConfig | None
    error: str | None = None


@dataclass
class ExportSaved(Message):
    """The edit screen's changes were stored (keyring and database): the notice, or why not."""

    notice: str
    long_notice: bool = False  # it names a range to backfill: shown longer
    error: str | None = None


@dataclass
class ExportPaused(Message):
    """An export was paused or resumed (a database write, done in a worker)."""

    export: ExportConfig
    paused: bool


@dataclass
class ExportRemoved(Message):
    """An export, its history and its keyring entries were removed, or why not."""

    export: ExportConfig
    error: BqtuiError | None = None


@dataclass
class BackfillEstimated(Message):
    """What a backfill range will bill at most (or why that is not known), for that range."""

    period: tuple[datetime, datetime]
    line: str
    limit_note: str | None = None


@dataclass
class TableSizeRead(Message):
    """The wizard's destination table as its metadata says (None: it does not exist yet, or
    its size could not be read), for the export it was read for."""

    export: ExportConfig
    size: TableSize | None
