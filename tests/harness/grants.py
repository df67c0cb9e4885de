"""What every principal of the fake Google shares: BigQuery grants through the proxy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from tests.harness.bq_proxy import BigQueryProxy

# proxy.grant or proxy.revoke
_Change = Callable[..., None]


class Grantee:
    """A principal that IAM grants BigQuery permissions to (account, user, federated identity).

    Subclasses provide ``principal`` (the account string the proxy sees in tokens),
    ``project_id`` (where grants go by default) and ``_proxy``.
    """

    project_id: str

    @property
    def principal(self) -> str:
        raise NotImplementedError

    @property
    def _proxy(self) -> BigQueryProxy:
        raise NotImplementedError

    def grant(
        self,
        *,
        project_permissions: Iterable[str] = (),
        dataset_permissions: Mapping[str, Iterable[str]] | None = None,
        project: str | None = None,
    ) -> None:
        """Grant permissions on ``project`` (default: ``project_id``) and on its datasets."""
        self._change(self._proxy.grant, project_permissions, dataset_permissions, project)

    def revoke(
        self,
        *,
        project_permissions: Iterable[str] = (),
        dataset_permissions: Mapping[str, Iterable[str]] | None = None,
        project: str | None = None,
    ) -> None:
        """Take back permissions given with ``grant`` at the same level."""
        self._change(self._proxy.revoke, project_permissions, dataset_permissions, project)

    def _change(
        self,
        change: _Change,
        project_permissions: Iterable[str],
        dataset_permissions: Mapping[str, Iterable[str]] | None,
        project: str | None,
    ) -> None:
        project = project or self.project_id
        change(self.principal, project_permissions, project=project)
        for dataset, permissions in (dataset_permissions or {}).items():
            change(self.principal, permissions, project=project, dataset=dataset)


def principal_of(who: Grantee | str) -> str:
    """The principal string of a grantee, or the string itself (an email)."""
    return who if isinstance(who, str) else who.principal
