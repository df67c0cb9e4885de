"""End-to-end fixtures: demo data in embedded ClickHouse, a dataset in the emulator reached
through the fake Google side, and exports created with the real command line."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from bqtui.cli import main
from bqtui.demo import data as demo_data
from bqtui.source.clickhouse import ClickHouseSource
from bqtui.state.store import Store
from tests.harness.google import DATA_EDITOR, JOB_USER, FakeGoogle, ServiceAccount, unique_id

PROJECT = "bqtui-test"


# Every end-to-end test of the models runs on both paths to ClickHouse: the embedded engine
# and a ClickHouse server's HTTP interface (the stand-in runs the same engine behind it).
SOURCE_PATHS = ["embedded", "http"]


@pytest.fixture(scope="session")
def http_clickhouse(tmp_path_factory):
    """A ClickHouse HTTP server (tests.harness.clickhouse_http) with the demo data in "demo"."""
    from tests.harness.clickhouse_http import ClickHouseHttpServer

    path = tmp_path_factory.mktemp("clickhouse-http") / "data"
    with ClickHouseHttpServer(
        path, extra_args=["--seed-demo", "--seed-database", "demo"]
    ) as server:
        yield server


@pytest.fixture(params=SOURCE_PATHS)
def source_path(request) -> str:
    return request.param


@pytest.fixture
def demo_dsn(demo_dsn, source_path, request):
    """The demo data, read through the embedded engine or over HTTP (same seed, same rows)."""
    if source_path == "embedded":
        return demo_dsn
    return request.getfixturevalue("http_clickhouse").dsn("demo")


@pytest.fixture
def fresh_source(chdb_dsn_for, source_path, request):
    """A private, empty source database for tests that insert their own rows."""
    database = unique_id("src")
    if source_path == "embedded":
        dsn = chdb_dsn_for(database)
    else:
        server = request.getfixturevalue("http_clickhouse")
        with ClickHouseSource(server.dsn("default")) as admin:
            admin.client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        dsn = server.dsn(database)
    with ClickHouseSource(dsn) as source:
        demo_data.create_source_tables(source.client)
    return dsn


@dataclass
class Destination:
    google: FakeGoogle
    dataset: str
    account: ServiceAccount
    key_file: Path

    @property
    def admin(self):
        return self.google.admin_client(PROJECT)

    def rows(self, table: str, order_by: str = "1") -> list[dict]:
        sql = f"SELECT * FROM `{PROJECT}.{self.dataset}.{table}` ORDER BY {order_by}"
        return [dict(r) for r in self.admin.query(sql).result()]

    def query(self, sql: str) -> list[dict]:
        return [dict(r) for r in self.admin.query(sql).result()]

    def table_names(self) -> set[str]:
        return {t.table_id for t in self.admin.list_tables(f"{PROJECT}.{self.dataset}")}


@pytest.fixture
def destination(fake_google: FakeGoogle, tmp_path) -> Destination:
    """A new dataset, and an account with Job User on the project and Data Editor on it."""
    dataset = unique_id("ds")
    fake_google.admin_client(PROJECT).create_dataset(f"{PROJECT}.{dataset}")
    account = fake_google.new_account(
        PROJECT, project_permissions=JOB_USER, dataset_permissions={dataset: DATA_EDITOR}
    )
    return Destination(fake_google, dataset, account, account.write_key(tmp_path / "key.json"))


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "bqtui.db"


def add_export(
    db_path,
    destination: Destination,
    source_dsn: str,
    *extra: str,
    name="ev",
    table="events_export",
    model="events",
    interval="day",
    start="2024-05-01",
):
    code = main(
        [
            "add",
            "--db",
            str(db_path),
            "--name",
            name,
            "--key-file",
            str(destination.key_file),
            "--dataset-id",
            destination.dataset,
            "--table-id",
            table,
            "--model",
            model,
            "--interval",
            interval,
            "--start",
            start,
            "--team-id",
            "1",
            "--source-dsn",
            source_dsn,
            "--bigquery-endpoint",
            destination.google.api_endpoint,
            *extra,
        ]
    )
    assert code == 0
    return Store(db_path).require_export(name)


def run_cli(*args: str) -> int:
    return main(list(args))


def parse_json_text(text):
    return None if text is None else json.loads(text, strict=False)
