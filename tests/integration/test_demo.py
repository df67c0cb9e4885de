"""The README's first command, headless: the demo starts from nothing and exports its data."""

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from bqtui.state.store import Store

HOUR = timedelta(hours=1)
DEMO_SPAN = timedelta(days=2)  # the demo's data: the two days up to the hour it is made


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def due_hourly_windows(start: datetime, now: datetime, settle: timedelta) -> int:
    """Hourly windows from ``start`` that have ended and settled by ``now``."""
    return max((floor_hour(now - settle) - start) // HOUR, 0)


def test_demo_run_exports_every_demo_window(tmp_path):
    folder = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    before = datetime.now(UTC)
    result = subprocess.run(
        [sys.executable, "-m", "bqtui.cli", "demo", "--folder", str(folder), "--run"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    after = datetime.now(UTC)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "demo-events",
        "demo-persons",
        "demo-sessions",
    ]
    # Every hourly window of the demo's two days that had ended and settled when the run
    # looked, some time between before and after: 48 as a rule; 47 in the settle delay's
    # first minute after an hour (the last hour is not settled yet); 49 when an hour passes
    # during the run.
    exports = {e.name: e for e in Store(folder / "bqtui.db").list_exports()}
    for line in lines:
        export = exports[line.split(":")[0]]
        assert floor_hour(before) - DEMO_SPAN <= export.start_at <= floor_hour(after) - DEMO_SPAN
        low = due_hourly_windows(export.start_at, before, export.settle)
        high = due_hourly_windows(export.start_at, after, export.settle)
        done, total = map(int, re.search(r": succeeded, (\d+)/(\d+) windows", line).groups())
        assert done == total and low <= total <= high, (line, low, high)
    runs = Store(folder / "bqtui.db").list_runs()
    assert {r.status for r in runs} == {"succeeded"} and sum(r.rows for r in runs) > 5000
    assert "PRIVATE KEY" not in result.stderr + result.stdout
