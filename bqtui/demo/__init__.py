"""The demo: a local BigQuery emulator, generated product-analytics data and demo exports.

May import: core, models, source, destination, state, pipeline, ops."""
