"""tests.harness.sql_tables: the tables a statement reads and writes."""

from tests.harness.sql_tables import DatasetRef, TableRef, statements


def only_statement(sql, default_dataset=None):
    [statement] = statements(sql, default_project="proj", default_dataset=default_dataset)
    return statement


def test_a_query_reads_qualified_tables_in_every_quoting_style():
    statement = only_statement(
        "SELECT * FROM `other-proj.ds.events` e JOIN ds.persons AS p ON e.id = p.id "
        "LEFT JOIN `proj`.`ds2`.`sessions` s USING (id)"
    )
    assert statement.verb == "SELECT"
    assert statement.target is None
    assert statement.reads == {
        TableRef("other-proj", "ds", "events"),
        TableRef("proj", "ds", "persons"),
        TableRef("proj", "ds2", "sessions"),
    }


def test_merge_targets_its_table_and_reads_its_source_but_not_column_references():
    statement = only_statement(
        """
        -- upsert from the stage table
        MERGE `proj.ds.persons` T
        USING `proj.ds.stage_123` S
        ON T.team_id = S.team_id AND T.distinct_id = S.distinct_id
        WHEN MATCHED AND (S.version, EXTRACT(YEAR FROM S.created_at)) > (T.version, 0)
            AND S.properties IS DISTINCT FROM T.properties THEN UPDATE SET properties = S.properties
        WHEN NOT MATCHED THEN INSERT ROW
        """
    )
    assert statement.verb == "MERGE"
    assert statement.target == TableRef("proj", "ds", "persons")
    assert statement.reads == {TableRef("proj", "ds", "stage_123")}


def test_comments_strings_ctes_and_functions_are_not_tables():
    statement = only_statement(
        "/* FROM ds.nope */ WITH recent AS (SELECT * FROM t WHERE s = 'FROM ds.nope') "
        "SELECT * FROM recent, UNNEST(recent.arr) # FROM ds.nope\n",
        default_dataset=DatasetRef("proj", "ds"),
    )
    assert statement.reads == {TableRef("proj", "ds", "t")}


def test_a_script_is_split_into_statements():
    insert, drop = statements(
        "INSERT INTO ds.final (a) SELECT a FROM ds.stage; DROP TABLE IF EXISTS ds.stage;",
        default_project="proj",
    )
    assert (insert.verb, insert.target, insert.reads) == (
        "INSERT",
        TableRef("proj", "ds", "final"),
        {TableRef("proj", "ds", "stage")},
    )
    assert (drop.verb, drop.target) == ("DROP", TableRef("proj", "ds", "stage"))


def test_information_schema_reads_are_metadata_reads_of_their_dataset():
    statement = only_statement(
        "SELECT column_name FROM `proj.ds.INFORMATION_SCHEMA.COLUMNS` "
        "UNION ALL SELECT job_id FROM `region-us`.INFORMATION_SCHEMA.JOBS"
    )
    assert statement.reads == set()
    assert statement.metadata_reads == {DatasetRef("proj", "ds")}
