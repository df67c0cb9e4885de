"""Pytest fixtures for tests that talk to BigQuery: load with
``pytest_plugins = ["tests.harness.fixtures"]`` in the root conftest.

``bq_emulator`` and ``fake_google`` live for the whole session (installing the emulator
takes a minute the first time, starting it a second). Each test that uses ``fake_google``
starts with no injected faults and an empty call record; tests share the emulator's data,
so they name their datasets with ``tests.harness.google.unique_id``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bqtui.demo.emulator import (
    Emulator,
    EmulatorError,
    default_venv_dir,
    ensure_installed,
    start_emulator,
)
from tests.harness.cloud_storage import CloudStorage
from tests.harness.google import FakeGoogle

DEFAULT_PROJECT = "bqtui-test"


@pytest.fixture(scope="session")
def gcs_local_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder behind the session's Cloud Storage: ROOT/BUCKET/OBJECT."""
    return tmp_path_factory.mktemp("gcs")


@pytest.fixture(scope="session")
def _cloud_storage_server(gcs_local_root: Path) -> Iterator[CloudStorage]:
    with CloudStorage(gcs_local_root) as storage:
        yield storage


@pytest.fixture
def cloud_storage(_cloud_storage_server: CloudStorage) -> CloudStorage:
    """Cloud Storage's XML API over ``gcs_local_root``, which the emulator loads gs:// URIs
    from; each test starts with no keys, denials or calls (objects stay: use own buckets)."""
    _cloud_storage_server.reset()
    return _cloud_storage_server


@pytest.fixture(scope="session")
def bq_emulator(
    tmp_path_factory: pytest.TempPathFactory, gcs_local_root: Path
) -> Iterator[Emulator]:
    """A running, in-memory BigQuery emulator (its log is in the session's tmp dir) that
    loads gs://BUCKET/PATH from ``gcs_local_root``."""
    try:
        python = ensure_installed(default_venv_dir())
    except EmulatorError as exc:
        pytest.fail(f"Could not install the BigQuery emulator:\n{exc}", pytrace=False)
    log_file = tmp_path_factory.mktemp("bqemulator") / "emulator.log"
    try:
        emulator = start_emulator(python, log_file=log_file, gcs_local_root=gcs_local_root)
    except EmulatorError as exc:
        pytest.fail(f"Could not start the BigQuery emulator:\n{exc}", pytrace=False)
    with emulator:
        yield emulator


@pytest.fixture(scope="session")
def fake_google(bq_emulator: Emulator) -> Iterator[FakeGoogle]:
    """Google's side (token endpoint, IAM, BigQuery API) with project ``bqtui-test``."""
    with FakeGoogle(bq_emulator.url) as google:
        google.add_project(DEFAULT_PROJECT)
        yield google


@pytest.fixture(autouse=True)
def _fresh_fake_google(request: pytest.FixtureRequest) -> Iterator[None]:
    """Keep one test's faults and calls out of the next test."""
    if "fake_google" not in request.fixturenames:
        yield
        return
    google: FakeGoogle = request.getfixturevalue("fake_google")
    google.proxy.clear_faults()
    google.proxy.reset_calls()
    google.reset_impersonation_calls()
    yield
    google.proxy.clear_faults()
