"""Which BigQuery failures are retried, and what a quota error says (unit level; the fault
suite proves the same through the real CLI against the emulator)."""

import requests
from google.api_core import exceptions as api_errors

from bqtui.core.errors import QuotaProblem
from bqtui.destination.failures import _is_transient
from bqtui.destination.permissions import describe_api_error


def google_error(kind, reason: str, message: str = "boom"):
    return kind(message, errors=[{"reason": reason, "message": message}])


def test_transient_reasons_are_retried_whatever_the_status():
    assert _is_transient(google_error(api_errors.Forbidden, "rateLimitExceeded"))
    assert _is_transient(google_error(api_errors.BadRequest, "backendError"))
    assert _is_transient(google_error(api_errors.InternalServerError, "internalError"))
    assert _is_transient(google_error(api_errors.TooManyRequests, "whatever"))
    assert _is_transient(google_error(api_errors.ServiceUnavailable, ""))
    assert _is_transient(requests.exceptions.ConnectionError("reset"))


def test_permanent_failures_are_not_retried():
    assert not _is_transient(google_error(api_errors.Forbidden, "quotaExceeded"))
    assert not _is_transient(google_error(api_errors.Forbidden, "accessDenied"))
    assert not _is_transient(google_error(api_errors.BadRequest, "invalidQuery"))
    assert not _is_transient(requests.exceptions.SSLError("certificate verify failed"))


def test_quota_exceeded_is_described_as_a_quota_not_a_permission():
    error = google_error(api_errors.Forbidden, "quotaExceeded", "Quota exceeded: imports.")
    described = describe_api_error(
        error, doing="loading", project="p", dataset="d", service_account="sa@p.iam"
    )
    assert isinstance(described, QuotaProblem)
    assert str(described).startswith(
        "While loading: BigQuery quota exceeded for project p: Quota exceeded: imports. This is "
        "a quota, not a missing permission"
    )
