"""Service-account key files signed by real RSA keys, as Google issues them."""

from __future__ import annotations

import secrets
import urllib.parse

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def _new_private_key_pem() -> str:
    # ~0.1 s per key: cheap enough to give every account its own, so a key file whose
    # private_key belongs to another account fails like it does at Google.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_key_pem(private_key_pem: str) -> str:
    """The PEM public key matching a key file's ``private_key``."""
    private_key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def make_service_account_key(*, project_id: str, client_email: str, token_uri: str) -> dict:
    """A complete service-account key file (the JSON Google lets you download), as a dict."""
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": _new_private_key_pem(),
        "client_email": client_email,
        "client_id": str(secrets.randbelow(10**21)).zfill(21),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": (
            "https://www.googleapis.com/robot/v1/metadata/x509/" + urllib.parse.quote(client_email)
        ),
        "universe_domain": "googleapis.com",
    }
