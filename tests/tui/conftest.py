"""TUI test setup: the app on a temporary database with a fixed clock and no blinking cursor,
demo data in the session's embedded ClickHouse, and helpers that drive the screens."""

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bqtui.cli import main
from bqtui.source.clickhouse import ClickHouseSource
from bqtui.tui.app import BqtuiApp, create_app
from tests.conftest import DEMO_END
from tests.harness.google import DATA_EDITOR, JOB_USER, FakeGoogle, unique_id

PROJECT = "bqtui-test"
# The demo data spans these days; the clock stands just after their end and the default settle
# delay, so "run now" has 3 day windows.

NOW = DEMO_END + timedelta(minutes=5)
SIZE = (120, 40)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


def make_app(
    db_path: Path, *, browse_from: Path | None = None, demo=None, clock=fixed_clock
) -> BqtuiApp:
    return create_app(db_path, clock=clock, browse_from=browse_from, demo=demo, cursor_blink=False)


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "bqtui.db"


@pytest.fixture
def dataset(fake_google: FakeGoogle) -> str:
    """A new, empty dataset in the emulator."""
    name = unique_id("tui")
    fake_google.admin_client(PROJECT).create_dataset(f"{PROJECT}.{name}")
    return name


@pytest.fixture
def key_file(fake_google: FakeGoogle, dataset: str, tmp_path) -> Path:
    """A key of an account with Job User on the project and Data Editor on ``dataset``."""
    account = fake_google.new_account(
        PROJECT, project_permissions=JOB_USER, dataset_permissions={dataset: DATA_EDITOR}
    )
    return account.write_key(tmp_path / "keys" / "exporter.json")


DAILY_EXPORT = "daily-events"


@pytest.fixture
def add_daily_export(
    db_path, fake_google: FakeGoogle, demo_dsn: str, tmp_path
) -> Callable[[str], None]:
    """Adds "daily-events" as `bqtui add` does: the demo data, day windows from 2024-05-01, to
    the given dataset (created if need be) with a key of an account of its own."""

    def add(dataset: str) -> None:
        fake_google.admin_client(PROJECT).create_dataset(f"{PROJECT}.{dataset}", exists_ok=True)
        account = fake_google.new_account(
            PROJECT,
            f"{dataset.replace('_', '-')}-sa",
            project_permissions=JOB_USER,
            dataset_permissions={dataset: DATA_EDITOR},
        )
        key = account.write_key(tmp_path / f"{dataset}.json")
        added = main(
            [
                "add",
                "--db",
                str(db_path),
                "--name",
                DAILY_EXPORT,
                "--key-file",
                str(key),
                "--dataset-id",
                dataset,
                "--table-id",
                "events",
                "--interval",
                "day",
                "--start",
                "2024-05-01",
                "--source-dsn",
                demo_dsn,
                "--bigquery-endpoint",
                fake_google.api_endpoint,
            ]
        )
        assert added == 0

    return add


def count_rows(fake_google: FakeGoogle, dataset: str, table: str) -> int:
    query = f"SELECT COUNT(*) AS n FROM `{PROJECT}.{dataset}.{table}`"
    return next(iter(fake_google.admin_client(PROJECT).query(query).result()))["n"]


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def ingested_events(dsn: str, start: datetime, end: datetime, team_id: int = 1) -> dict:
    """The events of a team ingested in [start, end), each uuid with its earliest timestamp
    (µs since the epoch): worked out here from the raw rows, sharing no SQL with the exporter.
    A row's ingestion time is its ``inserted_at``, or ``_timestamp`` (seconds) for legacy rows
    without one."""
    client = ClickHouseSource(dsn).client
    rows = client.query(
        "SELECT toString(uuid), team_id, toUnixTimestamp64Micro(inserted_at), "
        "toUnixTimestamp(_timestamp), toUnixTimestamp64Micro(timestamp) FROM events"
    ).result_rows
    low, high = _micros(start), _micros(end)
    first: dict[str, int] = {}
    for uuid, team, inserted_at, legacy_seconds, timestamp in rows:
        ingested = inserted_at if inserted_at is not None else legacy_seconds * 1_000_000
        if team == team_id and low <= ingested < high:
            first[uuid] = min(timestamp, first.get(uuid, timestamp))
    return first


def source_uuids(dsn: str, start: datetime, end: datetime) -> int:
    """Distinct events of team 1 ingested in [start, end): what an events export must land."""
    return len(ingested_events(dsn, start, end))


def events_per_day(dsn: str, start: datetime, end: datetime) -> dict[str, int]:
    """Those events per day (UTC, ISO) of their earliest timestamp: BigQuery's partitions."""
    days = Counter(
        (EPOCH + timedelta(microseconds=first)).date().isoformat()
        for first in ingested_events(dsn, start, end).values()
    )
    return dict(sorted(days.items()))


def key_json(path: Path) -> dict:
    return json.loads(path.read_text())


async def wait_until(pilot, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Let the app work until ``condition`` holds (workers run in threads meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}")
        await pilot.pause(0.05)
