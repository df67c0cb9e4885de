"""The row under a chart: its first and last label, and the largest value as its scale."""

from bqtui.tui.widgets.chart_axis import axis_texts


def test_the_axis_names_the_ends_and_the_largest_value():
    days = ["2024-05-01", "2024-05-02", "2024-05-03"]
    assert axis_texts(days, [12.0, 1834.6, 0.0]) == ("2024-05-01", "max 1,835", "2024-05-03")


def test_one_value_has_one_label_and_no_data_has_none():
    assert axis_texts(["2024-05-01"], [7.0]) == ("2024-05-01", "max 7", "")
    assert axis_texts([], []) == ("", "", "")
