"""The labelled row under a chart (a Sparkline): its first and last label at the two ends, and
the largest value in the middle as the chart's scale (a Sparkline has no axis of its own)."""

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from bqtui.tui.formatting import rows_text


def axis_texts(labels: Sequence[str], values: Sequence[float]) -> tuple[str, str, str]:
    """(first label, scale, last label); all empty while the chart has no data."""
    if not labels or not values:
        return "", "", ""
    scale = f"max {rows_text(round(max(values)))}"
    last = labels[-1] if len(labels) > 1 else ""
    return labels[0], scale, last


class ChartAxis(Horizontal):
    DEFAULT_CSS = """
    ChartAxis {
        height: 1;
        margin: 0 1;
        color: $text-muted;
    }
    ChartAxis > Static {
        width: 1fr;
    }
    ChartAxis > .axis-scale {
        text-align: center;
    }
    ChartAxis > .axis-last {
        text-align: right;
    }
    """

    def compose(self) -> ComposeResult:
        yield Static("", classes="axis-first", markup=False)
        yield Static("", classes="axis-scale", markup=False)
        yield Static("", classes="axis-last", markup=False)

    def show(self, labels: Sequence[str], values: Sequence[float]) -> None:
        """Label the chart of ``values``: ``labels`` name them, in the same order."""
        first, scale, last = axis_texts(labels, values)
        self.query_one(".axis-first", Static).update(first)
        self.query_one(".axis-scale", Static).update(scale)
        self.query_one(".axis-last", Static).update(last)
