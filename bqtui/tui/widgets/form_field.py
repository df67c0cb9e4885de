"""A labelled form control with a hint and a place for its validation message."""

from collections.abc import Callable
from typing import Any, TypeVar

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Input, Label, Static

from bqtui.core.errors import ConfigError

T = TypeVar("T")


class FormField(Vertical):
    def __init__(self, label: str, control: Widget, hint: str = "", **kwargs: Any) -> None:
        super().__init__(classes="form-field", **kwargs)
        self.label = label
        self.control = control
        self.hint = hint

    def compose(self) -> ComposeResult:
        yield Label(self.label, classes="field-label")
        yield self.control
        if self.hint:
            yield Static(self.hint, classes="field-hint", markup=False)
        yield Static("", classes="field-error", markup=False)

    def show_error(self, message: str | None) -> None:
        error = self.query_one(".field-error", Static)
        error.update(message or "")
        error.display = bool(message)
        self.set_class(bool(message), "-invalid")


class ErrorLine(Static):
    """A step's or form's own error (one that spans fields): hidden while there is none."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", classes="step-error", markup=False, **kwargs)

    def show(self, message: str | None) -> None:
        self.update(message or "")
        self.display = bool(message)


class FieldParser:
    """Parses a form's inputs one by one, each input's error shown under it (all at once, not
    just the first); ``ok`` stays True while every input parsed."""

    def __init__(self, form: Widget):
        self.form = form
        self.ok = True

    def parse(self, input_id: str, parse: Callable[[str], T], fallback: T) -> T:
        """The parsed value; the fallback (never used: ``ok`` is False then) on a problem."""
        error, value = None, fallback
        try:
            value = parse(self.form.query_one(f"#{input_id}", Input).value)
        except ConfigError as problem:
            error, self.ok = str(problem), False
        self.form.query_one(f"#field-{input_id}", FormField).show_error(error)
        return value
