"""`python -m bqtui.cli` (what `bqtui schedule install` writes into crontabs)."""

import sys

from bqtui.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
