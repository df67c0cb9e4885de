"""The subcommands, one module per group; each lists its commands in ``COMMANDS``."""
