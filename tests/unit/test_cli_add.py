"""`bqtui add` and friends: bad input gets its specific message and stores nothing."""

import configparser
import json
import stat

import keyring
import pytest
from keyring.backends import fail

from bqtui.cli import main
from bqtui.state import secrets
from bqtui.state.store import Store
from tests.harness.keys import make_service_account_key


@pytest.fixture(scope="module")
def key() -> dict:
    return make_service_account_key(
        project_id="proj-1",
        client_email="exp@proj-1.iam.gserviceaccount.com",
        token_uri="https://oauth2.googleapis.com/token",
    )


@pytest.fixture
def key_file(tmp_path, key):
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    return path


def add(db, key_file, *extra, table="events_export", dataset="analytics"):
    return main(
        [
            "add",
            "--db",
            str(db),
            "--name",
            "ev",
            "--key-file",
            str(key_file),
            "--dataset-id",
            dataset,
            "--table-id",
            table,
            *extra,
        ]
    )


def keyring_entries() -> list[str]:
    """Entries of bqtui in the tests' file keyring (an INI file: section = service)."""
    parser = configparser.RawConfigParser()
    parser.read(keyring.get_keyring().file_path)
    return [f"{s}/{o}" for s in parser.sections() if s == "bqtui" for o in parser.options(s)]


@pytest.fixture
def keyring_before() -> list[str]:
    """Other tests share the keyring file: compare with what was there before."""
    return keyring_entries()


def assert_nothing_stored(db, keyring_before):
    assert Store(db).list_exports() == []
    assert keyring_entries() == keyring_before


def test_add_stores_the_export_and_the_key_in_the_keyring_only(
    tmp_path, key_file, key, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    assert add(db, key_file, "--model", "persons", "--json-type", "--interval", "5m") == 0
    export = Store(db).require_export("ev")
    assert (export.model, export.interval, export.json_type) == ("persons", "5m", True)
    assert json.loads(secrets.load_service_account_key(export.uid)) == key
    assert key["private_key_id"] not in db.read_bytes().decode("latin-1")
    assert "BEGIN PRIVATE KEY" not in db.read_bytes().decode("latin-1")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    assert "PRIVATE" not in out and "Key for exp@proj-1.iam.gserviceaccount.com stored" in out

    assert main(["list", "--db", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in listed] == ["ev"] and "PRIVATE" not in json.dumps(listed)

    assert main(["remove", "--db", str(db), "ev"]) == 0
    assert_nothing_stored(db, keyring_before)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{nope", "bqtui: The key file is not valid JSON (line 1, column 2"),
        (
            json.dumps({"type": "authorized_user", "client_id": "x"}),
            'bqtui: The key file is of type "authorized_user" (a user\'s login credential',
        ),
        (
            json.dumps({"type": "service_account", "project_id": "p"}),
            'bqtui: The key file is missing the field "client_email".',
        ),
    ],
)
def test_bad_key_files_are_refused_and_nothing_is_stored(
    tmp_path, content, message, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert add(db, bad) == 2
    assert capsys.readouterr().err.startswith(message)
    assert_nothing_stored(db, keyring_before)


def test_fully_qualified_table_name_is_refused_with_the_bare_id(
    tmp_path, key_file, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    assert add(db, key_file, table="project-123:dataset:MyExportTable") == 2
    assert capsys.readouterr().err == (
        'bqtui: "project-123:dataset:MyExportTable" is a fully qualified name, not a table ID. '
        'Use the bare table ID "MyExportTable" and the dataset ID "dataset"; the project comes '
        "from the key file.\n"
    )
    assert_nothing_stored(db, keyring_before)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--model", "users"],
            'bqtui: Unknown model "users". Choose one of: events, persons, sessions.',
        ),
        (
            ["--interval", "minute"],
            'bqtui: Unknown interval "minute". Choose one of: 5m, hour, day, week.',
        ),
        (["--start", "yesterday"], 'bqtui: The start "yesterday" is not an ISO 8601 time'),
        (
            ["--include-events", "a", "--exclude-events", "a"],
            "bqtui: Events listed both to include and to exclude: a. Pick one.",
        ),
        (["--team-id", "x"], 'bqtui: Team ID must be a whole number, not "x".'),
    ],
)
def test_other_bad_options(tmp_path, key_file, extra, message, capsys, keyring_before):
    db = tmp_path / "bqtui.db"
    assert add(db, key_file, *extra) == 2
    assert capsys.readouterr().err.startswith(message)
    assert_nothing_stored(db, keyring_before)


def test_no_keyring_backend_names_the_options_and_stores_nothing(
    tmp_path, key_file, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        assert add(db, key_file) == 2
    finally:
        keyring.set_keyring(previous)
    err = capsys.readouterr().err
    assert err.startswith("bqtui: No keyring backend is available")
    assert "PYTHON_KEYRING_BACKEND=keyrings.alt.file.PlaintextKeyring" in err
    assert_nothing_stored(db, keyring_before)


def test_duplicate_name_and_unknown_export(tmp_path, key_file, capsys):
    db = tmp_path / "bqtui.db"
    assert add(db, key_file) == 0
    assert add(db, key_file) == 2
    assert 'An export named "ev" exists already' in capsys.readouterr().err
    assert main(["run", "--db", str(db), "nope"]) == 2
    assert capsys.readouterr().err == 'bqtui: No export named "nope". Exports: ev.\n'
    assert main(["pause", "--db", str(db), "ev"]) == 0
    assert Store(db).require_export("ev").enabled is False
    assert main(["resume", "--db", str(db), "ev"]) == 0
    assert Store(db).require_export("ev").enabled is True
    main(["remove", "--db", str(db), "ev"])


def test_run_all_takes_no_command_and_help_works(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--run-all", "list"])
    assert exit_info.value.code == 2
    for command in ("add", "list", "show", "run", "check", "demo"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0


USER_LOGIN = {
    "type": "authorized_user",
    "client_id": "764086051850-fake.apps.googleusercontent.com",
    "client_secret": "GOCSPX-not-for-sqlite",
    "refresh_token": "1//refresh-token-not-for-sqlite",
}
WORKLOAD = {
    "type": "external_account",
    "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
    "token_url": "https://sts.googleapis.com/v1/token",
    "credential_source": {"file": "/var/run/oidc/token"},
}
EXPORTER = "exporter@proj-2.iam.gserviceaccount.com"


def add_keyless(db, *credential):
    return main(
        ["add", "--db", str(db), "--name", "ev", *credential]
        + ["--dataset-id", "analytics", "--table-id", "events_export"]
    )


def test_keyless_exports_keep_only_what_holds_no_secret_in_the_database(
    tmp_path, capsys, keyring_before
):
    login, workload = tmp_path / "login.json", tmp_path / "wif.json"
    login.write_text(json.dumps(USER_LOGIN))
    workload.write_text(json.dumps(WORKLOAD))
    cases = {
        "adc": (["--adc", "--impersonate", EXPORTER], ("adc", EXPORTER)),
        "login": (
            ["--credentials-file", str(login), "--project-id", "proj-2"],
            ("credentials-file", None),
        ),
        "workload": (
            ["--credentials-file", str(workload), "--project-id", "proj-2"],
            ("credentials-file", None),
        ),
    }
    for name, (flags, (auth, impersonate)) in cases.items():
        db = tmp_path / f"{name}.db"
        assert add_keyless(db, *flags) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert main(["show", "--db", str(db), "ev", "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert (shown["auth"], shown["impersonate"]) == (auth, impersonate)
        stored = db.read_bytes().decode("latin-1")
        for secret in (USER_LOGIN["client_secret"], USER_LOGIN["refresh_token"]):
            assert secret not in stored and secret not in out and secret not in json.dumps(shown)
        export = Store(db).require_export("ev")
        if name == "login":
            assert json.loads(secrets.load_credential_file(export.uid)) == USER_LOGIN
            assert "stored in the keyring" in out
        if name == "workload":
            assert json.loads(export.credential_config or "") == WORKLOAD
            assert "kept in the export's configuration (it holds no secret)" in out
        if name == "adc":
            assert out.splitlines()[0].startswith(
                'Added export "ev": events from team 1 to proj-2.'
            )
        assert main(["remove", "--db", str(db), "ev"]) == 0
    capsys.readouterr()
    assert keyring_entries() == keyring_before


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            [],
            "bqtui: bqtui add needs how the export authenticates: --key-file KEY.json (a "
            "service-account key), or without a key file --adc (this machine's Google login or "
            "workload identity) or --credentials-file FILE.json.\n",
        ),
        (
            ["--adc", "--credentials-file", "x.json"],
            "bqtui: Choose how the export authenticates: exactly one of --key-file KEY.json, "
            "--adc (this machine's Google login or workload identity) or --credentials-file "
            "FILE.json.\n",
        ),
        (
            ["--adc", "--impersonate", "alice@example.com"],
            'bqtui: "alice@example.com" is not a service account email: --impersonate takes an '
            "address like exporter@my-project.iam.gserviceaccount.com.\n",
        ),
    ],
)
def test_credential_flags_are_checked_before_anything_is_stored(
    tmp_path, flags, message, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    assert add_keyless(db, *flags) == 2
    assert capsys.readouterr().err == message
    assert_nothing_stored(db, keyring_before)


def test_set_auth_switches_a_key_export_to_adc_and_forgets_the_key(
    tmp_path, key_file, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    assert add(db, key_file) == 0
    assert main(["set-auth", "--db", str(db), "ev", "--adc", "--impersonate", EXPORTER]) == 0
    out = capsys.readouterr().out
    assert f"stores no credential, impersonating {EXPORTER}." in out
    export = Store(db).require_export("ev")
    assert (export.auth, export.impersonate) == ("adc", EXPORTER)
    with pytest.raises(secrets.SecretsError):
        secrets.load_service_account_key(export.uid)
    assert main(["remove", "--db", str(db), "ev"]) == 0
    assert keyring_entries() == keyring_before
