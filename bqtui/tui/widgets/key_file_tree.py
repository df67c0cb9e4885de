"""A file browser that shows folders and .json files only: where a key file can be."""

from collections.abc import Iterable
from pathlib import Path

from textual.widgets import DirectoryTree


class KeyFileTree(DirectoryTree):
    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            path
            for path in paths
            if not path.name.startswith(".")
            and (self._safe_is_dir(path) or path.suffix.lower() == ".json")
        ]
