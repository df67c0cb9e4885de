"""What bqtui keeps: SQLite (exports, runs, windows, locks with fencing) and the keyring.

May import: core."""
