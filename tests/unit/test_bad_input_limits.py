"""Values past what the store, ClickHouse or BigQuery can take are refused like every other bad
input (test_bad_input's world and helpers): a one-line message, exit code 2, the database byte
for byte unchanged. A team ID beyond signed 64 bits used to end in SQLite's OverflowError, and
a project ID went unchecked into MERGE, verify and DELETE statements."""

import json

import pytest

from bqtui.cli import main
from bqtui.core.config import MAX_TEAM_ID, parse_team_id
from bqtui.core.errors import ConfigError
from bqtui.core.ids import validate_project_id
from bqtui.state.store import Store
from tests.unit import test_bad_input as base

world = base.world  # the module's database with export "ev", and its key files
add = base.add

TOO_BIG = "Team ID {} is out of range: ClickHouse's team_id is a signed 64-bit integer, at most 9223372036854775807."
PROJECT_RULES = (
    "is not a valid project ID: use 6 to 30 lowercase letters, digits and hyphens, starting "
    "with a letter and not ending with a hyphen (e.g. my-project-123), or a domain-scoped ID "
    "such as example.com:my-project."
)
INJECTION = "proj-1`.x; DROP TABLE t; --"

CASES = [
    # -- team IDs past signed 64 bits ------------------------------------------------------
    (add("--team-id", "99999999999999999999"), TOO_BIG.format("99999999999999999999")),
    (add("--team-id", "9223372036854775808"), TOO_BIG.format("9223372036854775808")),
    (add("--team-id", "+18446744073709551616"), TOO_BIG.format("+18446744073709551616")),
    (add("--team-id", "1" * 5000), TOO_BIG.format("11111111111111111111… (5000 digits)")),
    (add("--team-id", "-99999999999999999999"), "Team ID cannot be negative."),
    (add("--team-id", "-9223372036854775809"), "Team ID cannot be negative."),
    (add("--team-id", "1e30"), 'Team ID must be a whole number, not "1e30".'),
    # -- project IDs by BigQuery's rules ------------------------------------------------------
    (add("--project-id", "My-Project"), f'"My-Project" {PROJECT_RULES} "my-project" would do.'),
    (add("--project-id", "my_project"), f'"my_project" {PROJECT_RULES} "my-project" would do.'),
    (add("--project-id", "abc"), f'"abc" {PROJECT_RULES}'),
    (add("--project-id", "a" * 31), f'"{"a" * 31}" {PROJECT_RULES}'),
    (add("--project-id", "proj-1-"), f'"proj-1-" {PROJECT_RULES}'),
    (add("--project-id", "1project"), f'"1project" {PROJECT_RULES}'),
    (
        add("--project-id", "example.com:Bad_Id"),
        f'"example.com:Bad_Id" {PROJECT_RULES} "example.com:bad-id" would do.',
    ),
    (add("--project-id", "exa_mple.com:my-project"), f'"exa_mple.com:my-project" {PROJECT_RULES}'),
    (add("--project-id", INJECTION), f'"{INJECTION}" {PROJECT_RULES}'),
    (add("--project-id", "Proj.analytics"), f'"Proj.analytics" {PROJECT_RULES}'),
    (
        add("--project-id", "proj-1.analytics"),
        '"proj-1.analytics" is a qualified name, not a '
        'project ID. Use the bare project ID "proj-1"; the dataset and table have their own '
        "settings.",
    ),
    (
        add("--project-id", "proj-1:analytics.events"),
        '"proj-1:analytics.events" is a qualified '
        'name, not a project ID. Use the bare project ID "proj-1"; the dataset and table have '
        "their own settings.",
    ),
    (
        add("--project-id", "example.com:my-project.analytics"),
        '"example.com:my-project.analytics"'
        ' is a qualified name, not a project ID. Use the bare project ID "example.com:my-project"; '
        "the dataset and table have their own settings.",
    ),
    (add("--project-id", "x; DROP TABLE t"), f'"x; DROP TABLE t" {PROJECT_RULES}'),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[f"{i:02d}" for i in range(len(CASES))])
def test_out_of_range_input_is_refused_with_its_message_and_changes_nothing(
    world, argv, message, capsys
):
    before = base.database_bytes(world)
    argv = [part.replace("{root}", str(world)) for part in argv]
    returned = main([*argv, "--db", str(world / "bqtui.db")])
    out, err = capsys.readouterr()
    assert returned == 2, err
    assert "Traceback" not in err and out == ""
    assert err.strip().endswith(message), err
    assert len(err.strip().splitlines()) == 1, err
    assert base.database_bytes(world) == before


def add_argv(db, root, *extra: str, name: str) -> list[str]:
    return [
        "add",
        "--db",
        str(db),
        "--name",
        name,
        "--key-file",
        str(root / "key.json"),
        "--dataset-id",
        "analytics",
        "--table-id",
        "events",
        *extra,
    ]


@pytest.mark.parametrize(
    "extra, stored",
    [
        (("--team-id", str(MAX_TEAM_ID)), {"team_id": MAX_TEAM_ID, "project_id": None}),
        (("--team-id", "0"), {"team_id": 0, "project_id": None}),
        (("--project-id", "my-project-123"), {"team_id": 1, "project_id": "my-project-123"}),
        (
            ("--project-id", "example.com:my-project"),
            {"team_id": 1, "project_id": "example.com:my-project"},
        ),
        (("--project-id", "  abcdef  "), {"team_id": 1, "project_id": "abcdef"}),
        (("--project-id", ""), {"team_id": 1, "project_id": None}),  # the key file's project
    ],
)
def test_the_limits_themselves_are_accepted_and_stored(world, tmp_path, extra, stored, capsys):
    db = tmp_path / "bqtui.db"
    added = main(add_argv(db, world, *extra, name="edge"))
    assert added == 0, capsys.readouterr().err
    capsys.readouterr()
    export = Store(db).require_export("edge")
    assert {"team_id": export.team_id, "project_id": export.project_id} == stored
    assert main(["show", "--db", str(db), "edge", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["team_id"], shown["project_id"]) == (stored["team_id"], stored["project_id"])


def test_the_core_checks_hold_for_every_caller():
    """The TUI's wizard and edit screen parse with the same functions (tests/tui/test_limits)."""
    with pytest.raises(ConfigError, match="out of range"):
        parse_team_id(MAX_TEAM_ID + 1)
    assert parse_team_id(MAX_TEAM_ID) == MAX_TEAM_ID
    for good in ("abcdef", "a" * 30, "a-1-b-2", "google.com:a-b-c-d", "sub.example.org:prj-01"):
        assert validate_project_id(good) == good
    assert validate_project_id(None) is None and validate_project_id("   ") is None
    for bad in (
        "abcde",
        "a" * 31,
        "-abcdef",
        "abcdef-",
        "Abcdef",
        "abc def",
        "ab`cdef",
        ":abcdef",
        "example.com:",
        "example.com:abc",
        "éxample",
        "ab\ncdef",
    ):
        with pytest.raises(ConfigError):
            validate_project_id(bad)
