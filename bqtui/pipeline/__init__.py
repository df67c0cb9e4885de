"""The runner: resolve an earlier job, select, encode, stage, merge, record, window by window.

May import: core, models, source, destination, state, stage."""
