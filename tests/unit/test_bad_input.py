"""Every bad input gets its exact message and exit code, and the database is byte-for-byte
unchanged (the real command line, in this process: argparse, the core's checks, the store)."""

import json
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import pytest

from bqtui.cli import main
from bqtui.state.store import SCHEMA_VERSION, Store
from tests.harness.keys import make_service_account_key

BIG_TABLE = "t" * 1025


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A database with one export "ev", and key files good and bad."""
    root = tmp_path_factory.mktemp("bad-input")
    key = make_service_account_key(
        project_id="proj-1",
        client_email="exp@proj-1.iam.gserviceaccount.com",
        token_uri="https://oauth2.googleapis.com/token",
    )
    (root / "key.json").write_text(json.dumps(key))
    (root / "user.json").write_text(json.dumps({"type": "authorized_user"}))
    (root / "text.json").write_text("this is not json")
    (root / "binary.p12").write_bytes(b"\x30\x82\x0a\xff\xfe\x00\x01")
    (root / "folder").mkdir()
    os.symlink("/dev/zero", root / "zero.json")
    os.mkfifo(root / "pipe.json")
    db = root / "bqtui.db"
    assert (
        main(
            [
                "add",
                "--db",
                str(db),
                "--name",
                "ev",
                "--key-file",
                str(root / "key.json"),
                "--dataset-id",
                "analytics",
                "--table-id",
                "events",
            ]
        )
        == 0
    )
    return root


def add(*extra: str, name: str = "new") -> list[str]:
    defaults = {
        "--name": name,
        "--key-file": "{root}/key.json",
        "--dataset-id": "analytics",
        "--table-id": "events2",
    }
    given = dict(zip(extra[::2], extra[1::2], strict=False))
    merged = {**defaults, **given}
    return ["add", *[part for pair in merged.items() for part in pair]]


CASES = [
    # -- add: destination ---------------------------------------------------------------
    (
        add("--dataset-id", "my-dataset"),
        2,
        '"my-dataset" is not a valid dataset ID: use only '
        "letters, numbers and underscores (at most 1024). BigQuery allows no dashes or spaces "
        'there; "my_dataset" would do.',
    ),
    (
        add("--dataset-id", "proj:analytics"),
        2,
        '"proj:analytics" is a qualified name, not a '
        'dataset ID. Use the bare dataset ID "analytics"; the project comes from the key file.',
    ),
    (add("--dataset-id", ""), 2, "Dataset ID is required, e.g. posthog_exports."),
    (
        add("--table-id", "project-123:dataset.MyExportTable"),
        2,
        '"project-123:dataset.MyExportTable" is a fully qualified name, not a table ID. Use the '
        'bare table ID "MyExportTable" and the dataset ID "dataset"; the project comes from the '
        "key file.",
    ),
    (
        add("--table-id", "a/b"),
        2,
        '"a/b" is not a valid table ID: use letters, numbers, '
        "underscores, dashes and spaces (at most 1024 bytes).",
    ),
    (
        add("--table-id", BIG_TABLE),
        2,
        f'"{BIG_TABLE}" is not a valid table ID: use letters, '
        "numbers, underscores, dashes and spaces (at most 1024 bytes).",
    ),
    (
        add("--model", "people"),
        2,
        'Unknown model "people". Choose one of: events, persons, sessions.',
    ),
    (add("--interval", "7m"), 2, 'Unknown interval "7m". Choose one of: 5m, hour, day, week.'),
    (
        add("--bigquery-endpoint", "ftp://bq"),
        2,
        'BigQuery endpoint "ftp://bq" is not an http(s) URL, e.g. http://127.0.0.1:9050.',
    ),
    (
        add("--include-events", "a,b", "--exclude-events", "b"),
        2,
        "Events listed both to include and to exclude: b. Pick one.",
    ),
    # -- add: time, team, settle ----------------------------------------------------------
    (
        add("--start", "9999-12-31"),
        2,
        'The start "9999-12-31" is outside the times bqtui '
        "exports: from 2000-01-01 to 2100-01-01 (UTC).",
    ),
    (
        add("--start", "0001-01-01T00:00+01:00"),
        2,
        'The start "0001-01-01T00:00+01:00" is '
        "outside the times bqtui exports: from 2000-01-01 to 2100-01-01 (UTC).",
    ),
    (
        add("--start", "1970-01-01"),
        2,
        'The start "1970-01-01" is outside the times bqtui '
        "exports: from 2000-01-01 to 2100-01-01 (UTC).",
    ),
    (
        add("--start", "yesterday"),
        2,
        'The start "yesterday" is not an ISO 8601 time; use e.g. '
        "2024-05-01 or 2024-05-01T13:00:00Z.",
    ),
    (add("--team-id", "two"), 2, 'Team ID must be a whole number, not "two".'),
    (add("--team-id", "-1"), 2, "Team ID cannot be negative."),
    (
        add("--settle", "-5"),
        2,
        "Settle delay must be between 0 and 86400 seconds (24 hours), not -5; the default is 60.",
    ),
    (
        add("--settle", "ten"),
        2,
        'Settle delay must be a whole number of seconds, not "ten" (default 60).',
    ),
    (
        add("--name", "bad name!"),
        2,
        '"bad name!" is not a valid export name: start with a '
        "letter or digit and use letters, digits, '-', '_' or '.' (at most 63).",
    ),
    (
        add(name="ev"),
        2,
        'An export named "ev" exists already; choose another name or remove '
        "it first (bqtui remove ev).",
    ),
    # -- add: the ClickHouse DSN ---------------------------------------------------------
    (
        add("--source-dsn", "ftp://ch/db"),
        2,
        'Unknown ClickHouse DSN scheme "ftp": use '
        "http://host:8123/database, https://host:8443/database, or chdb:///path for the "
        "embedded engine.",
    ),
    (
        add("--source-dsn", "clickhouse://ch:9000/db"),
        2,
        '"clickhouse://" is ClickHouse\'s '
        "native protocol; bqtui speaks its HTTP interface. Use http://host:8123/database, or "
        "https://host:8443/database with TLS.",
    ),
    (
        add("--source-dsn", "http://ch:9000/db"),
        2,
        "Port 9000 is ClickHouse's native "
        "protocol; bqtui speaks its HTTP interface: use port 8123 (plain HTTP).",
    ),
    (
        add("--source-dsn", "https://ch:9440/db"),
        2,
        "Port 9440 is ClickHouse's native "
        "protocol; bqtui speaks its HTTP interface: use port 8443 (TLS HTTP).",
    ),
    (
        add("--source-dsn", "http:///db"),
        2,
        "The ClickHouse DSN has no host, e.g. https://reader@clickhouse.example.com:8443/db.",
    ),
    (
        add("--source-dsn", "https://u:pw@ch/db?access_token=t"),
        2,
        "The ClickHouse DSN has "
        "both a password and an access token: give one of them (an access token authenticates "
        "without a user name or password).",
    ),
    (
        add("--source-dsn", "http://ch/db?ca_cert=/ca.pem"),
        2,
        "ca_cert applies to https:// DSNs only (TLS).",
    ),
    # -- add: key files -------------------------------------------------------------------
    (
        add("--key-file", "{root}/missing.json"),
        2,
        "Key file not found: {root}/missing.json. "
        "Check the path. Create one in the Google Cloud console: IAM & Admin > Service Accounts "
        "> (your account) > Keys > Add key > Create new key > JSON.",
    ),
    (
        add("--key-file", "{root}/folder"),
        2,
        "{root}/folder is a folder; choose the service-account key's .json file.",
    ),
    (
        add("--key-file", "{root}/zero.json"),
        2,
        "{root}/zero.json is not a regular file (a "
        "device, pipe or socket); choose the service-account key's .json file.",
    ),
    (
        add("--key-file", "{root}/pipe.json"),
        2,
        "{root}/pipe.json is not a regular file (a "
        "device, pipe or socket); choose the service-account key's .json file.",
    ),
    (
        add("--key-file", "{root}/binary.p12"),
        2,
        "Key file {root}/binary.p12 is not text (not "
        "UTF-8). Choose the .json key, not a .p12 key. Create one in the Google Cloud console: "
        "IAM & Admin > Service Accounts > (your account) > Keys > Add key > Create new key > "
        "JSON.",
    ),
    (add("--key-file", "{root}/text.json"), 2, None),  # message checked in test_keyfile
    (add("--key-file", "{root}/user.json"), 2, None),
    # -- argparse ---------------------------------------------------------------------------
    (
        ["add", "--key-file", "x", "--dataset-id", "d", "--table-id", "t"],
        2,
        "bqtui add: the following arguments are required: --name. See: bqtui add --help",
    ),
    (["list", "--frobnicate"], 2, "bqtui: unrecognized arguments: --frobnicate. See: bqtui --help"),
    (["--run-all", "list"], 2, "bqtui: --run-all takes no command. See: bqtui --help"),
    (["run"], 2, "bqtui run: the following arguments are required: name. See: bqtui run --help"),
    # -- things that do not exist, ranges ---------------------------------------------------
    (
        ["set-key", "nope", "--key-file", "{root}/key.json"],
        2,
        'No export named "nope". Exports: ev.',
    ),
    (
        ["set-key", "ev", "--key-file", "{root}/zero.json"],
        2,
        "{root}/zero.json is not a "
        "regular file (a device, pipe or socket); choose the service-account key's .json file.",
    ),
    (["run", "nope"], 2, 'No export named "nope". Exports: ev.'),
    (
        ["run", "ev", "--start", "2024-05-02", "--end", "2024-05-01"],
        2,
        "--end must be after --start.",
    ),
    (["run", "ev", "--start", "2024-05-02"], 2, "A backfill needs both --start and --end."),
    (
        ["run", "ev", "--start", "2024-05-01", "--end", "2199-01-01"],
        2,
        'The end "2199-01-01" '
        "is outside the times bqtui exports: from 2000-01-01 to 2100-01-01 (UTC).",
    ),
    (["check", "nope"], 2, 'No export named "nope". Exports: ev.'),
    (["show", "nope"], 2, 'No export named "nope". Exports: ev.'),
    (["remove", "nope"], 2, 'No export named "nope". Exports: ev.'),
    (["pause", "nope"], 2, 'No export named "nope". Exports: ev.'),
    (["resume", "nope"], 2, 'No export named "nope". Exports: ev.'),
]


def database_bytes(root) -> dict[str, bytes]:
    """The database file and any write-ahead log with content (the CLI closes its
    connection, so a WAL left behind would hold a change)."""
    files = {p.name: p.read_bytes() for p in sorted(root.glob("bqtui.db*"))}
    files.pop("bqtui.db-shm", None)  # shared-memory index, rebuilt on open
    if not files.get("bqtui.db-wal"):
        files.pop("bqtui.db-wal", None)
    return files


def assert_refused(world, argv, code, message, capsys) -> None:
    """One bad input through the real command line: its exit code, its exact message (when
    given), no traceback, and the database byte-for-byte unchanged."""
    before = database_bytes(world)
    argv = [part.replace("{root}", str(world)) for part in argv]
    try:
        returned = main([*argv, "--db", str(world / "bqtui.db")])
    except SystemExit as exit:  # argparse
        returned = exit.code
    out, err = capsys.readouterr()
    assert returned == code, err
    assert "Traceback" not in err
    if message is not None:
        expected = message.replace("{root}", str(world))
        assert err.strip().endswith(expected), err
        assert len(err.strip().splitlines()) <= 3, err
    assert database_bytes(world) == before


@pytest.mark.parametrize("argv, code, message", CASES, ids=[f"{i:02d}" for i in range(len(CASES))])
def test_bad_input_is_refused_with_its_message_and_changes_nothing(
    world, argv, code, message, capsys
):
    assert_refused(world, argv, code, message, capsys)


def test_at_least_forty_bad_inputs(world, capsys):
    """At least forty different bad inputs are refused, each with its exact message: every
    case is run here and only those that pass are counted (not the list's length); a case
    without a message to check, or with the same input as another, counts once or not."""
    refused, failed = set(), []
    for argv, code, message in CASES:
        try:
            assert_refused(world, argv, code, message, capsys)
        except AssertionError as error:
            failed.append(f"{' '.join(argv)}: {str(error).splitlines()[0]}")
            continue
        if message is not None:
            refused.add(tuple(argv))
    assert len(refused) >= 40, f"only {len(refused)} bad inputs refused as expected: {failed}"


# -- the database file itself -------------------------------------------------------------


def run_list(db) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["list", "--db", str(db)])
    return code, err.getvalue().strip()


def test_a_file_that_is_not_a_database_is_left_as_it_is(tmp_path):
    db = tmp_path / "bqtui.db"
    db.write_bytes(b"my notes, not a database\n" * 100)
    before = db.read_bytes()
    code, err = run_list(db)
    assert code == 2
    assert err == (
        f"bqtui: {db} is not a bqtui database, or it is damaged (file is not a database). "
        "bqtui leaves it as it is: restore it from a backup, or point --db at another file."
    )
    assert db.read_bytes() == before


def test_a_database_of_a_newer_bqtui_is_refused(tmp_path):
    db = tmp_path / "bqtui.db"
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = db.read_bytes()
    code, err = run_list(db)
    assert code == 2
    assert err == (
        f"bqtui: The database {db} was written by a newer bqtui (schema {SCHEMA_VERSION + 1}); "
        "upgrade bqtui."
    )
    assert db.read_bytes() == before


# Runs the CLI as another user: imports it (and, by a first run on a writable copy, every
# module the command needs) while still root, then drops to that user for the real run.
# Dropping inside the process, rather than starting the interpreter as that user, works
# wherever Python and the checkout live: the venv's interpreter may sit under /root, which
# only root can read.
_AS_USER = """
import os, sys
from bqtui.cli import main
uid, gid, warm_up, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
assert main([*argv, "--db", warm_up]) == 0  # as root: every import done
if uid != os.geteuid():
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
assert (os.getuid(), os.geteuid()) == (uid, uid)
sys.exit(main([*argv, "--db", os.environ["READ_ONLY_DB"]]))
"""


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a database in WAL mode (its log included)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def test_a_read_only_database_says_so(world, tmp_path):
    """A change to a database its user may only read: as root (CI) the CLI runs as the user
    nobody, root ignoring file permissions. The exact message, and the file unchanged."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    else:
        uid, gid = os.geteuid(), os.getegid()
    warm_up = tmp_path / "warm-up.db"
    copy_database(world / "bqtui.db", warm_up)
    # Not under tmp_path: pytest keeps root's folders private; the user needs a way in.
    place = Path(tempfile.mkdtemp(prefix="bqtui-read-only-"))
    try:
        place.chmod(0o711)
        home = place / "home"  # the user's own folder, writable: only the file is read-only
        home.mkdir(mode=0o700)
        db = home / "bqtui.db"
        copy_database(world / "bqtui.db", db)
        db.chmod(stat.S_IRUSR)
        os.chown(home, uid, gid)
        os.chown(db, uid, gid)
        before = db.read_bytes()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHON_KEYRING_BACKEND": os.environ["PYTHON_KEYRING_BACKEND"],
            "BQTUI_DATA_DIR": str(home / "data"),
            "XDG_DATA_HOME": str(home / "xdg-data"),
            "XDG_CONFIG_HOME": str(home / "xdg-config"),
            "READ_ONLY_DB": str(db),
        }
        done = subprocess.run(
            [sys.executable, "-c", _AS_USER, str(uid), str(gid), str(warm_up), "pause", "ev"],
            capture_output=True,
            text=True,
            cwd=home,
            env=env,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip() == (
            f"bqtui: The database {db} is read-only for this user (attempt to write a readonly "
            "database). Make it and its folder writable (chmod u+w), or use another file with "
            "--db."
        )
        assert db.read_bytes() == before
        assert not Store(warm_up).require_export("ev").enabled  # the warm-up did pause it
    finally:
        shutil.rmtree(place)


def test_an_unwritable_place_for_the_database_says_what_to_do(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    db = blocker / "sub" / "bqtui.db"
    code, err = run_list(db)
    assert code == 2
    assert err == (
        f"bqtui: Cannot create the database {db}: Not a directory. Choose a writable place "
        "with --db (or BQTUI_DB, or BQTUI_DATA_DIR for the folder)."
    )


def test_a_full_disk_is_a_clear_message_and_nothing_half_written(tmp_path, monkeypatch):
    """SQLite's own limit plays the full disk: every write fails as it would on one."""
    db = tmp_path / "bqtui.db"
    store = Store(db)
    pages = store.db.conn.execute("PRAGMA page_count").fetchone()[0]
    store.close()
    original_connect = sqlite3.connect

    def connect_on_a_full_disk(*args, **kwargs):
        conn = original_connect(*args, **kwargs)
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect_on_a_full_disk)
    key = make_service_account_key(
        project_id="p",
        client_email="e@p.iam.gserviceaccount.com",
        token_uri="https://oauth2.googleapis.com/token",
    )
    (tmp_path / "key.json").write_text(json.dumps(key))
    import contextlib
    import io

    err = io.StringIO()
    big = ",".join(f"event_{i}" for i in range(1000))
    with contextlib.redirect_stderr(err):
        code = main(
            [
                "add",
                "--db",
                str(db),
                "--name",
                "ev",
                "--key-file",
                str(tmp_path / "key.json"),
                "--dataset-id",
                "d",
                "--table-id",
                "t",
                "--include-events",
                big,
            ]
        )
    monkeypatch.undo()
    assert code == 1, err.getvalue()
    assert err.getvalue().strip() == (
        f"bqtui: The database {db} could not be written: database or disk is full. Free disk "
        "space and try again; nothing was half written (SQLite rolled the change back)."
    )
    assert Store(db).list_exports() == []
