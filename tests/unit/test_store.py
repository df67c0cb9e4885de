import stat
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bqtui.core.config import AuthKind, ExportConfig, Interval, Model
from bqtui.core.cost import WriteMode
from bqtui.core.errors import ConfigError
from bqtui.state.store import SCHEMA_VERSION, Store


def make_export(name="ev") -> ExportConfig:
    return ExportConfig(
        name=name,
        dataset_id="ds",
        table_id="t",
        model=Model.PERSONS,
        interval=Interval.DAY,
        json_type=True,
        team_id=7,
        source_dsn="chdb:///x",
        include_events=("a", "b"),
        start_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "bqtui.db"


def test_database_file_is_private_and_migrated(db_path):
    store = Store(db_path)
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert store.schema_version == SCHEMA_VERSION
    store.close()
    assert Store(db_path).schema_version == SCHEMA_VERSION  # reopening is a no-op


def test_export_round_trip(db_path):
    # Every persisted field is set below; a new field must be added to this test.
    assert {f.name for f in fields(ExportConfig)} - {"extra"} == {
        "name",
        "dataset_id",
        "table_id",
        "model",
        "interval",
        "json_type",
        "team_id",
        "source_dsn",
        "bigquery_endpoint",
        "project_id",
        "location",
        "include_events",
        "exclude_events",
        "start_at",
        "enabled",
        "id",
        "uid",
        "created_at",
        "settle_seconds",
        "alert_after_seconds",
        "auth",
        "impersonate",
        "credential_config",
        "write_mode",
        "max_bytes_billed",
        "price_per_tib",
        "stage",
        "stage_hmac_id",
    }
    created = datetime(2024, 1, 1, tzinfo=UTC)
    store = Store(db_path)
    before = datetime.now(UTC)
    saved = store.add_export(
        ExportConfig(
            name="ev.full-1",
            dataset_id="analytics_ds",
            table_id="sessions_tbl",
            model=Model.SESSIONS,
            interval=Interval.FIVE_MINUTES,
            json_type=True,
            team_id=42,
            source_dsn="http://reader@ch.example:8123/posthog",
            bigquery_endpoint="http://127.0.0.1:9050",
            project_id="proj-9",
            location="EU",
            include_events=("$pageview", "signup"),
            exclude_events=("$autocapture",),
            start_at=datetime(2024, 3, 4, 5, 10, tzinfo=timezone(timedelta(hours=2))),
            enabled=False,
            uid="0123456789abcdef0123456789abcdef",
            created_at=created,
            settle_seconds=17,
            alert_after_seconds=900,
            auth=AuthKind.CREDENTIALS_FILE,
            impersonate="exporter@proj-9.iam.gserviceaccount.com",
            credential_config='{"type": "external_account"}',
            write_mode=WriteMode.APPEND,
            max_bytes_billed=10**10,
            price_per_tib=5.0,
        )
    )
    after = datetime.now(UTC)
    store.close()

    reopened = Store(db_path)
    loaded = reopened.require_export("ev.full-1")
    assert loaded.id == saved.id == 1
    assert loaded.uid == "0123456789abcdef0123456789abcdef"
    assert loaded.name == "ev.full-1"
    assert loaded.model is Model.SESSIONS
    assert loaded.dataset_id == "analytics_ds"
    assert loaded.table_id == "sessions_tbl"
    assert loaded.interval is Interval.FIVE_MINUTES
    assert loaded.json_type is True
    assert loaded.team_id == 42
    assert loaded.source_dsn == "http://reader@ch.example:8123/posthog"
    assert loaded.bigquery_endpoint == "http://127.0.0.1:9050"
    assert loaded.project_id == "proj-9"
    assert loaded.location == "EU"
    assert loaded.auth is AuthKind.CREDENTIALS_FILE
    assert loaded.impersonate == "exporter@proj-9.iam.gserviceaccount.com"
    assert loaded.credential_config == '{"type": "external_account"}'
    assert (loaded.write_mode, loaded.max_bytes_billed, loaded.price_per_tib) == (
        WriteMode.APPEND,
        10**10,
        5.0,
    )
    assert loaded.include_events == ("$pageview", "signup")
    assert loaded.exclude_events == ("$autocapture",)
    assert loaded.start_at == datetime(2024, 3, 4, 3, 10, tzinfo=UTC)
    assert loaded.start_at.utcoffset() == timedelta(0)
    assert loaded.enabled is False
    assert loaded.settle_seconds == 17
    assert loaded.alert_after_seconds == 900
    # created_at is the time of add_export, not a value the caller passes in.
    assert before <= loaded.created_at <= after
    assert loaded.created_at.tzinfo is not None

    # A config with only the required fields loads back with the documented defaults.
    minimal = reopened.add_export(ExportConfig(name="min", dataset_id="d", table_id="t"))
    loaded = Store(db_path).require_export("min")
    assert loaded.id == minimal.id == 2
    assert (loaded.model, loaded.interval, loaded.json_type, loaded.team_id) == (
        Model.EVENTS,
        Interval.HOUR,
        False,
        1,
    )
    assert (loaded.source_dsn, loaded.bigquery_endpoint, loaded.project_id) == ("", None, None)
    assert (loaded.location, loaded.include_events, loaded.exclude_events) == (None, (), ())
    assert (loaded.start_at, loaded.enabled, loaded.settle_seconds) == (None, True, 60)
    assert loaded.alert_after_seconds is None
    assert len(loaded.uid) == 32 and int(loaded.uid, 16) >= 0  # generated: 32 hex digits
    assert loaded.uid != "0123456789abcdef0123456789abcdef"

    with pytest.raises(ConfigError, match='An export named "ev.full-1" exists already'):
        reopened.add_export(ExportConfig(name="ev.full-1", dataset_id="x", table_id="y"))


def test_unknown_export_lists_known_ones(db_path):
    store = Store(db_path)
    store.add_export(make_export("one"))
    with pytest.raises(ConfigError, match=r'^No export named "two". Exports: one.$'):
        store.require_export("two")


def test_newer_schema_is_refused(db_path):
    store = Store(db_path)
    store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store.close()
    with pytest.raises(ConfigError, match="written by a newer bqtui"):
        Store(db_path)


def test_removing_an_export_removes_its_history(db_path):
    store = Store(db_path)
    export = store.add_export(make_export())
    run_id = store.start_run(export.id, "manual", 1)
    store.add_logs(run_id, [(datetime.now(UTC), "info", "hello")])
    store.remove_export(export.id)
    assert store.list_exports() == []
    assert store.list_runs() == []
