"""Google's side of a BigQuery export, offline: accounts, keys, IAM, and the API endpoint.

``FakeGoogle`` runs a token server and a BigQuery proxy in front of an emulator. Product
code gets a real key file (``ServiceAccount.write_key``) and the proxy URL as its BigQuery
API endpoint, and runs its real google-auth and google-cloud-bigquery code against them.

Keyless credentials run against the same token server: user logins (``new_user``),
impersonation (``allow_impersonation``), workload identity federation
(``new_workload_pool``) and a metadata server (``start_metadata_server``); ``keyless_env``
gives a subprocess the environment that points the product at them.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.cloud import bigquery
from google.oauth2 import service_account

from tests.harness.bq_proxy import BigQueryProxy
from tests.harness.bucket_iam import BucketIam
from tests.harness.grants import Grantee, principal_of
from tests.harness.iam_credentials import IamCredentials, ImpersonationCall
from tests.harness.keys import make_service_account_key, public_key_pem
from tests.harness.metadata_server import DEFAULT_SCOPES, MetadataServer
from tests.harness.roles import (  # noqa: F401  (re-exported for tests)
    ALL_PERMISSIONS,
    DATA_EDITOR,
    DATA_OWNER,
    JOB_USER,
    SEED_CUSTOM_ROLE,
)
from tests.harness.token_server import TokenServer
from tests.harness.user_logins import GCLOUD_ADC_SCOPES, UserLogin, UserLogins
from tests.harness.workload_identity import SecurityTokenService, WorkloadPool

BIGQUERY_SCOPE = "https://www.googleapis.com/auth/bigquery"
# Retries stop after this many seconds in harness clients (the library default is 600).
SHORT_RETRY_SECONDS = 5.0
# Nothing listens there: ADC detection fails at once instead of trying 169.254.169.254.
CLOSED_METADATA_HOST = "127.0.0.1:9"

_account_numbers = itertools.count(1)


class ShortRetryClient(bigquery.Client):
    """A BigQuery client whose API retries give up after ``SHORT_RETRY_SECONDS``.

    All of the client's API calls but uploads go through ``_call_api``; capping the retry
    there saves passing ``retry=`` to each call when a test injects a fault that would
    otherwise be retried for ten minutes.
    """

    def _call_api(self, retry, *args, **kwargs):
        if retry is not None:
            retry = retry.with_timeout(
                min(retry.timeout or SHORT_RETRY_SECONDS, SHORT_RETRY_SECONDS)
            )
        return super()._call_api(retry, *args, **kwargs)


@dataclass
class ServiceAccount(Grantee):
    """A service account with one key, whose IAM grants live in the fake Google."""

    email: str
    project_id: str
    key: dict
    _google: FakeGoogle = field(repr=False)

    @property
    def principal(self) -> str:
        return self.email

    @property
    def _proxy(self) -> BigQueryProxy:
        return self._google.proxy

    def write_key(self, path: Path) -> Path:
        """Write the key file as Google lets users download it (readable by the owner only)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.key, indent=2))
        os.chmod(path, 0o600)
        return path

    def credentials(self) -> service_account.Credentials:
        return service_account.Credentials.from_service_account_info(
            self.key, scopes=[BIGQUERY_SCOPE]
        )

    def client(self, project: str | None = None) -> bigquery.Client:
        """A real BigQuery client acting as this account, with short retries."""
        return self._google.client_for(self.credentials(), project or self.project_id)

    def revoke_key(self) -> None:
        """Delete the key: new token exchanges fail, issued tokens live until they expire."""
        self._google.token_server.revoke_key(self.email, self.key["private_key_id"])

    def delete(self) -> None:
        """Delete the account: token exchanges fail and its tokens stop working."""
        self._google.token_server.delete_account(self.email)


class FakeGoogle:
    """A token server and a BigQuery proxy in front of the emulator at ``emulator_url``."""

    def __init__(self, emulator_url: str) -> None:
        self.emulator_url = emulator_url
        self.token_server = TokenServer()
        self.proxy = BigQueryProxy(emulator_url, self.token_server)
        self.user_logins = UserLogins(self.token_server)
        self.iam_credentials = IamCredentials(self.token_server)
        self.sts = SecurityTokenService(self.token_server)
        self.bucket_iam = BucketIam(self.token_server)
        self._admins: dict[str, ServiceAccount] = {}
        self._projects: list[str] = []
        self._metadata_servers: list[MetadataServer] = []

    def start(self) -> FakeGoogle:
        self.token_server.start()
        self.proxy.start()
        self.bucket_iam.start()
        return self

    def stop(self) -> None:
        for metadata_server in self._metadata_servers:
            metadata_server.stop()
        self.bucket_iam.stop()
        self.proxy.stop()
        self.token_server.stop()

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def api_endpoint(self) -> str:
        """The BigQuery API endpoint: pass it as ``client_options={"api_endpoint": ...}``."""
        return self.proxy.url

    @property
    def token_uri(self) -> str:
        return self.token_server.token_uri

    @property
    def oauth_token_endpoint(self) -> str:
        """Where user logins refresh (the product reads ``BQTUI_OAUTH_TOKEN_ENDPOINT``)."""
        return self.token_server.token_uri

    @property
    def iam_credentials_endpoint(self) -> str:
        """The IAM Credentials base URL (``BQTUI_IAM_CREDENTIALS_ENDPOINT``); the product
        appends ``/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken``."""
        return self.iam_credentials.base_url

    @property
    def storage_json_endpoint(self) -> str:
        """Cloud Storage's JSON API base URL (``BQTUI_GCS_JSON_ENDPOINT``): it answers
        ``GET /storage/v1/b/BUCKET/iam/testPermissions`` from ``grant_bucket``'s grants."""
        return self.bucket_iam.url

    def grant_bucket(self, who: Grantee | str, bucket: str, permissions: Iterable[str]) -> None:
        """Grant storage permissions (``storage.objects.create`` …) on a bucket."""
        self.bucket_iam.grant(principal_of(who), bucket, permissions)

    def revoke_bucket(self, who: Grantee | str, bucket: str, permissions: Iterable[str]) -> None:
        self.bucket_iam.revoke(principal_of(who), bucket, permissions)

    @property
    def sts_endpoint(self) -> str:
        """The STS token exchange URL that workload pool configs name as ``token_url``."""
        return self.sts.url

    def add_project(self, project_id: str) -> None:
        self.proxy.add_project(project_id)
        if project_id not in self._projects:
            self._projects.append(project_id)

    def new_account(
        self,
        project_id: str,
        name: str | None = None,
        *,
        project_permissions: Iterable[str] = (),
        dataset_permissions: Mapping[str, Iterable[str]] | None = None,
        key_overrides: Mapping[str, object] | None = None,
    ) -> ServiceAccount:
        """A new service account of ``project_id`` with a registered key and these grants.

        ``key_overrides`` changes key file fields after the key is registered, e.g.
        ``{"private_key_id": "unknown"}`` for a key Google does not know.
        """
        name = name or f"bqtui-test-{next(_account_numbers)}"
        email = f"{name}@{project_id}.iam.gserviceaccount.com"
        key = make_service_account_key(
            project_id=project_id, client_email=email, token_uri=self.token_uri
        )
        self.token_server.register_key(
            email, key["private_key_id"], public_key_pem(key["private_key"])
        )
        account = ServiceAccount(email, project_id, {**key, **(key_overrides or {})}, self)
        account.grant(
            project_permissions=project_permissions, dataset_permissions=dataset_permissions
        )
        return account

    def new_user(
        self,
        email: str,
        *,
        project_id: str | None = None,
        project_permissions: Iterable[str] = (),
        dataset_permissions: Mapping[str, Iterable[str]] | None = None,
        quota_project_id: str | None = None,
        scopes: Sequence[str] = GCLOUD_ADC_SCOPES,
    ) -> UserLogin:
        """A person logged in with `gcloud auth application-default login`, with these grants
        on ``project_id`` (default: the first project added) and its datasets."""
        refresh_token = self.user_logins.log_in(email, tuple(scopes))
        user = UserLogin(email, self._project(project_id), refresh_token, quota_project_id, self)
        user.grant(project_permissions=project_permissions, dataset_permissions=dataset_permissions)
        return user

    def allow_impersonation(self, caller: Grantee | str, target: Grantee | str) -> None:
        """Grant ``caller`` roles/iam.serviceAccountTokenCreator on service account ``target``
        (principals as objects or as emails / principal:// strings)."""
        self.iam_credentials.allow(principal_of(caller), principal_of(target))

    def deny_impersonation(self, caller: Grantee | str, target: Grantee | str) -> None:
        """Remove that binding: generateAccessToken answers 403 PERMISSION_DENIED."""
        self.iam_credentials.deny(principal_of(caller), principal_of(target))

    @property
    def impersonation_calls(self) -> list[ImpersonationCall]:
        """Every generateAccessToken request since the last ``reset_impersonation_calls``."""
        return self.iam_credentials.calls

    def reset_impersonation_calls(self) -> None:
        self.iam_credentials.reset_calls()

    def new_workload_pool(
        self,
        subject: str = "repo:example/app:ref:refs/heads/main",
        service_account: ServiceAccount | None = None,
        *,
        project_id: str | None = None,
        pool_id: str = "pool",
        provider_id: str = "prov",
    ) -> WorkloadPool:
        """A workload of identity pool ``pool_id`` whose OIDC tokens STS exchanges; with
        ``service_account`` its config impersonates that account (allow it with
        ``allow_impersonation(pool, service_account)``)."""
        return WorkloadPool(
            subject, self._project(project_id), service_account, pool_id, provider_id, self
        )

    def start_metadata_server(
        self,
        account: ServiceAccount,
        project_id: str | None = None,
        *,
        scopes: Sequence[str] = DEFAULT_SCOPES,
    ) -> MetadataServer:
        """A running metadata server of an instance that runs as ``account``; ``stop()`` it
        to play a metadata server that does not answer (FakeGoogle.stop stops it too)."""
        server = MetadataServer(
            self.token_server, account.email, project_id or account.project_id, scopes
        )
        self._metadata_servers.append(server)
        return server.start()

    def keyless_env(self, metadata: MetadataServer | None = None) -> dict[str, str]:
        """The environment a product subprocess needs to reach the keyless endpoints.

        Without ``metadata`` the metadata host is a closed port, so ADC detection fails at
        once instead of trying the real 169.254.169.254. One detection attempt instead of
        three saves ~3 s per run with no metadata server.
        """
        host = metadata.host if metadata is not None else CLOSED_METADATA_HOST
        return {
            "BQTUI_OAUTH_TOKEN_ENDPOINT": self.oauth_token_endpoint,
            "BQTUI_IAM_CREDENTIALS_ENDPOINT": self.iam_credentials_endpoint,
            "GCE_METADATA_HOST": host,
            "GCE_METADATA_IP": host,
            "GCE_METADATA_DETECT_RETRIES": "1",
        }

    def _project(self, project_id: str | None) -> str:
        if project_id is not None:
            return project_id
        if not self._projects:
            raise ValueError("no project: call add_project first or pass project_id")
        return self._projects[0]

    def set_dataset_location(self, project_id: str, dataset_id: str, location: str) -> None:
        self.proxy.set_dataset_location(project_id, dataset_id, location)

    def expire_tokens(self) -> None:
        """End every issued token, as an hour passing would: clients must exchange keys again."""
        self.token_server.expire_tokens()

    def admin_account(self, project_id: str) -> ServiceAccount:
        """An account holding every permission the proxy checks on ``project_id``."""
        if project_id not in self._admins:
            self._admins[project_id] = self.new_account(
                project_id, "bqtui-test-admin", project_permissions=ALL_PERMISSIONS
            )
        return self._admins[project_id]

    def admin_client(self, project_id: str) -> bigquery.Client:
        """A BigQuery client for test setup and assertions, allowed everything in the project."""
        return self.admin_account(project_id).client(project_id)

    def client_for(self, credentials, project_id: str) -> bigquery.Client:
        """A real BigQuery client using ``credentials`` through the proxy, with short retries."""
        return ShortRetryClient(
            project=project_id,
            credentials=credentials,
            client_options={"api_endpoint": self.api_endpoint},
        )


def unique_id(prefix: str) -> str:
    """A dataset or table ID no other test uses (the emulator lives for the whole session)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
