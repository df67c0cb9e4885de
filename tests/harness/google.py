"""Google's side of a BigQuery export, offline: accounts, keys, IAM, and the API endpoint.

``FakeGoogle`` runs a token server and a BigQuery proxy in front of an emulator. Product
code gets a real key file (``ServiceAccount.write_key``) and the proxy URL as its BigQuery
API endpoint, and runs its real google-auth and google-cloud-bigquery code against them.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from google.cloud import bigquery
from google.oauth2 import service_account

from tests.harness.bq_proxy import BigQueryProxy
from tests.harness.keys import make_service_account_key, public_key_pem
from tests.harness.roles import (  # noqa: F401  (re-exported for tests)
    ALL_PERMISSIONS,
    DATA_EDITOR,
    DATA_OWNER,
    JOB_USER,
    SEED_CUSTOM_ROLE,
)
from tests.harness.token_server import TokenServer

BIGQUERY_SCOPE = "https://www.googleapis.com/auth/bigquery"
# Retries stop after this many seconds in harness clients (the library default is 600).
SHORT_RETRY_SECONDS = 5.0

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
class ServiceAccount:
    """A service account with one key, whose IAM grants live in the fake Google."""

    email: str
    project_id: str
    key: dict
    _google: FakeGoogle = field(repr=False)

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

    def grant(
        self,
        *,
        project_permissions: Iterable[str] = (),
        dataset_permissions: Mapping[str, Iterable[str]] | None = None,
        project: str | None = None,
    ) -> None:
        """Grant permissions on ``project`` (default: the account's) and on its datasets."""
        self._change(self._google.proxy.grant, project_permissions, dataset_permissions, project)

    def revoke(
        self,
        *,
        project_permissions: Iterable[str] = (),
        dataset_permissions: Mapping[str, Iterable[str]] | None = None,
        project: str | None = None,
    ) -> None:
        """Take back permissions given with ``grant`` at the same level."""
        self._change(self._google.proxy.revoke, project_permissions, dataset_permissions, project)

    def _change(self, change, project_permissions, dataset_permissions, project) -> None:
        project = project or self.project_id
        change(self.email, project_permissions, project=project)
        for dataset, permissions in (dataset_permissions or {}).items():
            change(self.email, permissions, project=project, dataset=dataset)

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
        self._admins: dict[str, ServiceAccount] = {}

    def start(self) -> FakeGoogle:
        self.token_server.start()
        self.proxy.start()
        return self

    def stop(self) -> None:
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

    def add_project(self, project_id: str) -> None:
        self.proxy.add_project(project_id)

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
