"""Concurrency guarantees of one shared credential, proven by the emulator's request counters.

* any number of first callers (threads, asyncio tasks, several event loops at once) with no
  token make exactly **one** token request;
* a stale token is refreshed once, in the background, while every caller keeps using it;
* a failed refresh is not cached: the next caller tries again;
* cancelling the caller that started a refresh does not cancel it for the others.

No test measures time: gates (events the test opens) decide the order of events, and the
assertions are on counters and on which token each caller got.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest

from gcauth import service_account
from gcauth._http import HttpRequest, HttpResponse
from gcauth.credentials import Credentials
from gcauth.exceptions import RefreshError
from gcauth.tokens import Token, TokenState
from gcauth.transport import AsyncRequest, Request
from gcauth.transport import aiohttp as gaiohttp
from gcauth.transport import httpx as ghttpx
from gcauth.transport import requests as grequests
from gcauth.transport import urllib3 as gurllib3

T = TypeVar("T")
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
HERD = 256


class ShiftedClock:
    """Real time plus an offset the test moves forward (within the emulator's clock skew)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


class GatedRequest:
    """A sync transport that holds every send until the test opens the gate."""

    def __init__(self, inner: Request):
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()

    def send(self, request: HttpRequest) -> HttpResponse:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return self.inner.send(request)


class AsyncGatedRequest:
    """An async transport that holds every send until the test opens the gate (no threads)."""

    def __init__(self, inner: AsyncRequest):
        self.inner = inner
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.entered.set()
        await self.gate.wait()
        return await self.inner.send(request)


def make_credentials(emu: Any, clock: ShiftedClock | None = None) -> Credentials:
    info = emu.create_service_account(project_id="herd")
    creds = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    return creds.with_clock(clock) if clock is not None else creds


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll (not a timing assertion: the deadline only stops a broken test hanging)."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


def in_threads(n: int, call: Callable[[], T]) -> list[T | BaseException]:
    """Run ``call`` in ``n`` threads released together; results or exceptions, in order."""
    barrier = threading.Barrier(n)

    def one(_: int) -> T | BaseException:
        barrier.wait()
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def close_request(request: Request) -> None:
    """Close a sync transport's pool, so no socket is left for the garbage collector."""
    if isinstance(request, gurllib3.Request):
        request.http.clear()
    elif isinstance(request, grequests.Request):
        request.session.close()
    elif isinstance(request, ghttpx.Request):
        request.close()


@pytest.fixture
def closing() -> Iterator[Callable[[Request], Request]]:
    made: list[Request] = []

    def keep(request: Request) -> Request:
        made.append(request)
        return request

    yield keep
    for request in made:
        close_request(request)


SYNC_REQUESTS: dict[str, Callable[[], Request]] = {
    "urllib3": gurllib3.Request,
    "requests": grequests.Request,
    "httpx": ghttpx.Request,
}
ASYNC_REQUESTS: dict[str, Callable[[], AsyncRequest]] = {
    "httpx": ghttpx.AsyncRequest,
    "aiohttp": gaiohttp.AsyncRequest,
}


# -- herds of first callers ----------------------------------------------------------------
@pytest.mark.parametrize("transport", sorted(SYNC_REQUESTS))
def test_thread_herd_makes_one_token_request(transport: str, fresh_emulator: Any,
                                             closing: Callable[[Request], Request]) -> None:
    emu = fresh_emulator
    creds = make_credentials(emu)
    request = closing(SYNC_REQUESTS[transport]())
    tokens = in_threads(HERD, lambda: creds.get_token(request))
    assert emu.counts["token"] == 1
    assert all(isinstance(t, Token) for t in tokens)
    assert len({t.access_token for t in tokens if isinstance(t, Token)}) == 1


@pytest.mark.parametrize("transport", sorted(ASYNC_REQUESTS))
def test_task_herd_makes_one_token_request(transport: str, fresh_emulator: Any) -> None:
    emu = fresh_emulator
    creds = make_credentials(emu)

    async def main() -> list[Token]:
        request = ASYNC_REQUESTS[transport]()
        return await asyncio.gather(*(creds.aget_token(request) for _ in range(HERD)))

    tokens = asyncio.run(main())
    assert emu.counts["token"] == 1
    assert len({t.access_token for t in tokens}) == 1


def test_threads_and_event_loops_share_one_refresh(fresh_emulator: Any) -> None:
    """Plain threads and four event loops (in their own threads) start together."""
    emu = fresh_emulator
    creds = make_credentials(emu)
    loops, tasks_per_loop, threads = 4, 64, 64
    barrier = threading.Barrier(loops + threads)
    got: list[str] = []
    lock = threading.Lock()

    def keep(token: Token) -> None:
        with lock:
            got.append(token.access_token)

    def sync_caller() -> None:
        barrier.wait()
        keep(creds.get_token())

    def loop_caller(kind: str) -> None:
        async def main() -> None:
            request = ASYNC_REQUESTS[kind]()
            for token in await asyncio.gather(
                    *(creds.aget_token(request) for _ in range(tasks_per_loop))):
                keep(token)

        barrier.wait()
        asyncio.run(main())

    workers = [threading.Thread(target=sync_caller) for _ in range(threads)]
    workers += [threading.Thread(target=loop_caller, args=(kind,))
                for kind in ("httpx", "aiohttp") * (loops // 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert len(got) == threads + loops * tasks_per_loop
    assert len(set(got)) == 1
    assert emu.counts["token"] == 1


# -- stale tokens: one background refresh ----------------------------------------------------
def _stale_credentials(emu: Any) -> tuple[Credentials, ShiftedClock, Token]:
    """A credential whose 60 s token the clock has moved 50 s on: stale, still valid."""
    emu.set_token_lifetime(60)
    clock = ShiftedClock()
    creds = make_credentials(emu, clock)
    first = creds.get_token()
    clock.offset = timedelta(seconds=50)
    assert creds.token_state is TokenState.STALE
    return creds, clock, first


def test_stale_token_is_refreshed_once_in_the_background(
        fresh_emulator: Any, closing: Callable[[Request], Request]) -> None:
    emu = fresh_emulator
    creds, _, old = _stale_credentials(emu)
    gated = GatedRequest(closing(gurllib3.Request()))
    tokens = in_threads(HERD, lambda: creds.get_token(gated))
    # every caller got the still-valid token at once, while the refresh waits at the gate
    assert all(t == old for t in tokens)
    assert gated.entered.wait(30)
    assert emu.counts["token"] == 1
    gated.gate.set()
    wait_until(lambda: creds.current_token != old, "the background refresh landed")
    assert emu.counts["token"] == 2
    assert creds.token_state is TokenState.FRESH
    assert creds.get_token(gated) == creds.current_token
    assert emu.counts["token"] == 2


@pytest.mark.parametrize("transport", sorted(ASYNC_REQUESTS))
def test_stale_token_is_refreshed_once_by_a_task(transport: str, fresh_emulator: Any) -> None:
    emu = fresh_emulator
    creds, _, old = _stale_credentials(emu)

    async def main() -> tuple[list[Token], Token]:
        gated = AsyncGatedRequest(ASYNC_REQUESTS[transport]())
        tokens = await asyncio.gather(*(creds.aget_token(gated) for _ in range(HERD)))
        await asyncio.wait_for(gated.entered.wait(), 30)
        assert emu.counts["token"] == 1
        gated.gate.set()
        while creds.current_token == old:
            await asyncio.sleep(0.005)
        return tokens, await creds.aget_token(gated)

    tokens, new = asyncio.run(main())
    assert all(t == old for t in tokens)
    assert new != old
    assert emu.counts["token"] == 2


# -- failures are not cached ------------------------------------------------------------------
def test_failed_background_refresh_is_retried_by_the_next_caller(fresh_emulator: Any) -> None:
    emu = fresh_emulator
    creds, _, old = _stale_credentials(emu)
    emu.faults.add("token", kind="invalid_grant")
    assert creds.get_token() == old  # starts the background refresh, which fails
    wait_until(lambda: emu.counts["token"] == 2, "the failing refresh was sent")
    seen: list[Token] = []

    def refreshed() -> bool:
        seen.append(creds.get_token())  # never raises: the old token is still valid
        return creds.current_token != old

    wait_until(refreshed, "a later caller refreshed again")
    assert emu.counts["token"] == 3
    assert all(t == old for t in seen[:-1])
    assert creds.get_token() == creds.current_token
    assert emu.counts["token"] == 3


def test_failed_refresh_is_shared_by_the_herd_then_retried(
        fresh_emulator: Any, closing: Callable[[Request], Request]) -> None:
    emu = fresh_emulator
    creds = make_credentials(emu)
    gated = GatedRequest(closing(gurllib3.Request()))
    emu.faults.add("token", kind="invalid_grant")

    def call() -> Token:
        return creds.get_token(gated)

    results: list[Token | BaseException] = []
    runner = threading.Thread(target=lambda: results.extend(in_threads(64, call)))
    runner.start()
    assert gated.entered.wait(30)
    gated.gate.set()
    runner.join(60)
    assert len(results) == 64
    # the one failed request's error went to every caller that joined it; a caller arriving
    # after it failed was not handed the cached failure but started (one) new request
    errors = [r for r in results if isinstance(r, RefreshError)]
    tokens = {r.access_token for r in results if isinstance(r, Token)}
    assert errors and all(e.error == "invalid_grant" for e in errors)
    assert len(errors) + sum(isinstance(r, Token) for r in results) == 64
    assert emu.counts["token"] == 1 + len(tokens)
    assert len(tokens) <= 1
    token = creds.get_token()
    assert emu.is_access_token_valid(token.access_token)
    assert emu.counts["token"] == 2


def test_failed_refresh_is_not_cached_async(fresh_emulator: Any) -> None:
    emu = fresh_emulator
    creds = make_credentials(emu)
    emu.faults.add("token", kind="invalid_grant")

    async def main() -> tuple[list[Any], Token]:
        gated = AsyncGatedRequest(ghttpx.AsyncRequest())
        pending = [asyncio.ensure_future(creds.aget_token(gated)) for _ in range(HERD)]
        await asyncio.wait_for(gated.entered.wait(), 30)
        gated.gate.set()
        failures = await asyncio.gather(*pending, return_exceptions=True)
        return failures, await creds.aget_token(gated)

    failures, token = asyncio.run(main())
    assert all(isinstance(f, RefreshError) for f in failures)
    assert emu.counts["token"] == 2
    assert emu.is_access_token_valid(token.access_token)


def test_cancelled_owner_does_not_cancel_the_refresh(fresh_emulator: Any) -> None:
    emu = fresh_emulator
    creds = make_credentials(emu)

    async def main() -> list[Any]:
        gated = AsyncGatedRequest(ghttpx.AsyncRequest())
        owner = asyncio.ensure_future(creds.aget_token(gated))
        await asyncio.wait_for(gated.entered.wait(), 30)
        others = [asyncio.ensure_future(creds.aget_token(gated)) for _ in range(16)]
        await asyncio.sleep(0)
        owner.cancel()
        gated.gate.set()
        return await asyncio.gather(owner, *others, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[0], asyncio.CancelledError)
    assert len({t.access_token for t in results[1:]}) == 1
    assert emu.counts["token"] == 1


# -- one credential, many loops over time ----------------------------------------------------
def test_credential_outlives_event_loops(fresh_emulator: Any) -> None:
    emu = fresh_emulator
    creds = make_credentials(emu)

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(coro)

    async def fetch() -> Token:
        return await creds.aget_token(gaiohttp.AsyncRequest())

    first = run(fetch())
    creds.invalidate(first)
    second = run(fetch())  # a new loop refreshes; nothing is bound to the closed one
    assert second != first
    assert creds.get_token() == second  # and sync callers see it
    assert emu.counts["token"] == 2
