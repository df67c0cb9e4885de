"""The core (everything outside ``bqtui.tui``) and the headless CLI never import Textual.

Runs in a fresh interpreter, so nothing the test session imported (Textual for the TUI tests)
can hide an import the core makes.
"""

import importlib.util
import json
import pkgutil
import subprocess
import sys
import textwrap

# Run by the BigQuery emulator's own venv, never imported by bqtui (it imports bqemulator).
NOT_IMPORTABLE = {"bqtui.demo._emulator_launcher"}


def core_modules() -> list[str]:
    """Every module and package of bqtui outside ``bqtui.tui``, found without importing any."""
    found = ["bqtui"]

    def walk(paths, prefix):
        for info in pkgutil.iter_modules(paths, prefix):
            if info.name == "bqtui.tui" or info.name.startswith("bqtui.tui."):
                continue
            found.append(info.name)
            if info.ispkg:
                spec = info.module_finder.find_spec(info.name)
                walk(spec.submodule_search_locations, info.name + ".")

    walk(importlib.util.find_spec("bqtui").submodule_search_locations, "bqtui.")
    return sorted(set(found) - NOT_IMPORTABLE)


SCRIPT = textwrap.dedent(
    """
    import contextlib, importlib, io, json, sys
    from datetime import UTC, datetime

    modules, db = json.loads(sys.argv[1]), sys.argv[2]
    for name in modules:
        importlib.import_module(name)

    from bqtui.cli import main
    from bqtui.core.config import ExportConfig
    from bqtui.state.store import Store

    def cli(*argv):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                code = main(list(argv))
            except SystemExit as exit_:
                code = ("SystemExit", exit_.code)
        return {"code": code, "stdout": out.getvalue()}

    report = {"empty_list": cli("list", "--db", db),
              "empty_run_all": cli("--run-all", "--db", db)}
    store = Store(db)
    store.add_export(ExportConfig(
        name="ev", dataset_id="ds", table_id="t", start_at=datetime(2030, 1, 1, tzinfo=UTC)
    ))
    store.close()
    report.update(
        version=cli("--version"),
        list=cli("list", "--db", db),
        list_json=cli("list", "--json", "--db", db),
        pause=cli("pause", "ev", "--db", db),
        show_json=cli("show", "ev", "--json", "--db", db),
        show_unknown=cli("show", "nope", "--db", db),
        textual=sorted(m for m in sys.modules if m == "textual" or m.startswith("textual.")),
        imported=sorted(m for m in modules if m in sys.modules),
    )
    print(json.dumps(report))
    """
)


def test_core_module_discovery_covers_known_modules():
    modules = core_modules()
    for name in (
        "bqtui.cli.main",
        "bqtui.state.store",
        "bqtui.pipeline.runner",
        "bqtui.models.sessions",
        "bqtui.ops.export_setup",
        "bqtui.ops.permission_check",
        "bqtui.models.json_text",
        "bqtui.core.paths",
        "bqtui.demo.environment",
        "bqtui.core.errors",
    ):
        assert name in modules
    assert not [m for m in modules if m.startswith("bqtui.tui")]


def test_core_and_headless_cli_never_import_textual(tmp_path):
    modules = core_modules()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(modules), str(tmp_path / "bqtui.db")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["imported"] == modules
    assert report["version"] == {"code": ["SystemExit", 0], "stdout": "bqtui 0.1.0\n"}
    assert report["empty_list"]["code"] == 0
    assert "No exports yet" in report["empty_list"]["stdout"]
    assert report["empty_run_all"] == {"code": 0, "stdout": "No enabled exports.\n"}
    assert report["list"]["code"] == 0
    assert "ds.t" in report["list"]["stdout"]
    assert report["list_json"]["code"] == 0
    assert [e["name"] for e in json.loads(report["list_json"]["stdout"])] == ["ev"]
    assert report["pause"] == {"code": 0, "stdout": 'Export "ev" paused.\n'}
    assert report["show_json"]["code"] == 0
    assert json.loads(report["show_json"]["stdout"])["enabled"] is False
    assert report["show_unknown"]["code"] == 2

    assert report["textual"] == []
