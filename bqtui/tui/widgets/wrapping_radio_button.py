"""A radio button whose long label wraps under itself (a hanging indent) instead of being cut
off at the edge."""

from typing import Any

from textual.content import Content
from textual.geometry import Size
from textual.widgets import RadioButton


class WrappingRadioButton(RadioButton):
    DEFAULT_CSS = """
    WrappingRadioButton {
        width: 1fr;
        height: auto;
        text-wrap: wrap;
    }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.measured_width = 0  # the width the last height was measured at

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self.measured_width = width
        return self.hanging(width).get_height(self.styles.get_render_rules(), width)

    def render(self) -> Content:
        return self.hanging(self.content_size.width or self.measured_width)

    def hanging(self, width: int) -> Content:
        """The button, then the label wrapped so its lines start under its first word."""
        button = self._button
        indent = button.cell_length + 1
        label = self._label.stylize_before(self.get_visual_style("toggle--label"))
        lines = label.wrap(max(width - indent - 1, 10)) if width else [label]
        return Content("\n").join(
            Content.assemble(button if number == 0 else " " * button.cell_length, " ", line, " ")
            for number, line in enumerate(lines)
        )
