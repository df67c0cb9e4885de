"""bqtui.demo.emulator: installing and running bqemulator."""

import json
import stat
import urllib.request
from pathlib import Path

import pytest

from bqtui.demo import emulator
from bqtui.demo.emulator import EmulatorError, default_venv_dir, ensure_installed, start_emulator


def fake_venv(venv_dir: Path, python_script: str) -> Path:
    """A venv directory whose python is a shell script, to play pip or the emulator failing."""
    python = venv_dir / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n" + python_script)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return python


def test_default_venv_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BQTUI_BQEMULATOR_VENV", str(tmp_path / "venv"))
    assert default_venv_dir() == tmp_path / "venv"
    monkeypatch.delenv("BQTUI_BQEMULATOR_VENV")
    assert default_venv_dir().name == "bqemulator-venv"


def test_an_installed_venv_is_not_installed_again(tmp_path):
    python = fake_venv(tmp_path / "venv", "exit 1\n")
    (tmp_path / "venv" / ".bqtui-installed").write_text(emulator._requirements_record())
    messages = []

    assert ensure_installed(tmp_path / "venv", log=messages.append) == python
    assert messages == []


def test_a_failed_install_reports_pips_output(tmp_path):
    fake_venv(tmp_path / "venv", "echo 'ERROR: No matching distribution found' >&2\nexit 1\n")

    with pytest.raises(EmulatorError, match="No matching distribution found") as failure:
        ensure_installed(tmp_path / "venv", log=lambda message: None)

    assert "install the BigQuery emulator" in str(failure.value)
    assert not (tmp_path / "venv" / ".bqtui-installed").exists()


def test_an_emulator_that_dies_at_start_is_reported_with_its_log(tmp_path):
    python = fake_venv(tmp_path / "venv", "echo 'Address already in use'\nexit 3\n")

    with pytest.raises(EmulatorError, match="exited with 3(.|\n)*Address already in use"):
        start_emulator(python, log_file=tmp_path / "emulator.log", timeout=10)


def test_a_persistent_emulator_keeps_its_data_across_restarts(bq_emulator, tmp_path):
    python = ensure_installed()
    log_file = tmp_path / "emulator.log"
    with start_emulator(python, data_dir=tmp_path / "data", log_file=log_file) as first:
        request = urllib.request.Request(
            f"{first.url}/bigquery/v2/projects/p/datasets",
            data=json.dumps({"datasetReference": {"projectId": "p", "datasetId": "kept"}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request).close()
    assert first.process.poll() is not None

    with start_emulator(python, data_dir=tmp_path / "data", log_file=log_file) as second:
        dataset_url = f"{second.url}/bigquery/v2/projects/p/datasets/kept"
        assert (
            json.load(urllib.request.urlopen(dataset_url))["datasetReference"]["datasetId"]
            == "kept"
        )


def test_stop_is_idempotent(bq_emulator):
    running = start_emulator(ensure_installed())
    running.stop()
    running.stop()
    assert running.process.returncode is not None
