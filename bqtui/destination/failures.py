"""Which BigQuery failures are worth retrying, the retry policy, and how a failed job's
errors read in one line. (What a failure means to the user: ``permissions.describe_api_error``.)
"""

import requests
from google.api_core import exceptions as api_errors
from google.api_core.retry import Retry
from google.auth import exceptions as auth_errors
from google.cloud.bigquery.retry import DEFAULT_RETRY

from bqtui.destination.permissions import error_reason

TRANSIENT_NETWORK_ERRORS = (
    ConnectionError,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.Timeout,
)
# BigQuery's reasons that say "try again", whatever HTTP status carries them.
TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "backendError", "internalError"})
# Everything a BigQuery call can fail with that ``translate`` turns into a user message.
API_FAILURES = (api_errors.GoogleAPIError, auth_errors.GoogleAuthError, *TRANSIENT_NETWORK_ERRORS)


def _is_transient(error: Exception) -> bool:
    """Worth retrying: BigQuery's transient reasons, 5xx, 429 and dropped connections.

    Not a certificate that does not verify (retrying cannot fix it), not ``quotaExceeded``
    (it lasts until the quota resets), not a permission.
    """
    if isinstance(error, requests.exceptions.SSLError):
        return False
    if isinstance(error, TRANSIENT_NETWORK_ERRORS):
        return True
    if isinstance(error, api_errors.GoogleAPICallError):
        reason = error_reason(error)
        if reason in TRANSIENT_REASONS:
            return True
        if reason == "quotaExceeded":
            return False
        return isinstance(
            error, api_errors.TooManyRequests | api_errors.ServerError
        ) or DEFAULT_RETRY._predicate(error)
    return False


def make_retry(deadline: float) -> Retry:
    return Retry(predicate=_is_transient, initial=1.0, maximum=30.0, timeout=deadline)


def first_errors(errors: list, limit: int = 3) -> str:
    """The first few error messages of a job, as one line."""
    messages = [
        str(e.get("message") or e.get("reason")) if isinstance(e, dict) else str(e)
        for e in errors[:limit]
    ]
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(messages) + more
