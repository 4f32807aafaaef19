"""Fault injection: a documented, test-only control surface of the emulator.

Faults are queued per *endpoint group* and consumed one per request::

    emu.faults.add("token", kind="status", status=503, count=2, retry_after=1)
    emu.faults.add("metadata", kind="stall", seconds=5)
    emu.faults.set_rate("token", 0.05, kinds=["status", "reset", "non_json"], seed=1)
    emu.faults.clear()
    emu.faults.injected          # {"status": 2, "stall": 1, ...}

Queued faults are served first, in the order they were added; a group with a
rate configured then draws random faults from its own seeded generator.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["KINDS", "Fault", "FaultInjector"]

#: Fault kinds.  The first five replace the reply; ``stall``, ``expired`` and
#: ``skew`` modify how an otherwise normal request is handled.
KINDS: frozenset[str] = frozenset(
    {
        "status",  # reply with an HTTP error status (500/503/429...), optional Retry-After
        "reset",  # close the connection with an RST, no reply at all
        "truncate",  # promise more Content-Length than is sent, then close
        "non_json",  # 200 with an HTML body instead of JSON
        "invalid_grant",  # 400 RFC 6749 invalid_grant
        "stall",  # sleep ``seconds`` before handling the request normally
        "expired",  # issue a token that is already expired (expires_in: 0)
        "skew",  # shift the server clock by ``seconds`` for this request
    }
)

_REPLACING = frozenset({"status", "reset", "truncate", "non_json", "invalid_grant"})


@dataclass(frozen=True)
class Fault:
    """One fault to inject.  ``seconds`` is used by ``stall`` and ``skew``."""

    kind: str
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0

    @property
    def replaces_reply(self) -> bool:
        """True when the fault is served *instead of* the normal reply."""
        return self.kind in _REPLACING

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return asdict(self)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(KINDS)}")


@dataclass
class _Rate:
    rate: float
    kinds: tuple[str, ...]
    rng: random.Random
    template: Fault


class FaultInjector:
    """Thread-safe per-group queues of faults plus optional random fault rates.

    ``groups`` are the fault groups of the route table (each route names its group); by
    default those of the emulator's own table.
    """

    def __init__(self, groups: Iterable[str] | None = None) -> None:
        if groups is None:
            from ._table import ROUTER

            groups = ROUTER.fault_groups
        self.groups: frozenset[str] = frozenset(groups)
        self._lock = threading.Lock()
        self._queues: dict[str, list[list[Any]]] = {g: [] for g in self.groups}
        self._rates: dict[str, _Rate] = {}
        self._injected: Counter[str] = Counter()
        self._injected_by_group: Counter[str] = Counter()

    def add(
        self,
        group: str,
        kind: str = "status",
        *,
        count: int = 1,
        status: int = 503,
        retry_after: float | None = None,
        seconds: float = 0.0,
    ) -> None:
        """Make the next ``count`` requests to ``group`` suffer fault ``kind``.

        ``status``/``retry_after`` apply to ``kind="status"``; ``seconds`` is the
        delay for ``stall`` and the clock offset (may be negative) for ``skew``.
        """
        self._check(group, kind)
        if count < 1:
            raise ValueError("count must be >= 1")
        if kind == "status" and not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if kind == "stall" and seconds <= 0:
            raise ValueError("stall needs seconds > 0")
        fault = Fault(kind=kind, status=status, retry_after=retry_after, seconds=seconds)
        with self._lock:
            self._queues[group].append([fault, count])

    def set_rate(
        self,
        group: str,
        rate: float,
        kinds: Iterable[str] = ("status", "reset", "non_json"),
        *,
        seed: int | None = None,
        status: int = 503,
        retry_after: float | None = None,
        seconds: float = 1.0,
    ) -> None:
        """Inject a random fault from ``kinds`` into a fraction ``rate`` of ``group``'s requests.

        A ``rate`` of 0 removes the random faults for the group.  ``seed`` makes
        the sequence reproducible.
        """
        kinds = tuple(kinds)
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        for kind in kinds:
            self._check(group, kind)
        if not kinds:
            raise ValueError("kinds must not be empty")
        with self._lock:
            if rate == 0.0:
                self._rates.pop(group, None)
                return
            self._rates[group] = _Rate(
                rate=rate,
                kinds=kinds,
                rng=random.Random(seed),
                template=Fault(kind="status", status=status, retry_after=retry_after,
                               seconds=seconds),
            )

    def _check(self, group: str, kind: str) -> None:
        if group not in self.groups:
            raise ValueError(
                f"unknown fault group {group!r}; expected one of {sorted(self.groups)}")
        _check_kind(kind)

    def clear(self, group: str | None = None) -> None:
        """Drop queued faults and rates (for one group, or all).  Counters are kept."""
        with self._lock:
            groups = [group] if group is not None else list(self.groups)
            for g in groups:
                self._queues[g] = []
                self._rates.pop(g, None)

    def reset_counts(self) -> None:
        """Zero :attr:`injected` and :attr:`injected_by_group`."""
        with self._lock:
            self._injected.clear()
            self._injected_by_group.clear()

    @property
    def injected(self) -> Counter[str]:
        """How many faults were served, by kind (a snapshot)."""
        with self._lock:
            return Counter(self._injected)

    @property
    def injected_by_group(self) -> Counter[str]:
        """How many faults were served, by endpoint group (a snapshot)."""
        with self._lock:
            return Counter(self._injected_by_group)

    def pending(self) -> dict[str, list[dict[str, Any]]]:
        """Queued faults per group, with their remaining counts."""
        with self._lock:
            return {
                g: [{**f.to_dict(), "count": n} for f, n in q]
                for g, q in self._queues.items()
                if q
            }

    def take(self, group: str) -> Fault | None:
        """Consume the fault, if any, that applies to the next request of ``group``."""
        with self._lock:
            queue = self._queues.get(group)
            fault: Fault | None = None
            if queue:
                entry = queue[0]
                fault = entry[0]
                entry[1] -= 1
                if entry[1] <= 0:
                    queue.pop(0)
            else:
                rate = self._rates.get(group)
                if rate is not None and rate.rng.random() < rate.rate:
                    kind = rate.rng.choice(rate.kinds)
                    t = rate.template
                    fault = Fault(kind=kind, status=t.status, retry_after=t.retry_after,
                                  seconds=t.seconds)
            if fault is not None:
                self._injected[fault.kind] += 1
                self._injected_by_group[group] += 1
            return fault

    def apply_command(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """Execute a JSON control command (the ``POST /_emulator/faults`` body).

        Shapes: ``{"action": "add", "group": ..., "kind": ..., "count": ..., ...}``,
        ``{"action": "set_rate", "group": ..., "rate": ..., "kinds": [...], "seed": ...}``,
        ``{"action": "clear"[, "group": ...]}``, ``{"action": "reset_counts"}``.
        Raises ``ValueError``/``TypeError`` for malformed commands.
        """
        action = command.get("action", "add")
        if action == "add":
            self.add(
                str(command["group"]),
                str(command.get("kind", "status")),
                count=int(command.get("count", 1)),
                status=int(command.get("status", 503)),
                retry_after=_opt_float(command.get("retry_after")),
                seconds=float(command.get("seconds", 0.0)),
            )
        elif action == "set_rate":
            self.set_rate(
                str(command["group"]),
                float(command["rate"]),
                [str(k) for k in command.get("kinds", ("status", "reset", "non_json"))],
                seed=None if command.get("seed") is None else int(command["seed"]),
                status=int(command.get("status", 503)),
                retry_after=_opt_float(command.get("retry_after")),
                seconds=float(command.get("seconds", 1.0)),
            )
        elif action == "clear":
            group = command.get("group")
            self.clear(None if group is None else str(group))
        elif action == "reset_counts":
            self.reset_counts()
        else:
            raise ValueError(f"unknown action {action!r}")
        return self.status()

    def status(self) -> dict[str, Any]:
        """JSON-friendly snapshot: pending faults, rates and injected counters."""
        with self._lock:
            rates = {g: {"rate": r.rate, "kinds": list(r.kinds)} for g, r in self._rates.items()}
        return {
            "pending": self.pending(),
            "rates": rates,
            "injected": dict(self.injected),
            "injected_by_group": dict(self.injected_by_group),
        }


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
