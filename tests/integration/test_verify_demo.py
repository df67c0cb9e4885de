"""verify on the demo data (late events, nasty properties, person merges, deletions): an
export of each model verifies equal, on both paths to ClickHouse."""

import json

import pytest

from tests.integration.conftest import add_export, run_cli


@pytest.mark.parametrize("model", ["events", "persons", "sessions"])
def test_a_fresh_export_of_the_demo_data_verifies_equal(
    db_path, destination, demo_dsn, model, capsys, monkeypatch
):
    monkeypatch.setenv("BQTUI_NOW", "2024-05-04T00:05:00Z")
    add_export(db_path, destination, demo_dsn, name=model, model=model, table=model)
    assert run_cli("run", model, "--db", str(db_path)) == 0
    capsys.readouterr()
    code = run_cli("verify", model, "--db", str(db_path), "--json")
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["ok"] is True and report["source_rows"] > 0
    assert report["source_rows"] == report["bigquery_rows"]
