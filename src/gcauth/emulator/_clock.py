"""The emulator's one clock.

Every time the emulator reads (token expiries, JWT ``iat``/``exp`` checks, codes, consent
pages, device codes) comes from :meth:`Clock.now`: wall time shifted by the skew set with
``Emulator.set_clock_skew``.  Intervals measured between requests (device-flow polling)
use :meth:`Clock.monotonic`, which no skew moves.  A per-request ``skew`` fault shifts
``now`` further for that request only (see :class:`~._routing.Call`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock"]


class Clock:
    """Wall time plus a settable skew; the time sources can be injected."""

    def __init__(self, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self.skew = 0.0

    def now(self) -> float:
        """Server time in seconds since the epoch (skewed)."""
        return self._wall() + self.skew

    def monotonic(self) -> float:
        """A monotonic reading for measuring intervals (never skewed)."""
        return self._monotonic()
