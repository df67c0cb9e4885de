"""What a run writes to: the final table's fields that the model knows, their types, and why
a table that cannot take the model's rows is refused."""

from collections.abc import Iterable
from dataclasses import dataclass, field

from google.cloud.bigquery import SchemaField

from bqtui.core.errors import DestinationError
from bqtui.models.base import ExportModel, ModelField

# BigQuery's legacy type names, as the table's schema may spell them.
TYPE_ALIASES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}


@dataclass(frozen=True)
class TablePlan:
    """What a run writes to: the table's fields that the model knows, and their types."""

    table_ref: str
    fields: list[ModelField]  # model fields the table has, in model order
    json_fields: set[str]  # of those, the ones stored as JSON in the table
    missing_fields: list[str]  # model fields the table lacks (left out)
    created: bool = False
    table_type_by_field: dict[str, str] = field(default_factory=dict)

    @property
    def source_fields(self) -> list[ModelField]:
        return [f for f in self.fields if f.from_source]


def plan_table(
    ref: str, schema: Iterable[SchemaField], model: ExportModel, json_type: bool, created: bool
) -> TablePlan:
    """The plan for a table with this schema; raises ``DestinationError`` when the table lacks
    the model's merge key or versions, or a column has another type than the model writes."""
    table_types = {f.name: (f.field_type, f.mode) for f in schema}
    lacking = [name for name in model.required_fields if name not in table_types]
    if lacking:
        raise DestinationError(missing_key_message(ref, model, json_type, lacking))
    fields: list[ModelField] = []
    json_fields: set[str] = set()
    missing: list[str] = []
    for model_field in model.fields:
        if model_field.name not in table_types:
            if not model_field.optional:
                missing.append(model_field.name)
            continue
        table_type, mode = table_types[model_field.name]
        expected = {"JSON", "STRING"} if model_field.json_capable else {model_field.bq_type}
        table_type = TYPE_ALIASES.get(table_type, table_type)
        if table_type not in expected or (model_field.repeated != (mode == "REPEATED")):
            raise DestinationError(
                f"Column {model_field.name} of {ref} is {mode} {table_type}, but the "
                f"{model.model.value} model writes "
                f"{model_field.schema_field(json_type).mode} "
                f"{model_field.destination_type(json_type)}. Fix the column or export to "
                "a new table."
            )
        fields.append(model_field)
        if table_type == "JSON":
            json_fields.add(model_field.name)
    return TablePlan(ref, fields, json_fields, missing, created)


def missing_key_message(ref: str, model: ExportModel, json_type: bool, lacking: list[str]) -> str:
    """Why a table without the model's merge key or versions is refused, and the fix."""
    adds = ", ".join(
        f"ADD COLUMN `{name}` {model.field(name).destination_type(json_type)}" for name in lacking
    )
    return (
        f"Table {ref} lacks {', '.join(lacking)}, which the {model.model.value} model needs "
        f"to merge rows without overwriting others; nothing was exported. Add "
        f"{'it' if len(lacking) == 1 else 'them'}: ALTER TABLE `{ref}` {adds}; — or export to "
        "a new table (bqtui creates it with the full schema)."
    )
