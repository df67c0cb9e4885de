"""What Cloud Storage's refusals mean for the user: one sentence naming the bucket and the fix.

The messages name the HMAC key by its access ID only; the secret never appears in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bqtui.core.errors import BqtuiError


class StageError(BqtuiError):
    """Cloud Storage refused or failed an operation on the stage."""

    # Whether trying again later may succeed (an outage), or a person must fix something.
    retryable = False


class StageAccessProblem(StageError):
    """The key, its permissions or the bucket are wrong: retrying will not help."""

    stop_note = "Stopped this export: fix its Cloud Storage stage (see above) and run it again."


class StageUnreachable(StageError):
    """Cloud Storage's endpoint did not answer."""

    retryable = True


class StageRequestFailed(StageError):
    """Any other refusal or failure (5xx and 429 are worth retrying)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status
        self.retryable = status >= 500 or status == 429


class Action(Enum):
    """What bqtui asked of Cloud Storage, and the permission that allows it."""

    LIST = ("list", "storage.objects.list")
    WRITE = ("create", "storage.objects.create")
    READ = ("read", "storage.objects.get")
    DELETE = ("delete", "storage.objects.delete")

    @property
    def verb(self) -> str:
        return self.value[0]

    @property
    def permission(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class Refusal:
    """An error answer of the XML API: its HTTP status and ``<Code>``, ``<Message>``."""

    status: int
    code: str
    message: str = ""


def error_for(refusal: Refusal, *, bucket: str, access_id: str, action: Action) -> StageError:
    """The exception to raise for ``refusal`` of ``action`` on ``bucket``."""
    code = refusal.code
    if code == "SignatureDoesNotMatch":
        return StageAccessProblem(
            f"Cloud Storage rejected the secret of HMAC key {access_id} for bucket {bucket}: "
            "give the export the secret shown when that key was created, or create a new key "
            "(Cloud Storage > Settings > Interoperability)."
        )
    if code == "InvalidAccessKeyId":
        return StageAccessProblem(
            f"Cloud Storage does not know HMAC key {access_id} (used for bucket {bucket}): "
            "check the access ID, or create a key under Cloud Storage > Settings > "
            "Interoperability."
        )
    if code == "NoSuchBucket":
        return StageAccessProblem(
            f"Cloud Storage has no bucket {bucket}: create it, or point the stage at an "
            "existing bucket (gs://BUCKET/PREFIX)."
        )
    if code == "AccessDenied" or refusal.status == 403:
        return StageAccessProblem(
            f"HMAC key {access_id} may not {action.verb} objects in bucket {bucket}: grant "
            f"its service account {action.permission} on the bucket (for example with "
            "roles/storage.objectAdmin)."
        )
    detail = f": {refusal.message.rstrip('.')}." if refusal.message else "."
    return StageRequestFailed(
        f"Cloud Storage answered {refusal.status} {code or 'without an error code'} for "
        f"bucket {bucket} when asked to {action.verb} objects{detail}",
        refusal.status,
    )


def unreachable(endpoint: str, bucket: str, reason: str) -> StageUnreachable:
    return StageUnreachable(
        f"Could not reach Cloud Storage at {endpoint} for bucket {bucket} ({reason}): check "
        "the network, or BQTUI_GCS_ENDPOINT if it is set."
    )
