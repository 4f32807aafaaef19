"""The token cache under abuse: ``fork``, dead event loops, cancellation, Ctrl-C, a blocking
call on the refreshing loop, and no threads to be had.

Every waiter must end with a token or a gcauth error, never hang and never see another
thread's ``KeyboardInterrupt`` or a loop's ``CancelledError``. Anything that could wedge the
test process (fork, signals, thread exhaustion) runs in a child process with a timeout
(``tests.kit.child``); the in-process tests wait with deadlines, so a regression fails them
instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TypeVar

import pytest

from gcauth.exceptions import (
    GCAuthError,
    RefreshAbandonedError,
    RefreshDeadlockError,
    RefreshError,
)
from gcauth.tokens import Token, TokenCache, TokenState
from tests.kit.child import run_child

T = TypeVar("T")
BOUND = 20.0  # seconds a call may take before the test calls it a hang


def token(value: str, lifetime: float = 3600.0, age: float = 0.0) -> Token:
    issued = datetime.now(timezone.utc) - timedelta(seconds=age)
    return Token(value, expiry=issued + timedelta(seconds=lifetime), issued_at=issued)


def bounded(call: Callable[[], T], timeout: float = BOUND) -> T:
    """``call()`` in a daemon thread: its result or exception, or a failure if it hangs."""
    box: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            box.set_result(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    try:
        return box.result(timeout)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"hung: no result within {timeout:g} s")


def outcome(call: Callable[[], Token]) -> str:
    """What a caller saw: the token's value, or the exception's type name."""
    try:
        return call().access_token
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        return type(exc).__name__


def stale_cache() -> TokenCache:
    cache = TokenCache()
    cache.set(token("old", lifetime=3600, age=3500))  # stale, still valid for 100 s
    assert cache.state() is TokenState.STALE
    return cache


# -- dead and stopped event loops -------------------------------------------------------------
def test_loop_closed_after_wait_for_cancelled_its_owner_does_not_strand_later_callers() -> None:
    cache = TokenCache()
    fetches: list[str] = []

    async def slow() -> Token:
        fetches.append("loop")
        await asyncio.sleep(30)
        return token("never")

    loop = asyncio.new_event_loop()
    with pytest.raises(asyncio.TimeoutError):
        loop.run_until_complete(asyncio.wait_for(cache.aget(slow), 0.01))
    loop.close()  # the refresh task it owned can never run again

    def sync_fetch() -> Token:
        fetches.append("sync")
        return token("sync")

    assert bounded(lambda: cache.get(sync_fetch)).access_token == "sync"
    assert fetches == ["loop", "sync"]

    async def later() -> Token:
        return await cache.aget(slow)  # fresh now: no fetch

    assert asyncio.run(later()).access_token == "sync"
    assert fetches == ["loop", "sync"]


def test_async_caller_on_a_new_loop_takes_over_from_a_closed_loop() -> None:
    cache = TokenCache()

    async def slow() -> Token:
        await asyncio.sleep(30)
        return token("never")

    loop = asyncio.new_event_loop()
    with pytest.raises(asyncio.TimeoutError):
        loop.run_until_complete(asyncio.wait_for(cache.aget(slow), 0.01))
    loop.close()

    async def quick() -> Token:
        return token("second loop")

    async def main() -> Token:
        return await asyncio.wait_for(cache.aget(quick), BOUND)

    assert asyncio.run(main()).access_token == "second loop"


def test_stopped_loop_refresh_is_taken_over_by_a_thread() -> None:
    """A loop that is stopped (not closed) with a refresh pending: nobody runs it."""
    cache = TokenCache()

    async def slow() -> Token:
        await asyncio.sleep(30)
        return token("never")

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(asyncio.TimeoutError):
            loop.run_until_complete(asyncio.wait_for(cache.aget(slow), 0.01))
        assert cache._inflight is not None  # still pending on the stopped loop
        assert bounded(lambda: cache.get(lambda: token("thread"))).access_token == "thread"
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def test_threads_waiting_on_a_loop_refresh_get_a_token_when_asyncio_run_ends() -> None:
    cache = TokenCache()
    entered = threading.Event()
    sync_fetches: list[int] = []

    async def slow() -> Token:
        entered.set()
        await asyncio.sleep(30)
        return token("never")

    def sync_fetch() -> Token:
        sync_fetches.append(1)
        return token("from a thread")

    seen: list[str] = []
    waiters = [threading.Thread(target=lambda: seen.append(outcome(
        lambda: cache.get(sync_fetch))), daemon=True) for _ in range(8)]

    async def main() -> None:
        asyncio.get_running_loop().create_task(cache.aget(slow))
        while not entered.is_set():
            await asyncio.sleep(0.001)
        for waiter in waiters:
            waiter.start()
        await asyncio.sleep(0.2)  # the threads are waiting on this loop's refresh
        # returning ends asyncio.run(): it cancels the refresh task

    asyncio.run(main())
    for waiter in waiters:
        waiter.join(BOUND)
    assert seen == ["from a thread"] * 8  # never CancelledError
    assert sync_fetches == [1]  # one thread took over, the others waited for it


def test_cancelled_refresh_task_is_taken_over_not_reported_as_cancelled() -> None:
    cache = TokenCache()
    attempts: list[int] = []

    async def fetch() -> Token:
        attempts.append(1)
        if len(attempts) == 1:
            await asyncio.sleep(30)
        return token(f"attempt {len(attempts)}")

    async def main() -> list[str]:
        callers = [asyncio.ensure_future(cache.aget(fetch)) for _ in range(16)]
        await asyncio.sleep(0.01)
        refresh = cache._inflight
        assert refresh is not None and refresh.task is not None
        refresh.task.cancel()  # someone cancels the refresh itself, not a caller
        results = await asyncio.wait_for(asyncio.gather(*callers, return_exceptions=True),
                                         BOUND)
        return [r.access_token if isinstance(r, Token) else type(r).__name__ for r in results]

    assert asyncio.run(main()) == ["attempt 2"] * 16
    assert len(attempts) == 2


def test_a_refresh_cancelled_every_time_ends_in_a_gcauth_error() -> None:
    cache = TokenCache()
    attempts: list[int] = []

    async def self_cancelling() -> Token:
        attempts.append(1)
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)
        return token("never")

    async def main() -> BaseException | Token:
        try:
            return await asyncio.wait_for(cache.aget(self_cancelling), BOUND)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            return exc

    result = asyncio.run(main())
    assert isinstance(result, RefreshAbandonedError)
    assert isinstance(result, RefreshError) and result.retryable
    assert "abandoned" in str(result) and "cancelled" in str(result)
    assert len(attempts) == 3  # bounded: it took over twice, then gave up
    assert cache._inflight is None
    assert cache.get(lambda: token("next")).access_token == "next"  # and the next call works


def test_cancelled_waiter_does_not_cancel_the_refresh_for_everyone_else() -> None:
    cache = TokenCache()
    entered, release = threading.Event(), threading.Event()

    def slow() -> Token:
        entered.set()
        release.wait(BOUND)
        return token("shared")

    owner: list[str] = []
    thread = threading.Thread(target=lambda: owner.append(outcome(lambda: cache.get(slow))))
    thread.start()
    assert entered.wait(BOUND)

    async def impatient() -> str:
        try:
            await asyncio.wait_for(cache.aget(None), 0.05)  # type: ignore[arg-type]
        except asyncio.TimeoutError:
            return "timed out"
        return "got it"

    assert asyncio.run(impatient()) == "timed out"
    other: list[str] = []
    waiter = threading.Thread(target=lambda: other.append(outcome(lambda: cache.get(slow))))
    waiter.start()
    release.set()
    thread.join(BOUND)
    waiter.join(BOUND)
    assert owner == ["shared"] and other == ["shared"]  # not CancelledError/InvalidStateError


def test_fetch_raising_refresh_abandoned_itself_is_not_retried_for_ever() -> None:
    """A nested credential's own abandoned refresh is an ordinary failure here."""
    cache = TokenCache()
    calls: list[int] = []

    def fetch() -> Token:
        calls.append(1)
        raise RefreshAbandonedError("the source credential's refresh was abandoned")

    with pytest.raises(RefreshAbandonedError, match="source credential"):
        bounded(lambda: cache.get(fetch))
    assert calls == [1]


# -- a blocking call on the loop that is refreshing --------------------------------------------
def test_blocking_get_on_the_refreshing_loop_is_a_clear_error() -> None:
    cache = TokenCache()

    async def fetch() -> Token:
        await asyncio.sleep(0.05)
        return token("async")

    async def main() -> tuple[str, str, str]:
        task = asyncio.ensure_future(cache.aget(fetch))
        await asyncio.sleep(0)  # the refresh is now a task on this loop
        try:
            cache.get(lambda: token("sync"))
            blocked = "returned"
        except RefreshDeadlockError as exc:
            assert isinstance(exc, GCAuthError)
            assert "aget_token" in str(exc)
            blocked = "RefreshDeadlockError"
        first = (await task).access_token
        after = cache.get(lambda: token("sync")).access_token  # fresh now: fine on the loop
        return blocked, first, after

    assert bounded(lambda: asyncio.run(main())) == ("RefreshDeadlockError", "async", "async")


def test_blocking_refresh_on_the_refreshing_loop_is_a_clear_error() -> None:
    cache = TokenCache()

    async def fetch() -> Token:
        await asyncio.sleep(0.05)
        return token("async")

    async def main() -> str:
        task = asyncio.ensure_future(cache.aget(fetch))
        await asyncio.sleep(0)
        try:
            cache.refresh(lambda: token("sync"))
        except RefreshDeadlockError:
            await task
            return "RefreshDeadlockError"
        return "returned"

    assert bounded(lambda: asyncio.run(main())) == "RefreshDeadlockError"


def test_blocking_get_of_a_stale_token_on_the_refreshing_loop_does_not_wait() -> None:
    cache = stale_cache()

    async def fetch() -> Token:
        await asyncio.sleep(0.05)
        return token("new")

    async def main() -> tuple[str, str]:
        assert (await cache.aget(fetch)).access_token == "old"  # background task started
        during = cache.get(lambda: token("sync")).access_token  # stale: no wait, no error
        await asyncio.sleep(0.2)
        return during, cache.get(lambda: token("sync")).access_token

    assert bounded(lambda: asyncio.run(main())) == ("old", "new")


def test_blocking_get_waiting_on_another_loop_is_not_a_deadlock() -> None:
    cache = TokenCache()
    started, release = threading.Event(), threading.Event()

    async def fetch() -> Token:
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        return token("other loop")

    other = threading.Thread(target=lambda: asyncio.run(cache.aget(fetch)), daemon=True)
    other.start()
    assert started.wait(BOUND)

    async def main() -> str:
        threading.Timer(0.1, release.set).start()
        return cache.get(lambda: token("sync")).access_token  # blocks this loop briefly

    assert bounded(lambda: asyncio.run(main())) == "other loop"
    other.join(BOUND)


# -- no thread for the background refresh ------------------------------------------------------
def _no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)


def test_stale_token_refreshes_in_the_foreground_when_no_thread_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cache = stale_cache()
    calls: list[int] = []

    def fetch() -> Token:
        calls.append(1)
        return token("new")

    _no_threads(monkeypatch)
    assert cache.get(fetch).access_token == "new"  # not RuntimeError
    assert cache._inflight is None
    assert cache.get(fetch).access_token == "new"
    assert calls == [1]


def test_failed_foreground_fallback_keeps_the_still_valid_token(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cache = stale_cache()
    calls: list[int] = []

    def failing() -> Token:
        calls.append(1)
        raise RefreshError("token endpoint down", retryable=True)

    _no_threads(monkeypatch)
    assert cache.get(failing).access_token == "old"  # like a failed background refresh
    assert cache._inflight is None  # not stranded: the next caller tries again
    assert cache.get(failing).access_token == "old"
    assert calls == [1, 1]


def test_failed_foreground_fallback_raises_once_the_token_is_no_longer_valid(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cache = TokenCache()
    cache.set(token("old", lifetime=3600, age=3500))
    moments = iter([0.0, 0.0, 95.0])  # the refresh takes long enough for "old" to expire
    now = datetime.now(timezone.utc)
    cache._clock = lambda: now + timedelta(seconds=next(moments, 95.0))

    def failing() -> Token:
        raise RefreshError("token endpoint down", retryable=True)

    _no_threads(monkeypatch)
    with pytest.raises(RefreshError, match="down"):
        cache.get(failing)
    assert cache._inflight is None


# -- in a child process: fork, Ctrl-C, real thread exhaustion ----------------------------------
def test_fork_child_with_a_refresh_in_flight_gets_its_own_token() -> None:
    result = run_child("""
        cache = TokenCache()
        entered, release = threading.Event(), threading.Event()

        def slow():
            entered.set()
            release.wait(20)
            return hour_token("parent")

        parent = []
        owner = threading.Thread(target=lambda: parent.append(cache.get(slow).access_token))
        owner.start()
        entered.wait(10)
        with cache._lock:  # forked while the lock is held, too
            how, child = fork_and_wait(lambda: [
                cache.get(lambda: hour_token("child")).access_token,
                cache.get(lambda: hour_token("child again")).access_token,
                cache._inflight is None])
        release.set()
        owner.join(10)
        report(how=how, child=child, parent=parent, parent_token=cache.token.access_token)
    """)
    assert result["how"] == "exited", result
    assert result["child"] == {"ok": ["child", "child", True]}
    assert result["parent"] == ["parent"] and result["parent_token"] == "parent"


def test_fork_child_with_an_async_refresh_in_flight_gets_its_own_token() -> None:
    result = run_child("""
        cache = TokenCache()
        entered, release = threading.Event(), threading.Event()

        async def slow():
            entered.set()
            while not release.is_set():
                await asyncio.sleep(0.01)
            return hour_token("parent loop")

        parent = []
        loop_thread = threading.Thread(
            target=lambda: parent.append(asyncio.run(cache.aget(slow)).access_token))
        loop_thread.start()
        entered.wait(10)

        async def child_async():
            async def quick():
                return hour_token("child loop")
            return (await cache.aget(quick)).access_token

        def child():
            async_token = asyncio.run(child_async())
            cache.invalidate()
            return [async_token, cache.get(lambda: hour_token("child sync")).access_token]

        how, got = fork_and_wait(child)
        release.set()
        loop_thread.join(10)
        report(how=how, child=got, parent=parent)
    """)
    assert result["how"] == "exited", result
    assert result["child"] == {"ok": ["child loop", "child sync"]}
    assert result["parent"] == ["parent loop"]


def test_fork_child_keeps_a_fresh_token_and_refreshes_a_stale_one_itself() -> None:
    result = run_child("""
        fresh = TokenCache()
        fresh.set(hour_token("fresh"))
        stale = TokenCache()
        stale.set(hour_token("old", age=3500))
        entered, release = threading.Event(), threading.Event()

        def slow():
            entered.set()
            release.wait(20)
            return hour_token("parent new")

        assert stale.get(slow).access_token == "old"  # background refresh in flight
        entered.wait(10)
        child_fetches = []

        def child():
            def fetch():
                child_fetches.append(1)
                return hour_token("child new")
            kept = fresh.get(fetch).access_token
            during = stale.get(fetch).access_token  # starts the child's own refresh
            deadline = time.monotonic() + 10
            while stale.token.access_token == "old" and time.monotonic() < deadline:
                time.sleep(0.01)
            return [kept, during, stale.token.access_token, len(child_fetches)]

        how, got = fork_and_wait(child)
        release.set()
        deadline = time.monotonic() + 10
        while stale.token.access_token == "old" and time.monotonic() < deadline:
            time.sleep(0.01)
        report(how=how, child=got, parent=stale.token.access_token)
    """)
    assert result["how"] == "exited", result
    assert result["child"] == {"ok": ["fresh", "old", "child new", 1]}
    assert result["parent"] == "parent new"


def test_ctrl_c_in_the_refreshing_thread_is_not_raised_in_the_waiting_threads() -> None:
    result = run_child("""
        cache = TokenCache()
        entered = threading.Event()
        fetches = []

        def fetch():
            fetches.append(threading.current_thread().name)
            if threading.current_thread() is threading.main_thread():
                entered.set()
                time.sleep(20)  # Ctrl-C lands here
            return hour_token("taken over")

        seen = []

        def waiter():
            try:
                seen.append(cache.get(fetch).access_token)
            except BaseException as exc:
                seen.append(type(exc).__name__)

        def interrupt():
            entered.wait(10)
            waiters = [threading.Thread(target=waiter, name=f"waiter-{i}") for i in range(6)]
            for w in waiters:
                w.start()
            time.sleep(0.3)  # they are waiting for the main thread's refresh
            os.kill(os.getpid(), signal.SIGINT)
            for w in waiters:
                w.join(15)

        helper = threading.Thread(target=interrupt)
        helper.start()
        try:
            cache.get(fetch)
            main = "returned"
        except KeyboardInterrupt:
            main = "KeyboardInterrupt"
        helper.join(20)
        report(main=main, waiters=seen, fetches=len(fetches),
               main_fetched=fetches[0] == "MainThread",
               after=cache.get(fetch).access_token, inflight=cache._inflight is None)
    """)
    assert result["main"] == "KeyboardInterrupt"  # the interrupted thread gets its Ctrl-C
    assert result["waiters"] == ["taken over"] * 6  # the others never see it
    assert result["main_fetched"] and result["fetches"] == 2  # one waiter took over
    assert result["after"] == "taken over" and result["inflight"]


def test_real_thread_exhaustion_falls_back_to_a_foreground_refresh() -> None:
    result = run_child("""
        import resource
        cache = TokenCache()
        cache.set(hour_token("old", lifetime=4, age=3.5))  # stale for 0.1 s more, then invalid
        fetches = []

        def fetch():
            fetches.append(1)
            return hour_token(f"new {len(fetches)}", lifetime=4)

        def vm_bytes():
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")

        threading.stack_size(256 * 1024 * 1024)  # a thread stack will not fit in the limit
        resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + 64 * 1024 * 1024,
                                                resource.getrlimit(resource.RLIMIT_AS)[1]))
        try:
            threading.Thread(target=lambda: None).start()
            exhausted = False
        except RuntimeError:
            exhausted = True
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append(cache.get(fetch).access_token)
            except BaseException as exc:
                outcomes.append(type(exc).__name__)
            cache.set(hour_token("old", lifetime=4, age=3.9))  # invalid: callers must wait
        report(exhausted=exhausted, outcomes=outcomes, fetches=len(fetches),
               inflight=cache._inflight is None)
    """)
    assert result["exhausted"], "the child could not exhaust threads; the test proves nothing"
    assert result["outcomes"] == ["new 1", "new 2", "new 3"]
    assert result["fetches"] == 3 and result["inflight"]


def test_fast_path_is_not_touched_by_fork_bookkeeping() -> None:
    """The lock-free read reads no fork generation: a fresh token is one clock read away."""
    reads: list[int] = []
    now = datetime.now(timezone.utc)

    def clock() -> datetime:
        reads.append(1)
        return now

    cache = TokenCache(clock)
    cache.set(token("fresh"))
    reads.clear()
    assert cache._fresh() is not None and reads == [1]
    assert cache.get(lambda: token("x")).access_token == "fresh" and reads == [1, 1]
