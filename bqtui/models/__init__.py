"""The export models (events, persons, sessions): one module each, the same shape each (see
``base.ExportModel``): fields, ClickHouse query, merge rules.

May import: core."""

from bqtui.core.config import Model
from bqtui.models.base import ExportModel, ModelField
from bqtui.models.events import EVENTS
from bqtui.models.persons import PERSONS
from bqtui.models.sessions import SESSIONS

MODELS: dict[Model, ExportModel] = {
    Model.EVENTS: EVENTS,
    Model.PERSONS: PERSONS,
    Model.SESSIONS: SESSIONS,
}


def get_model(model: Model) -> ExportModel:
    return MODELS[Model(model)]


__all__ = ["MODELS", "ExportModel", "ModelField", "get_model"]
