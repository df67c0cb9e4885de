"""The SQL of the cost-bounded layouts: the sessions MERGE's constant partition filter, the
append mode's ``_latest`` view (ranked as the MERGE ranks), and `bqtui check`'s advice."""

from datetime import UTC, datetime

from google.cloud.bigquery import SchemaField

from bqtui.core.config import Model
from bqtui.core.cost import WriteMode
from bqtui.destination.latest_view import latest_view_id, latest_view_query
from bqtui.destination.statements import merge_statement, newest_first, partition_filter
from bqtui.destination.table_layout import TableLayout, layout_advice, new_table
from bqtui.destination.table_plan import plan_table
from bqtui.models import get_model

SESSIONS = get_model(Model.SESSIONS)
PERSONS = get_model(Model.PERSONS)
EVENTS = get_model(Model.EVENTS)
LOW, HIGH = datetime(2024, 5, 1, 10, 59, tzinfo=UTC), datetime(2024, 5, 3, 0, 0, 1, tzinfo=UTC)


def plan_of(model, ref="p.d.t", drop=()):
    schema = [f for f in model.schema(False) if f.name not in drop]
    return plan_table(ref, schema, model, False, created=False)


def test_a_sessions_merge_names_exactly_the_days_of_its_rows_and_the_null_partition():
    sql = merge_statement(plan_of(SESSIONS), "p.d.stage", SESSIONS, (LOW, HIGH))
    on = sql.split("\nON ", 1)[1].split("\n", 1)[0]
    assert on == (
        "final.`team_id` = stage.`team_id` AND final.`session_id` = stage.`session_id` AND "
        "(final.`session_id_time` BETWEEN TIMESTAMP '2024-05-01T10:59:00.000000+00:00' "
        "AND TIMESTAMP '2024-05-03T00:00:01.000000+00:00' OR final.`session_id_time` IS NULL)"
    )


def test_a_stage_of_only_other_ids_matches_only_the_null_partition():
    assert partition_filter(plan_of(SESSIONS), SESSIONS, None) == (
        "final.`session_id_time` IS NULL"
    )


def test_a_table_without_the_column_merges_as_before():
    plan = plan_of(SESSIONS, drop=("session_id_time",))
    assert partition_filter(plan, SESSIONS, (LOW, HIGH)) is None
    assert "session_id_time" not in merge_statement(plan, "p.d.stage", SESSIONS, (LOW, HIGH))


def test_events_keep_their_filter():
    assert partition_filter(plan_of(EVENTS), EVENTS, (LOW, HIGH)) == (
        "final.`timestamp` BETWEEN TIMESTAMP '2024-05-01T10:59:00.000000+00:00' "
        "AND TIMESTAMP '2024-05-03T00:00:01.000000+00:00'"
    )
    assert partition_filter(plan_of(PERSONS), PERSONS, None) is None


def test_sessions_of_equal_end_are_ordered_by_what_they_know_in_the_merge_and_the_view():
    plan = plan_of(SESSIONS, ref="p.d.sessions")
    merge = merge_statement(plan, "p.d.stage", SESSIONS, (LOW, HIGH))
    assert (
        "WHEN MATCHED AND (((final.`end_timestamp` IS NULL OR stage.`end_timestamp` > "
        "final.`end_timestamp`)) OR (stage.`end_timestamp` = final.`end_timestamp` AND "
        "(final.`max_inserted_at` IS NULL OR stage.`max_inserted_at` >= "
        "final.`max_inserted_at`))) THEN UPDATE" in merge
    ), merge
    order = "ORDER BY `end_timestamp` DESC, `max_inserted_at` DESC, "
    assert order in merge and order in latest_view_query(plan, SESSIONS)
    # A table made before the column: the end alone, the later load winning a tie.
    older = plan_of(SESSIONS, drop=("max_inserted_at",))
    assert "max_inserted_at" not in merge_statement(older, "p.d.stage", SESSIONS, (LOW, HIGH))
    assert "max_inserted_at" in older.missing_fields


def test_the_latest_view_ranks_as_the_merge_does():
    plan = plan_of(PERSONS, ref="p.d.persons")
    assert latest_view_id("persons") == "persons_latest"
    assert latest_view_query(plan, PERSONS) == (
        "SELECT * EXCEPT (_bqtui_rank) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "
        "`team_id`, `distinct_id` ORDER BY `person_distinct_id_version` DESC, `person_version` "
        "DESC, TO_JSON_STRING(`person_id`), TO_JSON_STRING(`properties`), "
        "TO_JSON_STRING(`created_at`)) AS _bqtui_rank FROM `p.d.persons`) WHERE _bqtui_rank = 1"
    )
    for model in (PERSONS, SESSIONS):
        plan = plan_of(model)
        partition_by, order_by = newest_first(plan, model)
        ranking = f"PARTITION BY {partition_by} ORDER BY {order_by}"
        assert ranking in latest_view_query(plan, model)
        assert ranking in merge_statement(plan, "p.d.stage", model)


def test_new_sessions_tables_are_partitioned_by_the_id_time_and_clustered_by_the_key():
    table = new_table("p.d.sessions", SESSIONS, False)
    assert table.time_partitioning.field == "session_id_time"
    assert table.time_partitioning.type_ == "DAY"
    assert table.clustering_fields == ["team_id", "session_id"]
    assert SchemaField("session_id_time", "TIMESTAMP") in table.schema
    assert new_table("p.d.persons", PERSONS, False).time_partitioning is None


def layout(columns, partition=None):
    return TableLayout(frozenset(columns), partition, (), 3 * 10**9)


def test_check_advises_migrating_an_unpartitioned_sessions_table():
    names = frozenset(SESSIONS.field_names) - {"session_id_time"}
    [note] = layout_advice("p.d.s", layout(names), SESSIONS, WriteMode.MERGE)
    assert "every MERGE reads (and bills) the whole table" in note
    assert (
        "CREATE TABLE `p.d.s_partitioned` PARTITION BY TIMESTAMP_TRUNC(session_id_time, DAY) "
        "CLUSTER BY team_id, session_id AS SELECT *, IF(REGEXP_CONTAINS(session_id" in note
    )
    assert "ALTER TABLE `p.d.s` RENAME TO `s_unpartitioned`;" in note
    assert "ALTER TABLE `p.d.s_partitioned` RENAME TO `s`;" in note
    # The column is there, the partitioning is not: copied as it is.
    [note] = layout_advice("p.d.s", layout(SESSIONS.field_names), SESSIONS, WriteMode.MERGE)
    assert "AS SELECT * FROM `p.d.s`;" in note
    partitioned = layout(SESSIONS.field_names, "session_id_time")
    assert layout_advice("p.d.s", partitioned, SESSIONS, WriteMode.MERGE) == []
    assert layout_advice("p.d.s", layout(names), SESSIONS, WriteMode.APPEND) == []


def test_check_suggests_append_mode_for_persons_in_merge_mode():
    [note] = layout_advice("p.d.p", layout(PERSONS.field_names), PERSONS, WriteMode.MERGE)
    assert "(3.0 GB now)" in note and "--write-mode append" in note
    assert layout_advice("p.d.p", layout(PERSONS.field_names), PERSONS, WriteMode.APPEND) == []
    assert layout_advice("p.d.e", layout(EVENTS.field_names), EVENTS, WriteMode.MERGE) == []
