"""Retry policies fuzzed: every delay is finite, non-negative and within the cap, and
``with_retries`` stops within ``max_attempts`` and ``deadline`` whatever the failures."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from gcauth._http import Flow, Sleep
from gcauth._retry import RetryPolicy, with_retries
from gcauth.exceptions import RefreshError, TransportError

from .strategies import FUZZ

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(min_value=1, max_value=8),
    initial=st.floats(min_value=0, max_value=5),
    multiplier=st.floats(min_value=1, max_value=4),
    cap=st.floats(min_value=0, max_value=10),
    deadline=st.floats(min_value=0, max_value=30),
    retry_after_cap=st.floats(min_value=0, max_value=60),
    jitter=st.sampled_from([lambda: 0.0, lambda: 0.5, lambda: 0.999999]),
)
retry_after = st.none() | st.floats(min_value=0, allow_nan=False) | st.just(math.inf)
failures = st.one_of(
    st.builds(lambda ra, ok: RefreshError("x", retryable=ok, retry_after=ra), retry_after,
              st.booleans()),
    st.just(TransportError("reset")))


@FUZZ
@given(policies, st.integers(min_value=0, max_value=50), retry_after)
def test_delay_is_bounded(policy: RetryPolicy, attempt: int, after: float | None) -> None:
    delay = policy.delay(attempt, after)
    assert math.isfinite(delay) and delay >= 0
    assert delay <= max(policy.cap, policy.retry_after_cap)


@FUZZ
@given(policies, st.lists(failures, min_size=1, max_size=12))
def test_with_retries_is_bounded(policy: RetryPolicy,
                                 errors: list[RefreshError | TransportError]) -> None:
    calls = 0

    def attempt() -> Flow[str]:
        nonlocal calls
        calls += 1
        yield Sleep(0)  # stands in for the request
        if calls <= len(errors):
            raise errors[calls - 1]
        return "ok"

    flow = with_retries(attempt, policy)
    slept = 0.0
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                slept += step.seconds
            step = flow.send(None)
    except StopIteration:
        pass
    except (RefreshError, TransportError):
        pass
    assert calls <= policy.max_attempts
    assert slept <= policy.deadline + 1e-9
