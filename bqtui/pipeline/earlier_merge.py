"""Before a window is exported again: what became of the MERGE an earlier attempt submitted
(and crashed, or lost its answer, before recording)?"""

import contextlib

from bqtui.core.errors import BqtuiError, DestinationError
from bqtui.pipeline.attempt import Attempt
from bqtui.pipeline.ports import Destination
from bqtui.pipeline.run_book import RunBook


def resolve_earlier_merge(
    book: RunBook, destination: Destination, attempt: Attempt, job_id: str
) -> bool:
    """Before anything else: what became of the MERGE an earlier attempt submitted? Return
    whether the window is done.

    Done: the window is done (recorded, nothing run or billed). Still running: awaited.
    Failed or never created: this attempt starts over.
    """
    window, dataset_id = attempt.window, book.export.dataset_id
    # A lookup that fails raises: the window waits for the next run, its job still noted.
    outcome = destination.job_outcome(job_id, dataset_id)
    if outcome.state == "running":
        book.log(
            "info",
            f"Window {window.label()}: an earlier attempt's MERGE ({job_id}) is still "
            "running in BigQuery; waiting for it before anything else.",
        )
        # What the job says afterwards decides, not how the wait ended.
        with contextlib.suppress(BqtuiError):
            destination.wait_for(outcome.job, f"waiting for {job_id}", dataset_id)
        outcome = destination.job_outcome(job_id, dataset_id)
        if outcome.state == "running":
            raise DestinationError(
                f"Window {window.label()}: the earlier attempt's MERGE ({job_id}) is still "
                "running in BigQuery; the window is exported after it ends (next run)."
            )
    if outcome.state == "done":
        rows = book.pending_merge_rows(window)  # noted with the job
        book.log(
            "info",
            f"Window {window.label()}: the earlier attempt's MERGE ({job_id}) had "
            "succeeded; recorded the window as done without running it again.",
        )
        book.record_done(attempt, rows, 0, [job_id])
        return True
    detail = f" ({outcome.error})" if outcome.error else ""
    book.log(
        "info",
        f"Window {window.label()}: the earlier attempt's MERGE ({job_id}) "
        f"{'never started' if outcome.state == 'missing' else 'failed'}{detail}; "
        "exporting the window again.",
    )
    book.note_pending_merge(attempt, None)
    return False
