"""The secret-leak guard itself must be able to fail: feed it leaks and check it sees them."""

from __future__ import annotations

import logging
from typing import Any

from gcauth import service_account
from tests.kit.leak_guard import _LeakGuard


def test_guard_sees_a_token_in_a_log_line_and_a_key_in_a_repr(fresh_emulator: Any) -> None:
    guard = _LeakGuard()
    guard.emulators.append(fresh_emulator)
    info = fresh_emulator.create_service_account()
    guard.private_keys.append(info["private_key"])
    creds = service_account.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/cloud-platform"])
    creds.refresh()
    assert guard.findings() == []
    logger = logging.getLogger("leaky")
    logger.addHandler(guard)
    logger.propagate = False  # this leak is on purpose: keep it from the session's guard
    try:
        logger.warning("sending Authorization: Bearer %s", creds.token)
    finally:
        logger.removeHandler(guard)
    guard.add(repr({"private_key": info["private_key"]}), "a careless repr")
    found = guard.findings()
    assert len(found) == 2
    assert creds.token is not None and all(creds.token not in line for line in found)
