"""What BigQuery billed, in the TUI: the windows tab's Billed column, a run's query jobs and
their total, the export's cost settings and line; the backfill dialog's estimate; the wizard's
write-mode choice and its advice for a table too costly to MERGE into on every window."""

from datetime import UTC, datetime, timedelta

from google.cloud import bigquery
from textual.widgets import DataTable, Static

from bqtui.cli import main
from bqtui.core.config import ExportConfig, Interval, Model, validate_export
from bqtui.core.cost import WriteMode
from bqtui.destination.bigquery import TableSize
from bqtui.state.costs import RESERVATION, CostBook, JobCost
from bqtui.state.locks import ExportLock
from bqtui.state.store import Store
from bqtui.tui.cost_text import append_advice, run_billed_sentence, suggests_append
from bqtui.tui.screens.backfill import BackfillDialog
from bqtui.tui.screens.detail import ExportDetailScreen
from bqtui.tui.screens.dialogs import ConfirmDialog
from bqtui.tui.screens.home import HomeScreen

from .conftest import DAILY_EXPORT, PROJECT, SIZE, make_app, wait_until
from .wizard_driver import (
    destination_step,
    finish_permission_check,
    key_step,
    next_step,
    open_wizard,
    type_into,
    wizard,
)

DAY = datetime(2024, 5, 1, tzinfo=UTC)


def text_of(widget: Static) -> str:
    return str(widget.render())


def seed_costed_run(db_path) -> int:
    """A persons export with one run of two day windows: the first window's MERGE and a DELETE
    billed on demand, a verify on a reservation; the second window billed nothing."""
    store = Store(db_path)
    export = store.add_export(
        validate_export(
            ExportConfig(
                name="people",
                dataset_id="analytics",
                table_id="persons",
                model=Model.PERSONS,
                interval=Interval.DAY,
                source_dsn="chdb:///unused",
                start_at=DAY,
                write_mode=WriteMode.MERGE,
                max_bytes_billed=50 * 10**9,
                price_per_tib=5.0,
            )
        )
    )
    run_id = store.start_run(export.saved_id, "manual", 2)
    lock = ExportLock(store, export.saved_id).acquire()
    for day in (DAY, DAY + timedelta(days=1)):
        store.begin_window(export.saved_id, day, day + timedelta(days=1), run_id, lock.owner)
        store.finish_window(export.saved_id, day, "done", owner=lock.owner, attempt=1, rows=10)
    lock.release()
    store.update_run(run_id, status="succeeded", windows_done=2, finished_at=DAY)
    book = CostBook(store)
    jobs = [
        ("merge", 1_200_000_000, 1_100_000_000, 400, "on_demand", DAY),
        ("delete", 10_485_760, 2_000_000, 100, "on_demand", DAY),
        ("verify", None, 5_000_000, 2_500, RESERVATION, None),
    ]
    for number, (kind, billed, processed, slot_ms, billing, window) in enumerate(jobs):
        book.record(
            export.saved_id,
            JobCost(
                kind=kind,
                job_id=f"job_{number}",
                finished_at=DAY + timedelta(hours=number),
                bytes_processed=processed,
                bytes_billed=billed,
                slot_ms=slot_ms,
                billing=billing,
                run_id=run_id,
                window_start=window,
            ),
        )
    store.close()
    return run_id


async def test_recorded_job_costs_show_per_window_per_run_and_per_export(db_path):
    run_id = seed_costed_run(db_path)
    app = make_app(db_path, clock=lambda: DAY + timedelta(days=2))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        detail = app.screen
        assert isinstance(detail, ExportDetailScreen)
        await pilot.pause()

        cost = text_of(detail.query_one("#run-cost", Static))
        assert cost.splitlines() == [
            f"BigQuery jobs of run {run_id}",
            "MERGE   billed   1.2 GB, processed   1.1 GB, 0.4 slot-seconds",
            "DELETE  billed  10.5 MB, processed   2.0 MB, 0.1 slot-seconds",
            "Verify  reservation: 2.5 slot-seconds (billed as slot time)",
            "Total: 3 job(s) billed 1.2 GB (about $0.01), processed 1.1 GB, 3.0 slot-seconds; "
            "reservation jobs are billed as slot time",
        ]

        windows = detail.query_one("#windows", DataTable)
        labels = [str(column.label) for column in windows.columns.values()]
        billed = labels.index("Billed")
        shown = {windows.get_row_at(i)[0][:10]: windows.get_row_at(i)[billed] for i in range(2)}
        assert shown == {"2024-05-02": "-", "2024-05-01": "1.2 GB"}  # the MERGE and the DELETE

        config = text_of(detail.query_one("#config", Static))
        assert "Write mode         merge" in config
        assert "Bytes guard        50.0 GB per query job" in config
        assert "Price per TiB      $5" in config
        assert config.splitlines()[-1] == (  # a verify ran on a reservation: slot time
            "BigQuery cost      0.00 slot-hours in 30 days on a reservation (billed as slot "
            "time); 1.2 GB billed on demand"
        )


async def backfill_estimate(pilot, start: str, end: str) -> tuple[str, str]:
    """Open the backfill dialog, type a range and wait for the estimate (a worker's)."""
    await pilot.press("b")
    dialog = pilot.app.screen
    assert isinstance(dialog, BackfillDialog)
    dialog.query_one("#backfill-start").value = start
    dialog.query_one("#backfill-end").value = end
    estimate = dialog.query_one("#backfill-estimate", Static)
    await wait_until(
        pilot, lambda: text_of(estimate).startswith("Estimate") and "…" not in text_of(estimate)
    )
    return text_of(estimate), text_of(dialog.query_one("#backfill-limit", Static))


async def test_the_backfill_dialog_says_what_the_range_bills_at_most(
    db_path, add_daily_export, monkeypatch
):
    add_daily_export("tui_backfill_estimate")
    guard = ["set-cost", DAILY_EXPORT, "--max-bytes-billed", "1MB", "--db", str(db_path)]
    assert main(guard) == 0
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        line, limit = await backfill_estimate(pilot, "2024-05-01", "2024-05-03")
        assert line == (
            "Estimate: at most 1 MERGE(s) × 21.0 MB = 21.0 MB billed (about $0.00), the table "
            "does not exist yet (BigQuery's minimum)."
        )
        assert limit.startswith("Each MERGE may bill up to 21.0 MB, more than the export's ")
        dialog = app.screen
        dialog.query_one("#backfill-start").value = "2024-05-0x"  # no range: no estimate
        await pilot.pause()
        assert text_of(dialog.query_one("#backfill-estimate", Static)) == ""


async def test_an_estimate_that_cannot_be_made_is_one_line_and_the_backfill_goes_on(db_path):
    seed_costed_run(db_path)  # no key in the keyring: no BigQuery client
    app = make_app(db_path, clock=lambda: DAY + timedelta(days=9))
    async with app.run_test(size=SIZE) as pilot:
        line, limit = await backfill_estimate(pilot, "2024-05-01", "2024-05-03")
        assert line.startswith("Estimate: not available (") and "\n" not in line, line
        assert limit == ""
        await pilot.click("#backfill")
        await pilot.pause()
        assert not isinstance(app.screen, BackfillDialog)


async def through_the_wizard(pilot, key_file, dataset, endpoint, dsn, model: Model) -> None:
    """Key, then the destination with ``model`` chosen, then the source: at the check."""
    await open_wizard(pilot)
    await key_step(pilot, str(key_file))
    await next_step(pilot)
    await destination_step(
        pilot, dataset=dataset, table=model.value, name="mutable", endpoint=endpoint
    )
    screen = wizard(pilot)
    next(b for b in screen.query("#model RadioButton") if b.name == model.value).value = True
    await pilot.pause()
    assert screen.query_one("#write-mode").display


async def create_from_review(pilot) -> str:
    """Past the check (confirmed if it found something), the review's text, then Create."""
    await finish_permission_check(pilot)
    await next_step(pilot)
    if isinstance(pilot.app.screen, ConfirmDialog):
        await pilot.click("#confirm")
        await pilot.pause()
    review = text_of(wizard(pilot).query_one("#review-summary", Static))
    await next_step(pilot)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, HomeScreen))
    return review


async def test_the_wizard_creates_a_persons_export_in_append_mode(
    db_path, key_file, dataset, fake_google, demo_dsn
):
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await through_the_wizard(
            pilot, key_file, dataset, fake_google.api_endpoint, demo_dsn, Model.PERSONS
        )
        screen = wizard(pilot)
        append = next(b for b in screen.query("#write-mode RadioButton") if b.name == "append")
        assert "append: loads only, free; readers use the view TABLE_latest" in str(append.label)
        append.value = True
        await pilot.pause()
        await next_step(pilot)
        type_into(pilot, "#source-dsn", demo_dsn)
        await next_step(pilot)
        review = await create_from_review(pilot)
        assert "Write mode         append (loads only, free; view persons_latest)" in review

    assert Store(db_path).require_export("mutable").write_mode == WriteMode.APPEND


async def test_the_wizard_suggests_append_for_an_unpartitioned_sessions_table(
    db_path, key_file, dataset, fake_google, demo_dsn
):
    table = bigquery.Table(
        f"{PROJECT}.{dataset}.sessions", schema=[bigquery.SchemaField("session_id", "STRING")]
    )
    fake_google.admin_client(PROJECT).create_table(table)
    app = make_app(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await through_the_wizard(
            pilot, key_file, dataset, fake_google.api_endpoint, demo_dsn, Model.SESSIONS
        )
        await next_step(pilot)
        type_into(pilot, "#source-dsn", demo_dsn)
        await next_step(pilot)
        screen = wizard(pilot)
        row = screen.query_one("#write-mode-advice-row")
        await wait_until(pilot, lambda: row.display)
        advice = text_of(screen.query_one("#write-mode-advice", Static))
        assert advice.startswith(
            "The table sessions is not partitioned: every MERGE reads all of it, so each "
            "window costs more as the table grows (now each MERGE would bill about "
        ), advice
        assert " 1 a day at daily intervals ≈ $" in advice
        await pilot.click("#use-append")
        await pilot.pause()
        assert not screen.query_one("#use-append").display
        await create_from_review(pilot)

    assert Store(db_path).require_export("mutable").write_mode == WriteMode.APPEND


def test_the_advice_for_a_large_table_names_its_size_and_a_day_of_merges():
    export = ExportConfig(
        name="people",
        dataset_id="analytics",
        table_id="persons",
        model=Model.PERSONS,
        interval=Interval.FIVE_MINUTES,
        source_dsn="chdb:///unused",
    )
    size = TableSize(num_bytes=12_300_000_000, num_rows=1, partition_field=None)
    assert suggests_append(Model.PERSONS, size)
    assert not suggests_append(Model.PERSONS, TableSize(9 * 10**9, 1, None))
    assert suggests_append(Model.SESSIONS, TableSize(10**6, 1, None))  # not partitioned
    assert not suggests_append(Model.SESSIONS, TableSize(10**6, 1, "session_start"))
    assert append_advice(export, size, WriteMode.MERGE) == (
        "The table persons holds 12.3 GB: each MERGE would bill about 12.3 GB ≈ $0.07; 288 a "
        "day at 5-minute intervals ≈ $20/day. Append loads only (free) and readers use the view "
        "persons_latest: choose Use append, or go on to keep merge."
    )


def test_the_run_screen_sentence_sums_what_the_run_billed():
    export = ExportConfig(
        name="people", dataset_id="a", table_id="p", model=Model.PERSONS, source_dsn=""
    )

    def job(billed: int | None, billing: str = "on_demand") -> JobCost:
        return JobCost("merge", "j", DAY, 1, billed, 1_500, billing)

    assert run_billed_sentence([], export) == ""
    assert run_billed_sentence([job(None)], export) == (
        " BigQuery ran 1 query job(s) and reported no bytes billed."
    )
    assert run_billed_sentence([job(2 * 10**12), job(None, RESERVATION)], export) == (
        " BigQuery billed 2.0 TB (about $11.37) for 2 query job(s); 1 on a reservation: "
        "1.5 slot-seconds."
    )
