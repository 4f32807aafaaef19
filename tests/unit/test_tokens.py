"""Token states and the token cache's concurrency contract, with an injected clock."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

from gcauth.exceptions import RefreshError
from gcauth.tokens import Token, TokenCache, TokenState
from tests.kit.creds import T0, later


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def hour_token(value: str = "t1", issued=T0) -> Token:  # type: ignore[no-untyped-def]
    return Token(value, expiry=issued + timedelta(hours=1), issued_at=issued)


def test_token_states_for_an_hour_long_token() -> None:
    token = hour_token()
    assert token.state(T0) is TokenState.FRESH
    assert token.state(later(3600 - 226)) is TokenState.FRESH
    assert token.state(later(3600 - 224)) is TokenState.STALE
    assert token.state(later(3600 - 11)) is TokenState.STALE
    assert token.state(later(3600 - 9)) is TokenState.INVALID
    assert token.state(later(4000)) is TokenState.INVALID


def test_short_lived_tokens_get_proportionate_windows() -> None:
    token = Token("t", expiry=later(2), issued_at=T0)
    assert token.state(later(1.4)) is TokenState.FRESH
    assert token.state(later(1.6)) is TokenState.STALE
    assert token.state(later(1.85)) is TokenState.INVALID


def test_token_without_expiry_is_always_fresh_and_naive_expiry_is_refused() -> None:
    assert Token("t").state(later(10**6)) is TokenState.FRESH
    with pytest.raises(ValueError):
        Token("t", expiry=T0.replace(tzinfo=None))


def test_repr_and_str_never_show_the_token() -> None:
    token = Token("ya29.secret-value", expiry=T0, id_token="id.secret.jwt")
    assert "secret" not in repr(token)
    assert "secret" not in str(token)


def test_cache_fetches_once_and_reuses_fresh_token() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    calls = []

    def fetch() -> Token:
        calls.append(1)
        return hour_token(f"t{len(calls)}", clock.now)

    assert cache.get(fetch).access_token == "t1"
    clock.advance(600)
    assert cache.get(fetch).access_token == "t1"
    assert len(calls) == 1


def test_stale_token_is_returned_while_a_background_refresh_runs() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    cache.set(hour_token("old"))
    clock.advance(3600 - 100)  # stale, still valid
    release = threading.Event()
    started = threading.Event()

    def slow_fetch() -> Token:
        started.set()
        release.wait(5)
        return hour_token("new", clock.now)

    assert cache.get(slow_fetch).access_token == "old"  # did not wait
    assert started.wait(5)
    assert cache.get(slow_fetch).access_token == "old"  # second caller: no second refresh
    release.set()
    for _ in range(100):
        if cache.token and cache.token.access_token == "new":
            break
        threading.Event().wait(0.01)
    assert cache.token is not None and cache.token.access_token == "new"


def test_failed_background_refresh_keeps_old_token_and_next_caller_retries() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    cache.set(hour_token("old"))
    clock.advance(3600 - 100)
    attempts = []
    done = threading.Event()

    def failing() -> Token:
        attempts.append(1)
        done.set()
        raise RefreshError("boom", retryable=True)

    assert cache.get(failing).access_token == "old"
    assert done.wait(5)
    for _ in range(100):  # wait for the in-flight slot to clear
        if cache._inflight is None:
            break
        threading.Event().wait(0.01)
    assert cache.get(lambda: hour_token("new", clock.now)).access_token == "old"
    for _ in range(100):
        if cache.token and cache.token.access_token == "new":
            break
        threading.Event().wait(0.01)
    assert cache.token is not None and cache.token.access_token == "new"
    assert len(attempts) == 1


def test_invalid_token_failure_reaches_caller_and_is_not_cached() -> None:
    cache = TokenCache(Clock())
    with pytest.raises(RefreshError):
        cache.get(lambda: (_ for _ in ()).throw(RefreshError("nope")))
    assert cache.get(lambda: hour_token("ok")).access_token == "ok"


def test_many_threads_one_fetch() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    calls = []
    gate = threading.Barrier(64)

    def fetch() -> Token:
        calls.append(1)
        threading.Event().wait(0.05)
        return hour_token("shared", clock.now)

    results = []

    def worker() -> None:
        gate.wait()
        results.append(cache.get(fetch).access_token)

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["shared"] * 64
    assert len(calls) == 1


def test_many_tasks_one_fetch() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    calls = []

    async def fetch() -> Token:
        calls.append(1)
        await asyncio.sleep(0.02)
        return hour_token("async", clock.now)

    async def main() -> list[str]:
        tokens = await asyncio.gather(*(cache.aget(fetch) for _ in range(128)))
        return [t.access_token for t in tokens]

    assert asyncio.run(main()) == ["async"] * 128
    assert len(calls) == 1


def test_cancelled_owner_does_not_strand_waiters() -> None:
    cache = TokenCache(Clock())

    async def fetch() -> Token:
        await asyncio.sleep(0.05)
        return hour_token("survivor")

    async def main() -> str:
        owner = asyncio.ensure_future(cache.aget(fetch))
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(cache.aget(fetch))
        await asyncio.sleep(0.01)
        owner.cancel()
        return (await waiter).access_token

    assert asyncio.run(main()) == "survivor"


def test_invalidate_only_drops_the_named_token() -> None:
    cache = TokenCache(Clock())
    cache.set(hour_token("current"))
    cache.invalidate("some-older-token")
    assert cache.token is not None
    cache.invalidate("current")
    assert cache.token is None


def test_fresh_true_waits_for_the_refresh_instead_of_a_stale_token() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    cache.set(hour_token("old"))
    clock.advance(3600 - 100)  # stale: get() would hand out "old" and refresh behind
    calls = []

    def fetch() -> Token:
        calls.append(1)
        return hour_token("new", clock.now)

    assert cache.get(fetch, fresh=True).access_token == "new"
    assert calls == [1]
    assert cache.get(fetch).access_token == "new"  # now fresh: no further fetch
    assert calls == [1]


def test_fresh_true_async() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    cache.set(hour_token("old"))
    clock.advance(3600 - 100)

    async def fetch() -> Token:
        await asyncio.sleep(0)
        return hour_token("new", clock.now)

    async def main() -> tuple[str, str]:
        stale = await cache.aget(fetch, fresh=False)
        fresh = await cache.aget(fetch, fresh=True)
        return stale.access_token, fresh.access_token

    assert asyncio.run(main()) == ("old", "new")
