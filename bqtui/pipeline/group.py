"""A group of consecutive windows exported together: select → encode → stage → MERGE.

Consecutive due windows are exported through one stage table and one MERGE while they are
small (a backfill of 720 hourly windows then waits on BigQuery for a few dozen jobs, not
thousands); a run with one due window is a group of one. Each window keeps its own attempt,
row count and record, and is recorded done only after the group's MERGE. In append mode
(persons, sessions) the files are loaded straight into the table and there is no MERGE.
"""

import functools
import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from bqtui.core import checkpoints
from bqtui.core.config import ExportConfig
from bqtui.core.errors import Cancelled, DestinationError, LockLost
from bqtui.destination.bigquery import TablePlan
from bqtui.models import ExportModel, ModelField
from bqtui.models.load_ready import clickhouse_encodes
from bqtui.pipeline.attempt import Attempt
from bqtui.pipeline.batch_counter import BatchCounter
from bqtui.pipeline.cloud_stage import ExportStage, parts_for
from bqtui.pipeline.earlier_merge import resolve_earlier_merge
from bqtui.pipeline.encode import (
    LoadFile,
    TooManyHostRows,
    clickhouse_window_file,
    write_parquet_files,
)
from bqtui.pipeline.ports import Destination, Source
from bqtui.pipeline.run_book import RunBook
from bqtui.source.clickhouse import ReadStats
from bqtui.stage.errors import StageError
from bqtui.stage.location import StageAttempt
from bqtui.state.windows import Window

# Consecutive small windows share one stage and one MERGE, up to these limits.
GROUP_MAX_WINDOWS = 168  # a week of hourly windows
GROUP_MAX_ROWS = 1_000_000
LOAD_PARALLELISM = 3  # a group's Parquet files uploaded at once (each ~256 MB)

# ``write_parquet_files``: batches, fields, JSON fields, folder → the files, as each is done.
WriteFiles = Callable[
    [Iterable[pa.RecordBatch], list[ModelField], set[str], Path], Iterator[LoadFile]
]


def group_limits_from_env() -> tuple[int, int]:
    """How many windows and rows one group may hold (``BQTUI_GROUP_WINDOWS=1``: one window
    per stage and MERGE, as before coalescing)."""
    windows = int(os.environ.get("BQTUI_GROUP_WINDOWS", GROUP_MAX_WINDOWS))
    rows = int(os.environ.get("BQTUI_GROUP_ROWS", GROUP_MAX_ROWS))
    return max(windows, 1), max(rows, 1)


def work_dir_prefix(export: ExportConfig) -> str:
    """The export's temporary folders start so: a later runner finds a dead one's."""
    return f"bqtui-{export.uid[:12]}-"


def merge_counts(job: object) -> tuple[int | None, int | None] | None:
    """(inserted, updated) from a MERGE job's DML statistics; where BigQuery gives only the
    total of rows affected: (None, total); None when it gives nothing."""
    stats = getattr(job, "dml_stats", None)
    if stats is not None:
        return int(stats.inserted_row_count or 0), int(stats.updated_row_count or 0)
    affected = getattr(job, "num_dml_affected_rows", None)
    return None if affected is None else (None, int(affected))


@dataclass(frozen=True)
class GroupSetup:
    """What every group of one run works with."""

    model: ExportModel
    source: Source
    destination: Destination
    plan: TablePlan
    work_dir: Path
    write_files: WriteFiles
    # Append mode: every file is loaded into the table itself (never truncating it), no stage
    # table and no MERGE; the table's ``_latest`` view returns the newest version per key.
    append: bool = False
    # A Cloud Storage stage: ClickHouse writes the windows' Parquet there, BigQuery loads it.
    stage: ExportStage | None = None


@dataclass
class GroupMember:
    attempt: Attempt
    counter: BatchCounter
    read: ReadStats | None = None  # where the engine reports them


@dataclass(frozen=True)
class CancelledWindow:
    """A cancel that arrived as a window began: the windows before it are exported, not it."""

    attempt: Attempt
    error: Cancelled


class WindowGroup:
    """Select → encode → stage for consecutive windows: their rows from ClickHouse, window by
    window, as Parquet files loaded into one expiring stage table of the first window's
    attempt; then one MERGE."""

    def __init__(self, book: RunBook, setup: GroupSetup):
        self.book = book
        self.export = book.export
        self.model = setup.model
        self.source = setup.source
        self.destination = setup.destination
        self.plan = setup.plan
        self.setup = setup
        self.members: list[GroupMember] = []
        self.first: Attempt | None = None
        self.ref: str | None = None
        self.job_ids: list[str] = []
        self.uploaded = 0
        self.taken = 0
        self.merge_submitted = False
        self.merge_job: object = None
        self._bookkeeping = threading.Lock()  # parallel loads report here
        self.cancelled: CancelledWindow | None = None
        self.staged_objects: list[str] = []  # in Cloud Storage: deleted once recorded done
        self.previous_window_rows: int | None = None  # how the next window is split

    @property
    def rows(self) -> int:
        return sum(m.counter.rows for m in self.members)

    @property
    def lead(self) -> Attempt:
        """The first window's attempt: its stage table and job ids serve the whole group."""
        if self.first is None:  # files and a MERGE come only after a window began
            raise RuntimeError("The group has no window yet.")
        return self.first

    def bytes_for(self, member: GroupMember) -> int:
        """The uploaded bytes, shared among the windows by their rows."""
        return round(self.uploaded * member.counter.rows / self.rows) if self.rows else 0

    def label(self) -> str:
        windows = [m.attempt.window for m in self.members]
        if len(windows) == 1:
            return f"Window {windows[0].label()}"
        return (
            f"Windows {windows[0].start:%Y-%m-%d %H:%M}–{windows[-1].end:%Y-%m-%d %H:%M} UTC "
            f"({len(windows)} windows)"
        )

    # -- select and encode ------------------------------------------------------------------

    def fill(self, windows: list[Window]) -> int:
        """Extract and load windows until the group is full; return how many were taken."""
        if self.setup.stage is not None:
            return self._fill_through_stage(windows, self.setup.stage)
        book = self.book
        self.taken = 0
        work_dir = tempfile.mkdtemp(prefix=work_dir_prefix(self.export), dir=self.setup.work_dir)
        try:
            files = self._files(windows, Path(work_dir))
            # The first file replaces the stage's contents; the others are appended, several
            # uploads at once, while the next file is written.
            with ThreadPoolExecutor(LOAD_PARALLELISM, thread_name_prefix="bqtui-load") as pool:
                loads = []
                for number, load_file in enumerate(files):
                    if self.cancelled is None:  # after a cancel between windows: finish them
                        book.check_stop()
                    if number == 0:
                        book.log("info", self._load(number, load_file))
                    else:
                        loads.append(pool.submit(self._load, number, load_file))
                for load in loads:  # logged here: the store is this thread's alone
                    book.log("info", load.result())
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        return self.taken

    def _files(self, windows: list[Window], work_dir: Path) -> Iterator[LoadFile]:
        """The group's load files: ClickHouse's own Parquet where it encodes the model's rows
        exactly (see ``load_ready``), else Arrow batches encoded here."""
        if not self._clickhouse_encodes(windows):
            batches: Iterable[pa.RecordBatch] = self._batches(windows)
            if self.model.repair_batch:
                batches = map(self.model.repair_batch, batches)
            yield from self.setup.write_files(
                batches, self.plan.source_fields, self.plan.json_fields, work_dir
            )
            return
        for member in self._members(windows):
            try:
                load_file = self._clickhouse_file(member, work_dir)
            except TooManyHostRows:  # mostly nasty JSON text: the window is encoded here
                batches = self._member_batches(member, self.model.build_query(self.export))
                if self.model.repair_batch:
                    batches = map(self.model.repair_batch, batches)
                yield from self.setup.write_files(
                    batches, self.plan.source_fields, self.plan.json_fields, work_dir
                )
                load_file = None
            if self.cancelled is not None:
                return
            if load_file is not None:
                yield load_file
            self._log_read(member)

    # -- through a Cloud Storage stage -------------------------------------------------------

    def _fill_through_stage(self, windows: list[Window], stage: ExportStage) -> int:
        """Each window written into its attempt's folder (by ClickHouse where it encodes the
        model, else by the host), then one load job for the group's folders."""
        self.taken = 0
        uris: list[str] = []
        work_dir = tempfile.mkdtemp(prefix=work_dir_prefix(self.export), dir=self.setup.work_dir)
        try:
            if self._clickhouse_writes_stage():
                for member in self._members(windows):
                    uri = self._stage_window(member, stage, Path(work_dir))
                    if self.cancelled is not None:
                        break
                    if uri:
                        uris.append(uri)
                    self._log_read(member)
            else:
                uris = self._stage_host_files(windows, stage, Path(work_dir))
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        if uris:
            self.book.log("info", self._load_stage_folders(uris))
        return self.taken

    def _clickhouse_writes_stage(self) -> bool:
        return (
            os.environ.get("BQTUI_ENCODE", "clickhouse") != "host"
            and self.setup.write_files is write_parquet_files
            and callable(getattr(self.source, "run_insert", None))
            and clickhouse_encodes(self.model, self.plan.source_fields)
        )

    def _stage_window(self, member: GroupMember, stage: ExportStage, work_dir: Path) -> str | None:
        """ClickHouse writes the window into its attempt's folder; the wildcard URI of the
        folder, or None when the window has no rows (or was cancelled as it began)."""
        window, counter = member.attempt.window, member.counter
        folder = stage.folder(self.export, member.attempt)
        query = self.model.build_query(self.export)
        parameters = self.model.query_parameters(self.export, window.start, window.end)
        checkpoints.reached("staging")
        try:
            parts = parts_for(self.previous_window_rows, stage.parts)
            staged = stage.write_window(
                self.source, self.model, self.plan, query, parameters, folder, parts
            )
        except TooManyHostRows:  # mostly nasty JSON text: the window is encoded here
            return self._stage_window_from_host(member, stage, folder, query, work_dir)
        counter.rows, counter.batches = staged.rows, 1
        self.previous_window_rows = staged.rows
        counter.low, counter.high = staged.low, staged.high
        counter.full_history = staged.nulls
        member.read = staged.read
        self.staged_objects.extend(staged.names)
        checkpoints.reached("staged")
        try:
            self._on_rows(member, counter.rows)
        except Cancelled as cancelled:
            stage.delete_folder(folder)
            self.members.remove(member)
            self.cancelled = CancelledWindow(member.attempt, cancelled)
            return None
        return self._staged(member, folder, staged.bytes, "ClickHouse wrote")

    def _stage_window_from_host(
        self,
        member: GroupMember,
        stage: ExportStage,
        folder: StageAttempt,
        query: str,
        work_dir: Path,
    ) -> str | None:
        """The window encoded here and put into its folder (rows counted as they are read)."""
        batches: Iterable[pa.RecordBatch] = self._member_batches(member, query)
        if self.model.repair_batch:
            batches = map(self.model.repair_batch, batches)
        files = self.setup.write_files(
            batches, self.plan.source_fields, self.plan.json_fields, work_dir
        )
        stage.put_files(files, folder, lambda load_file: None)
        if self.cancelled is not None:  # before the window's first row: nothing of it is up
            stage.delete_folder(folder)
            return None
        checkpoints.reached("staged")
        staged = stage.read_folder(folder, None)
        self.staged_objects.extend(staged.names)
        return self._staged(member, folder, staged.bytes, "encoded here and put")

    def _staged(
        self, member: GroupMember, folder: StageAttempt, written: int, how: str
    ) -> str | None:
        with self._bookkeeping:
            self.uploaded += written
        rows = member.counter.rows
        self.book.log(
            "info",
            f"Window {member.attempt.window.label()}: {how} {rows:,} rows "
            f"({written / 1e6:.1f} MB) to {folder.uri}.",
        )
        return folder.load_uri if rows else None

    def _stage_host_files(
        self, windows: list[Window], stage: ExportStage, work_dir: Path
    ) -> list[str]:
        """The host encodes the group's rows (a model ClickHouse cannot write exactly) and
        puts the files into the first window's attempt folder."""
        batches: Iterable[pa.RecordBatch] = self._batches(windows)
        if self.model.repair_batch:
            batches = map(self.model.repair_batch, batches)
        files = self.setup.write_files(
            batches, self.plan.source_fields, self.plan.json_fields, work_dir
        )
        folder: list[StageAttempt] = []

        def checked(load_files: Iterable[LoadFile]) -> Iterator[LoadFile]:
            for load_file in load_files:
                if self.cancelled is None:
                    self.book.check_stop()
                if not folder:
                    folder.append(stage.folder(self.export, self.lead))
                yield load_file

        def counted(load_file: LoadFile) -> None:
            self.uploaded += load_file.bytes

        files = checked(files)
        first = next(files, None)
        if first is None:
            return []
        names = stage.put_files(itertools.chain([first], files), folder[0], counted)
        self.staged_objects.extend(names)
        checkpoints.reached("staged")
        self.book.log(
            "info",
            f"{self.label()}: put {self.rows:,} rows ({self.uploaded / 1e6:.1f} MB) encoded "
            f"here into {folder[0].uri}.",
        )
        return [folder[0].load_uri]

    def _load_stage_folders(self, uris: list[str]) -> str:
        """One load job for the group's folders, into its stage table (or in append mode the
        table itself); return the line to log."""
        lead = self.lead
        target = self.plan.table_ref if self.setup.append else self._stage_for(lead)
        job_id = lead.load_job_id(0)
        if self.cancelled is None:
            self.book.check_stop()
        checkpoints.reached("uploading")
        self.book.fence([m.attempt for m in self.members])
        self.destination.load_uris(uris, target, job_id, lead.labels, first=not self.setup.append)
        self.job_ids.append(job_id)
        into = f"into {target}" if self.setup.append else "into the stage table"
        return (
            f"{self.label()}: BigQuery loaded {self.rows:,} rows from {len(uris)} Cloud "
            f"Storage folder(s) {into}."
        )

    def delete_stage_folders(self) -> None:
        """After the group's windows are recorded done: their folders go (every attempt)."""
        stage = self.setup.stage
        if stage is None:
            return
        try:
            stage.delete_objects(self.staged_objects)  # one request per 1,000 objects
            for member in self.members:  # an earlier attempt's folder, if any is left
                if member.attempt.number > 1:
                    stage.delete_window(self.export, member.attempt.window.start)
        except StageError as error:
            self.book.log(
                "warning",
                f"{self.label()}: the Cloud Storage objects were not deleted ({error}); the "
                "next run deletes them.",
            )
            return
        checkpoints.reached("stage_deleted")

    def _clickhouse_encodes(self, windows: list[Window]) -> bool:
        """The default path: ClickHouse writes the Parquet (``BQTUI_ENCODE=host``, a source
        without ``write_parquet`` or another file writer keep the host encoding). ClickHouse
        writes a file per window: a group of several windows (a backfill) is encoded here into
        files of ~256 MB, so that it still costs BigQuery a load job per file, not per window."""
        one_window = len(windows) == 1 or group_limits_from_env()[0] == 1
        return (
            one_window
            and os.environ.get("BQTUI_ENCODE", "clickhouse") != "host"
            and self.setup.write_files is write_parquet_files
            and callable(getattr(self.source, "write_parquet", None))
            and clickhouse_encodes(self.model, self.plan.source_fields)
        )

    def _clickhouse_file(self, member: GroupMember, work_dir: Path) -> LoadFile | None:
        """The window's rows as one Parquet file that ClickHouse wrote (None: no rows, or a
        cancel before any row of the window: then the window is left for the next run)."""
        window = member.attempt.window
        written, member.read = clickhouse_window_file(
            self.source,
            self.model,
            self.plan,
            self.model.build_query(self.export),
            self.model.query_parameters(self.export, window.start, window.end),
            work_dir,
        )
        if written is None:
            return None
        counter = member.counter
        counter.rows, counter.batches = written.load_file.rows, 1
        counter.low, counter.high = written.low, written.high
        counter.full_history = written.nulls
        try:
            self._on_rows(member, counter.rows)
        except Cancelled as cancelled:
            written.load_file.path.unlink(missing_ok=True)
            self.members.remove(member)
            self.cancelled = CancelledWindow(member.attempt, cancelled)
            return None
        return written.load_file

    def _members(self, windows: list[Window]) -> Iterator[GroupMember]:
        """The windows this group takes, each begun as a new attempt, until the group is full."""
        max_windows, max_rows = group_limits_from_env()
        for window in windows:
            if self.taken and (self.taken >= max_windows or self.rows >= max_rows):
                return
            if self.cancelled is not None:
                return
            self.taken += 1
            if window.start in self.book.done_in_run:
                continue  # recorded done earlier in this run (before a retry)
            attempt = self._begin(window)
            if attempt is None:
                continue  # recorded done from an earlier attempt's MERGE
            member = GroupMember(
                attempt, BatchCounter(self.model.partition_field, self.model.full_history_rows)
            )
            self.members.append(member)
            self.book.log(
                "info", f"Window {window.label()}: extracting (attempt {attempt.number})."
            )
            yield member

    def _batches(self, windows: list[Window]) -> Iterator[pa.RecordBatch]:
        query = self.model.build_query(self.export)
        for member in self._members(windows):
            yield from self._member_batches(member, query)
            if self.cancelled is not None:
                return
            self._log_read(member)

    def _member_batches(self, member: GroupMember, sql: str) -> Iterator[pa.RecordBatch]:
        """The window's batches of a query, counted; a cancel before the window's first
        batch leaves the window out of the group (``self.cancelled``)."""
        window = member.attempt.window
        with self.source.stream(
            sql, self.model.query_parameters(self.export, window.start, window.end)
        ) as stream:
            counted = member.counter.count(stream, functools.partial(self._on_rows, member))
            try:
                first = next(counted, None)
            except Cancelled as cancelled:
                # Nothing of this window was written yet: the windows before it in the
                # group are complete, and are merged; this one is left for the next run.
                self.members.remove(member)
                self.cancelled = CancelledWindow(member.attempt, cancelled)
                return
            if first is not None:
                yield first
                yield from counted
        member.read = self.source.last_read

    def _log_read(self, member: GroupMember) -> None:
        window, counter = member.attempt.window, member.counter
        if counter.full_history and self.model.full_history_note:
            note = self.model.full_history_note(counter.full_history, counter.rows)
            self.book.log("info", f"Window {window.label()}: {note}")
        if member.read is not None:
            self.book.log(
                "info",
                f"Window {window.label()}: ClickHouse read {member.read.rows:,} rows "
                f"({member.read.bytes / 1e6:.1f} MB) for {counter.rows:,} exported.",
            )

    def _begin(self, window: Window) -> Attempt | None:
        """A new attempt at the window; None when an earlier attempt's MERGE had done it."""
        attempt, pending = self.book.begin_attempt(window)
        try:
            if pending and resolve_earlier_merge(self.book, self.destination, attempt, pending):
                return None
        except BaseException as error:
            self.record_failure(attempt, error, merge_unresolved=True)
            raise
        if self.first is None:
            self.first = attempt
        return attempt

    def _on_rows(self, member: GroupMember, rows: int) -> None:
        if rows and member.counter.batches == 1:
            checkpoints.reached("extracted")
        self.book.on_batch(member.attempt.window, rows)

    # -- stage ------------------------------------------------------------------------------

    def _load(self, number: int, load_file: LoadFile) -> str:
        """Upload one file into the stage, or in append mode into the table (from an upload
        thread but the first: no store access here); return the line to log."""
        lead = self.lead
        target = self.plan.table_ref if self.setup.append else self._stage_for(lead)
        job_id = lead.load_job_id(number)
        checkpoints.reached("uploading")
        self.book.fence([m.attempt for m in list(self.members)])  # a copy: the main thread appends
        # The first file replaces the stage's contents; the table itself is only appended to.
        first = number == 0 and not self.setup.append
        self.destination.load_file(load_file.path, target, job_id, lead.labels, first=first)
        with self._bookkeeping:
            self.job_ids.append(job_id)
            self.uploaded += load_file.bytes
        load_file.path.unlink(missing_ok=True)
        into = f"into {target}" if self.setup.append else "into the stage table"
        return (
            f"{self.label()}: loaded {load_file.rows:,} rows ({load_file.bytes / 1e6:.1f} MB) "
            f"{into}."
        )

    def _stage_for(self, lead: Attempt) -> str:
        """The group's stage table, created with the first file."""
        if self.ref is None:
            self.ref = self.destination.create_stage_table(self.plan, lead.stage_id)
            if lead.number > 1:  # an earlier attempt's stage, if still there
                earlier = Attempt.of(self.export, lead.window, lead.number - 1)
                self.book.fence([lead])  # the earlier attempt is not another runner's now
                self.destination.drop_table(
                    self.destination.table_ref(self.export.dataset_id, earlier.stage_id)
                )
        return self.ref

    # -- merge ------------------------------------------------------------------------------

    @property
    def needs_merge(self) -> bool:
        """Rows were staged (append mode loaded them into the table: nothing to merge)."""
        return bool(self.rows) and not self.setup.append

    def submit_merge(self) -> None:
        lead = self.lead
        for member in self.members:  # noted before submitting: a crash leaves it findable
            self.book.note_pending_merge(
                member.attempt, lead.merge_job_id, rows=member.counter.rows
            )
        # Before submitting: a submit that fails after BigQuery created the job (a lost
        # answer) leaves a MERGE that may run; the stage must stay and the job be looked up.
        self.book.fence([m.attempt for m in self.members])
        self.merge_submitted = True
        self.merge_job = self.destination.submit_merge(
            self.plan, self._stage_ref(), self.model, lead.merge_job_id, lead.labels, self._range()
        )
        checkpoints.reached("merge_submitted")

    def finish(self) -> None:
        """Wait for the group's MERGE (if it has one), then record each of its windows."""
        try:
            if self.merge_submitted:
                self._wait_for_merge()
        except BaseException as error:
            self.record_members_failed(error, merge_unresolved=True)
            raise
        self.drop()
        for member in self.members:
            self.book.record_done(
                member.attempt,
                member.counter.rows,
                self.bytes_for(member),
                self.job_ids,
                member.read,
            )
        self.delete_stage_folders()

    def _wait_for_merge(self) -> None:
        job = self.destination.wait_for(
            self.merge_job, f"merging into {self.plan.table_ref}", self.export.dataset_id
        )
        self.job_ids.append(self.lead.merge_job_id)
        checkpoints.reached("merge_done")
        self._check_merge_counts(job)

    def _check_merge_counts(self, job: object) -> None:
        """Log what the MERGE changed beside what was staged; more rows inserted than staged
        means something else wrote through this MERGE: the window fails, loudly."""
        counts = merge_counts(job)
        if counts is None:
            return
        inserted, updated = counts
        staged = self.rows
        changed = (
            f"inserted {inserted:,}" + (f" and updated {updated:,}" if updated is not None else "")
            if inserted is not None
            else f"changed {updated:,}"  # BigQuery gave only the total of rows affected
        )
        self.book.log("info", f"{self.label()}: the MERGE {changed} of {staged:,} staged rows.")
        if inserted is not None and inserted > staged:
            raise DestinationError(
                f"{self.label()}: BigQuery reports {inserted:,} rows inserted by MERGE job "
                f"{self.lead.merge_job_id}, more than the {staged:,} staged. The window is "
                "recorded failed; run `bqtui verify` on this export before trusting its rows."
            )

    def _range(self) -> tuple[datetime, datetime] | None:
        ranges = [r for r in (m.counter.range for m in self.members) if r]
        if not ranges:
            return None
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def _stage_ref(self) -> str:
        if self.ref is None:  # a group with rows loaded them into its stage
            raise RuntimeError("The group has no stage table.")
        return self.ref

    def drop(self, quiet: bool = False) -> None:
        """Drop the stage once (it expires anyway): not once per window of the group."""
        if not self.ref:
            return
        ref, self.ref = self.ref, None
        drop_error = self.destination.drop_table(ref)
        if drop_error and not quiet:
            self.book.log(
                "warning",
                f"The stage table {ref} was not dropped and will expire by itself "
                f"within 12 hours: {drop_error}",
            )

    # -- failures ---------------------------------------------------------------------------

    def record_failure(
        self, attempt: Attempt, error: BaseException, *, merge_unresolved: bool
    ) -> None:
        """Record a failed or cancelled attempt, unless another runner owns the window now."""
        if isinstance(error, LockLost):
            return  # fenced: the window belongs to the new holder
        if not merge_unresolved:
            self.drop(quiet=True)  # a MERGE that may still run keeps its stage (it expires)
        self.book.record_failure(attempt, error, self.job_ids, merge_unresolved=merge_unresolved)

    def record_members_failed(self, error: BaseException, *, merge_unresolved: bool) -> None:
        for member in self.members:
            self.record_failure(member.attempt, error, merge_unresolved=merge_unresolved)

    def record_cancelled_window(self) -> None:
        """The one place a cancel that arrived as a window began is recorded (whatever became
        of the windows before it)."""
        if self.cancelled is not None:
            self.record_failure(
                self.cancelled.attempt, self.cancelled.error, merge_unresolved=False
            )
