import json

import pytest

from bqtui.core.errors import KeyFileError
from bqtui.destination.keyfile import MAX_KEY_FILE_BYTES, load_key_file, parse_key_text
from tests.harness.keys import make_service_account_key


@pytest.fixture(scope="module")
def good_key() -> dict:
    return make_service_account_key(
        project_id="proj-123",
        client_email="exporter@proj-123.iam.gserviceaccount.com",
        token_uri="https://oauth2.googleapis.com/token",
    )


def write(tmp_path, content: str):
    path = tmp_path / "key.json"
    path.write_text(content)
    return path


def test_a_valid_key_gives_project_and_email(tmp_path, good_key):
    key = load_key_file(write(tmp_path, json.dumps(good_key)))
    assert key.project_id == "proj-123"
    assert key.client_email == "exporter@proj-123.iam.gserviceaccount.com"
    assert "PRIVATE KEY" not in repr(key)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda k: k.pop("client_email"), 'The key file is missing the field "client_email".'),
        (lambda k: k.pop("project_id"), 'The key file is missing the field "project_id".'),
        (lambda k: k.pop("token_uri"), 'The key file is missing the field "token_uri".'),
        (lambda k: k.update(private_key=""), 'The key file is missing the field "private_key".'),
        (lambda k: k.update(type="authorized_user"), 'The key file is of type "authorized_user"'),
        (lambda k: k.pop("type"), 'The key file has no "type" field'),
        (
            lambda k: k.update(
                private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            'The key\'s "private_key" cannot be read: the PEM is damaged or truncated.',
        ),
        (lambda k: k.update(private_key="not a pem"), 'The key\'s "private_key" is not a PEM'),
        (
            lambda k: k.update(token_uri="ftp://x"),
            'The key\'s "token_uri" (ftp://x) is not an http(s) URL',
        ),
        (
            lambda k: k.update(client_email="nobody"),
            'The key\'s "client_email" (nobody) is not an email',
        ),
    ],
)
def test_each_bad_key_has_its_own_message(good_key, mutate, message):
    key = dict(good_key)
    mutate(key)
    with pytest.raises(KeyFileError) as caught:
        parse_key_text(json.dumps(key))
    assert str(caught.value).startswith(message)
    assert "PRIVATE KEY" not in str(caught.value)


def test_not_json(tmp_path):
    with pytest.raises(KeyFileError, match=r"^The key file is not valid JSON \(line 1, column 2"):
        load_key_file(write(tmp_path, "{oops"))


def test_json_that_is_not_an_object(tmp_path):
    with pytest.raises(KeyFileError, match=r"^The key file holds a JSON list, not an object"):
        load_key_file(write(tmp_path, "[1, 2]"))


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(KeyFileError, match=r"^Key file not found: "):
        load_key_file(tmp_path / "nope.json")
    with pytest.raises(KeyFileError, match=r"is a folder; choose the service-account key"):
        load_key_file(tmp_path)


def test_oversized_file_is_refused_unread(tmp_path):
    path = write(tmp_path, " " * (MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(KeyFileError, match=r"a service-account key is about 2-3 KB"):
        load_key_file(path)


def test_binary_p12_file(tmp_path):
    path = tmp_path / "key.p12"
    path.write_bytes(b"\x30\x82\xff\xfe\x00binary")
    with pytest.raises(KeyFileError, match=r"is not text \(not UTF-8\). Choose the \.json key"):
        load_key_file(path)
