"""The secret-leak guard, a pytest plugin (``pytest_plugins`` in ``tests/conftest.py``).

Across the whole run it records every log line, every gcauth exception message and the
repr()/str() of every live gcauth object after each test; at the end it fails the run if any
access token, refresh token, authorization/device code, client secret or private-key line
issued by any emulator appears in that text.
"""

from __future__ import annotations

import gc
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

_CANDIDATE = re.compile(r"[A-Za-z0-9._~-]{12,}")
_PEM_LINE = re.compile(r"[A-Za-z0-9+/=]{40,}")


class _LeakGuard(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.where: list[str] = []
        self.emulators: list[Any] = []
        self.private_keys: list[str] = []
        self.objects_seen = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.add(self.format(record), f"log {record.name}")
        except Exception:  # noqa: BLE001 - a logging handler must never raise
            pass

    def add(self, text: str, where: str) -> None:
        if text:
            self.texts.append(text.replace("\\n", "\n"))
            self.where.append(where)

    def scan_objects(self, test: str) -> None:
        for obj in gc.get_objects():
            module = getattr(type(obj), "__module__", None)
            if not isinstance(module, str) or not module.startswith("gcauth") \
                    or isinstance(obj, type):
                continue
            self.objects_seen += 1
            try:
                self.add(repr(obj), f"repr in {test}")
                self.add(str(obj), f"str in {test}")
            except Exception as exc:  # noqa: BLE001 - a broken repr is itself a finding
                self.add(f"repr failed: {type(exc).__name__}", test)

    def secrets(self) -> tuple[set[str], set[str]]:
        tokens: set[str] = set()
        for emu in self.emulators:
            state = emu._state
            with state.lock:
                tokens.update(state.access_tokens)
                tokens.update(state.refresh_tokens)
                tokens.update(state.codes)
                tokens.update(state.devices)
                tokens.update(c.client_secret for c in state.clients.values())
        pem_lines = {line for pem in self.private_keys for line in pem.splitlines()
                     if len(line) >= 40 and "-----" not in line}
        return tokens, pem_lines

    def findings(self) -> list[str]:
        tokens, pem_lines = self.secrets()
        found = []
        for text, where in zip(self.texts, self.where, strict=True):
            hits = {c for c in _CANDIDATE.findall(text) if c in tokens}
            hits |= {c for c in _PEM_LINE.findall(text) if c in pem_lines}
            if hits:
                found.append(f"{where}: {len(hits)} secret(s) e.g. {next(iter(hits))[:6]}...")
        return found


_GUARD = _LeakGuard()


@pytest.fixture(scope="session", autouse=True)
def secret_leak_guard() -> Iterator[_LeakGuard]:
    """Fail the run if any emulator-issued secret reached a log, repr/str or exception."""
    from gcauth import exceptions
    from gcauth.emulator import Emulator

    root = logging.getLogger()
    old_level = root.level
    root.addHandler(_GUARD)
    root.setLevel(logging.DEBUG)
    original_init = exceptions.GCAuthError.__init__
    original_start = Emulator.start
    original_create = Emulator.create_service_account

    def recording_init(self: BaseException, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        _GUARD.add(" ".join(str(a) for a in args), f"exception {type(self).__name__}")

    def recording_start(self: Any) -> Any:
        _GUARD.emulators.append(self)
        return original_start(self)

    def recording_create(self: Any, *args: Any, **kwargs: Any) -> Any:
        info = original_create(self, *args, **kwargs)
        if "private_key" in info:  # keyless accounts (with_key=False) have none
            _GUARD.private_keys.append(info["private_key"])
        return info

    exceptions.GCAuthError.__init__ = recording_init  # type: ignore[method-assign]
    Emulator.start = recording_start  # type: ignore[method-assign]
    Emulator.create_service_account = recording_create  # type: ignore[method-assign]
    try:
        yield _GUARD
    finally:
        exceptions.GCAuthError.__init__ = original_init  # type: ignore[method-assign]
        Emulator.start = original_start  # type: ignore[method-assign]
        Emulator.create_service_account = original_create  # type: ignore[method-assign]
        root.removeHandler(_GUARD)
        root.setLevel(old_level)
    findings = _GUARD.findings()
    assert not findings, "secrets leaked into logs/repr/exceptions:\n" + "\n".join(findings[:20])


@pytest.fixture(autouse=True)
def _scan_gcauth_objects(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    kit = sys.modules.get("tests.kit.cli")
    if kit is not None:  # CLI subprocesses a failed test left running
        kit.finish_all()
    _GUARD.scan_objects(request.node.nodeid)
