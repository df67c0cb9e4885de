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

    def __init__(self, message: str, finding=None):
        super().__init__(message)
        self.finding = finding


class ExportBusy(BqtuiError):
    """Another runner holds the export's lock."""


class Cancelled(BqtuiError):
    """The user cancelled the run; nothing was half written."""
