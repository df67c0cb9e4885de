"""The detail screen's Verify tab: charts of rows per day, source next to BigQuery, the days
that differ, a drill-down to their uuids, and a repair behind a confirmation."""

from collections.abc import Callable

import pytest
from textual.widgets import Button, DataTable, Sparkline, Static

from bqtui.cli import main
from bqtui.tui.screens.detail import ExportDetailScreen
from bqtui.tui.screens.dialogs import ConfirmDialog
from tests.conftest import DEMO_END, DEMO_START

from .conftest import DAILY_EXPORT, PROJECT, SIZE, events_per_day, make_app, wait_until


@pytest.fixture
def add_and_run(add_daily_export, db_path) -> Callable[[str], None]:
    """The demo's three days exported, as of just after them (the TUI's clock too)."""

    def add(dataset: str) -> None:
        add_daily_export(dataset)
        assert main(["run", DAILY_EXPORT, "--db", str(db_path)]) == 0  # BQTUI_NOW: see below

    return add


async def open_verify(pilot) -> ExportDetailScreen:
    await pilot.press("l", "4")
    screen = pilot.app.screen
    assert isinstance(screen, ExportDetailScreen)
    return screen


async def verify(pilot, screen) -> str:
    summary = screen.query_one("#verify-summary", Static)
    await pilot.click("#verify-run")
    await wait_until(
        pilot,
        lambda: (
            not screen.query_one("#verify-run", Button).disabled
            and "Verifying" not in str(summary.render())
        ),
    )
    await pilot.pause()
    return str(summary.render())


async def test_verify_shows_the_days_and_repairs_what_differs(
    db_path, fake_google, demo_dsn, add_and_run, monkeypatch
):
    monkeypatch.setenv("BQTUI_NOW", "2024-05-04T00:05:00Z")
    dataset = "tui_verify"
    add_and_run(dataset)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_verify(pilot)
        # Worked out from the raw rows: the three days' distinct events (duplicated rows of a
        # uuid count once), by the day of their timestamp (late events: days before May 1).
        expected = events_per_day(demo_dsn, DEMO_START, DEMO_END)
        assert (await verify(pilot, screen)).startswith(
            f"OK: BigQuery holds exactly what ClickHouse holds ({sum(expected.values()):,} "
            "events, through 2024-05-04 00:00 UTC)."
        )
        days = screen.query_one("#verify-days", DataTable)
        shown = [tuple(days.get_row_at(i)[:3]) for i in range(days.row_count)]
        assert shown == [(day, f"{n:,}", f"{n:,}") for day, n in expected.items()]
        per_day = screen.query_one("#verify-source", Sparkline).data
        assert per_day == [float(n) for n in expected.values()]
        assert screen.query_one("#verify-bigquery", Sparkline).data == per_day
        axis = screen.query_one("#verify-source-axis")  # under the chart: its days and scale
        assert [str(label.render()) for label in axis.query(Static)] == [
            min(expected),
            f"max {max(expected.values()):,}",
            max(expected),
        ]
        assert screen.query_one("#verify-repair", Button).disabled

        table = f"`{PROJECT}.{dataset}.events`"
        admin = fake_google.admin_client(PROJECT)
        gone = next(
            iter(
                admin.query(
                    f"SELECT uuid FROM {table} WHERE DATE(timestamp) = '2024-05-02' ORDER BY uuid LIMIT 1"
                ).result()
            )
        )["uuid"]
        admin.query(f"DELETE FROM {table} WHERE uuid = '{gone}'").result()
        assert (await verify(pilot, screen)).splitlines()[0] == "DIFFERS: 1 missing."
        days = screen.query_one("#verify-days", DataTable)
        rows = [days.get_row_at(i) for i in range(days.row_count)]
        assert [(row[0], str(row[6])) for row in rows if str(row[6]) != "ok"] == [
            ("2024-05-02", "differs")
        ]
        differing = [row[0] for row in rows].index("2024-05-02")
        diff = screen.query_one("#verify-diff", Sparkline).data
        assert diff[differing] == 1.0 and sum(diff) == 1.0
        days.focus()
        days.move_cursor(row=differing)
        await pilot.press("enter")  # drill down into the day
        await pilot.pause()
        assert f"missing {gone}" in str(screen.query_one("#verify-keys", Static).render())

        await pilot.click("#verify-repair")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.click("#confirm")
        summary = screen.query_one("#verify-summary", Static)
        await wait_until(
            pilot, lambda: "Repaired; verified again" in str(summary.render()), timeout=120
        )
        assert "OK: BigQuery holds exactly what ClickHouse holds" in str(summary.render())


def test_verify_tab_snapshot(snap_compare, db_path, add_and_run, monkeypatch):
    monkeypatch.setenv("BQTUI_NOW", "2024-05-04T00:05:00Z")
    add_and_run("tui_snapshot_verify")

    async def run_before(pilot):
        screen = await open_verify(pilot)
        await verify(pilot, screen)

    assert snap_compare(make_app(db_path), terminal_size=SIZE, run_before=run_before)
