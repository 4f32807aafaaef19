"""Fixtures for the emulator tests: a shared emulator and a raw-HTTP toolkit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gcauth.emulator import Emulator
from tests.kit.emu import Kit


@pytest.fixture(scope="session")
def shared_emu() -> Iterator[Emulator]:
    with Emulator(control=True) as emu:
        yield emu


@pytest.fixture
def emu(shared_emu: Emulator) -> Iterator[Emulator]:
    """The shared emulator, with faults, counters and settings reset after each test."""
    shared_emu.reset_counts()
    yield shared_emu
    shared_emu.faults.clear()
    shared_emu.faults.reset_counts()
    shared_emu.set_token_lifetime(3599)
    shared_emu.set_clock_skew(0)
    shared_emu.device_interval = 5
    shared_emu.device_expires_in = 1800


@pytest.fixture
def kit(emu: Emulator) -> Kit:
    return Kit(emu)


@pytest.fixture(scope="session")
def sa(shared_emu: Emulator) -> dict[str, str]:
    return shared_emu.create_service_account(name="tester")


@pytest.fixture(scope="session")
def dwd_sa(shared_emu: Emulator) -> dict[str, str]:
    return shared_emu.create_service_account(name="delegator", domain_wide_delegation=True)


@pytest.fixture(scope="session")
def installed(shared_emu: Emulator) -> dict[str, Any]:
    return shared_emu.create_oauth_client("installed")["installed"]


@pytest.fixture(scope="session")
def device_client(shared_emu: Emulator) -> dict[str, Any]:
    """A "TVs and Limited Input devices" client: the kind the device flow needs."""
    return shared_emu.create_oauth_client("limited-input")["installed"]


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
