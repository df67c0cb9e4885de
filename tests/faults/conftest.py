"""The fault suite's world: the real CLI in subprocesses, a private embedded ClickHouse that
only those subprocesses open, the emulator behind the local Google side, and checks that
every source row is in BigQuery exactly once and that nothing was left behind."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.harness.google import DATA_EDITOR, JOB_USER, FakeGoogle, ServiceAccount, unique_id

PROJECT = "bqtui-test"
BQTUI = str(Path(sys.executable).parent / "bqtui")
# The windows most cases export: three hours of events, 40 an hour.
T0 = datetime(2024, 5, 1, tzinfo=UTC)
HOURS = 3
PER_HOUR = 40
LATER = T0 + timedelta(hours=HOURS, minutes=2)  # "now": those windows have ended and settled

# Runs inside a subprocess: the test process never opens this ClickHouse (one engine per
# path and process), exactly as cron and the TUI share one on a user's machine.
_CHDB_SCRIPT = """
import json, sys
from bqtui.demo import data as demo_data
from bqtui.source.clickhouse import ClickHouseSource
dsn, action, arg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with ClickHouseSource(dsn) as source:
    client = source.client
    if action == "create":
        demo_data.create_source_tables(client)
    elif action == "insert_hours":
        client.command(
            "INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id,"
            " elements_chain, created_at, person_id, inserted_at, _timestamp)"
            " SELECT generateUUIDv4(), if(number % 7 = 0, 'signed_up', '$pageview'),"
            " concat('{\\"$current_url\\": \\"https://example.com/', toString(number), '\\"}'),"
            " t, 1, concat('user', toString(number % 17)), '', t, generateUUIDv4(), t,"
            " toDateTime(t)"
            " FROM (SELECT number, toDateTime64({start:String}, 6, 'UTC')"
            "       + toIntervalMicrosecond(intDiv(number * {span:UInt64}, {n:UInt64})) AS t"
            "       FROM numbers({n:UInt64}))",
            parameters=arg,
        )
    elif action == "uuids":
        rows = client.query("SELECT toString(uuid) FROM events WHERE team_id = 1").result_rows
        print(json.dumps([r[0] for r in rows]))
    elif action == "command":
        client.command(arg)
    elif action == "hold":
        print("holding", flush=True)
        sys.stdin.read()
"""


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class World:
    """One export's world: its database, source, destination and temp folder."""

    google: FakeGoogle
    root: Path
    dataset: str
    key_file: Path
    source_dsn: str
    env: dict = field(default_factory=dict)
    account: ServiceAccount | None = None  # whose key the exports use

    @property
    def db_path(self) -> Path:
        return self.root / "bqtui.db"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    # -- the real CLI ---------------------------------------------------------------------

    def environ(self, **extra) -> dict:
        env = dict(os.environ)
        env.update(
            BQTUI_DB=str(self.db_path),
            TMPDIR=str(self.tmp),
            BQTUI_RETRY_DEADLINE="20",
            BQTUI_NOW=iso(LATER),
        )
        env.update(self.env)
        env.update({k: str(v) for k, v in extra.items()})
        return {k: v for k, v in env.items() if v != ""}

    def bqtui(self, *args: str, timeout: float = 180, **env) -> Result:
        done = subprocess.run(
            [BQTUI, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.environ(**env),
            stdin=subprocess.DEVNULL,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str, **env) -> subprocess.Popen:
        return subprocess.Popen(
            [BQTUI, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environ(**env),
            stdin=subprocess.DEVNULL,
        )

    def add(
        self,
        name="ev",
        *extra: str,
        table="events_export",
        model="events",
        interval="hour",
        start=T0,
    ) -> None:
        result = self.bqtui(
            "add",
            "--name",
            name,
            "--key-file",
            str(self.key_file),
            "--dataset-id",
            self.dataset,
            "--table-id",
            table,
            "--model",
            model,
            "--interval",
            interval,
            "--start",
            iso(start),
            "--team-id",
            "1",
            "--source-dsn",
            self.source_dsn,
            "--bigquery-endpoint",
            self.google.api_endpoint,
            *extra,
        )
        assert result.code == 0, result.err

    # -- the source, through a subprocess ---------------------------------------------------

    def chdb(self, action: str, arg=None) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _CHDB_SCRIPT, self.source_dsn, action, json.dumps(arg)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def insert_hours(self, start: datetime, hours: float, per_hour: int = PER_HOUR) -> None:
        span_us = int(hours * 3600 * 1_000_000)
        self.chdb(
            "insert_hours",
            {
                "start": start.strftime("%Y-%m-%d %H:%M:%S.%f"),
                "span": span_us,
                "n": int(hours * per_hour),
            },
        )

    def source_uuids(self) -> Counter:
        return Counter(json.loads(self.chdb("uuids")))

    # -- the destination and the leftovers --------------------------------------------------

    def destination_uuids(self, table="events_export") -> Counter:
        sql = f"SELECT uuid FROM `{PROJECT}.{self.dataset}.{table}`"
        return Counter(r["uuid"] for r in self.google.admin_client(PROJECT).query(sql).result())

    def sql(self, query: str, args=()) -> list[tuple]:
        conn = sqlite3.connect(self.db_path)
        try:
            return conn.execute(query, args).fetchall()
        finally:
            conn.close()

    def assert_exactly_once_and_clean(self, table="events_export") -> None:
        """Each source row exactly once in BigQuery, every stage table created with an
        expiry, no run or window left running, no temporary file left."""
        source, destination = self.source_uuids(), self.destination_uuids(table)
        assert source, "the test exported nothing"
        doubled = {u: n for u, n in destination.items() if n > 1}
        missing = source.keys() - destination.keys()
        extra = destination.keys() - source.keys()
        assert not doubled and not missing and not extra, (
            f"{len(doubled)} doubled, {len(missing)} missing, {len(extra)} extra"
        )
        assert self.sql("SELECT status FROM runs WHERE status = 'running'") == []
        assert self.sql("SELECT window_start FROM windows WHERE status = 'running'") == []
        assert self.sql("SELECT * FROM locks") == []
        assert sorted(p.name for p in self.tmp.iterdir()) == []
        created = [
            c.json for c in self.google.proxy.calls_to("tables.insert") if isinstance(c.json, dict)
        ]
        stages = [t for t in created if "_bqtui_stage_" in t["tableReference"]["tableId"]]
        assert all(t.get("expirationTime") for t in stages), "a stage table without an expiry"
        remaining = {
            t.table_id
            for t in self.google.admin_client(PROJECT).list_tables(f"{PROJECT}.{self.dataset}")
        }
        stage_ids = {t["tableReference"]["tableId"] for t in stages}
        assert {t for t in remaining if "_bqtui_stage_" in t} <= stage_ids


def new_world(fake_google: FakeGoogle, root: Path, name: str = "faults", **env: str) -> World:
    """A dataset that a new service account may edit, its key, and a private embedded
    ClickHouse with the source tables."""
    dataset = unique_id(name)
    fake_google.admin_client(PROJECT).create_dataset(f"{PROJECT}.{dataset}")
    account = fake_google.new_account(
        PROJECT, project_permissions=JOB_USER, dataset_permissions={dataset: DATA_EDITOR}
    )
    world = World(
        fake_google,
        root,
        dataset,
        account.write_key(root / "key.json"),
        f"chdb://{root / 'clickhouse'}",
        env=dict(env),
        account=account,
    )
    world.tmp.mkdir()
    world.chdb("create")
    return world


@pytest.fixture
def world(fake_google: FakeGoogle, tmp_path) -> World:
    return new_world(fake_google, tmp_path)


@pytest.fixture
def events_world(world: World) -> World:
    """Three hourly windows of events and an export of them."""
    world.insert_hours(T0, HOURS)
    world.add()
    return world


def kill_tree(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)


def wait_for(condition, timeout: float = 60.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"waited {timeout}s for {condition}")
