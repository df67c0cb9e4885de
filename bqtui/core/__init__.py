"""Typed configs, errors, IDs, paths and test checkpoints: what every package shares.

May import: nothing of bqtui (only the standard library and third-party packages)."""
