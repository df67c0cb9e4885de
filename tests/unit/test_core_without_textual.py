import subprocess
import sys

CORE_MODULES = [
    "bqtui.cli", "bqtui.config", "bqtui.store", "bqtui.secrets", "bqtui.keyfile", "bqtui.ids",
    "bqtui.source", "bqtui.models", "bqtui.bigquery", "bqtui.permissions", "bqtui.schedule",
    "bqtui.runner", "bqtui.encode", "bqtui.emulator", "bqtui.demo_data",
]  # fmt: skip


def test_core_never_imports_textual():
    code = (
        "import sys\n"
        f"for name in {CORE_MODULES!r}: __import__(name)\n"
        "from bqtui.cli import main\n"
        "assert main(['--version']) if False else True\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
