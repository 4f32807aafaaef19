"""Bounded, jittered retries for flows.

A retry is a :class:`~gcauth._http.Sleep` the flow yields; drivers do the waiting, so the
same policy serves blocking and async code. Backoff is exponential with full jitter, capped
per attempt, honours a server's ``Retry-After`` (up to the cap), and the whole sequence is
bounded by ``max_attempts`` and ``deadline`` seconds of sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from ._http import Flow, Sleep
from ._value import Value
from .exceptions import RefreshError, TransportError

__all__ = ["NO_RETRY", "RetryPolicy", "with_retries"]

T = TypeVar("T")


class RetryPolicy(Value):
    """How hard to try. Defaults: 4 attempts, 0.2 s initial, 4 s cap, 10 s of sleeping in total."""

    __slots__ = ("max_attempts", "initial", "multiplier", "cap", "deadline", "retry_after_cap",
                 "jitter")
    max_attempts: int
    initial: float
    multiplier: float
    cap: float
    deadline: float
    retry_after_cap: float
    jitter: Callable[[], float]

    def __init__(self, max_attempts: int = 4, initial: float = 0.2, multiplier: float = 2.0,
                 cap: float = 4.0, deadline: float = 10.0, retry_after_cap: float = 10.0,
                 jitter: Callable[[], float] = random.random):
        self._init(max_attempts=max_attempts, initial=initial, multiplier=multiplier, cap=cap,
                   deadline=deadline, retry_after_cap=retry_after_cap, jitter=jitter)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        ceiling = min(self.cap, self.initial * self.multiplier**attempt)
        # "full jitter", but never less than half the ceiling so retries do spread out
        return ceiling * (0.5 + 0.5 * self.jitter())


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


def with_retries(attempt: Callable[[], Flow[T]], policy: RetryPolicy | None = None) -> Flow[T]:
    """Run ``attempt()`` until it succeeds, fails permanently, or the policy is spent."""
    policy = policy or DEFAULT_RETRY
    slept = 0.0
    number = 0
    while True:
        try:
            return (yield from attempt())
        except (RefreshError, TransportError) as exc:
            retry_after = exc.retry_after if isinstance(exc, RefreshError) else None
            if not exc.retryable or number + 1 >= policy.max_attempts:
                raise
            delay = policy.delay(number, retry_after)
            if slept + delay > policy.deadline:
                raise
            slept += delay
            number += 1
            yield Sleep(delay)
