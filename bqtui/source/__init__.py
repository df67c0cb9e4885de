"""ClickHouse: DSN parsing, the source (embedded chdb or a server over HTTP(S)), the check.

May import: core, models."""
