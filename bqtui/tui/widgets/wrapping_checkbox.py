"""A checkbox whose long label wraps instead of being cut off at the edge."""

from textual.geometry import Size
from textual.widgets import Checkbox


class WrappingCheckbox(Checkbox):
    DEFAULT_CSS = """
    WrappingCheckbox {
        width: 1fr;
        height: auto;
        text-wrap: wrap;
    }
    """

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self.render().get_height(self.styles.get_render_rules(), width)
