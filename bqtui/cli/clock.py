"""The time the commands see as now."""

import os
from datetime import datetime

from bqtui.core.config import parse_timestamp
from bqtui.state.store import utcnow


def now() -> datetime:
    """The current time; ``BQTUI_NOW`` (ISO 8601) sets it, for tests of timing only."""
    fixed = os.environ.get("BQTUI_NOW")
    return parse_timestamp(fixed, "BQTUI_NOW") if fixed else utcnow()
