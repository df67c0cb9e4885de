"""BigQuery: tables, loads, MERGE, jobs, error translation, key files and permissions.

May import: core, models."""
