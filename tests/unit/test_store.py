import stat
from datetime import UTC, datetime

import pytest

from bqtui.config import ExportConfig, Interval, Model
from bqtui.errors import ConfigError, ExportBusy
from bqtui.store import SCHEMA_VERSION, Store


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
    store = Store(db_path)
    saved = store.add_export(make_export())
    loaded = store.require_export("ev")
    assert loaded == saved
    assert (loaded.model, loaded.interval, loaded.json_type, loaded.team_id) == (
        Model.PERSONS,
        Interval.DAY,
        True,
        7,
    )
    assert loaded.include_events == ("a", "b")
    assert len(loaded.uid) == 32
    with pytest.raises(ConfigError, match='An export named "ev" exists already'):
        store.add_export(make_export())


def test_unknown_export_lists_known_ones(db_path):
    store = Store(db_path)
    store.add_export(make_export("one"))
    with pytest.raises(ConfigError, match=r'^No export named "two". Exports: one.$'):
        store.require_export("two")


def test_window_attempts_increase(db_path):
    store = Store(db_path)
    export = store.add_export(make_export())
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    assert store.begin_window(export.id, start, end, None) == 1
    store.finish_window(export.id, start, "failed", error="boom")
    assert store.begin_window(export.id, start, end, None) == 2
    store.finish_window(export.id, start, "done", rows=5)
    assert store.done_window_starts(export.id) == {start}


def test_two_runners_never_hold_the_same_export(db_path):
    first, second = Store(db_path), Store(db_path)
    export = first.add_export(make_export())
    owner = first.acquire_lock(export.id)
    with pytest.raises(ExportBusy, match="Another bqtui runner"):
        second.acquire_lock(export.id)
    first.release_lock(export.id, owner)
    second.acquire_lock(export.id)


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
