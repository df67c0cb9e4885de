"""The command line: parses, calls the core, prints; with no command it opens the TUI.

May import: core, models, source, destination, state, pipeline, ops, demo, tui (lazily)."""

from bqtui.cli.main import main

__all__ = ["main"]
