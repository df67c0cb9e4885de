"""Exports through a Cloud Storage stage, driven through the real CLI: ClickHouse writes the
Parquet into the bucket (the XML API stand-in), the BigQuery emulator loads it from there.

Every model's table equals, field by field, the same export through the upload path; kill -9
during ClickHouse's INSERT, between the INSERT and the load, and during the load, then a
clean run: every row exactly once and no object left; a wrong HMAC secret and a key without
storage.objects.create each give their message; the secret is nowhere but the keyring."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest

from bqtui.stage.hmac_key import HmacKey
from tests.faults.conftest import HOURS, PROJECT, T0, Result, World, kill_tree, wait_for
from tests.harness.clickhouse_http import ClickHouseHttpServer
from tests.harness.cloud_storage import CloudStorage

ACCESS_ID = "GOOG1ESTAGEWORLDKEY"
# Demo data over the three hours the world's windows cover, one team, a few dozen users.
_DEMO_SCRIPT = """
import sys
from datetime import datetime
from bqtui.demo import data
from bqtui.source.clickhouse import ClickHouseSource
with ClickHouseSource(sys.argv[1]) as source:
    data.generate(
        source.client,
        start=datetime.fromisoformat(sys.argv[2]),
        end=datetime.fromisoformat(sys.argv[3]),
        team_ids=(1,),
        users_per_team=int(sys.argv[4]),
    )
"""
# Set at load time: differs between any two exports of the same rows.
LOAD_TIME_FIELDS = {"bq_ingested_timestamp"}


@dataclass
class StageWorld:
    world: World
    storage: CloudStorage
    bucket: str
    key: HmacKey

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/exports"

    def secret_file(self, secret: str | None = None) -> str:
        path = self.world.root / f"hmac-{uuid.uuid4().hex[:6]}"
        path.write_text((secret or self.key.secret) + "\n")
        return str(path)

    def add_staged(self, name: str, *, model: str = "events", secret: str | None = None):
        self.world.add(
            name,
            "--stage",
            self.uri,
            "--stage-hmac-id",
            self.key.access_id,
            "--stage-hmac-secret-file",
            self.secret_file(secret),
            model=model,
            table=name,
        )

    def objects(self) -> list[str]:
        return self.storage.objects(self.bucket)

    def uri_loads(self) -> list[dict]:
        return [
            c.json["configuration"]["load"]
            for c in self.world.google.proxy.calls_to("jobs.insert")
            if isinstance(c.json, dict) and "sourceUris" in c.json["configuration"].get("load", {})
        ]

    def assert_secret_only_in_the_keyring(self, *results: Result) -> None:
        secret = self.key.secret
        for result in results:
            assert secret not in result.out and secret not in result.err
        assert secret.encode() not in self.world.db_path.read_bytes()
        for path in self.world.tmp.rglob("*"):
            assert not path.is_file() or secret.encode() not in path.read_bytes()
        logs = self.world.sql("SELECT message FROM run_logs")
        assert logs and not any(secret in message for (message,) in logs)


@pytest.fixture
def stage_world(world: World, cloud_storage: CloudStorage) -> StageWorld:
    bucket = f"stage-{uuid.uuid4().hex[:12]}"
    cloud_storage.add_bucket(bucket)
    key = HmacKey(ACCESS_ID, f"stage/secret+{uuid.uuid4().hex}")
    cloud_storage.register_key(key.access_id, key.secret)
    world.env["BQTUI_GCS_ENDPOINT"] = cloud_storage.url
    return StageWorld(world, cloud_storage, bucket, key)


def generate_demo(world: World, users: int = 25) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _DEMO_SCRIPT,
            world.source_dsn,
            T0.isoformat(),
            (T0 + timedelta(hours=HOURS)).isoformat(),
            str(users),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr


def table_rows(world: World, table: str) -> list[dict]:
    sql = f"SELECT * FROM `{PROJECT}.{world.dataset}.{table}`"
    rows = world.google.admin_client(PROJECT).query(sql).result()
    return [{k: v for k, v in dict(r).items() if k not in LOAD_TIME_FIELDS} for r in rows]


def canonical(rows: list[dict]) -> list[str]:
    """Rows as sorted JSON text: equal lists mean equal tables, field by field."""
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)


def notes_on_ids(log: str) -> list[str]:
    """The windows' notes on sessions whose ids are not UUIDv7, without time and export."""
    return [line.split(" INFO ", 1)[1] for line in log.splitlines() if "not UUIDv7" in line]


# Sessions whose ids are not UUIDv7 (two events each, in the first and the second hour).
LEGACY_SESSIONS = (
    "INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, "
    "elements_chain, created_at, person_id, inserted_at, _timestamp) "
    "SELECT generateUUIDv4(), '$pageview', concat('{\"$session_id\": \"legacy-', "
    "toString(number % 2), '\", \"$pathname\": \"/\"}'), t, 1, 'old-client', '', t, "
    "generateUUIDv4(), t, toDateTime(t) FROM (SELECT number, "
    "toDateTime64('2024-05-01 00:10:00', 6, 'UTC') + toIntervalMinute(number * 30) AS t "
    "FROM numbers(4))"
)


def export_both_ways(stage_world: StageWorld, model: str, **env: str) -> tuple[Result, Result]:
    """Demo data exported by two exports, through the stage and uploaded from here; their
    tables must be equal, field by field."""
    world = stage_world.world
    generate_demo(world)
    if model == "sessions":
        world.chdb("command", LEGACY_SESSIONS)
    stage_world.add_staged("staged", model=model)
    world.add("uploaded", model=model, table="uploaded")
    staged = world.bqtui("run", "staged", **env)
    uploaded = world.bqtui("run", "uploaded")
    assert staged.code == 0, staged.err
    assert uploaded.code == 0, uploaded.err
    through_stage, through_host = table_rows(world, "staged"), table_rows(world, "uploaded")
    assert len(through_stage) > 30
    assert canonical(through_stage) == canonical(through_host)
    return staged, uploaded


@pytest.mark.parametrize("model", ["events", "persons", "sessions"])
def test_every_model_through_the_stage_equals_the_upload_path(stage_world: StageWorld, model):
    staged, uploaded = export_both_ways(stage_world, model)

    loads = stage_world.uri_loads()
    assert len(loads) == 1  # the three windows: one group, one load job from the bucket
    assert all(uri.startswith(f"{stage_world.uri}/") for uri in loads[0]["sourceUris"])
    assert "ClickHouse wrote" in staged.err  # every model: the host PUT no object
    # Sessions: ids without UUIDv7 counted from the footers' NULLs, as the host counts them.
    assert notes_on_ids(staged.err) == notes_on_ids(uploaded.err)
    assert bool(notes_on_ids(staged.err)) == (model == "sessions")
    assert "encoded here and put" not in staged.err
    assert stage_world.objects() == []
    stage_world.assert_secret_only_in_the_keyring(staged, uploaded)


@pytest.mark.parametrize("model", ["events", "sessions"])
def test_rows_the_host_encodes_are_put_into_the_stage_and_equal_the_upload_path(
    stage_world: StageWorld, model
):
    """``BQTUI_ENCODE=host`` (as for a sessions table without session_id_time): bqtui encodes
    the group's rows and puts the files into the first window's folder; one load, no leftovers."""
    staged, uploaded = export_both_ways(stage_world, model, BQTUI_ENCODE="host")

    assert "encoded here into gs://" in staged.err
    assert "ClickHouse wrote" not in staged.err
    assert notes_on_ids(staged.err) == notes_on_ids(uploaded.err)
    (load,) = stage_world.uri_loads()
    assert len(load["sourceUris"]) == 1
    assert stage_world.objects() == []


def test_events_window_by_window_exactly_once_and_nothing_left(stage_world: StageWorld):
    world = stage_world.world
    world.insert_hours(T0, HOURS)
    stage_world.add_staged("ev", model="events")
    done = world.bqtui("run", "ev", BQTUI_GROUP_WINDOWS=1)
    assert done.code == 0, done.err
    assert len(stage_world.uri_loads()) == HOURS
    world.assert_exactly_once_and_clean("ev")
    assert stage_world.objects() == []


@pytest.mark.parametrize("step", ["insert", "uploading", "load_submitted"])
def test_kill_during_the_insert_before_and_during_the_load_then_a_clean_run(
    stage_world: StageWorld, step
):
    """``insert``: ClickHouse has written one of a window's parts when the runner dies;
    ``uploading``: every window written, no load yet; ``load_submitted``: the load job runs."""
    world = stage_world.world
    world.insert_hours(T0, HOURS)
    stage_world.add_staged("ev", model="events")
    if step == "insert":
        (uid,) = world.sql("SELECT uid FROM exports WHERE name = 'ev'")[0]
        # The windows' parts, not the write check: their folders start with the year.
        release = stage_world.storage.hold_writes(f"exports/{uid}/{T0:%Y}", after=1)
        process = world.start("run", "ev", BQTUI_STAGE_PARTS=4)
        wait_for(lambda: [n for n in stage_world.objects() if "/attempt_1/part_" in n], 120)
        kill_tree(process)
        release.set()
        assert process.returncode == -signal.SIGKILL
        assert stage_world.objects(), "nothing was written before the kill"
    else:
        killed = world.bqtui("run", "ev", BQTUI_TEST_FAULT=f"{step}:die")
        assert killed.code == -signal.SIGKILL, killed.err
        assert stage_world.objects()

    left_by_the_killed_run = {name.rsplit("/", 1)[0] for name in stage_world.objects()}
    rerun = world.bqtui("run", "ev")

    assert rerun.code == 0, rerun.err
    assert "Took over from a runner that stopped without finishing" in rerun.err
    world.assert_exactly_once_and_clean("ev")
    assert stage_world.objects() == []
    # The clean run loads only folders its own attempts wrote, never the killed run's.
    loaded = {
        uri.removeprefix(f"gs://{stage_world.bucket}/").rsplit("/", 1)[0]
        for uri in stage_world.uri_loads()[-1]["sourceUris"]
    }
    assert loaded and not loaded & left_by_the_killed_run


def test_a_wrong_hmac_secret_is_named_and_nothing_is_written(stage_world: StageWorld):
    world = stage_world.world
    world.insert_hours(T0, HOURS)
    stage_world.add_staged("ev", model="events", secret="not-the-secret-of-this-key")
    failed = world.bqtui("run", "ev")
    assert failed.code != 0
    assert (
        f"Cloud Storage rejected the secret of HMAC key {ACCESS_ID} for bucket "
        f"{stage_world.bucket}: give the export the secret shown when that key was created"
    ) in failed.err
    assert world.sql("SELECT status FROM runs") == [("failed",)]
    assert stage_world.objects() == []
    assert "not-the-secret-of-this-key" not in failed.err + failed.out


def test_a_key_without_objects_create_is_told_what_to_grant(stage_world: StageWorld):
    world = stage_world.world
    world.insert_hours(T0, HOURS)
    stage_world.add_staged("ev", model="events")
    stage_world.storage.deny_writes(ACCESS_ID)
    failed = world.bqtui("run", "ev")
    assert failed.code != 0
    assert (
        f"HMAC key {ACCESS_ID} may not create objects in bucket {stage_world.bucket}: grant "
        "its service account storage.objects.create on the bucket (for example with "
        "roles/storage.objectAdmin)."
    ) in failed.err
    assert "fix its Cloud Storage stage" in failed.err
    status = world.bqtui("status", "--json")
    assert "storage.objects.create" in status.out
    assert stage_world.objects() == []
    stage_world.assert_secret_only_in_the_keyring(failed, status)


@pytest.mark.parametrize("model", ["events", "persons"])
def test_over_http_the_server_writes_the_stage_and_equals_the_upload_path(
    stage_world: StageWorld, tmp_path, model
):
    """The production path: a ClickHouse server (the HTTP stand-in runs the real engine in its
    own process) writes the objects itself; bqtui's process only sends the statement."""
    world = stage_world.world
    with ClickHouseHttpServer(tmp_path / "server") as server:
        world.source_dsn = server.dsn("default")
        world.chdb("create")
        staged, uploaded = export_both_ways(stage_world, model)

    assert "ClickHouse wrote" in staged.err
    assert stage_world.objects() == []
    stage_world.assert_secret_only_in_the_keyring(staged, uploaded)


NASTY_EVENTS = (
    "INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, "
    "elements_chain, created_at, person_id, inserted_at, _timestamp) "
    "SELECT generateUUIDv4(), '$pageview', p, t, 1, 'nasty', '', t, generateUUIDv4(), t, "
    "toDateTime(t) FROM (SELECT arrayJoin(["
    # a raw control character, an unpaired surrogate escape, and $set beside them
    '\'{"$current_url": "https://example.com/a\\x01b", "$set": {"name": "x"}}\', '
    '\'{"text": "\\\\ud800 alone", "$set_once": {"first": 1}, "$ip": "10.0.0.1"}\''
    "]) AS p, toDateTime64('2024-05-01 00:30:00', 6, 'UTC') AS t)"
)


@pytest.mark.parametrize("limit", [None, "0"], ids=["inlined", "window-on-the-host"])
def test_rows_only_the_host_repairs_go_through_the_stage_exactly(stage_world: StageWorld, limit):
    """JSON text with raw control characters or lone surrogates: the host repairs those rows
    and ClickHouse writes them beside its own (inlined), or past the limit the host encodes
    the window and puts it into the folder itself; either way equal to the upload path."""
    world = stage_world.world
    world.insert_hours(T0, HOURS)
    world.chdb("command", NASTY_EVENTS)
    stage_world.add_staged("staged", model="events")
    world.add("uploaded", model="events", table="uploaded")

    env = {} if limit is None else {"BQTUI_HOST_ROWS_MAX_CHARS": limit}
    staged = world.bqtui("run", "staged", **env)
    uploaded = world.bqtui("run", "uploaded")

    assert staged.code == 0, staged.err
    assert uploaded.code == 0, uploaded.err
    if limit is None:
        assert "ClickHouse wrote" in staged.err
    else:
        assert "encoded here and put" in staged.err
    through_stage, through_host = table_rows(world, "staged"), table_rows(world, "uploaded")
    assert len(through_stage) == HOURS * 40 + 2
    assert canonical(through_stage) == canonical(through_host)
    nasty = [r for r in through_stage if r["distinct_id"] == "nasty"]
    assert len(nasty) == 2
    assert stage_world.objects() == []


def test_removing_an_export_deletes_what_its_runs_left_in_the_bucket(stage_world: StageWorld):
    world = stage_world.world
    world.insert_hours(T0, HOURS)
    stage_world.add_staged("ev", model="events")
    killed = world.bqtui("run", "ev", BQTUI_TEST_FAULT="uploading:die")
    assert killed.code == -signal.SIGKILL
    left = stage_world.objects()
    assert left

    removed = world.bqtui("remove", "ev")

    assert removed.code == 0, removed.err
    (uid,) = {name.split("/")[1] for name in left}
    assert (
        f"Deleted {len(left)} Cloud Storage object(s) under {stage_world.uri}/{uid}/."
        in removed.out
    )
    assert stage_world.objects() == []


def test_a_runner_killed_after_recording_before_deleting_leaves_nothing_after_takeover(
    stage_world: StageWorld,
):
    """The windows are done but their objects are still there: the next runner, taking over,
    deletes them even when nothing is due."""
    world = stage_world.world
    world.insert_hours(T0, HOURS)
    stage_world.add_staged("ev", model="events")
    killed = world.bqtui("run", "ev", BQTUI_TEST_FAULT=f"recorded#{HOURS}:die")
    assert killed.code == -signal.SIGKILL
    assert len(world.sql("SELECT * FROM windows WHERE status = 'done'")) == HOURS
    left = stage_world.objects()
    assert left

    rerun = world.bqtui("run", "ev")

    assert rerun.code == 0, rerun.err
    assert "Nothing due." in rerun.err
    assert f"and {len(left)} Cloud Storage object(s) of windows it had done" in rerun.err
    assert stage_world.objects() == []
    world.assert_exactly_once_and_clean("ev")
