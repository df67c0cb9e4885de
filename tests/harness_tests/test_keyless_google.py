"""Keyless credentials against the fake Google, driven by google-auth as product code drives it:
user logins, impersonation, workload identity federation and a metadata server."""

import json
import os
import stat
import subprocess
import sys

import google.auth.exceptions
import pytest
import requests
from google.auth import identity_pool, impersonated_credentials
from google.auth.transport.requests import Request
from google.cloud import bigquery
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from tests.harness.google import (
    BIGQUERY_SCOPE,
    DATA_EDITOR,
    JOB_USER,
    FakeGoogle,
    ServiceAccount,
    unique_id,
)

PROJECT = "bqtui-test"


@pytest.fixture
def alice() -> str:
    """A user nobody else has granted anything (grants outlive tests in the session)."""
    return unique_id("alice") + "@example.com"


@pytest.fixture
def subject() -> str:
    """A workload subject of its own, for the same reason."""
    return unique_id("ci-job")


@pytest.fixture
def dataset(fake_google):
    dataset_id = unique_id("keyless")
    fake_google.admin_client(PROJECT).create_dataset(dataset_id)
    return dataset_id


def exporter(google: FakeGoogle, dataset: str) -> ServiceAccount:
    return google.new_account(
        PROJECT, project_permissions=JOB_USER, dataset_permissions={dataset: DATA_EDITOR}
    )


def runs_as(google: FakeGoogle, credentials, dataset: str) -> set[str | None]:
    """Read the dataset with ``credentials``; the principals the BigQuery proxy saw."""
    google.proxy.reset_calls()
    client = google.client_for(credentials, PROJECT)
    [row] = client.query("SELECT 1 AS one", job_retry=None).result()
    assert row.one == 1
    assert [entry.dataset_id for entry in client.list_datasets()] == [dataset]
    return {call.account for call in google.proxy.calls}


def impersonating(google: FakeGoogle, source, target_email: str):
    """Impersonated credentials exactly as product code builds them from the endpoint variable."""
    path = f"/v1/projects/-/serviceAccounts/{target_email}:generateAccessToken"
    return impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal=target_email,
        target_scopes=[BIGQUERY_SCOPE],
        iam_endpoint_override=google.iam_credentials_endpoint + path,
    )


# -- user logins ---------------------------------------------------------------------


def test_a_user_login_refreshes_and_bigquery_sees_the_user(fake_google, alice, dataset):
    user = fake_google.new_user(
        alice, project_permissions=JOB_USER, dataset_permissions={dataset: DATA_EDITOR}
    )
    credentials = user_credentials.Credentials(
        None,
        refresh_token=user.refresh_token,
        client_id=user.client_id,
        client_secret=user.client_secret,
        token_uri=fake_google.oauth_token_endpoint,
    )

    assert runs_as(fake_google, credentials, dataset) == {alice}
    issued = fake_google.token_server.lookup(credentials.token)
    assert issued.client_email == alice
    assert "https://www.googleapis.com/auth/cloud-platform" in issued.scopes
    assert google.auth.jwt.decode(credentials.id_token, verify=False)["email"] == alice


def test_the_adc_file_is_what_gcloud_writes(fake_google, alice, tmp_path):
    user = fake_google.new_user(alice, quota_project_id=PROJECT)

    path = user.write_adc_file(tmp_path / "gcloud" / "application_default_credentials.json")

    info = json.loads(path.read_text())
    assert info["type"] == "authorized_user"
    assert info["quota_project_id"] == PROJECT
    assert {"client_id", "client_secret", "refresh_token"} <= set(info)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # google-auth reads the file but refreshes at Google: the endpoint must be set apart.
    loaded = user_credentials.Credentials.from_authorized_user_file(str(path))
    assert loaded.refresh_token == user.refresh_token
    assert loaded.token_uri == "https://oauth2.googleapis.com/token"


def test_the_impersonating_adc_file_is_what_gcloud_writes(fake_google, alice, tmp_path):
    user = fake_google.new_user(alice)
    target = fake_google.new_account(PROJECT)

    path = user.write_impersonated_adc_file(tmp_path / "adc.json", target.email)

    info = json.loads(path.read_text())
    assert info["type"] == "impersonated_service_account"
    assert info["source_credentials"]["refresh_token"] == user.refresh_token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = impersonated_credentials.Credentials.from_impersonated_service_account_info(info)
    assert loaded.service_account_email == target.email


def test_a_refresh_may_narrow_to_bigquery_but_not_widen(fake_google, alice):
    user = fake_google.new_user(alice)

    narrowed = user_credentials.Credentials(
        None, **_user_fields(user, fake_google), scopes=[BIGQUERY_SCOPE]
    )
    narrowed.refresh(Request())
    widened = user_credentials.Credentials(
        None, **_user_fields(user, fake_google), scopes=["https://www.googleapis.com/auth/drive"]
    )

    assert fake_google.token_server.lookup(narrowed.token).scopes == {BIGQUERY_SCOPE}
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_scope"):
        widened.refresh(Request())


def _user_fields(user, google: FakeGoogle) -> dict:
    return {
        "refresh_token": user.refresh_token,
        "client_id": user.client_id,
        "client_secret": user.client_secret,
        "token_uri": google.oauth_token_endpoint,
    }


def test_an_expired_login_is_invalid_grant(fake_google, alice):
    user = fake_google.new_user(alice)

    user.expire_refresh_token()

    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant") as refused:
        user.credentials().refresh(Request())
    assert "Token has been expired or revoked." in str(refused.value)


def test_a_wrong_client_secret_is_invalid_client(fake_google, alice):
    fields = {**_user_fields(fake_google.new_user(alice), fake_google), "client_secret": "x"}

    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_client"):
        user_credentials.Credentials(None, **fields).refresh(Request())


# -- impersonation -------------------------------------------------------------------


def test_an_allowed_user_impersonates_and_bigquery_sees_the_service_account(
    fake_google, alice, dataset
):
    user = fake_google.new_user(alice)
    target = exporter(fake_google, dataset)
    fake_google.allow_impersonation(user, target.email)
    fake_google.reset_impersonation_calls()

    credentials = impersonating(fake_google, user.credentials(), target.email)

    assert runs_as(fake_google, credentials, dataset) == {target.email}
    [call] = fake_google.impersonation_calls
    assert (call.caller, call.target, call.status) == (alice, target.email, 200)
    assert call.scopes == (BIGQUERY_SCOPE,)


def test_a_service_account_key_can_be_the_source(fake_google, dataset):
    source = fake_google.new_account(PROJECT)
    target = exporter(fake_google, dataset)
    fake_google.allow_impersonation(source, target)

    # Scoped to BigQuery; google-auth rescopes the source to the IAM scope itself.
    credentials = impersonating(fake_google, source.credentials(), target.email)

    assert runs_as(fake_google, credentials, dataset) == {target.email}


def test_impersonation_without_token_creator_is_permission_denied(fake_google, alice, dataset):
    user = fake_google.new_user(alice)
    target = exporter(fake_google, dataset)
    fake_google.allow_impersonation(user, target)
    fake_google.deny_impersonation(user, target)
    fake_google.reset_impersonation_calls()

    with pytest.raises(google.auth.exceptions.RefreshError) as refused:
        impersonating(fake_google, user.credentials(), target.email).refresh(Request())

    body = json.loads(refused.value.args[1])["error"]
    assert (body["code"], body["status"]) == (403, "PERMISSION_DENIED")
    assert "iam.serviceAccounts.getAccessToken" in body["message"]
    assert [(c.caller, c.status) for c in fake_google.impersonation_calls] == [(alice, 403)]


@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), ("ya29.unknown", 401), ("bigquery-only", 403)]
)
def test_generate_access_token_wants_a_live_token_with_an_iam_scope(fake_google, token, status):
    target = fake_google.new_account(PROJECT)
    if token == "bigquery-only":
        caller = fake_google.new_account(PROJECT)
        fake_google.allow_impersonation(caller, target)
        credentials = caller.credentials()
        credentials.refresh(Request())
        token = credentials.token
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    response = requests.post(
        f"{fake_google.iam_credentials_endpoint}/v1/projects/-/serviceAccounts/"
        f"{target.email}:generateAccessToken",
        json={"scope": [BIGQUERY_SCOPE], "lifetime": "3600s"},
        headers=headers,
        timeout=5,
    )

    assert response.status_code == status
    assert response.json()["error"]["code"] == status


# -- workload identity federation ----------------------------------------------------


def pool_credentials(pool, tmp_path):
    config = pool.write_config(tmp_path / "wif.json", tmp_path / "oidc-token")
    info = json.loads(config.read_text())
    return identity_pool.Credentials.from_info(info, scopes=[BIGQUERY_SCOPE])


def test_a_federated_workload_runs_as_its_principal(fake_google, dataset, subject, tmp_path):
    pool = fake_google.new_workload_pool(subject=subject)
    pool.grant(project_permissions=JOB_USER, dataset_permissions={dataset: DATA_EDITOR})

    credentials = pool_credentials(pool, tmp_path)

    principal = (
        "principal://iam.googleapis.com/projects/123/locations/global/"
        f"workloadIdentityPools/pool/subject/{subject}"
    )
    assert runs_as(fake_google, credentials, dataset) == {principal}
    config = json.loads((tmp_path / "wif.json").read_text())
    assert config["token_url"] == fake_google.sts_endpoint
    assert "service_account_impersonation_url" not in config


def test_a_federated_workload_impersonates_its_service_account(
    fake_google, dataset, subject, tmp_path
):
    target = exporter(fake_google, dataset)
    pool = fake_google.new_workload_pool(subject=subject, service_account=target)
    fake_google.allow_impersonation(pool, target)
    fake_google.reset_impersonation_calls()

    credentials = pool_credentials(pool, tmp_path)

    assert runs_as(fake_google, credentials, dataset) == {target.email}
    assert [(c.caller, c.target) for c in fake_google.impersonation_calls] == [
        (pool.principal, target.email)
    ]


def test_a_federated_workload_not_allowed_to_impersonate_is_denied(fake_google, tmp_path):
    target = fake_google.new_account(PROJECT)
    pool = fake_google.new_workload_pool(service_account=target)

    with pytest.raises(google.auth.exceptions.RefreshError, match="PERMISSION_DENIED"):
        pool_credentials(pool, tmp_path).refresh(Request())


def test_a_refused_exchange_is_stss_invalid_grant(fake_google, subject, tmp_path):
    pool = fake_google.new_workload_pool(subject)
    credentials = pool_credentials(pool, tmp_path)

    pool.refuse_exchange()

    # STS errors surface as OAuthError, not RefreshError.
    with pytest.raises(google.auth.exceptions.OAuthError, match="invalid_grant") as refused:
        credentials.refresh(Request())
    assert "does not match the expected audience" in str(refused.value)
    pool.accept_exchange()
    credentials.refresh(Request())
    assert fake_google.token_server.lookup(credentials.token).client_email == pool.principal


# -- metadata server -----------------------------------------------------------------

_ADC_PROBE = """
import json
import google.auth
from google.auth import compute_engine
from google.auth.transport.requests import Request

credentials, project = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery"])
credentials.refresh(Request())
direct = compute_engine.Credentials()
direct.refresh(Request())
print(json.dumps({
    "kind": type(credentials).__module__,
    "project": project,
    "email": credentials.service_account_email,
    "token": credentials.token,
    "direct_token": direct.token,
}))
"""


def run_python(code: str, env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    """Run ``code`` with no ADC file or GOOGLE_APPLICATION_CREDENTIALS, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    base.pop("NO_GCE_CHECK", None)
    base["CLOUDSDK_CONFIG"] = str(tmp_path / "gcloud")
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_adc_finds_the_metadata_server_and_bigquery_sees_its_account(
    fake_google, dataset, tmp_path
):
    account = exporter(fake_google, dataset)
    metadata = fake_google.start_metadata_server(account, PROJECT)
    try:
        probe = run_python(_ADC_PROBE, fake_google.keyless_env(metadata), tmp_path)
    finally:
        metadata.stop()

    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["kind"] == "google.auth.compute_engine.credentials"
    assert (found["project"], found["email"]) == (PROJECT, account.email)
    assert metadata.token_requests == 2
    # The token works in this process too: BigQuery sees the instance's account.
    token = user_credentials.Credentials(found["direct_token"])
    assert runs_as(fake_google, token, dataset) == {account.email}


def test_a_stopped_metadata_server_leaves_adc_with_nothing(fake_google, tmp_path):
    metadata = fake_google.start_metadata_server(fake_google.new_account(PROJECT))
    env = fake_google.keyless_env(metadata)
    metadata.stop()

    probe = run_python(_ADC_PROBE, env, tmp_path)

    assert probe.returncode != 0
    assert "DefaultCredentialsError" in probe.stderr


def test_the_metadata_server_speaks_only_to_metadata_flavor(fake_google):
    account = fake_google.new_account(PROJECT)
    with fake_google.start_metadata_server(account, PROJECT) as metadata:
        root = f"http://{metadata.host}"
        flavor = {"Metadata-Flavor": "Google"}
        ping = requests.get(root + "/", timeout=5)
        bare = requests.get(root + "/computeMetadata/v1/project/project-id", timeout=5)
        info = requests.get(
            root + "/computeMetadata/v1/instance/service-accounts/default/",
            params={"recursive": "true"},
            headers=flavor,
            timeout=5,
        )
        email = requests.get(
            root + "/computeMetadata/v1/instance/service-accounts/default/email",
            headers=flavor,
            timeout=5,
        )

    assert (ping.status_code, ping.headers["Metadata-Flavor"]) == (200, "Google")
    assert (bare.status_code, bare.headers["Metadata-Flavor"]) == (403, "Google")
    assert info.json() == {
        "aliases": ["default"],
        "email": account.email,
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }
    assert email.text == account.email


def test_keyless_env_points_at_the_fake_and_never_at_the_real_metadata_server(fake_google):
    env = fake_google.keyless_env()

    assert env["BQTUI_OAUTH_TOKEN_ENDPOINT"] == fake_google.oauth_token_endpoint
    assert env["BQTUI_IAM_CREDENTIALS_ENDPOINT"] == fake_google.iam_credentials_endpoint
    assert env["GCE_METADATA_HOST"] == env["GCE_METADATA_IP"] == "127.0.0.1:9"


def test_service_account_key_exchange_is_unchanged(fake_google):
    account = fake_google.new_account(PROJECT)
    credentials = service_account.Credentials.from_service_account_info(
        account.key, scopes=[BIGQUERY_SCOPE]
    )

    credentials.refresh(Request())

    assert fake_google.token_server.lookup(credentials.token).client_email == account.email
    assert isinstance(fake_google.client_for(credentials, PROJECT), bigquery.Client)
