"""The tree is the architecture: each package of bqtui imports only the packages its
``__init__`` names ("May import: …"), so imports run one way — cli, tui → ops → pipeline →
source, destination, state → models → core — and no circle can form between packages."""

import ast
import re
from pathlib import Path

import bqtui

ROOT = Path(bqtui.__file__).parent
PACKAGES = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())


def allowed_imports(package: str) -> set[str]:
    """What the package's docstring says it may import."""
    doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text())) or ""
    match = re.search(r"May import: (.*?)(?:\.|$)", doc, re.S)
    assert match, f"bqtui/{package}/__init__.py does not say what it may import"
    if match.group(1).startswith("nothing of bqtui"):
        return set()
    return {name.strip() for name in re.split(r",|\(", match.group(1)) if name.strip() in PACKAGES}


def bqtui_imports(path: Path) -> set[str]:
    """The bqtui packages a module imports (at its top or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "bqtui" and len(parts) > 1 and parts[1] in PACKAGES:
                found.add(parts[1])
    return found


def test_every_package_says_what_it_may_import():
    assert set(PACKAGES) == {
        "cli",
        "core",
        "demo",
        "destination",
        "models",
        "ops",
        "pipeline",
        "source",
        "stage",
        "state",
        "tui",
    }
    for package in PACKAGES:
        allowed_imports(package)
    assert "cli" not in allowed_imports("tui")  # the CLI opens the TUI, never the reverse


def test_imports_run_one_way_between_packages():
    wrong = []
    for package in PACKAGES:
        allowed = allowed_imports(package) | {package}
        for path in sorted((ROOT / package).rglob("*.py")):
            for imported in sorted(bqtui_imports(path) - allowed):
                wrong.append(f"{path.relative_to(ROOT.parent)} imports bqtui.{imported}")
    assert wrong == []


def test_no_relative_imports():
    """Absolute imports: a module's imports read the same wherever it is moved."""
    relative = [
        str(path.relative_to(ROOT.parent))
        for path in ROOT.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level
    ]
    assert relative == []


def test_only_modules_at_the_root_are_the_package_face():
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["__init__.py"]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, by full name (``from a.b import c`` gives a.b and a.b.c)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


# Third-party clients, and the one package allowed to use each. The models describe their
# BigQuery schemas with SchemaField, and may import exactly that.
CLIENT_LIBRARIES = {
    "google.cloud.bigquery": "destination",
    "google.api_core": "destination",
    "clickhouse_connect": "source",
    "chdb": "source",
}
ALSO_ALLOWED = {("models", "google.cloud.bigquery.SchemaField")}


def test_only_the_destination_and_the_source_touch_their_client_libraries():
    """BigQuery's client stays behind bqtui/destination, ClickHouse's behind bqtui/source: the
    rest of bqtui asks them through typed methods."""
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        package = path.relative_to(ROOT).parts[0]
        modules = imported_modules(path)
        for library, owner in CLIENT_LIBRARIES.items():
            if package == owner:
                continue
            used = {m for m in modules if m == library or m.startswith(f"{library}.")}
            # "from google.cloud.bigquery import SchemaField" also names its module: let it go.
            allowed = {name for where, name in ALSO_ALLOWED if where == package}
            if allowed & used:
                used -= allowed | {name.rsplit(".", 1)[0] for name in allowed & used}
            wrong.extend(f"{path.relative_to(ROOT.parent)} imports {m}" for m in sorted(used))
    assert wrong == []
