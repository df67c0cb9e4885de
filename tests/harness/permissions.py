"""BigQuery IAM as the proxy plays it: grants, and the permissions a job needs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tests.harness import roles
from tests.harness.sql_tables import DatasetRef, statements

# (project, dataset) -> the dataset's location
LocationOf = Callable[[str, str], str]


@dataclass(frozen=True)
class Need:
    """A permission a call needs, on a project, a dataset, or a table in a dataset."""

    permission: str
    project: str
    dataset: str | None = None
    table: str | None = None
    # Set for tables a query reads, which BigQuery refuses in its own words.
    query_location: str | None = None

    def denial_message(self) -> str:
        """BigQuery's 403 message when the permission is missing."""
        if self.table is not None:
            table = f"{self.project}:{self.dataset}.{self.table}"
            if self.query_location is not None:
                return (
                    f"Access Denied: Table {table}: User does not have permission to query "
                    f"table {table}, or perhaps it does not exist in location "
                    f"{self.query_location}."
                )
            return (
                f"Access Denied: Table {table}: Permission {self.permission} denied on table "
                f"{table} (or it may not exist)."
            )
        if self.dataset is not None:
            dataset = f"{self.project}:{self.dataset}"
            return (
                f"Access Denied: Dataset {dataset}: Permission {self.permission} denied on "
                f"dataset {dataset} (or it may not exist)."
            )
        return (
            f"Access Denied: Project {self.project}: User does not have {self.permission} "
            f"permission in project {self.project}."
        )


class Grants:
    """Who holds which permissions: per project (covering its datasets) or per dataset."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_project: dict[tuple[str, str], set[str]] = {}
        self._by_dataset: dict[tuple[str, str, str], set[str]] = {}

    def grant(
        self, account: str, permissions: Iterable[str], *, project: str, dataset: str | None
    ) -> None:
        with self._lock:
            self._held(account, project, dataset).update(permissions)

    def revoke(
        self, account: str, permissions: Iterable[str], *, project: str, dataset: str | None
    ) -> None:
        with self._lock:
            self._held(account, project, dataset).difference_update(permissions)

    def allows(self, account: str, need: Need) -> bool:
        with self._lock:
            return need.permission in self._by_project.get(
                (account, need.project), ()
            ) or need.permission in self._by_dataset.get((account, need.project, need.dataset), ())

    def _held(self, account: str, project: str, dataset: str | None) -> set[str]:
        if dataset is None:
            return self._by_project.setdefault((account, project), set())
        return self._by_dataset.setdefault((account, project, dataset), set())


def job_needs(project: str, job: dict, location_of: LocationOf) -> list[Need]:
    """What ``jobs.insert`` of ``job`` in ``project`` needs, jobs.create first."""
    configuration = job.get("configuration") or {}
    needs = [Need(roles.JOBS_CREATE, project)]
    if "query" in configuration:
        query = configuration["query"]
        dry_run = bool(configuration.get("dryRun"))
        needs += query_needs(project, query, dry_run=dry_run, location_of=location_of)
        if query.get("destinationTable"):
            needs += _write_needs(query["destinationTable"], query.get("createDisposition"))
    if "load" in configuration:
        load = configuration["load"]
        needs += _write_needs(load.get("destinationTable") or {}, load.get("createDisposition"))
    if "copy" in configuration:
        copy = configuration["copy"]
        for source in copy.get("sourceTables") or [copy.get("sourceTable") or {}]:
            needs.append(_table_need(roles.TABLES_GET_DATA, source))
        needs += _write_needs(copy.get("destinationTable") or {}, copy.get("createDisposition"))
    if "extract" in configuration:
        source = configuration["extract"].get("sourceTable") or {}
        needs += [
            _table_need(roles.TABLES_GET_DATA, source),
            _table_need(roles.TABLES_EXPORT, source),
        ]
    return needs


def query_needs(project: str, query: dict, *, dry_run: bool, location_of: LocationOf) -> list[Need]:
    """What running ``query`` (a query job's ``configuration.query``, or a ``jobs.query``
    body) needs besides jobs.create. A dry run only reads."""
    default = query.get("defaultDataset") or {}
    default_dataset = (
        DatasetRef(default.get("projectId") or project, default["datasetId"])
        if default.get("datasetId")
        else None
    )
    needs: list[Need] = []
    for statement in statements(
        query.get("query") or "", default_project=project, default_dataset=default_dataset
    ):
        read = set(statement.reads)
        if statement.target is not None and statement.verb in ("MERGE", "UPDATE", "DELETE"):
            read.add(statement.target)
        for table in sorted(read, key=str):
            needs.append(
                Need(
                    roles.TABLES_GET_DATA,
                    table.project,
                    table.dataset,
                    table.table,
                    query_location=location_of(table.project, table.dataset),
                )
            )
        for dataset in sorted(statement.metadata_reads, key=str):
            needs += [
                Need(roles.TABLES_GET, dataset.project, dataset.dataset),
                Need(roles.TABLES_LIST, dataset.project, dataset.dataset),
            ]
        target = statement.target
        if target is None or dry_run:
            continue
        if statement.verb == "CREATE":
            needs.append(Need(roles.TABLES_CREATE, target.project, target.dataset))
            continue
        permission = {"DROP": roles.TABLES_DELETE, "ALTER": roles.TABLES_UPDATE}.get(
            statement.verb, roles.TABLES_UPDATE_DATA
        )
        needs.append(Need(permission, target.project, target.dataset, target.table))
    return needs


def _write_needs(table: dict, create_disposition: str | None) -> list[Need]:
    """A job writing ``table``: BigQuery wants tables.create too unless told never to create,
    even when the table exists."""
    needs = []
    if create_disposition != "CREATE_NEVER":
        needs.append(Need(roles.TABLES_CREATE, table.get("projectId"), table.get("datasetId")))
    needs.append(_table_need(roles.TABLES_UPDATE_DATA, table))
    return needs


def _table_need(permission: str, table: dict) -> Need:
    return Need(permission, table.get("projectId"), table.get("datasetId"), table.get("tableId"))
