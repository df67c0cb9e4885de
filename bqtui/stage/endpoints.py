"""Where Cloud Storage's APIs live: Google's by default, a local stand-in in tests."""

import os

# Contract names: acceptance runs point these at local servers.
XML_ENDPOINT_ENV = "BQTUI_GCS_ENDPOINT"
JSON_ENDPOINT_ENV = "BQTUI_GCS_JSON_ENDPOINT"
DEFAULT_ENDPOINT = "https://storage.googleapis.com"


def xml_api_base() -> str:
    """The XML API's base URL (objects are path-style ``BASE/BUCKET/OBJECT``)."""
    return _base(XML_ENDPOINT_ENV)


def json_api_base() -> str:
    """The JSON API's base URL (``BASE/storage/v1/b/BUCKET/iam/testPermissions``)."""
    return _base(JSON_ENDPOINT_ENV)


def _base(variable: str) -> str:
    return (os.environ.get(variable) or DEFAULT_ENDPOINT).strip().rstrip("/")
