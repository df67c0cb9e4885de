"""Start bqemulator without requiring its DuckDB spatial extension.

Run by the emulator venv's python (see ``bqtui.demo.emulator``), so it may import only what
that venv has, never bqtui. bqemulator runs ``INSTALL spatial`` at start and exits when
the download fails, as it always does offline; bqtui needs no spatial SQL, so loading
the extension becomes best-effort.
"""

import contextlib
import sys

from bqemulator.cli import main
from bqemulator.storage import engine


def _load_spatial_if_available(self):
    with contextlib.suppress(Exception):
        self._connection.execute("LOAD spatial")


engine.DuckDBEngine._load_spatial = _load_spatial_if_available

if __name__ == "__main__":
    sys.argv = ["bqemulator", *sys.argv[1:]]
    main()
