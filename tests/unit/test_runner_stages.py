"""The runner's pipeline (resolve → select → encode → stage → merge → record) on in-memory
fakes of the source and the destination (bqtui.pipeline.ports), with the real store and lock.

The same guarantees are proven end to end against the real engines in tests/faults; these
tests pin the mechanism: grouping, exact per-window bookkeeping, earlier MERGEs, cancel."""

import uuid as uuids
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bqtui.core.config import ExportConfig, Interval
from bqtui.core.errors import TransientJobFailure
from bqtui.destination.bigquery import JobOutcome, TablePlan
from bqtui.pipeline.runner import CancelToken, ExportRunner, LogEvent
from bqtui.state.locks import ExportLock
from bqtui.state.store import Store

T0 = datetime(2024, 5, 1, tzinfo=UTC)


class FakeSource:
    """Events by ingestion time; a window's query returns those ingested in it."""

    def __init__(self, rows_per_hour: list[int]):
        self.events = [
            (uuids.uuid4().hex, T0 + timedelta(hours=hour, minutes=minute))
            for hour, count in enumerate(rows_per_hour)
            for minute in range(count)
        ]
        self.last_read = None
        self.queries = 0

    def open(self):
        return self

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @contextmanager
    def stream(self, sql: str, parameters: dict):
        self.queries += 1
        start, end = parameters["window_start"], parameters["window_end"]
        chosen = [(u, at) for u, at in self.events if start <= at < end]
        batch = pa.RecordBatch.from_pydict(
            {
                "uuid": [u for u, _ in chosen],
                "event": ["$pageview"] * len(chosen),
                "properties": ["{}"] * len(chosen),
                "elements": [""] * len(chosen),
                "set": pa.array([None] * len(chosen), pa.string()),
                "set_once": pa.array([None] * len(chosen), pa.string()),
                "distinct_id": ["d"] * len(chosen),
                "team_id": pa.array([1] * len(chosen), pa.int64()),
                "ip": pa.array([None] * len(chosen), pa.string()),
                "site_url": [""] * len(chosen),
                "timestamp": pa.array([at for _, at in chosen], pa.timestamp("us", tz="UTC")),
            }
        )
        yield iter([batch] if chosen else [])


class FakeJob:
    def __init__(self, job_id: str, stage: str, merge=None):
        self.job_id, self.stage, self.merge = job_id, stage, merge


@dataclass(frozen=True)
class FakeMerge:
    """What a submitted MERGE is to do once it runs."""

    plan: TablePlan
    stage_ref: str
    model: object
    timestamp_range: tuple[datetime, datetime] | None


class FakeDestination:
    """Tables as lists of rows; an insert-only MERGE by uuid (the events model) that matches
    stored rows only inside the timestamp range it is given, as BigQuery's MERGE does."""

    def __init__(self):
        self.tables: dict[str, list[dict]] = {}
        self.jobs: dict[str, str] = {}  # job id → done | failed
        self.loads: list[str] = []
        self.merges: list[str] = []
        self.merge_ranges: list[tuple[datetime, datetime] | None] = []
        self.fail_loads: set[str] = set()

    def table_ref(self, dataset_id: str, table_id: str) -> str:
        return f"p.{dataset_id}.{table_id}"

    def prepare_table(self, dataset_id, table_id, model, json_type):
        """A new table of the model's fields: the plan is every field, none stored as JSON."""
        ref = self.table_ref(dataset_id, table_id)
        created = ref not in self.tables
        self.tables.setdefault(ref, [])
        fields = [f for f in model.fields if not f.optional]
        return TablePlan(ref, fields, set(), [], created)

    def create_stage_table(self, plan, stage_table_id: str) -> str:
        ref = self.table_ref(plan.table_ref.split(".")[1], stage_table_id)
        self.tables.setdefault(ref, [])
        return ref

    def load_file(self, path, stage_ref, job_id, labels, *, first):
        self.loads.append(job_id)
        if job_id in self.fail_loads:
            self.fail_loads.discard(job_id)
            raise TransientJobFailure(f"job {job_id} failed (backendError)")
        rows = pq.read_table(path).to_pylist()
        self.tables[stage_ref] = rows if first else self.tables[stage_ref] + rows

    def submit_merge(self, plan, stage_ref, model, job_id, labels, timestamp_range=None):
        self.merges.append(job_id)
        self.merge_ranges.append(timestamp_range)
        return FakeJob(job_id, stage_ref, FakeMerge(plan, stage_ref, model, timestamp_range))

    def wait_for(self, job, doing, dataset_id):
        """Run the MERGE: one staged row per key; a stored row with that key matches only
        when its partition column lies in the range (BETWEEN: both ends included); what
        matches nothing is inserted (insert-only: a match is left as it is)."""
        merge: FakeMerge = job.merge
        model = merge.model
        assert model.insert_only, "this fake merges insert-only models (events) only"
        final = self.tables[merge.plan.table_ref]
        names = [f.name for f in merge.plan.fields]
        partition = model.partition_field if model.partition_field in names else None

        def key(row: dict) -> tuple:
            return tuple(row[k] for k in model.merge_key)

        def in_range(row: dict) -> bool:
            if merge.timestamp_range is None or partition is None:
                return True
            low, high = merge.timestamp_range
            return low <= row[partition] <= high

        staged = {}
        for row in self.tables[merge.stage_ref]:
            staged.setdefault(key(row), row)
        present = {key(row) for row in final if in_range(row)}
        final.extend(
            {name: row.get(name) for name in names}
            for row in staged.values()
            if key(row) not in present
        )
        self.jobs[job.job_id] = "done"
        return job

    def job_outcome(self, job_id: str, dataset_id: str | None = None) -> JobOutcome:
        state = self.jobs.get(job_id, "missing")
        return JobOutcome(state, FakeJob(job_id, "") if state != "missing" else None)

    def drop_table(self, ref: str):
        self.tables.pop(ref, None)

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "bqtui.db")


def make(store, source, destination, **runner_options):
    export = store.add_export(
        ExportConfig(
            name="ev",
            dataset_id="ds",
            table_id="events",
            interval=Interval.HOUR,
            start_at=T0,
            uid="0123456789abcdef" * 2,
        )
    )
    runner = ExportRunner(
        store,
        now=lambda: T0 + timedelta(days=1),
        source_factory=lambda e: source,
        destination_factory=lambda e, deadline: destination,
        **runner_options,
    )
    return export, runner


def windows_of(store, export) -> list[tuple[int, str, int, int]]:
    return [
        (w.window_start.hour, w.status, w.attempt, w.rows)
        for w in sorted(store.list_windows(export.id), key=lambda w: w.window_start)
    ]


def test_consecutive_windows_share_one_load_and_merge_and_keep_exact_counts(store):
    source, destination = FakeSource([3, 0, 5, 1]), FakeDestination()
    export, runner = make(store, source, destination)
    windows = [w for w in runner.due(export) if w.start < T0 + timedelta(hours=4)]
    result = runner.run_export(export, windows=windows)
    assert (result.status, result.windows_done, result.rows) == ("succeeded", 4, 9)
    assert windows_of(store, export) == [
        (0, "done", 1, 3),
        (1, "done", 1, 0),
        (2, "done", 1, 5),
        (3, "done", 1, 1),
    ]
    assert [j.rsplit("_", 2)[-2:] for j in destination.loads] == [["a1", "load0"]]
    assert len(destination.merges) == 1
    assert sorted(r["uuid"] for r in destination.tables["p.ds.events"]) == sorted(
        u for u, _ in source.events
    )
    assert [t for t in destination.tables if "stage" in t] == []  # dropped after the MERGE


def test_a_window_exported_again_merges_onto_its_rows_without_copies(store):
    """A repair re-exports a done window whose rows are in the table but one: the MERGE's
    timestamp range spans every staged row, so the stored rows match and only the lost one
    is inserted."""
    source, destination = FakeSource([3, 2]), FakeDestination()
    export, runner = make(store, source, destination)
    windows = [w for w in runner.due(export) if w.start < T0 + timedelta(hours=2)]
    assert runner.run_export(export, windows=windows).status == "succeeded"
    final = destination.tables["p.ds.events"]
    final.remove(next(row for row in final if row["timestamp"] == T0 + timedelta(minutes=1)))
    result = runner.run_export(export, windows=windows[:1], trigger="repair")
    assert (result.status, result.rows) == ("succeeded", 3)
    assert destination.merge_ranges[-1] == (T0, T0 + timedelta(minutes=2))
    assert sorted(r["uuid"] for r in final) == sorted(u for u, _ in source.events)  # once each


def test_a_group_is_cut_at_its_row_limit(store, monkeypatch):
    monkeypatch.setenv("BQTUI_GROUP_ROWS", "4")
    source, destination = FakeSource([3, 2, 3, 2]), FakeDestination()
    export, runner = make(store, source, destination)
    windows = [w for w in runner.due(export) if w.start < T0 + timedelta(hours=4)]
    runner.run_export(export, windows=windows)
    assert len(destination.merges) == 2  # [3, 2] reach 4 rows; then [3, 2]
    assert [row[3] for row in windows_of(store, export)] == [3, 2, 3, 2]


def test_an_earlier_merge_that_succeeded_is_recorded_without_running_anything(store):
    source, destination = FakeSource([2]), FakeDestination()
    export, runner = make(store, source, destination)
    window = runner.due(export)[0]
    lock = ExportLock(store, export.id).acquire()  # a runner that died after its MERGE
    store.begin_window(export.id, window.start, window.end, None, lock.owner)
    store.set_pending_merge(export.id, window.start, lock.owner, 1, "earlier_merge")
    store.db.conn.execute("DELETE FROM locks")
    destination.jobs["earlier_merge"] = "done"
    result = runner.run_export(export, windows=[window])
    assert result.windows_done == 1
    assert windows_of(store, export) == [(0, "done", 2, 0)]
    assert destination.loads == [] and destination.merges == [] and source.queries == 0


def test_cancel_as_a_window_begins_merges_the_windows_before_it(store):
    source, destination = FakeSource([1, 1, 1, 1]), FakeDestination()
    cancel = CancelToken()

    def on_event(event):
        if isinstance(event, LogEvent) and event.message.startswith("Window 2024-05-01 02:00"):
            cancel.cancel()

    export, runner = make(store, source, destination, cancel=cancel, on_event=on_event)
    windows = [w for w in runner.due(export) if w.start < T0 + timedelta(hours=4)]
    result = runner.run_export(export, windows=windows)
    assert (result.status, result.windows_done) == ("cancelled", 2)
    assert windows_of(store, export) == [
        (0, "done", 1, 1),
        (1, "done", 1, 1),
        (2, "cancelled", 1, 0),
    ]
    assert len(destination.tables["p.ds.events"]) == 2


def test_a_transient_load_failure_is_tried_again_as_a_new_attempt(store, monkeypatch):
    monkeypatch.setattr("bqtui.pipeline.runner.time.sleep", lambda seconds: None)
    source, destination = FakeSource([2, 2]), FakeDestination()
    export, runner = make(store, source, destination)
    destination.fail_loads.add(f"bqtui_{export.uid[:12]}_20240501T000000_a1_load0")
    windows = [w for w in runner.due(export) if w.start < T0 + timedelta(hours=2)]
    result = runner.run_export(export, windows=windows)
    assert result.status == "succeeded"
    assert windows_of(store, export) == [(0, "done", 2, 2), (1, "done", 2, 2)]
    assert len(destination.tables["p.ds.events"]) == 4


def test_a_groups_files_upload_in_parallel_and_all_rows_land(store, monkeypatch):
    import functools

    from bqtui.pipeline import encode

    # One Parquet file per batch: four files, the last three uploaded from threads.
    monkeypatch.setattr(
        "bqtui.pipeline.runner.write_parquet_files",
        functools.partial(encode.write_parquet_files, max_file_bytes=1),
    )
    source, destination = FakeSource([2, 3, 1, 4]), FakeDestination()
    export, runner = make(store, source, destination)
    windows = [w for w in runner.due(export) if w.start < T0 + timedelta(hours=4)]
    result = runner.run_export(export, windows=windows)
    assert (result.status, result.rows) == ("succeeded", 10)
    assert sorted(j.rsplit("_", 1)[-1] for j in destination.loads) == [
        "load0",
        "load1",
        "load2",
        "load3",
    ]
    assert len(destination.tables["p.ds.events"]) == 10
    logs = store.run_logs(result.run_id)
    assert sum("into the stage table" in message for _, _, message in logs) == 4


def test_a_merge_that_fails_while_the_next_group_is_staged_is_tried_again(store, monkeypatch):
    monkeypatch.setenv("BQTUI_GROUP_WINDOWS", "1")
    monkeypatch.setattr("bqtui.pipeline.runner.time.sleep", lambda seconds: None)
    source, destination = FakeSource([2, 2, 2]), FakeDestination()
    first_merge = f"bqtui_{'0123456789ab'}_20240501T000000_a1_merge"
    original = destination.wait_for

    def wait_for(job, doing, dataset_id):
        if job.job_id == first_merge and first_merge not in destination.jobs:
            destination.jobs[first_merge] = "failed"
            raise TransientJobFailure(f"job {first_merge} failed (backendError)")
        return original(job, doing, dataset_id)

    destination.wait_for = wait_for
    destination.job_outcome = lambda job_id, dataset_id=None: JobOutcome(
        "failed" if destination.jobs.get(job_id) == "failed" else "missing"
    )
    export, runner = make(store, source, destination)
    windows = [w for w in runner.due(export) if w.start < T0 + timedelta(hours=3)]
    result = runner.run_export(export, windows=windows)
    assert (result.status, result.windows_done, result.rows) == ("succeeded", 3, 6)
    assert windows_of(store, export) == [(0, "done", 2, 2), (1, "done", 1, 2), (2, "done", 1, 2)]
    assert len(destination.tables["p.ds.events"]) == 6


def test_a_merge_still_running_after_the_wait_keeps_the_window_for_the_next_run(store):
    source, destination = FakeSource([2]), FakeDestination()
    export, runner = make(store, source, destination)
    window = runner.due(export)[0]
    lock = ExportLock(store, export.id).acquire()
    store.begin_window(export.id, window.start, window.end, None, lock.owner)
    store.set_pending_merge(export.id, window.start, lock.owner, 1, "slow_merge", rows=2)
    store.db.conn.execute("DELETE FROM locks")
    destination.job_outcome = lambda job_id, dataset_id=None: JobOutcome(
        "running", FakeJob(job_id, "")
    )
    destination.wait_for = lambda job, doing, dataset_id: job
    result = runner.run_export(export, windows=[window])
    assert result.status == "failed"
    assert "is still running in BigQuery; the window is exported after it ends" in result.error
    state = store.get_window(export.id, window.start)
    assert (state.status, state.pending_merge_job, state.rows) == ("failed", "slow_merge", 2)
    assert destination.loads == [] and destination.merges == []
