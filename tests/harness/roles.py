"""BigQuery permissions and the roles tests grant.

Only permissions the proxy enforces are listed; a real role holds more (models, routines,
tags, ...) that bqtui never touches.
"""

DATASETS_CREATE = "bigquery.datasets.create"
DATASETS_DELETE = "bigquery.datasets.delete"
DATASETS_GET = "bigquery.datasets.get"
DATASETS_UPDATE = "bigquery.datasets.update"
JOBS_CREATE = "bigquery.jobs.create"
JOBS_DELETE = "bigquery.jobs.delete"
JOBS_LIST = "bigquery.jobs.list"
TABLES_CREATE = "bigquery.tables.create"
TABLES_DELETE = "bigquery.tables.delete"
TABLES_EXPORT = "bigquery.tables.export"
TABLES_GET = "bigquery.tables.get"
TABLES_GET_DATA = "bigquery.tables.getData"
TABLES_LIST = "bigquery.tables.list"
TABLES_UPDATE = "bigquery.tables.update"
TABLES_UPDATE_DATA = "bigquery.tables.updateData"

# roles/bigquery.jobUser, granted on the project.
JOB_USER = frozenset({JOBS_CREATE})

# roles/bigquery.dataEditor. Granted on a project it also lets the holder create datasets;
# unlike dataOwner it cannot update or delete datasets.
DATA_EDITOR = frozenset(
    {
        DATASETS_CREATE,
        DATASETS_GET,
        TABLES_CREATE,
        TABLES_DELETE,
        TABLES_EXPORT,
        TABLES_GET,
        TABLES_GET_DATA,
        TABLES_LIST,
        TABLES_UPDATE,
        TABLES_UPDATE_DATA,
    }
)

# roles/bigquery.dataOwner, which BigQuery gives the creator of a dataset on that dataset.
DATA_OWNER = DATA_EDITOR | {DATASETS_DELETE, DATASETS_UPDATE}

# The custom role bqtui documents for its service account (jobs.create on the project,
# the rest on the dataset); mutable models also need tables.delete.
SEED_CUSTOM_ROLE = frozenset(
    {
        DATASETS_GET,
        JOBS_CREATE,
        TABLES_CREATE,
        TABLES_GET,
        TABLES_GET_DATA,
        TABLES_LIST,
        TABLES_UPDATE_DATA,
    }
)

# Everything the proxy checks: the admin account used for test setup holds all of it.
ALL_PERMISSIONS = DATA_OWNER | {JOBS_CREATE, JOBS_DELETE, JOBS_LIST}
