"""The token server, driven by google-auth's own service-account credentials."""

import google.auth.exceptions
import pytest
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from tests.harness.keys import make_service_account_key, public_key_pem
from tests.harness.token_server import TokenServer

EMAIL = "exporter@bqtui-test.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/bigquery"


@pytest.fixture(scope="module")
def token_server():
    with TokenServer() as server:
        yield server


@pytest.fixture
def key(token_server):
    key = make_service_account_key(
        project_id="bqtui-test", client_email=EMAIL, token_uri=token_server.token_uri
    )
    token_server.register_key(EMAIL, key["private_key_id"], public_key_pem(key["private_key"]))
    yield key
    token_server.server_time_offset = 0


def refreshed(key, scopes=(SCOPE,)):
    credentials = service_account.Credentials.from_service_account_info(key, scopes=scopes)
    credentials.refresh(Request())
    return credentials


def test_a_registered_key_gets_a_token_that_names_its_account(token_server, key):
    credentials = refreshed(key)

    issued = token_server.lookup(credentials.token)
    assert issued.client_email == EMAIL
    assert issued.scopes == {SCOPE}
    assert credentials.expiry is not None


def test_the_key_file_has_every_field_google_writes(key):
    assert key["type"] == "service_account"
    assert key["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert {"project_id", "private_key_id", "client_email", "client_id", "auth_uri"} <= set(key)


def revoke_the_key(server, key):
    server.revoke_key(EMAIL, key["private_key_id"])


def use_an_unknown_key_id(server, key):
    key["private_key_id"] = "0" * 40


def use_another_keys_private_key(server, key):
    other = make_service_account_key(project_id="x", client_email=EMAIL, token_uri="")
    key["private_key"] = other["private_key"]


def name_an_unknown_account(server, key):
    key["client_email"] = "someone-else@bqtui-test.iam.gserviceaccount.com"


def run_the_client_clock_two_hours_ahead(server, key):
    server.server_time_offset = -7200


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        (revoke_the_key, "Invalid JWT Signature."),
        (use_an_unknown_key_id, "Invalid JWT Signature."),
        (use_another_keys_private_key, "Invalid JWT Signature."),
        (name_an_unknown_account, "Invalid grant: account not found"),
        (run_the_client_clock_two_hours_ahead, "Token must be a short-lived token (60 minutes)"),
    ],
)
def test_a_refused_exchange_is_googles_invalid_grant(token_server, key, spoil, error):
    spoil(token_server, key)

    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant") as refused:
        refreshed(key)

    assert error in str(refused.value)


def test_a_key_without_scopes_is_refused(key):
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_scope"):
        refreshed(key, scopes=())


def test_deleting_the_account_ends_its_tokens(token_server, key):
    credentials = refreshed(key)

    token_server.delete_account(EMAIL)

    assert token_server.lookup(credentials.token) is None
    with pytest.raises(google.auth.exceptions.RefreshError, match="account not found"):
        refreshed(key)
