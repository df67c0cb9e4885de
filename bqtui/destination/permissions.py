"""BigQuery permissions: which an export needs, where each is granted, and how to fix a gap.

``describe_api_error`` turns any failed BigQuery or token call into one precise, user-facing
error; the permission check (``check_permissions``) reuses the same findings.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import requests
from google.api_core import exceptions as api_errors
from google.auth import exceptions as auth_errors

from bqtui.core.config import Model
from bqtui.core.cost import bytes_text
from bqtui.core.errors import (
    CostLimitExceeded,
    CredentialProblem,
    DestinationError,
    PermissionProblem,
    QuotaProblem,
)

REQUIRED_PERMISSIONS = (
    "bigquery.datasets.get",
    "bigquery.jobs.create",
    "bigquery.tables.create",
    "bigquery.tables.get",
    "bigquery.tables.getData",
    "bigquery.tables.list",
    "bigquery.tables.updateData",
)
MUTABLE_MODEL_PERMISSIONS = ("bigquery.tables.delete",)
PROJECT_LEVEL_PERMISSIONS = {"bigquery.jobs.create"}
JOB_USER_ROLE = ("roles/bigquery.jobUser", "BigQuery Job User")
DATA_EDITOR_ROLE = ("roles/bigquery.dataEditor", "BigQuery Data Editor")
# The stage's objects: bqtui (with the HMAC key) writes, reads footers, lists and deletes
# them; BigQuery's load job lists and reads them as the export's principal.
BUCKET_PERMISSIONS = (
    "storage.objects.create",
    "storage.objects.get",
    "storage.objects.list",
    "storage.objects.delete",
)
# What the export's principal itself needs on the bucket (the load job's reads).
PRINCIPAL_BUCKET_PERMISSIONS = frozenset({"storage.objects.get", "storage.objects.list"})
OBJECT_ADMIN_ROLE = ("roles/storage.objectAdmin", "Storage Object Admin")
PERMISSION_IN_MESSAGE = re.compile(r"\b(bigquery\.[A-Za-z]+\.[A-Za-z]+)\b")


def required_permissions(model: Model) -> tuple[str, ...]:
    extra = MUTABLE_MODEL_PERMISSIONS if Model(model).is_mutable else ()
    return tuple(sorted(REQUIRED_PERMISSIONS + extra))


@dataclass(frozen=True)
class Fix:
    """How to grant one permission: where, which role, and commands to paste."""

    permission: str
    level: str  # "project", "dataset" or "bucket" (the Cloud Storage stage's)
    role: str
    role_title: str
    commands: tuple[str, ...]

    def lines(self) -> list[str]:
        return [
            f"Grant {self.permission} on the {self.level}: the built-in role {self.role_title} "
            f"({self.role}) includes it, or add it to your custom role.",
            *self.commands,
        ]


def fix_for(permission: str, project: str, dataset: str | None, member: str) -> Fix:
    """``member``: an IAM member (user:…, principalSet://…) or a service account's email."""
    principal = member if ":" in member else f"serviceAccount:{member}"
    custom_role = (
        f"# or, with a custom role: gcloud iam roles update ROLE_ID --project={project} "
        f"--add-permissions={permission}"
    )
    if permission in PROJECT_LEVEL_PERMISSIONS:
        role, title = JOB_USER_ROLE
        return Fix(
            permission,
            "project",
            role,
            title,
            (
                f"gcloud projects add-iam-policy-binding {project} --member={principal} "
                f"--role={role}",
                custom_role,
            ),
        )
    role, title = DATA_EDITOR_ROLE
    dataset_name = dataset or "DATASET"
    return Fix(
        permission,
        "dataset",
        role,
        title,
        (
            f"bq query --nouse_legacy_sql 'GRANT `{role}` ON SCHEMA "
            f'`{project}.{dataset_name}` TO "{principal}"\'',
            custom_role,
        ),
    )


def bucket_fix(permission: str, bucket: str, member: str) -> Fix:
    """How to grant a storage permission on the stage's bucket to ``member`` (an IAM member,
    or a service account's email)."""
    principal = member if ":" in member else f"serviceAccount:{member}"
    role, title = OBJECT_ADMIN_ROLE
    return Fix(
        permission,
        "bucket",
        role,
        title,
        (
            f"gcloud storage buckets add-iam-policy-binding gs://{bucket} --member={principal} "
            f"--role={role}",
        ),
    )


def _api_message(error: api_errors.GoogleAPICallError) -> str:
    return getattr(error, "message", None) or str(error)


def error_reason(error: Exception) -> str | None:
    """BigQuery's reason (``accessDenied``, ``quotaExceeded`` …) from the error body's list;
    api_core's own ``reason`` reads google.rpc.ErrorInfo, which BigQuery leaves empty."""
    errors = getattr(error, "errors", None) or []
    if errors and isinstance(errors[0], dict):
        return errors[0].get("reason")
    return None


def describe_token_error(error: Exception, token_uri: str | None = None) -> str:
    """Why Google refused to give the key an access token, and what to do."""
    text = str(error)
    if "Invalid JWT Signature" in text:
        return (
            "Google rejected the key's signature (invalid_grant: Invalid JWT Signature): the "
            "key was revoked or deleted. Create a new JSON key for the service account and "
            "set it on the export."
        )
    if "account not found" in text.lower() or "invalid_client" in text:
        return (
            "Google does not know this service account (invalid_grant: account not found): it "
            "was deleted or disabled. Create a service account and a new key."
        )
    if "iat" in text or "short-lived" in text or "timeframe" in text:
        return (
            "Google refused the key's token request because this machine's clock is off "
            "(invalid_grant: JWT iat/exp out of range). Synchronise the clock (NTP) and retry."
        )
    if isinstance(error, auth_errors.TransportError) or "Max retries" in text:
        where = f" ({token_uri})" if token_uri else ""
        return (
            f"Cannot reach the key's token endpoint{where}. Check the network, and that the "
            '"token_uri" in the key file is https://oauth2.googleapis.com/token.'
        )
    first = text.strip().splitlines()[0][:300] if text.strip() else type(error).__name__
    return f"Google refused to give the key an access token: {first}"


def _retry_seconds(error: Exception) -> str:
    match = re.search(r"Timeout of ([\d.]+)s", str(error))
    return f"{float(match.group(1)):.0f} s" if match else "the retry deadline"


def _kept_failing(
    error: api_errors.RetryError, last: BaseException | None, doing: str
) -> DestinationError:
    """The retries ran out: for how long, and the last error."""
    seconds = _retry_seconds(error)
    detail = _api_message(last) if isinstance(last, api_errors.GoogleAPICallError) else str(last)
    status = getattr(last, "code", None)
    return DestinationError(
        f"While {doing}: BigQuery kept failing for {seconds} (last error"
        f"{f' {status}' if status else ''}: {detail}). Nothing was written; the window "
        "is retried on the next run."
    )


def _access_denied(
    error: api_errors.Forbidden,
    doing: str,
    project: str,
    dataset: str | None,
    member: str,
    iam_member: str | None = None,
) -> PermissionProblem:
    """Which permission BigQuery denied, where, and how to grant it."""
    message = _api_message(error)
    match = PERMISSION_IN_MESSAGE.search(message)
    permission = match.group(1) if match else None
    if not permission:
        return PermissionProblem(f"While {doing}: BigQuery denied access: {message}")
    fix = fix_for(permission, project, dataset, iam_member or member)
    text = (
        f"While {doing}: BigQuery denied {permission} to {member} on the "
        f"{fix.level} {project if fix.level == 'project' else f'{project}:{dataset}'}.\n"
        + "\n".join(fix.lines())
    )
    return PermissionProblem(text, finding=fix)


def _not_found(
    error: api_errors.NotFound, doing: str, project: str, dataset: str | None, member: str
) -> DestinationError:
    """A project the key cannot see, a dataset that does not exist, or something else."""
    message = _api_message(error)
    if "Project" in message:
        return PermissionProblem(
            f"While {doing}: project {project} does not exist, or {member} cannot "
            "see it. Check the key's project_id or the export's project override."
        )
    if "Dataset" in message:
        return DestinationError(
            f"While {doing}: dataset {dataset} does not exist in project {project}. Create "
            f"it (bq mk --dataset {project}:{dataset}) or fix the dataset ID."
        )
    return DestinationError(f"While {doing}: not found: {message}")


def _over_bytes_limit(error: api_errors.GoogleAPICallError, doing: str) -> CostLimitExceeded:
    """BigQuery's 'Query exceeded limit for bytes billed: LIMIT. BILLED or higher required.'"""
    message = _api_message(error)
    numbers = [int(n) for n in re.findall(r"\b(\d+)\b", message)]
    if len(numbers) >= 2:
        limit, needed = numbers[0], numbers[1]
        detail = (
            f"the job would bill {bytes_text(needed)} ({needed:,} bytes), more than the "
            f"export's limit of {bytes_text(limit)} ({limit:,} bytes)"
        )
    else:
        detail = f"the job would bill more than the export's limit ({message})"
    return CostLimitExceeded(
        f"While {doing}: {detail}. BigQuery refused it before it ran: nothing was written. "
        "Raise the limit (bqtui set-cost NAME --max-bytes-billed N, or --no-max-bytes-billed), "
        "or make each job cheaper: bqtui check NAME says whether the table's layout makes "
        "every MERGE read the whole table (partitioning, or --write-mode append)."
    )


def describe_api_error(
    error: Exception,
    *,
    doing: str,
    project: str,
    dataset: str | None,
    service_account: str,
    token_uri: str | None = None,
    iam_member: str | None = None,
    token_refused: Callable[[Exception], str] | None = None,
) -> DestinationError:
    """One precise, user-facing error for a failed BigQuery call.

    ``service_account`` names who was denied (any principal); ``iam_member`` is it as an IAM
    member for the fix (default: a service account); ``token_refused`` explains a credential
    that gave no token (default: a key's reasons)."""
    if isinstance(error, api_errors.RetryError):
        last = error.cause
        if last is None or isinstance(
            last, api_errors.GoogleAPICallError | requests.RequestException
        ):
            return _kept_failing(error, last, doing)
        error = last
    if isinstance(error, auth_errors.GoogleAuthError):
        reason = token_refused(error) if token_refused else describe_token_error(error, token_uri)
        return CredentialProblem(f"While {doing}: {reason}")
    if isinstance(error, api_errors.GoogleAPICallError) and (
        error_reason(error) == "bytesBilledLimitExceeded"
    ):
        return _over_bytes_limit(error, doing)
    if isinstance(error, api_errors.GoogleAPICallError) and error_reason(error) == "quotaExceeded":
        return QuotaProblem(
            f"While {doing}: BigQuery quota exceeded for project {project}: "
            f"{_api_message(error)} This is a quota, not a missing permission: wait for it to "
            "reset (most reset daily), export less often (a longer interval), or ask for a "
            "higher quota (Google Cloud console → IAM & Admin → Quotas). The window was not "
            "written and is retried on the next run."
        )
    if isinstance(error, api_errors.Forbidden) and error_reason(error) == "accessDenied":
        return _access_denied(error, doing, project, dataset, service_account, iam_member)
    if isinstance(error, api_errors.NotFound):
        return _not_found(error, doing, project, dataset, service_account)
    if isinstance(error, api_errors.GoogleAPICallError):
        return DestinationError(f"While {doing}: BigQuery error: {_api_message(error)}")
    if isinstance(error, requests.exceptions.RequestException | ConnectionError):
        return DestinationError(
            f"While {doing}: cannot reach BigQuery ({type(error).__name__}); retried until the "
            "deadline. The window will be retried on the next run."
        )
    return DestinationError(f"While {doing}: {type(error).__name__}: {error}")
