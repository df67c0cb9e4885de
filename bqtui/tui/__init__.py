"""The Textual face: app, screens, widgets, messages and styles, on the same core as the CLI.

May import: core, models, source, destination, state, pipeline, ops, demo (never cli)."""
