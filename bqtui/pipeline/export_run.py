"""One run of one export over a list of windows: prepare the table, export the windows
group by group, record how the run ended."""

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from bqtui.core.cost import WriteMode
from bqtui.core.errors import (
    BqtuiError,
    Cancelled,
    LockLost,
    PermissionProblem,
    TransientJobFailure,
)
from bqtui.destination.bigquery import BigQueryDestination, TablePlan
from bqtui.destination.latest_view import ensure_latest_view, latest_view_ref
from bqtui.destination.table_layout import create_table_if_missing
from bqtui.models import ExportModel
from bqtui.pipeline.cloud_stage import ExportStage
from bqtui.pipeline.events import RunResult
from bqtui.pipeline.group import GroupSetup, WindowGroup, WriteFiles
from bqtui.pipeline.ports import Destination, Source
from bqtui.pipeline.run_book import RunBook
from bqtui.stage.errors import StageAccessProblem
from bqtui.state.windows import Window

log = logging.getLogger(__name__)

# A job that failed for a transient reason (backendError …) is retried as a new attempt
# within the run, this many attempts in all; then the window waits for the next run.
JOB_ATTEMPTS_PER_RUN = 3


class ExportRun:
    """One run, recorded in the store through its book. Each group's MERGE runs in BigQuery
    while the next group is staged: that group is "in flight" until awaited and recorded."""

    def __init__(
        self,
        book: RunBook,
        model: ExportModel,
        windows: list[Window],
        source: Source,
        open_destination: Callable[[], Destination],
        work_dir: Path,
        write_files: WriteFiles,
    ):
        self.book = book
        self.export = book.export
        self.model = model
        self.windows = windows
        self.source = source
        self.open_destination = open_destination
        self.work_dir = work_dir
        self.write_files = write_files
        self._in_flight: WindowGroup | None = None
        # MERGEs that failed for a transient reason after the next group was staged: their
        # windows are exported again, as new attempts, at the end of the run.
        self._merges_to_retry: list[tuple[TransientJobFailure, list[Window]]] = []

    def execute(self) -> RunResult:
        book, result = self.book, self.book.result
        self._announce()
        destination = stage = None
        try:
            self.source.open()
            destination = self.open_destination()
            plan = self._prepare_table(destination)
            stage = self._open_stage()
            self._export_windows(
                GroupSetup(
                    self.model,
                    self.source,
                    destination,
                    plan,
                    self.work_dir,
                    self.write_files,
                    append=self.appends,
                    stage=stage,
                )
            )
            result.status = "succeeded"
        except Exception as error:  # every way a run stops early is recorded, never raised
            self._stop_for(error)
        finally:
            if destination is not None:
                destination.close()
            if stage is not None:
                self._sweep_stage(stage)
            book.close_fence_store()
        book.record_end()
        if result.status == "succeeded":
            book.log("info", f"Done: {result.windows_done} window(s), {result.rows:,} rows.")
        return result

    def _announce(self) -> None:
        export, first, last = self.export, self.windows[0], self.windows[-1]
        self.book.log(
            "info",
            f"Exporting {len(self.windows)} window(s) of {export.model.value} "
            f"({first.start:%Y-%m-%d %H:%M} → {last.end:%Y-%m-%d %H:%M} UTC) "
            f"to {export.destination_label}.",
        )

    @property
    def appends(self) -> bool:
        """Append mode: windows are loaded into the table, read through its _latest view."""
        return self.model.model.is_mutable and self.export.write_mode == WriteMode.APPEND

    def _prepare_table(self, destination: Destination) -> TablePlan:
        export = self.export
        created = False
        if isinstance(destination, BigQueryDestination) and self.model.cluster_fields:
            # Partitioned and clustered, so that a MERGE reads only its days and keys.
            created = create_table_if_missing(
                destination, export.dataset_id, export.table_id, self.model, export.json_type
            )
        plan = destination.prepare_table(
            export.dataset_id, export.table_id, self.model, export.json_type
        )
        if created:
            plan = dataclasses.replace(plan, created=True)
        self.book.result.missing_fields = plan.missing_fields
        if plan.created:
            self.book.log("info", f"Created table {plan.table_ref} with the {export.model} schema.")
        if self.appends and isinstance(destination, BigQueryDestination):
            self._ensure_latest_view(destination, plan)
        if plan.missing_fields:
            self.book.log(
                "warning",
                f"Table {plan.table_ref} lacks model fields "
                f"{', '.join(plan.missing_fields)}; they are left out. Add them to the "
                "table to export them.",
            )
        return plan

    def _ensure_latest_view(self, destination: BigQueryDestination, plan: TablePlan) -> None:
        if ensure_latest_view(destination, plan, self.model):
            self.book.log(
                "info",
                f"Created view {latest_view_ref(plan.table_ref)}: the newest version per "
                "key of the table (append mode).",
            )

    def _open_stage(self) -> ExportStage | None:
        """The export's Cloud Storage stage, checked writable before ClickHouse writes."""
        stage = ExportStage.of(self.export)
        if stage is not None:
            stage.check_can_write(self.export)
            self.book.log(
                "info",
                f"Staging through {stage.location.uri}: ClickHouse writes the Parquet, "
                "BigQuery loads it from there.",
            )
        return stage

    def _sweep_stage(self, stage: ExportStage) -> None:
        """Objects of windows recorded done that a dead runner (or a failed delete) left."""
        try:
            done = set(self.book.store.done_window_starts(self.export.saved_id))
            removed = stage.sweep_done_windows(self.export, done)
        except BqtuiError as error:
            self.book.log("warning", f"Could not clean the Cloud Storage stage: {error}")
            return
        if removed:
            self.book.log(
                "info",
                f"Deleted {removed} Cloud Storage object(s) left by earlier runs of windows "
                "already done.",
            )

    def _stop_for(self, error: Exception) -> None:
        """Record why the run stopped early: its status, its error, the log line."""
        if isinstance(error, LockLost):
            self.book.end("interrupted", str(error), "error")
        elif isinstance(error, Cancelled):
            self.book.end("cancelled", str(error), "warning")
        elif isinstance(error, BqtuiError):
            self.book.end("failed", str(error), "error")
            if isinstance(error, PermissionProblem | StageAccessProblem):
                self.book.log("error", error.stop_note)
        else:  # a bug: record it, and let the other exports run
            log.exception("export %s failed unexpectedly", self.export.name)
            message = f"Internal error ({type(error).__name__}): {error}. Please report it."
            self.book.end("failed", message, "error")

    # -- the windows, group by group --------------------------------------------------------

    def _export_windows(self, setup: GroupSetup) -> None:
        """Every window; those of a MERGE that failed for a transient reason once the next
        group was staged are tried again at the end, up to ``JOB_ATTEMPTS_PER_RUN`` times."""
        pending = list(self.windows)
        for retry in range(JOB_ATTEMPTS_PER_RUN):
            try:
                while pending:
                    self.book.check_stop()
                    exported = self._export_group_with_retries(pending, setup)
                    pending = pending[exported:]
            finally:
                self._settle_in_flight()  # the last MERGE: awaited and recorded, whatever
            if not self._merges_to_retry:
                return
            if retry == JOB_ATTEMPTS_PER_RUN - 1:
                raise self._merges_to_retry[-1][0]
            pending = sorted(w for _, windows in self._merges_to_retry for w in windows)
            self._merges_to_retry = []
            self.book.pause(min(2.0 ** (retry + 1), 30.0))

    def _export_group_with_retries(self, windows: list[Window], setup: GroupSetup) -> int:
        """Export the first windows of ``windows`` as one group; return how many it took."""
        for tries in range(1, JOB_ATTEMPTS_PER_RUN + 1):
            try:
                return self._export_group(windows, setup)
            except TransientJobFailure as failure:
                if tries == JOB_ATTEMPTS_PER_RUN:
                    raise
                self.book.log("warning", f"{failure} Trying the window(s) again as a new attempt.")
                self.book.pause(min(2.0**tries, 30.0))
        raise AssertionError("unreachable")

    def _export_group(self, windows: list[Window], setup: GroupSetup) -> int:
        """Stage the next group while the previous group's MERGE runs in BigQuery, then wait
        for that MERGE (one DML on the table at a time) and submit this group's."""
        group = WindowGroup(self.book, setup)
        try:
            taken = self._stage_and_submit(group, windows)
            if group.merge_submitted and group.cancelled is None:
                self._in_flight = group  # awaited before the next MERGE, or at the run's end
            else:
                group.finish()
        finally:
            # After its group's windows are recorded, however that went.
            group.record_cancelled_window()
        if group.cancelled is not None:
            # Cancelled as a window began: the windows before it are exported, it is not.
            raise group.cancelled.error
        return taken

    def _stage_and_submit(self, group: WindowGroup, windows: list[Window]) -> int:
        """Fill the group, settle the previous group's MERGE, submit this group's; on a
        failure the group's windows are recorded failed (or cancelled) before it propagates."""
        try:
            taken = group.fill(windows)
            self._settle_in_flight()
            if group.needs_merge:
                if group.cancelled is None:
                    # The last safe point: the MERGE is atomic, so cancel waits for it.
                    self.book.check_stop()
                group.submit_merge()
        except BaseException as error:
            group.record_members_failed(error, merge_unresolved=group.merge_submitted)
            raise
        return taken

    def _settle_in_flight(self) -> None:
        group, self._in_flight = self._in_flight, None
        if group is None:
            return
        try:
            group.finish()
        except TransientJobFailure as failure:  # recorded failed; tried again at the end
            self.book.log("warning", f"{failure} Its window(s) are tried again as a new attempt.")
            self._merges_to_retry.append((failure, [m.attempt.window for m in group.members]))
