"""A file browser of folders and .json files only: where a key or credential file can be."""

from collections.abc import Iterable
from pathlib import Path

from textual.widgets import DirectoryTree


class KeyFileTree(DirectoryTree):
    # DirectoryTree's emoji icons are boxes in a font without emoji (many terminals, and the
    # README's screenshots): these characters are in every terminal font.
    ICON_NODE = "+ "
    ICON_NODE_EXPANDED = "- "
    ICON_FILE = "· "

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            path
            for path in paths
            if not path.name.startswith(".")
            and (self._safe_is_dir(path) or path.suffix.lower() == ".json")
        ]
