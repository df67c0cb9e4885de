"""`bqtui status`: how far each export is behind now, and an exit code for monitoring."""

import json

from bqtui.core.cost import projected_month_usd
from tests.faults.conftest import World
from tests.harness.bq_proxy import QUOTA_EXCEEDED


def test_status_says_how_far_behind_and_exits_1_for_an_alert(events_world: World):
    world = events_world
    behind = world.bqtui("status")
    assert behind.code == 1
    assert behind.out.splitlines()[:2] == [
        "NAME                 STATE   EXPORTED THROUGH (UTC)       LAG WAITING  HEALTH",
        "ev                   enabled nothing yet                3.0 h       0  ALERT: 3.0 h "
        "behind (alert after 2.2 h)",
    ]
    assert world.bqtui("run", "ev").code == 0
    caught_up = world.bqtui("status", "--json")
    assert caught_up.code == 0
    billed, slot_ms = world.sql("SELECT SUM(bytes_billed), SUM(slot_ms) FROM job_costs")[0]
    assert json.loads(caught_up.out) == {
        "healthy": True,
        "exports": [
            {
                "name": "ev",
                "enabled": True,
                "exported_through": "2024-05-01T03:00:00+00:00",
                "lag_seconds": 120,
                "alert_after_seconds": 7860,
                "windows_waiting": 0,
                "last_run_status": "succeeded",
                "last_run_error": None,
                "healthy": True,
                "problems": [],
                "bytes_billed_24h": billed,
                "bytes_billed_30d": billed,
                "slot_ms_30d": slot_ms,
                "projected_month_usd": projected_month_usd(billed, 1.0, None),
                "billing": "on_demand",
            }
        ],
    }


def test_a_failed_run_alerts_and_a_paused_export_does_not(events_world: World):
    world = events_world
    world.google.proxy.inject(None, r"/jobs$", QUOTA_EXCEEDED, times=100)
    assert world.bqtui("run", "ev").code == 1
    failed = json.loads(world.bqtui("status", "--json").out)["exports"][0]
    assert failed["healthy"] is False and failed["windows_waiting"] == 3
    assert failed["problems"][1].startswith("last run failed: While loading into")
    assert world.bqtui("pause", "ev").code == 0
    paused = world.bqtui("status")
    assert paused.code == 0 and paused.out.splitlines()[1].endswith("paused")


def test_the_alert_threshold_is_set_per_export(world: World):
    world.add("tight", "--alert-after", "60")
    shown = json.loads(world.bqtui("show", "tight", "--json").out)
    assert shown["alert_after_seconds"] == 60
