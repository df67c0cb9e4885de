"""The export models: one module each, the same shape each (see ``base.ExportModel``)."""

from ..config import Model
from .base import ExportModel, ModelField
from .events import EVENTS
from .persons import PERSONS
from .sessions import SESSIONS

MODELS: dict[Model, ExportModel] = {
    Model.EVENTS: EVENTS,
    Model.PERSONS: PERSONS,
    Model.SESSIONS: SESSIONS,
}


def get_model(model: Model) -> ExportModel:
    return MODELS[Model(model)]


__all__ = ["MODELS", "ExportModel", "ModelField", "get_model"]
