"""Google credential configuration files other than keys: read, validate, say what is wrong.

A user login (``authorized_user``), workload identity federation (``external_account``), an
impersonation configuration (``impersonated_service_account``) or a workforce login
(``external_account_authorized_user``). Messages never quote a secret field.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bqtui.core.errors import CredentialFileError
from bqtui.destination.small_files import Describe, Problem, read_small_text_file

# Real configurations are well under 4 KB; anything far larger is the wrong file.
MAX_CREDENTIAL_FILE_BYTES = 64 * 1024

KINDS = {
    "authorized_user": "a user login",
    "external_account": "a workload identity federation configuration",
    "impersonated_service_account": "an impersonation configuration",
    "external_account_authorized_user": "a workforce identity federation login",
}
HOW_TO_CREATE = {
    "authorized_user": "Create it again with: gcloud auth application-default login",
    "external_account": (
        "Create it again with: gcloud iam workload-identity-pools create-cred-config "
        "PROVIDER --service-account=SA_EMAIL --output-file=FILE.json"
    ),
    "impersonated_service_account": (
        "Create it again with: gcloud auth application-default login "
        "--impersonate-service-account=SA_EMAIL"
    ),
    "external_account_authorized_user": (
        "Create it again with: gcloud auth application-default login --login-config=FILE.json"
    ),
}
REQUIRED_FIELDS = {
    "authorized_user": ("client_id", "client_secret", "refresh_token"),
    "external_account": ("audience", "subject_token_type", "token_url", "credential_source"),
    "impersonated_service_account": ("service_account_impersonation_url", "source_credentials"),
    "external_account_authorized_user": (
        "audience",
        "refresh_token",
        "token_url",
        "client_id",
        "client_secret",
    ),
}
URL_FIELDS = ("token_url", "service_account_impersonation_url", "token_info_url")
# Fields whose value would let anyone holding the file act as its principal.
SECRET_FIELDS = frozenset({"refresh_token", "client_secret", "private_key", "headers"})
IMPERSONATION_TARGET = re.compile(r"serviceAccounts/([^/:]+):generateAccessToken")
ANY_CREDENTIAL_FILE = "Choose the credential configuration's .json file."


@dataclass(frozen=True)
class CredentialFile:
    """A validated credential configuration. ``info`` may hold secrets: kept out of repr."""

    type: str
    info: dict[str, Any] = field(repr=False, compare=False)

    @property
    def holds_secret(self) -> bool:
        """Whether the file must live in the keyring rather than in bqtui's database."""
        return _holds_secret(self.info)

    @property
    def description(self) -> str:
        return f'{KINDS.get(self.type, "a service-account key")} ("{self.type}")'

    @property
    def impersonation_target(self) -> str | None:
        """The service account the file itself impersonates, if it does."""
        match = IMPERSONATION_TARGET.search(str(self.info.get("service_account_impersonation_url")))
        return match.group(1) if match else None

    def to_json(self) -> str:
        return json.dumps(self.info)


def _holds_secret(value: object) -> bool:
    if isinstance(value, dict):
        return any(
            (name in SECRET_FIELDS and item) or _holds_secret(item) for name, item in value.items()
        )
    if isinstance(value, list):
        return any(_holds_secret(item) for item in value)
    return False


def load_credential_file(path: str | Path) -> CredentialFile:
    """Read and validate a credential configuration file given with ``--credentials-file``."""
    return parse_credential_text(
        read_small_text_file(path, MAX_CREDENTIAL_FILE_BYTES, file_problem("Credential file"))
    )


def file_problem(what: str, choose: str = ANY_CREDENTIAL_FILE) -> Describe:
    """Messages for a credential file that cannot be read, naming it ``what``."""

    def refuse(problem: Problem, path: Path, detail: str) -> CredentialFileError:
        return CredentialFileError(
            {
                "missing": f"{what} not found: {path}. Check the path.",
                "unreadable": f"Cannot read {what.lower()} {path}: {detail}.",
                "folder": f"{path} is a folder. {choose}",
                "special": f"{path} is not a regular file (a device, pipe or socket). {choose}",
                "too_large": f"{what} {path} is larger than "
                f"{MAX_CREDENTIAL_FILE_BYTES // 1024} KB; a credential file is a few KB. {choose}",
                "not_text": f"{what} {path} is not text (not UTF-8). {choose}",
            }[problem]
        )

    return refuse


def parse_credential_text(text: str, *, allow_key: bool = False) -> CredentialFile:
    """Validate a credential configuration; ``allow_key`` accepts a service-account key too
    (what ``GOOGLE_APPLICATION_CREDENTIALS`` may name)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CREDENTIAL_FILE_BYTES:
        raise CredentialFileError(
            f"The credential file is larger than {MAX_CREDENTIAL_FILE_BYTES // 1024} KB; a "
            f"credential file is a few KB. {ANY_CREDENTIAL_FILE}"
        )
    try:
        info = json.loads(text)
    except json.JSONDecodeError as error:
        raise CredentialFileError(
            f"The credential file is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}). Use the file exactly as gcloud wrote it."
        ) from None
    if not isinstance(info, dict):
        raise CredentialFileError(
            f"The credential file holds a JSON {type(info).__name__}, not an object. "
            f"{ANY_CREDENTIAL_FILE}"
        )
    kind = info.get("type")
    if kind == "service_account":
        if allow_key:
            return CredentialFile("service_account", info)
        raise CredentialFileError(
            'The file is a service-account key ("service_account"): give it with --key-file '
            "instead of --credentials-file."
        )
    if kind not in KINDS:
        known = ", ".join(f'"{name}"' for name in KINDS)
        raise CredentialFileError(
            f"The credential file's type is {json.dumps(kind) if kind else 'missing'}; bqtui "
            f"accepts {known} (or a key with --key-file). {ANY_CREDENTIAL_FILE}"
        )
    _check_fields(kind, info)
    if kind == "impersonated_service_account":
        _check_impersonation_source(info)
    return CredentialFile(kind, info)


def _check_fields(kind: str, info: dict[str, Any]) -> None:
    described = f'The credential file ({KINDS[kind]}, "{kind}")'
    for name in REQUIRED_FIELDS[kind]:
        value = info.get(name)
        expected_object = name in ("credential_source", "source_credentials")
        if (
            not (isinstance(value, dict) if expected_object else isinstance(value, str))
            or not value
        ):
            raise CredentialFileError(
                f'{described} is missing the field "{name}". {HOW_TO_CREATE[kind]}'
            )
    for name in URL_FIELDS:
        if name in info:
            url = urlparse(str(info[name]))
            if url.scheme not in ("https", "http") or not url.netloc:
                raise CredentialFileError(
                    f'{described} has a "{name}" that is not an http(s) URL. {HOW_TO_CREATE[kind]}'
                )
    if kind == "impersonated_service_account" and not IMPERSONATION_TARGET.search(
        info["service_account_impersonation_url"]
    ):
        raise CredentialFileError(
            f'{described} has a "service_account_impersonation_url" that names no service '
            f"account (…/serviceAccounts/EMAIL:generateAccessToken). {HOW_TO_CREATE[kind]}"
        )


def _check_impersonation_source(info: dict[str, Any]) -> None:
    source = info["source_credentials"]
    source_kind = source.get("type")
    if source_kind not in ("authorized_user", "service_account", "external_account"):
        raise CredentialFileError(
            'The impersonation configuration\'s "source_credentials" must be a user login, a '
            f"service-account key or workload identity, not {json.dumps(source_kind)}. "
            f"{HOW_TO_CREATE['impersonated_service_account']}"
        )
    if source_kind in REQUIRED_FIELDS:
        _check_fields(source_kind, source)
