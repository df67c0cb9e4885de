"""Regenerate the README screenshots in assets/: home, wizard key step, permission checklist, run.

    .venv/bin/python scripts/screenshots.py

Everything runs locally and throwaway: demo data in an embedded ClickHouse in a temporary
folder, the BigQuery emulator behind the test harness's token server and IAM proxy (so a
missing permission shows as it does at Google), and a plain file keyring in that folder.
Needs rsvg-convert (Debian: librsvg2-bin) to turn Textual's SVG screenshots into PNG.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.mkdtemp(prefix="bqtui-screenshots-"))
# Before anything imports keyring or resolves bqtui's data dir: nothing of the user's is touched.
os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
os.environ["XDG_DATA_HOME"] = str(WORK / "xdg-data")
os.environ["XDG_CONFIG_HOME"] = str(WORK / "xdg-config")
os.environ["BQTUI_DATA_DIR"] = str(WORK / "data")
os.environ.setdefault("BQTUI_BQEMULATOR_VENV", str(ROOT / ".bqemu-venv"))
sys.path.insert(0, str(ROOT))

from bqtui.core.config import ExportConfig, Interval, Model  # noqa: E402
from bqtui.demo import data as demo_data  # noqa: E402
from bqtui.demo.emulator import default_venv_dir, ensure_installed, start_emulator  # noqa: E402
from bqtui.destination.keyfile import load_key_file  # noqa: E402
from bqtui.ops.export_setup import create_export  # noqa: E402
from bqtui.pipeline.runner import ExportRunner  # noqa: E402
from bqtui.source.clickhouse import ClickHouseSource  # noqa: E402
from bqtui.state.store import Store  # noqa: E402
from bqtui.tui.app import create_app  # noqa: E402
from bqtui.tui.screens.run import RunScreen  # noqa: E402
from bqtui.tui.widgets.permission_report import PermissionReport  # noqa: E402
from tests.harness.google import DATA_EDITOR, JOB_USER, FakeGoogle  # noqa: E402

PROJECT = "acme-analytics"
DATASET = "analytics"
SIZE = (120, 36)
ASSETS = ROOT / "assets"


def to_png(svg: Path, png: Path) -> None:
    # rsvg collapses a text element's leading spaces unless told to keep them.
    text = svg.read_text().replace("<svg ", '<svg xml:space="preserve" ', 1)
    svg.write_text(text)
    subprocess.run(["rsvg-convert", str(svg), "-o", str(png)], check=True)
    print(f"wrote {png.relative_to(ROOT)}")


async def wait_until(pilot, condition, timeout: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"waited {timeout}s for {condition}")
        await pilot.pause(0.1)


class Shooter:
    def __init__(self, google: FakeGoogle, source_dsn: str):
        self.google = google
        self.source_dsn = source_dsn
        self.db_path = WORK / "bqtui.db"
        google.admin_client(PROJECT).create_dataset(f"{PROJECT}.{DATASET}")
        exporter = google.new_account(
            PROJECT,
            "bqtui-exporter",
            project_permissions=JOB_USER,
            dataset_permissions={DATASET: DATA_EDITOR},
        )
        lacking = google.new_account(
            PROJECT, "bqtui-new", dataset_permissions={DATASET: DATA_EDITOR}
        )
        self.keys = WORK / "keys"
        self.key_file = exporter.write_key(self.keys / "bqtui-exporter.json")
        self.lacking_key_file = lacking.write_key(self.keys / "bqtui-new.json")

    def seed_exports(self, now: datetime) -> None:
        """Three exports like a real setup, each run once so the table has a history."""
        store = Store(self.db_path)
        key = load_key_file(self.key_file)
        for name, model, interval in (
            ("web-events", Model.EVENTS, Interval.HOUR),
            ("people", Model.PERSONS, Interval.DAY),
            ("sessions", Model.SESSIONS, Interval.DAY),
        ):
            create_export(
                store,
                ExportConfig(
                    name=name,
                    dataset_id=DATASET,
                    table_id=name.replace("-", "_"),
                    model=model,
                    interval=interval,
                    source_dsn=self.source_dsn,
                    bigquery_endpoint=self.google.api_endpoint,
                    start_at=now - timedelta(days=2),
                ),
                key,
            )
        for export in store.list_exports():
            if export.name != "sessions":  # left due: the home screen shows "due now"
                ExportRunner(store).run_export(export)
        store.close()

    def app(self):
        return create_app(self.db_path, browse_from=Path("keys"), cursor_blink=False)

    async def shoot(self, app, name: str, pilot) -> None:
        await pilot.pause(0.3)
        svg = WORK / f"{name}.svg"
        app.save_screenshot(str(svg))
        to_png(svg, ASSETS / f"{name}.png")

    async def home(self) -> None:
        app = self.app()
        async with app.run_test(size=SIZE) as pilot:
            await self.shoot(app, "home", pilot)

    async def wizard(self) -> None:
        app = self.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            screen = app.screen
            tree = screen.query_one("#key-tree")
            await wait_until(pilot, lambda: len(tree.root.children) > 0)
            screen.query_one("#key-path").value = f"keys/{self.key_file.name}"
            await pilot.press("enter")
            await self.shoot(app, "wizard-key", pilot)

            screen.query_one("#key-path").value = f"keys/{self.lacking_key_file.name}"
            await pilot.press("enter", "ctrl+n")
            for field, value in (
                ("#dataset-id", DATASET),
                ("#table-id", "events_export"),
                ("#export-name", "events-to-bigquery"),
                ("#bigquery-endpoint", self.google.api_endpoint),
            ):
                screen.query_one(field).value = value
            await pilot.press("ctrl+n")
            screen.query_one("#source-dsn").value = self.source_dsn
            await pilot.press("ctrl+n")
            report = screen.query_one(PermissionReport)
            await wait_until(pilot, lambda: report.report is not None and not report.running)
            await self.shoot(app, "permissions", pilot)

    async def run(self) -> None:
        app = self.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("down", "r")  # "sessions": due, not run yet
            screen = app.screen
            assert isinstance(screen, RunScreen)
            await wait_until(pilot, lambda: screen.finished)
            await self.shoot(app, "run", pilot)


def main() -> int:
    if not shutil.which("rsvg-convert"):
        print("rsvg-convert is needed: apt-get install librsvg2-bin", file=sys.stderr)
        return 2
    ASSETS.mkdir(exist_ok=True)
    os.chdir(WORK)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    source_dsn = f"chdb://{WORK / 'clickhouse'}"
    client = ClickHouseSource(source_dsn).client
    demo_data.generate(client, seed=42, start=now - timedelta(days=2), end=now)
    with (
        start_emulator(ensure_installed(default_venv_dir()), log_file=WORK / "bq.log") as emulator,
        FakeGoogle(emulator.url) as google,
    ):
        google.add_project(PROJECT)
        shooter = Shooter(google, source_dsn)
        shooter.seed_exports(now)
        asyncio.run(shooter.home())
        asyncio.run(shooter.wizard())
        asyncio.run(shooter.run())
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
