"""Credential configuration files (--credentials-file): each kind validated, with a message
per kind that says what to do, and never a secret in a message."""

import json
import os

import pytest

from bqtui.core.errors import CredentialFileError
from bqtui.destination.credential_files import load_credential_file, parse_credential_text

USER_LOGIN = {
    "type": "authorized_user",
    "client_id": "764086051850-abc.apps.googleusercontent.com",
    "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty",
    "refresh_token": "1//0secret-refresh-token",
}
WORKLOAD = {
    "type": "external_account",
    "audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/p/providers/q",
    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
    "token_url": "https://sts.googleapis.com/v1/token",
    "credential_source": {"file": "/var/run/token"},
    "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/"
    "serviceAccounts/exporter@p.iam.gserviceaccount.com:generateAccessToken",
}
IMPERSONATION = {
    "type": "impersonated_service_account",
    "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/"
    "serviceAccounts/exporter@p.iam.gserviceaccount.com:generateAccessToken",
    "source_credentials": USER_LOGIN,
    "delegates": [],
}


def test_each_kind_is_accepted_and_says_whether_it_holds_a_secret():
    user = parse_credential_text(json.dumps(USER_LOGIN))
    workload = parse_credential_text(json.dumps(WORKLOAD))
    impersonation = parse_credential_text(json.dumps(IMPERSONATION))
    assert (user.type, user.holds_secret) == ("authorized_user", True)
    assert (workload.type, workload.holds_secret) == ("external_account", False)
    assert workload.impersonation_target == "exporter@p.iam.gserviceaccount.com"
    assert (impersonation.type, impersonation.holds_secret) == (
        "impersonated_service_account",
        True,
    )
    assert "secret" not in repr(user)


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (
            {**USER_LOGIN, "refresh_token": ""},
            'The credential file (a user login, "authorized_user") is missing the field '
            '"refresh_token". Create it again with: gcloud auth application-default login',
        ),
        (
            {k: v for k, v in WORKLOAD.items() if k != "credential_source"},
            "The credential file (a workload identity federation configuration, "
            '"external_account") is missing the field "credential_source". Create it again '
            "with: gcloud iam workload-identity-pools create-cred-config PROVIDER "
            "--service-account=SA_EMAIL --output-file=FILE.json",
        ),
        (
            {**WORKLOAD, "token_url": "sts.googleapis.com/v1/token"},
            "The credential file (a workload identity federation configuration, "
            '"external_account") has a "token_url" that is not an http(s) URL. Create it '
            "again with: gcloud iam workload-identity-pools create-cred-config PROVIDER "
            "--service-account=SA_EMAIL --output-file=FILE.json",
        ),
        (
            {**IMPERSONATION, "service_account_impersonation_url": "https://x.example/v1/none"},
            "The credential file (an impersonation configuration, "
            '"impersonated_service_account") has a "service_account_impersonation_url" that '
            "names no service account (…/serviceAccounts/EMAIL:generateAccessToken). Create it "
            "again with: gcloud auth application-default login "
            "--impersonate-service-account=SA_EMAIL",
        ),
        (
            {"type": "service_account", "private_key": "-----BEGIN"},
            'The file is a service-account key ("service_account"): give it with --key-file '
            "instead of --credentials-file.",
        ),
        (
            {"type": "gdch_service_account"},
            'The credential file\'s type is "gdch_service_account"; bqtui accepts '
            '"authorized_user", "external_account", "impersonated_service_account", '
            '"external_account_authorized_user" (or a key with --key-file). Choose the '
            "credential configuration's .json file.",
        ),
        (
            [1, 2],
            "The credential file holds a JSON list, not an object. Choose the credential "
            "configuration's .json file.",
        ),
    ],
)
def test_a_bad_file_gets_a_message_for_its_kind(info, message):
    with pytest.raises(CredentialFileError) as raised:
        parse_credential_text(json.dumps(info))
    assert str(raised.value) == message
    assert "secret" not in str(raised.value)


def test_files_that_are_not_small_regular_files_are_refused_before_reading(tmp_path):
    folder = tmp_path / "creds"
    folder.mkdir()
    with pytest.raises(CredentialFileError, match="is a folder"):
        load_credential_file(folder)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(CredentialFileError, match="not a regular file"):
        load_credential_file(fifo)
    big = tmp_path / "big.json"
    big.write_text(" " * 70_000)
    with pytest.raises(CredentialFileError, match="larger than 64 KB"):
        load_credential_file(big)
    with pytest.raises(CredentialFileError, match="not found"):
        load_credential_file(tmp_path / "missing.json")
