"""Runs started from the home screen: rows reach BigQuery; Cancel stops at a safe point."""

from textual.widgets import DataTable, ProgressBar, RichLog, Static

from bqtui.cli import main
from bqtui.pipeline.runner import GROUP_MAX_WINDOWS
from bqtui.state.store import Store
from bqtui.tui.screens.detail import ExportDetailScreen
from bqtui.tui.screens.home import HomeScreen
from bqtui.tui.screens.run import RunScreen
from tests.conftest import DEMO_END, DEMO_START

from .conftest import SIZE, count_rows, make_app, source_uuids, wait_until


def add_export(db_path, key_file, dataset, dsn, endpoint, *, name, interval) -> None:
    code = main(
        [
            "add",
            "--db",
            str(db_path),
            "--name",
            name,
            "--key-file",
            str(key_file),
            "--dataset-id",
            dataset,
            "--table-id",
            "events",
            "--interval",
            interval,
            "--start",
            "2024-05-01",
            "--source-dsn",
            dsn,
            "--bigquery-endpoint",
            endpoint,
        ]
    )
    assert code == 0


async def test_run_now_exports_the_due_windows_to_bigquery(
    db_path, key_file, dataset, demo_dsn, fake_google
):
    add_export(
        db_path, key_file, dataset, demo_dsn, fake_google.api_endpoint, name="daily", interval="day"
    )
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_until(pilot, lambda: screen.finished)
        outcome = str(screen.query_one("#run-outcome", Static).render())
        assert outcome.startswith("✓ Succeeded: 3 window(s)"), outcome
        assert screen.query_one(ProgressBar).percentage == 1
        assert len(screen.query_one(RichLog).lines) >= 5
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)

        await pilot.press("l")  # the detail: run history, windows with job IDs, table schema
        detail = app.screen
        assert isinstance(detail, ExportDetailScreen)
        schema = detail.query_one("#schema", Static)
        await wait_until(pilot, lambda: "Checking" not in str(schema.render()))
        assert str(schema.render()) == "The table has every field of the model."
        run_row = detail.query_one("#runs", DataTable).get_row_at(0)
        assert (run_row[1], str(run_row[2]), run_row[5]) == ("manual", "succeeded", "3/3")
        rows = list(map(detail.query_one("#windows", DataTable).get_row_at, range(3)))
        assert all(" rows, " in row[6] for row in rows)  # what ClickHouse read
        job_ids = [row[7] for row in rows]  # the three windows shared one load and one MERGE
        assert all(ids.startswith("bqtui_") and ids.endswith("_merge") for ids in job_ids)
        assert len(detail.query_one("#run-logs", RichLog).lines) >= 5
        # One MERGE for the three windows: billed to the group's first window, and to the run.
        assert [row[5] for row in rows] == ["-", "-", "21.0 MB"]
        run_cost = str(detail.query_one("#run-cost", Static).render())
        assert "MERGE   billed  21.0 MB" in run_cost and "Total: 1 job(s)" in run_cost

    store = Store(db_path)
    run = store.list_runs()[0]
    assert (run.status, run.windows_done, run.trigger) == ("succeeded", 3, "manual")
    assert run.rows > 1000
    # The run counts rows read; duplicates of a uuid land once.
    landed = count_rows(fake_google, dataset, "events")
    assert landed == source_uuids(demo_dsn, DEMO_START, DEMO_END) > 1000


async def test_cancel_stops_the_run_at_a_safe_point(
    db_path, key_file, dataset, demo_dsn, fake_google
):
    # Five-minute windows over three days: 864 windows, far more than run before Cancel.
    add_export(
        db_path, key_file, dataset, demo_dsn, fake_google.api_endpoint, name="many", interval="5m"
    )
    app = make_app(db_path)
    watcher = Store(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        screen = app.screen
        export_id = watcher.require_export("many").id
        await wait_until(pilot, lambda: watcher.done_window_starts(export_id))
        await pilot.press("x")
        await wait_until(pilot, lambda: screen.finished)
        outcome = str(screen.query_one("#run-outcome", Static).render())
        assert outcome.startswith("■ Cancelled:"), outcome

    run = watcher.list_runs(export_id)[0]
    assert run.status == "cancelled"
    assert 1 <= run.windows_done < run.windows_total == 864
    windows = watcher.list_windows(export_id, limit=1000)
    statuses = [w.status for w in windows]
    assert set(statuses) <= {"done", "cancelled"}  # nothing left running or half written
    assert statuses.count("done") == run.windows_done
    # The windows being staged when Cancel came (at most one group of small windows) are
    # discarded whole and run next time.
    assert 1 <= statuses.count("cancelled") <= GROUP_MAX_WINDOWS
    # Exactly the done windows' events landed: none of the cancelled window's.
    exported_until = max(w.window_end for w in windows if w.status == "done")
    landed = count_rows(fake_google, dataset, "events")
    assert landed == source_uuids(demo_dsn, DEMO_START, exported_until)


async def test_ctrl_c_asks_before_quitting_while_a_run_is_active(
    db_path, key_file, dataset, demo_dsn, fake_google, monkeypatch
):
    from bqtui.tui.screens.dialogs import ConfirmDialog

    add_export(
        db_path, key_file, dataset, demo_dsn, fake_google.api_endpoint, name="slow", interval="day"
    )
    monkeypatch.setenv("BQTUI_TEST_FAULT", "uploading:pause=3")  # a run that takes a while
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("r")
        run_screen = app.screen
        await pilot.pause(0.5)
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "A run is in progress" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("escape")  # no: the run goes on
        await wait_until(pilot, lambda: app.screen is run_screen)
        assert not run_screen.cancel_token.cancelled and app.is_running
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.click("#confirm")
        await wait_until(pilot, lambda: run_screen.cancel_token.cancelled)
    # The run's thread stops at its next safe point (after the paused upload).
    import time

    deadline = time.monotonic() + 30
    while Store(db_path).list_runs()[0].status == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    runs = Store(db_path).list_runs()
    assert [r.status for r in runs] == ["cancelled"] and runs[0].windows_done == 0


async def test_run_due_exports_while_open_uses_the_runner_and_its_locks(
    db_path, key_file, dataset, demo_dsn, fake_google
):
    add_export(
        db_path, key_file, dataset, demo_dsn, fake_google.api_endpoint, name="auto", interval="day"
    )
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        assert app.autorun and "running due exports every minute" in app.sub_title
        await wait_until(
            pilot,
            lambda: (
                Store(db_path).list_runs() and Store(db_path).list_runs()[0].status != "running"
            ),
            timeout=120,
        )
        run = Store(db_path).list_runs()[0]
        assert (run.trigger, run.status, run.windows_done) == ("schedule", "succeeded", 3)
        await pilot.press("a")
        assert not app.autorun
    assert count_rows(fake_google, dataset, "events") == source_uuids(
        demo_dsn, DEMO_START, DEMO_END
    )  # the three day windows' events, each once
