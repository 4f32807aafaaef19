"""Test-wide isolation: a private HOME, no GOOGLE_*/CLOUDSDK_*/GCE_* from the outside world, and
metadata detection pointed at a closed loopback port, so no test can reach a real Google host.

pytest-socket (``--allow-hosts`` in pyproject) refuses every non-loopback connection.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest


def closed_loopback_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PREFIXES = ("GOOGLE_", "CLOUDSDK_", "GCE_", "GCLOUD_")
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
    closed = f"127.0.0.1:{closed_loopback_port()}"
    monkeypatch.setenv("GCE_METADATA_HOST", closed)
    monkeypatch.setenv("GCE_METADATA_IP", closed)
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
