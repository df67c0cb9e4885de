"""Append mode's view: ``<table>_latest`` returns the newest version per key of a table that
every window's rows are loaded into (load jobs are free; no MERGE reads the table).

The view ranks a key's rows as the MERGE ranks a stage's (``newest_first``: versions
descending, then the same tie-breakers), so its readers see what a merge-mode table holds.
It is defined through the tables API (a view costs nothing to define, and no query job runs).
"""

from google.api_core import exceptions as api_errors
from google.cloud import bigquery

from bqtui.destination.bigquery import REQUEST_TIMEOUT, BigQueryDestination
from bqtui.destination.failures import API_FAILURES
from bqtui.destination.statements import newest_first, quote
from bqtui.destination.table_plan import TablePlan
from bqtui.models.base import ExportModel

LATEST_SUFFIX = "_latest"


def latest_view_id(table_id: str) -> str:
    return f"{table_id}{LATEST_SUFFIX}"


def latest_view_ref(table_ref: str) -> str:
    return f"{table_ref}{LATEST_SUFFIX}"


def latest_view_query(plan: TablePlan, model: ExportModel) -> str:
    """The newest row per key of the table, exactly one per key."""
    partition_by, order_by = newest_first(plan, model)
    return (
        f"SELECT * EXCEPT (_bqtui_rank) FROM (SELECT *, ROW_NUMBER() OVER "
        f"(PARTITION BY {partition_by} ORDER BY {order_by}) AS _bqtui_rank "
        f"FROM {quote(plan.table_ref)}) WHERE _bqtui_rank = 1"
    )


def ensure_latest_view(
    destination: BigQueryDestination, plan: TablePlan, model: ExportModel
) -> bool:
    """Create the table's ``_latest`` view unless it exists (a view the user changed is left
    as it is); return whether it was created."""
    ref = latest_view_ref(plan.table_ref)
    dataset_id = plan.table_ref.split(".")[1]
    view = bigquery.Table(ref)
    view.view_query = latest_view_query(plan, model)
    view.description = (
        f"The newest version per key of {plan.table_ref} (bqtui append mode). Queries of this "
        "view read the whole table; compact it when reads grow expensive (README: Write "
        "modes and cost)."
    )
    try:
        destination.client.create_table(view, retry=destination.retry, timeout=REQUEST_TIMEOUT)
    except api_errors.Conflict:
        return False
    except API_FAILURES as error:
        raise destination.translate(error, f"creating view {ref}", dataset_id) from None
    return True
