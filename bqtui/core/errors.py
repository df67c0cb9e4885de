"""Errors that carry a message meant for the user: what is wrong and what to do."""


class BqtuiError(Exception):
    """Base class: ``str(error)`` is a complete, user-facing sentence."""


class ConfigError(BqtuiError):
    """Invalid user input or configuration (exit code 2 on the command line)."""


class KeyFileError(ConfigError):
    """The service-account key file is unusable."""


class SecretsError(BqtuiError):
    """The keyring cannot store or return a secret."""


class SourceError(BqtuiError):
    """ClickHouse could not be reached or queried."""


class DestinationError(BqtuiError):
    """BigQuery refused or failed an operation."""


class PermissionProblem(DestinationError):
    """BigQuery denied an operation for lack of a permission; retrying will not help."""

    # What the run log says when this stops an export's run.
    stop_note = "Stopped this export: fix the permission and run it again."

    def __init__(self, message: str, finding=None):
        super().__init__(message)
        self.finding = finding


class ExportBusy(BqtuiError):
    """Another runner holds the export's lock."""


class Cancelled(BqtuiError):
    """The user cancelled the run; nothing was half written."""


class SourceBusy(ExportBusy, SourceError):
    """The embedded ClickHouse is held by another process; the export runs another time."""


class LockLost(BqtuiError):
    """Another runner took this export's lock over; this runner must record nothing."""


class QuotaProblem(DestinationError):
    """BigQuery refused for a quota; waiting or raising the quota helps, not permissions."""


class TransientJobFailure(DestinationError):
    """A BigQuery job failed for a reason that a new attempt may not meet (backendError …)."""


class CredentialFileError(ConfigError):
    """A Google credential configuration file (not a key) is unusable."""


class CredentialProblem(PermissionProblem):
    """The export's credential cannot give a token (none found, expired, refused)."""

    stop_note = "Stopped this export: fix its credential (see above) and run it again."


class CostLimitExceeded(PermissionProblem):
    """A query job would bill more than the export's --max-bytes-billed; it did not run."""

    stop_note = "Stopped this export: nothing was written; see above for what to change."
