"""The README's first command, headless: the demo starts from nothing and exports its data."""

import os
import re
import subprocess
import sys

from bqtui.store import Store


def test_demo_run_exports_every_demo_window(tmp_path):
    folder = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    result = subprocess.run(
        [sys.executable, "-m", "bqtui.cli", "demo", "--folder", str(folder), "--run"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "demo-events",
        "demo-persons",
        "demo-sessions",
    ]
    # Two days of hourly windows (49 when an hour boundary passes during the run).
    done = [re.search(r": succeeded, (\d+)/(\d+) windows", line).groups() for line in lines]
    assert all(d == t and int(t) in (48, 49) for d, t in done), lines
    runs = Store(folder / "bqtui.db").list_runs()
    assert {r.status for r in runs} == {"succeeded"} and sum(r.rows for r in runs) > 5000
    assert "PRIVATE KEY" not in result.stderr + result.stdout
