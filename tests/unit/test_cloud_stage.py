"""How a stage splits windows into objects, and how folder labels read back as windows."""

from datetime import UTC, datetime

import pytest

from bqtui.pipeline.cloud_stage import SPLIT_FROM_ROWS, parts_for
from bqtui.stage.location import window_label, window_of_label


@pytest.mark.parametrize(
    ("previous", "parts"),
    [(None, 4), (0, 1), (SPLIT_FROM_ROWS - 1, 1), (SPLIT_FROM_ROWS, 4), (10_000_000, 4)],
)
def test_a_window_is_split_unless_the_one_before_it_was_small(previous, parts):
    assert parts_for(previous, 4) == parts


@pytest.mark.parametrize(
    "start",
    [
        datetime(2026, 12, 5, 15, tzinfo=UTC),
        datetime(2026, 12, 5, 15, 5, 30, tzinfo=UTC),
        datetime(2026, 12, 5, 15, 5, 30, 123456, tzinfo=UTC),
    ],
)
def test_folder_labels_read_back_as_their_window(start):
    assert window_of_label(window_label(start)) == start


@pytest.mark.parametrize("label", ["", ".bqtui-write-check-abc", "2026-12-05", "20261205T15"])
def test_other_names_are_not_windows(label):
    assert window_of_label(label) is None
