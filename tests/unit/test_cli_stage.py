"""The Cloud Storage stage's configuration: `add --stage`, `set-stage`, show/list JSON, and the
HMAC secret kept in the keyring only."""

import json

import pytest

from bqtui.cli import main
from bqtui.core.errors import ConfigError
from bqtui.core.stage_uri import parse_stage_uri
from bqtui.state import secrets
from bqtui.state.store import SCHEMA_VERSION, Store
from tests.harness.keys import make_service_account_key
from tests.unit.test_cli_add import keyring_entries

SECRET = "hmacSECRETnotForSqlite0123456789abcdefgh"
OTHER_SECRET = "anotherHMACsecretNotForSqlite9876543210"
HMAC_ID = "GOOG1ESTAGEKEY0001"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "key.json"
    key = make_service_account_key(
        project_id="proj-1",
        client_email="exp@proj-1.iam.gserviceaccount.com",
        token_uri="https://oauth2.googleapis.com/token",
    )
    path.write_text(json.dumps(key))
    return path


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "hmac-secret"
    path.write_text(SECRET + "\n")
    return path


@pytest.fixture
def keyring_before() -> list[str]:
    return keyring_entries()


@pytest.fixture
def no_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)


def add(db, key_file, *extra):
    return main(
        ["add", "--db", str(db), "--name", "ev", "--key-file", str(key_file)]
        + ["--dataset-id", "analytics", "--table-id", "events_export", *extra]
    )


def shown(db, capsys) -> dict:
    capsys.readouterr()
    assert main(["show", "--db", str(db), "ev", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def assert_secret_only_in_keyring(db, *outputs: str) -> None:
    stored = db.read_bytes().decode("latin-1")
    for secret in (SECRET, OTHER_SECRET):
        assert secret not in stored
        assert all(secret not in text for text in outputs)


def test_add_with_a_stage_keeps_the_secret_in_the_keyring_only(
    tmp_path, key_file, secret_file, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    flags = ["--stage", "gs://my-bucket/bqtui-stage/", "--stage-hmac-id", HMAC_ID]
    assert add(db, key_file, *flags, "--stage-hmac-secret-file", str(secret_file)) == 0
    out = capsys.readouterr().out
    assert f"Stage gs://my-bucket/bqtui-stage, HMAC key {HMAC_ID} (secret in the keyring)." in out
    export = Store(db).require_export("ev")
    assert (export.stage, export.stage_hmac_id) == ("gs://my-bucket/bqtui-stage", HMAC_ID)
    assert secrets.load_stage_hmac_secret(export.uid) == SECRET  # the newline dropped
    assert Store(db).schema_version == SCHEMA_VERSION

    show = shown(db, capsys)
    assert (show["stage"], show["stage_hmac_id"]) == ("gs://my-bucket/bqtui-stage", HMAC_ID)
    assert main(["list", "--db", str(db), "--json"]) == 0
    listed_text = capsys.readouterr().out
    listed = json.loads(listed_text)
    assert (listed[0]["stage"], listed[0]["stage_hmac_id"]) == (show["stage"], HMAC_ID)
    assert main(["show", "--db", str(db), "ev"]) == 0
    show_text = capsys.readouterr().out
    assert_secret_only_in_keyring(db, out, json.dumps(show), listed_text, show_text)

    assert main(["remove", "--db", str(db), "ev"]) == 0
    assert keyring_entries() == keyring_before


def test_without_a_stage_show_and_list_say_null(tmp_path, key_file, capsys, keyring_before):
    db = tmp_path / "bqtui.db"
    assert add(db, key_file) == 0
    show = shown(db, capsys)
    assert (show["stage"], show["stage_hmac_id"]) == (None, None)
    assert main(["remove", "--db", str(db), "ev"]) == 0
    assert keyring_entries() == keyring_before


def test_the_secret_can_be_typed_at_a_prompt(
    tmp_path, key_file, monkeypatch, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    prompts = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or f" {SECRET} ")
    assert add(db, key_file, "--stage", "gs://b-1", "--stage-hmac-id", HMAC_ID) == 0
    assert prompts == [f"Secret of the HMAC key {HMAC_ID} (not shown): "]
    export = Store(db).require_export("ev")
    assert export.stage == "gs://b-1"
    assert secrets.load_stage_hmac_secret(export.uid) == SECRET
    assert_secret_only_in_keyring(db, capsys.readouterr().out)
    assert main(["remove", "--db", str(db), "ev"]) == 0
    assert keyring_entries() == keyring_before


def test_set_stage_changes_keeps_and_removes_the_key(
    tmp_path, key_file, secret_file, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    assert add(db, key_file) == 0
    uid = Store(db).require_export("ev").uid
    set_stage = ["set-stage", "--db", str(db), "ev"]

    # No stage yet: a new stage needs a key.
    assert main([*set_stage, "--stage", "gs://bucket-a/x"]) == 2
    assert capsys.readouterr().err == (
        'bqtui: Export "ev" has no HMAC key for a stage yet: add --stage-hmac-id ID and its '
        "secret (--stage-hmac-secret-file FILE, or typed when asked).\n"
    )
    assert shown(db, capsys)["stage"] is None

    new_key = ["--stage-hmac-id", HMAC_ID, "--stage-hmac-secret-file", str(secret_file)]
    assert main([*set_stage, "--stage", "gs://bucket-a/x", *new_key]) == 0
    assert capsys.readouterr().out == (
        f'Export "ev" stages through gs://bucket-a/x (new HMAC key {HMAC_ID}, secret in the '
        "keyring).\n"
    )
    assert secrets.load_stage_hmac_secret(uid) == SECRET

    # Only the URI changes: the key is kept.
    assert main([*set_stage, "--stage", "gs://bucket-b/y/z"]) == 0
    assert capsys.readouterr().out == (
        f'Export "ev" stages through gs://bucket-b/y/z (HMAC key kept {HMAC_ID}, secret in the '
        "keyring).\n"
    )
    show = shown(db, capsys)
    assert (show["stage"], show["stage_hmac_id"]) == ("gs://bucket-b/y/z", HMAC_ID)

    # A new key replaces the old one.
    secret_file.write_text(OTHER_SECRET)
    new_key[1] = "GOOG1EOTHERKEY"
    assert main([*set_stage, "--stage", "gs://bucket-b/y/z", *new_key]) == 0
    assert secrets.load_stage_hmac_secret(uid) == OTHER_SECRET
    assert shown(db, capsys)["stage_hmac_id"] == "GOOG1EOTHERKEY"

    assert main([*set_stage, "--no-stage"]) == 0
    out = capsys.readouterr().out
    assert out == 'Export "ev" has no stage: its rows pass through bqtui to BigQuery.\n'
    show = shown(db, capsys)
    assert (show["stage"], show["stage_hmac_id"]) == (None, None)
    assert secrets.find_stage_hmac_secret(uid) is None
    assert_secret_only_in_keyring(db, out, json.dumps(show))
    assert main(["remove", "--db", str(db), "ev"]) == 0
    assert keyring_entries() == keyring_before


STAGE_URI_MESSAGES = [
    ("s3://x", "--stage must be a Cloud Storage URI like gs://my-bucket/bqtui-stage; got s3://x."),
    (
        "my-bucket/x",
        "--stage must be a Cloud Storage URI like gs://my-bucket/bqtui-stage; got my-bucket/x.",
    ),
    (
        "gs://My_Bucket/x",
        '--stage names the bucket "My_Bucket", which is not a Cloud Storage bucket name: use '
        "3-63 lowercase letters, digits, '-', '_' or '.', starting and ending with a letter or "
        "digit, e.g. gs://my-bucket/bqtui-stage.",
    ),
    (
        "gs://ab",
        '--stage names the bucket "ab", which is not a Cloud Storage bucket name: use '
        "3-63 lowercase letters, digits, '-', '_' or '.', starting and ending with a letter or "
        "digit, e.g. gs://my-bucket/bqtui-stage.",
    ),
    (
        "gs://bucket/day=*/x",
        "--stage names one folder and takes no wildcards (*); got gs://bucket/day=*/x, type "
        "e.g. gs://my-bucket/bqtui-stage.",
    ),
    (
        "gs://bucket/a//b",
        "--stage's folder names may use only letters, digits, '-', '_', '.' and '=' (no empty, "
        "'.' or '..' names); got gs://bucket/a//b, type e.g. gs://my-bucket/bqtui-stage.",
    ),
    (
        "gs://bucket/a b",
        "--stage's folder names may use only letters, digits, '-', '_', '.' and '=' (no empty, "
        "'.' or '..' names); got gs://bucket/a b, type e.g. gs://my-bucket/bqtui-stage.",
    ),
]


@pytest.mark.parametrize(("uri", "message"), STAGE_URI_MESSAGES)
def test_bad_stage_uris_are_refused_and_nothing_is_stored(
    tmp_path, key_file, secret_file, uri, message, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    hmac = ["--stage-hmac-id", HMAC_ID, "--stage-hmac-secret-file", str(secret_file)]
    assert add(db, key_file, "--stage", uri, *hmac) == 2
    assert capsys.readouterr().err == f"bqtui: {message}\n"
    assert Store(db).list_exports() == []
    assert keyring_entries() == keyring_before


def test_stage_uris_are_normalised():
    assert parse_stage_uri(" GS://bucket.name_1/a/b=c/ ") == "gs://bucket.name_1/a/b=c"
    assert parse_stage_uri("gs://bucket//") == "gs://bucket"
    for bad in ("gs://-bucket/x", "gs://a..b/x", "gs://bucket-/x", "gs://"):
        with pytest.raises(ConfigError, match="is not a Cloud Storage bucket name"):
            parse_stage_uri(bad)
    for reserved in ("gs://10.0.0.1/x", "gs://goog-stage", "gs://my-google-bucket"):
        with pytest.raises(ConfigError, match="a name Cloud Storage reserves"):
            parse_stage_uri(reserved)


NO_SECRET = (
    "--stage needs the secret of the HMAC key --stage-hmac-id names: give "
    "--stage-hmac-secret-file FILE, or run on a terminal to be asked for it."
)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--stage", "gs://bucket/x"],
            "--stage needs the HMAC key that ClickHouse writes with: add --stage-hmac-id ID "
            "(its secret comes from --stage-hmac-secret-file FILE or a prompt).",
        ),
        (["--stage", "gs://bucket/x", "--stage-hmac-id", HMAC_ID], NO_SECRET),
        (
            ["--stage-hmac-id", HMAC_ID],
            "--stage-hmac-id and --stage-hmac-secret-file go with --stage gs://BUCKET/PREFIX; "
            "give --stage too, or leave them out.",
        ),
        (
            ["--stage", "gs://bucket/x", "--stage-hmac-id", "GOOG1E/secret+like"],
            "--stage-hmac-id must be an HMAC key's access ID, letters and digits like "
            "GOOG1EABCDEF (Cloud Storage > Settings > Interoperability); what was given is not "
            "one (not shown, in case it is the secret).",
        ),
    ],
)
def test_missing_or_bad_hmac_flags_store_nothing(
    tmp_path, key_file, flags, message, no_terminal, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    assert add(db, key_file, *flags) == 2
    err = capsys.readouterr().err
    assert err == f"bqtui: {message}\n"
    assert "secret+like" not in err
    assert Store(db).list_exports() == []
    assert keyring_entries() == keyring_before


def test_secret_file_without_an_id_is_refused(tmp_path, key_file, secret_file, capsys):
    db = tmp_path / "bqtui.db"
    flags = ["--stage", "gs://bucket/x", "--stage-hmac-secret-file", str(secret_file)]
    assert add(db, key_file, *flags) == 2
    assert capsys.readouterr().err == (
        "bqtui: --stage needs the HMAC key that ClickHouse writes with: add --stage-hmac-id ID "
        "(its secret comes from --stage-hmac-secret-file FILE or a prompt).\n"
    )


def _secret_file_cases(tmp_path):
    empty, blank, two_lines, large, binary = (tmp_path / n for n in "abcde")
    empty.write_text("")
    blank.write_text("\n")
    two_lines.write_text(f"{SECRET}\nsecond line\n")
    large.write_text("x" * 5000)
    binary.write_bytes(b"\xff\xfe\x00secret")
    folder = tmp_path / "folder"
    folder.mkdir()
    which = "the secret of the key --stage-hmac-id names"
    only = "--stage-hmac-secret-file takes the file that holds only the HMAC key's secret."
    return [
        (empty, f"The HMAC secret file {empty} is empty; put {which} in it, on one line."),
        (blank, f"The HMAC secret file {blank} is empty; put {which} in it, on one line."),
        (
            two_lines,
            f"The HMAC secret file {two_lines} holds more than a secret (spaces or several "
            f"lines); keep only {which}, on one line.",
        ),
        (
            large,
            f"The HMAC secret file {large} is over 4 KB; an HMAC secret is 40 characters. {only}",
        ),
        (binary, f"The HMAC secret file {binary} is not text (not UTF-8); {only}"),
        (folder, f"{folder} is a folder; {only}"),
        (tmp_path / "nope", f"HMAC secret file not found: {tmp_path / 'nope'}. Check the path."),
        (
            "/dev/zero",
            f"/dev/zero is not a regular file (a device, pipe or socket); {only}",
        ),
    ]


def test_bad_secret_files_are_refused_and_nothing_is_stored(
    tmp_path, key_file, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    for path, message in _secret_file_cases(tmp_path):
        flags = ["--stage", "gs://bucket/x", "--stage-hmac-id", HMAC_ID]
        assert add(db, key_file, *flags, "--stage-hmac-secret-file", str(path)) == 2
        err = capsys.readouterr().err
        assert err == f"bqtui: {message}\n", path
        assert SECRET not in err
        assert Store(db).list_exports() == []
        assert keyring_entries() == keyring_before


def test_a_secret_file_with_crlf_loses_only_its_line_end(tmp_path, key_file, keyring_before):
    db = tmp_path / "bqtui.db"
    path = tmp_path / "crlf"
    path.write_bytes(SECRET.encode() + b"\r\n")
    flags = ["--stage", "gs://bucket/x", "--stage-hmac-id", HMAC_ID]
    assert add(db, key_file, *flags, "--stage-hmac-secret-file", str(path)) == 0
    assert secrets.load_stage_hmac_secret(Store(db).require_export("ev").uid) == SECRET
    assert main(["remove", "--db", str(db), "ev"]) == 0
    assert keyring_entries() == keyring_before


def test_an_empty_prompt_stores_nothing(tmp_path, key_file, monkeypatch, capsys, keyring_before):
    db = tmp_path / "bqtui.db"
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: "")
    assert add(db, key_file, "--stage", "gs://bucket/x", "--stage-hmac-id", HMAC_ID) == 2
    assert capsys.readouterr().err == (
        "bqtui: No HMAC secret was typed: run again and paste the secret of the key "
        "--stage-hmac-id names, or give --stage-hmac-secret-file FILE.\n"
    )
    assert Store(db).list_exports() == []
    assert keyring_entries() == keyring_before


def test_other_bad_input_is_refused_before_the_prompt(tmp_path, key_file, monkeypatch, capsys):
    db = tmp_path / "bqtui.db"
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", pytest.fail)
    flags = ["--stage", "gs://bucket/x", "--stage-hmac-id", HMAC_ID, "--team-id", "-1"]
    assert add(db, key_file, *flags) == 2
    assert capsys.readouterr().err == "bqtui: Team ID cannot be negative.\n"


def test_set_stage_bad_input_changes_nothing(
    tmp_path, key_file, secret_file, no_terminal, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    hmac = ["--stage-hmac-id", HMAC_ID, "--stage-hmac-secret-file", str(secret_file)]
    assert add(db, key_file, "--stage", "gs://bucket/x", *hmac) == 0
    uid = Store(db).require_export("ev").uid
    set_stage = ["set-stage", "--db", str(db), "ev"]
    secret_file.write_text(OTHER_SECRET)
    cases = [
        (
            ["--stage", "gs://bucket/y", "--no-stage"],
            "Give --stage gs://BUCKET/PREFIX or --no-stage, not both (--no-stage takes no HMAC "
            "key).",
        ),
        (
            ["--no-stage", "--stage-hmac-id", HMAC_ID],
            "Give --stage gs://BUCKET/PREFIX or --no-stage, not both (--no-stage takes no HMAC "
            "key).",
        ),
        (
            [],
            "bqtui set-stage needs --stage gs://BUCKET/PREFIX (with --stage-hmac-id ID for a "
            "new HMAC key) or --no-stage.",
        ),
        (["--stage", "s3://x", *hmac], STAGE_URI_MESSAGES[0][1]),
        (
            ["--stage", "gs://bucket/y", "--stage-hmac-secret-file", str(secret_file)],
            "--stage-hmac-secret-file needs --stage-hmac-id ID: a secret goes with its key's "
            "access ID.",
        ),
        (["--stage", "gs://bucket/y", "--stage-hmac-id", "GOOG1ENEW"], NO_SECRET),
    ]
    for flags, message in cases:
        assert main([*set_stage, *flags]) == 2
        assert capsys.readouterr().err == f"bqtui: {message}\n", flags
        export = Store(db).require_export("ev")
        assert (export.stage, export.stage_hmac_id) == ("gs://bucket/x", HMAC_ID)
        assert secrets.load_stage_hmac_secret(uid) == SECRET
    assert main(["set-stage", "--db", str(db), "nope", "--no-stage"]) == 2
    assert capsys.readouterr().err == 'bqtui: No export named "nope". Exports: ev.\n'
    assert main(["remove", "--db", str(db), "ev"]) == 0
    assert keyring_entries() == keyring_before


def test_set_stage_keeping_a_key_the_keyring_lost_says_how_to_set_it(
    tmp_path, key_file, secret_file, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"
    hmac = ["--stage-hmac-id", HMAC_ID, "--stage-hmac-secret-file", str(secret_file)]
    assert add(db, key_file, "--stage", "gs://bucket/x", *hmac) == 0
    secrets.delete_stage_hmac_secret(Store(db).require_export("ev").uid)
    assert main(["set-stage", "--db", str(db), "ev", "--stage", "gs://bucket/y"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        'bqtui: The Cloud Storage stage\'s HMAC secret of export "ev" is not in the keyring'
    )
    assert err.endswith(
        "Set it again: bqtui set-stage ev --stage gs://BUCKET/PREFIX --stage-hmac-id ID "
        "--stage-hmac-secret-file FILE\n"
    )
    assert Store(db).require_export("ev").stage == "gs://bucket/x"
    assert main(["remove", "--db", str(db), "ev"]) == 0
    assert keyring_entries() == keyring_before


def test_a_keyring_failure_stores_no_export(
    tmp_path, key_file, secret_file, monkeypatch, capsys, keyring_before
):
    db = tmp_path / "bqtui.db"

    def refuse(export_uid, secret):
        raise secrets.SecretsError("The keyring refused to store a secret.")

    monkeypatch.setattr(secrets, "store_stage_hmac_secret", refuse)
    hmac = ["--stage-hmac-id", HMAC_ID, "--stage-hmac-secret-file", str(secret_file)]
    assert add(db, key_file, "--stage", "gs://bucket/x", *hmac) == 2
    assert capsys.readouterr().err == "bqtui: The keyring refused to store a secret.\n"
    assert Store(db).list_exports() == []
    assert keyring_entries() == keyring_before  # the service-account key is gone too


def test_set_stage_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["set-stage", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--stage", "--stage-hmac-id", "--stage-hmac-secret-file", "--no-stage"):
        assert flag in text
