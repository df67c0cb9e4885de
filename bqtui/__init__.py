"""bqtui: export product-analytics data from ClickHouse to Google BigQuery.

The core (everything outside ``bqtui.tui``) is plain Python and never imports Textual.
"""

__version__ = "0.1.0"
