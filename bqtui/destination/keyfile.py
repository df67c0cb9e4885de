"""Service-account key files: parse, validate, and describe what is wrong with a bad one.

Messages never quote the private key or any other secret field.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bqtui.core.errors import KeyFileError
from bqtui.destination.small_files import Problem, read_small_text_file

# A real key is ~2.3 KB; anything far larger is the wrong file (and is not read into memory).
MAX_KEY_FILE_BYTES = 64 * 1024
REQUIRED_FIELDS = ("project_id", "client_email", "private_key", "token_uri")
HOW_TO_GET_A_KEY = (
    "Create one in the Google Cloud console: IAM & Admin > Service Accounts > "
    "(your account) > Keys > Add key > Create new key > JSON."
)
OTHER_CREDENTIAL_TYPES = {
    "authorized_user": "a user's login credential (from gcloud auth application-default login)",
    "external_account": "a workload identity federation configuration",
    "impersonated_service_account": "an impersonation configuration",
    "external_account_authorized_user": "a workforce identity federation credential",
}


@dataclass(frozen=True)
class ServiceAccountKey:
    """A validated service-account key. ``info`` holds the secret; it is kept out of repr."""

    project_id: str
    client_email: str
    token_uri: str
    private_key_id: str
    info: dict = field(repr=False, compare=False)

    def to_json(self) -> str:
        return json.dumps(self.info)


def too_large(path: Path, size: int | None) -> str:
    amount = f"{size:,} bytes" if size is not None else f"over {MAX_KEY_FILE_BYTES:,} bytes"
    return (
        f"Key file {path} is {amount}; a "
        f"service-account key is about 2-3 KB (limit {MAX_KEY_FILE_BYTES // 1024} KB). Choose "
        "the JSON key file itself."
    )


def load_key_file(path: str | Path) -> ServiceAccountKey:
    """Read and validate a key file, or raise ``KeyFileError`` saying what is wrong."""
    return parse_key_text(read_small_text_file(path, MAX_KEY_FILE_BYTES, _key_file_problem))


def _key_file_problem(problem: Problem, path: Path, detail: str) -> KeyFileError:
    choose = "choose the service-account key's .json file."
    message = {
        "missing": f"Key file not found: {path}. Check the path. {HOW_TO_GET_A_KEY}",
        "unreadable": f"Cannot read key file {path}: {detail}.",
        "folder": f"{path} is a folder; {choose}",
        # A device (/dev/zero), a named pipe or a socket: reading could never end.
        "special": f"{path} is not a regular file (a device, pipe or socket); {choose}",
        "too_large": too_large(path, int(detail) if detail else None),
        "not_text": (
            f"Key file {path} is not text (not UTF-8). Choose the .json key, not a .p12 key. "
            f"{HOW_TO_GET_A_KEY}"
        ),
    }[problem]
    return KeyFileError(message)


def parse_key_text(text: str) -> ServiceAccountKey:
    """Validate the JSON text of a service-account key."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(
            f"The key is larger than {MAX_KEY_FILE_BYTES // 1024} KB; a service-account key "
            "is about 2-3 KB. Choose the JSON key file itself."
        )
    try:
        info = json.loads(text)
    except json.JSONDecodeError as error:
        raise KeyFileError(
            f"The key file is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}). Use the file exactly as downloaded. {HOW_TO_GET_A_KEY}"
        ) from None
    if not isinstance(info, dict):
        raise KeyFileError(
            f"The key file holds a JSON {type(info).__name__}, not an object. "
            f"A service-account key is a JSON object. {HOW_TO_GET_A_KEY}"
        )
    _check_type(info.get("type"))
    for name in REQUIRED_FIELDS:
        value = info.get(name)
        if not isinstance(value, str) or not value.strip():
            raise KeyFileError(
                f'The key file is missing the field "{name}". Use the file exactly as '
                f"downloaded. {HOW_TO_GET_A_KEY}"
            )
    if "@" not in info["client_email"]:
        raise KeyFileError(
            f'The key\'s "client_email" ({info["client_email"]}) is not an email address.'
        )
    token_uri = urlparse(info["token_uri"])
    if token_uri.scheme not in ("https", "http") or not token_uri.netloc:
        raise KeyFileError(
            f'The key\'s "token_uri" ({info["token_uri"]}) is not an http(s) URL; '
            "for Google it is https://oauth2.googleapis.com/token."
        )
    _check_private_key(info["private_key"])
    return ServiceAccountKey(
        project_id=info["project_id"],
        client_email=info["client_email"],
        token_uri=info["token_uri"],
        private_key_id=str(info.get("private_key_id", "")),
        info=info,
    )


def _check_type(credential_type: object) -> None:
    if credential_type != "service_account":
        if credential_type is None:
            raise KeyFileError(
                'The key file has no "type" field; a service-account key has '
                f'"type": "service_account". {HOW_TO_GET_A_KEY}'
            )
        what = OTHER_CREDENTIAL_TYPES.get(str(credential_type))
        described = f" ({what})" if what else ""
        instead = (
            " Without a key, give this file with --credentials-file instead."
            if what
            else f" {HOW_TO_GET_A_KEY}"
        )
        raise KeyFileError(
            f'The key file is of type "{credential_type}"{described}, not a service-account key '
            f'("service_account").{instead}'
        )


def _check_private_key(pem: str) -> None:
    if "-----BEGIN" not in pem:
        raise KeyFileError(
            'The key\'s "private_key" is not a PEM private key (no "-----BEGIN" line). '
            f"Download a new key; do not edit the file by hand. {HOW_TO_GET_A_KEY}"
        )
    try:
        load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError):
        # cryptography's messages do not include key material, but they are not helpful either.
        raise KeyFileError(
            'The key\'s "private_key" cannot be read: the PEM is damaged or truncated. '
            f"Download a new key; do not edit the file by hand. {HOW_TO_GET_A_KEY}"
        ) from None
