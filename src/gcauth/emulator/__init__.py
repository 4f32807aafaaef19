"""gcauth emulator: a local, offline stand-in for Google's OAuth 2.0 server, the
Compute Engine metadata server and one sample API (Cloud SQL Admin ``instances.list``).

Everything binds to a loopback address; nothing ever contacts the network::

    from gcauth.emulator import Emulator

    with Emulator() as emu:
        key = emu.create_service_account()
        ...

See ``docs/emulator.md`` for every endpoint and the fault-injection surface, and for
how the code is laid out (``_table.py`` lists every route).
"""

from __future__ import annotations

from ._emulator import Emulator
from ._faults import Fault, FaultInjector
from ._main import serve_forever
from ._state import AccessToken, RefreshToken

__all__ = [
    "AccessToken",
    "Emulator",
    "Fault",
    "FaultInjector",
    "RefreshToken",
    "serve_forever",
]
