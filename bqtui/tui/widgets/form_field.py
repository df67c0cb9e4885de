"""A labelled form control with a hint and a place for its validation message."""

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Label, Static


class FormField(Vertical):
    def __init__(self, label: str, control: Widget, hint: str = "", **kwargs):
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

    def __init__(self, **kwargs):
        super().__init__("", classes="step-error", markup=False, **kwargs)

    def show(self, message: str | None) -> None:
        self.update(message or "")
        self.display = bool(message)
