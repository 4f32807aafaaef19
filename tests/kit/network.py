"""Loopback addresses for tests: a port where every connection is refused, for the whole run.

A socket bound but never listening: connections to its port are refused, and because it stays
bound for the whole run no server (an emulator on an ephemeral port) can take the port over.
Metadata detection is pointed here by the suite's autouse fixture, so no test can reach the
real metadata address.
"""

from __future__ import annotations

import socket

__all__ = ["CLOSED_METADATA", "closed_loopback_port", "release_reserved_port"]

_RESERVED = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_RESERVED.bind(("127.0.0.1", 0))
CLOSED_METADATA = f"127.0.0.1:{_RESERVED.getsockname()[1]}"


def closed_loopback_port() -> int:
    """A loopback port where connections are refused for the whole test run."""
    return int(_RESERVED.getsockname()[1])


def release_reserved_port() -> None:
    _RESERVED.close()
