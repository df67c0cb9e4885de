import pytest

from bqtui.core.errors import ConfigError
from bqtui.core.ids import validate_dataset_id, validate_table_id


def test_bare_ids_pass():
    assert validate_dataset_id("posthog_exports") == "posthog_exports"
    assert validate_table_id("MyExportTable") == "MyExportTable"
    assert validate_table_id("events-2024 ü") == "events-2024 ü"


def test_fully_qualified_table_name_suggests_the_bare_id():
    with pytest.raises(ConfigError) as caught:
        validate_table_id("project-123:dataset:MyExportTable")
    assert str(caught.value) == (
        '"project-123:dataset:MyExportTable" is a fully qualified name, not a table ID. '
        'Use the bare table ID "MyExportTable" and the dataset ID "dataset"; the project '
        "comes from the key file."
    )


def test_dotted_table_name_suggests_the_bare_id():
    with pytest.raises(
        ConfigError, match=r'Use the bare table ID "table" and the dataset ID "dataset"'
    ):
        validate_table_id("project.dataset.table")


def test_qualified_dataset_id_suggests_the_bare_id():
    with pytest.raises(ConfigError) as caught:
        validate_dataset_id("project-123:analytics")
    assert str(caught.value) == (
        '"project-123:analytics" is a qualified name, not a dataset ID. Use the bare dataset '
        'ID "analytics"; the project comes from the key file.'
    )


@pytest.mark.parametrize("bad", ["has-dash", "sp ace", "ü"])
def test_invalid_dataset_characters(bad):
    with pytest.raises(ConfigError, match="use only letters, numbers and underscores"):
        validate_dataset_id(bad)


def test_empty_ids():
    with pytest.raises(ConfigError, match="Dataset ID is required"):
        validate_dataset_id(" ")
    with pytest.raises(ConfigError, match="Table ID is required"):
        validate_table_id("")
    with pytest.raises(ConfigError, match="is not a valid table ID"):
        validate_table_id("bad/table")
