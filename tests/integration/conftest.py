"""End-to-end fixtures: demo data in embedded ClickHouse, a dataset in the emulator reached
through the fake Google side, and exports created with the real command line."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from bqtui import demo_data
from bqtui.cli import main
from bqtui.source import ClickHouseSource
from bqtui.store import Store
from tests.harness.google import DATA_EDITOR, JOB_USER, FakeGoogle, ServiceAccount, unique_id

PROJECT = "bqtui-test"


@pytest.fixture
def fresh_source(chdb_dsn_for):
    """A private, empty source database for tests that insert their own rows."""
    dsn = chdb_dsn_for(unique_id("src"))
    demo_data.create_source_tables(ClickHouseSource(dsn).client)
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


def add_export(db_path, destination: Destination, source_dsn: str, *extra: str, name="ev",
               table="events_export", model="events", interval="day", start="2024-05-01"):  # fmt: skip
    code = main(
        [
            "add", "--db", str(db_path), "--name", name, "--key-file", str(destination.key_file),
            "--dataset-id", destination.dataset, "--table-id", table, "--model", model,
            "--interval", interval, "--start", start, "--team-id", "1",
            "--source-dsn", source_dsn, "--bigquery-endpoint", destination.google.api_endpoint,
            *extra,
        ]
    )  # fmt: skip
    assert code == 0
    return Store(db_path).require_export(name)


def run_cli(*args: str) -> int:
    return main(list(args))


def parse_json_text(text):
    return None if text is None else json.loads(text, strict=False)
