"""Test-wide isolation: a private HOME, no GOOGLE_*/CLOUDSDK_*/GCE_* from the outside world, and
metadata detection pointed at a closed loopback port, so no test can reach a real Google host.

pytest-socket (``--allow-hosts`` in pyproject) refuses every non-loopback connection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kit.network import CLOSED_METADATA, release_reserved_port

# The test kit's plugins: the secret-leak guard, the CLI tests' shared fixtures
# (``client_file``, ``env``) and the Google-library tests' ``block_google_auth_lookups``,
# which live beside their helpers.
pytest_plugins = ["tests.kit.leak_guard", "tests.kit.cli", "tests.kit.google"]


def pytest_unconfigure(config: pytest.Config) -> None:
    release_reserved_port()

_PREFIXES = ("GOOGLE_", "CLOUDSDK_", "GCE_", "GCLOUD_", "AWS_")
_EXTRA = ("NO_GCE_CHECK", "K_SERVICE", "FUNCTION_TARGET", "GAE_APPLICATION", "CLOUD_RUN_JOB",
          "APPDATA")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory,
                 ) -> Iterator[Path]:
    """Every test gets an empty HOME and a metadata server address that refuses connections."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name in _EXTRA:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.setenv("GCE_METADATA_HOST", CLOSED_METADATA)
    monkeypatch.setenv("GCE_METADATA_IP", CLOSED_METADATA)
    yield home


@pytest.fixture(scope="session")
def emulator() -> Iterator[object]:
    """One emulator for the session (tests that change its settings use ``fresh_emulator``)."""
    from gcauth.emulator import Emulator

    with Emulator() as emu:
        yield emu


@pytest.fixture
def fresh_emulator() -> Iterator[object]:
    from gcauth.emulator import Emulator

    with Emulator() as emu:
        yield emu
