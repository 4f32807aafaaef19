"""Unit tests drive flows by hand: no socket may be opened at all."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.disable_socket)


@pytest.fixture(autouse=True)
def _no_metadata_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """ADC in unit tests must decide without a probe (sockets are off here)."""
    monkeypatch.setenv("NO_GCE_CHECK", "true")
