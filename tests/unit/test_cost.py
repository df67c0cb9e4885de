"""What exports cost: sizes as users write them, and the month projected from what BigQuery
billed the recorded query jobs."""

from datetime import UTC, datetime, timedelta

import pytest

from bqtui.core.config import ExportConfig, Model
from bqtui.core.cost import TIB, parse_bytes, parse_price_per_tib, projected_month_usd
from bqtui.core.errors import ConfigError
from bqtui.ops.status import export_status
from bqtui.state.costs import RESERVATION, CostBook, JobCost
from bqtui.state.store import Store

NOW = datetime(2024, 6, 30, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "count"),
    [("1000", 1000), ("10GB", 10**10), ("1.5 GB", 1_500_000_000), ("1TiB", 2**40), ("2mib", 2**21)],
)
def test_sizes_read_as_users_write_them(text, count):
    assert parse_bytes(text) == count


def test_bad_sizes_and_prices_say_what_is_expected():
    with pytest.raises(ConfigError, match=r'e\.g\. 10000000000, 10GB or 1TiB, not "ten"'):
        parse_bytes("ten")
    with pytest.raises(ConfigError, match="at least 1 byte"):
        parse_bytes("0")
    with pytest.raises(ConfigError, match='in US dollars, e.g. 6.25, not "cheap"'):
        parse_price_per_tib("cheap")
    assert parse_price_per_tib("$5") == 5.0


def test_the_month_is_projected_from_the_days_recorded():
    # 1 TiB in 10 days is 3 TiB in 30 at $6.25; fewer than a day counts as a day.
    assert projected_month_usd(TIB, 10, None) == 18.75
    assert projected_month_usd(TIB, 0.1, 5.0) == 150.0
    assert projected_month_usd(TIB, 45, None) == 6.25  # never more than 30 days of records


def test_status_sums_what_was_billed_in_24_hours_and_30_days(tmp_path):
    store = Store(tmp_path / "bqtui.db")
    export = store.add_export(
        ExportConfig(
            name="s",
            dataset_id="d",
            table_id="t",
            model=Model.SESSIONS,
            start_at=NOW - timedelta(days=40),
            price_per_tib=5.0,
        )
    )
    book = CostBook(store)
    billed = {  # days ago → bytes billed by a MERGE then
        35: TIB,  # outside the 30 days
        20: TIB // 2,
        3: TIB // 4,
        0.5: TIB // 8,
    }
    for days_ago, count in billed.items():
        book.record(
            export.saved_id,
            JobCost("merge", f"job{days_ago}", NOW - timedelta(days=days_ago), count, count, 1000),
        )
    book.record(
        export.saved_id,
        JobCost("merge", "slots", NOW - timedelta(hours=1), 99, 0, 7_200_000, RESERVATION),
    )
    status = export_status(store, export, NOW).to_dict()
    month = TIB // 2 + TIB // 4 + TIB // 8
    assert status["bytes_billed_24h"] == TIB // 8
    assert status["bytes_billed_30d"] == month
    assert status["slot_ms_30d"] == 3000 + 7_200_000
    # Recorded over the last 20 days: 30/20 of it, at $5 per TiB.
    assert status["projected_month_usd"] == round(month / TIB * 5.0 * 30 / 20, 2)
    assert status["billing"] == "reservation"
