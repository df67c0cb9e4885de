"""AWS Signature Version 4 for Cloud Storage's XML API, which accepts it with HMAC keys.

botocore does the signing (the canonical request, the key derivation, the headers): it is
the implementation every AWS client in Python relies on. Cloud Storage's region is "auto"
and its service name "s3". The payload is always hashed into the signature (bqtui's bodies
are a few bytes of XML), so no request depends on TLS for its integrity.
"""

from __future__ import annotations

from collections.abc import Mapping

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bqtui.stage.hmac_key import HmacKey

REGION = "auto"
SERVICE = "s3"


def signed_headers(
    key: HmacKey,
    method: str,
    url: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers to send ``method url`` with: ``headers`` plus the signature's.

    ``url`` must already be percent-encoded as it goes on the wire (the path is signed
    as is, the query parameters sorted).
    """
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    credentials = Credentials(key.access_id, key.secret)
    S3SigV4Auth(credentials, SERVICE, REGION).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}
