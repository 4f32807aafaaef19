"""Tokens and the per-credential token cache.

:class:`Token` is a frozen value. :class:`TokenCache` owns the one mutable thing a credential
has, its current token, and the contract every transport relies on:

* any number of concurrent callers (threads, asyncio tasks, several event loops) with no
  usable token trigger exactly **one** token request and all get its result;
* once the token is *stale* (inside the refresh window but still valid), the first caller
  starts one **background** refresh and every caller keeps using the still-valid token;
* callers wait only when the token is *invalid* (missing or about to expire);
* a failed refresh is not cached: the next caller tries again, and a failed background
  refresh leaves the still-valid token in use;
* waiters only ever see a token or a gcauth error: a refresh whose owner went away (its event
  loop closed or stopped, its task was cancelled, its thread was interrupted) is *abandoned*
  and taken over by a waiter or the next caller, never waited on for ever;
* a blocking call that would wait for a refresh running on its own event loop raises
  :class:`~gcauth.exceptions.RefreshDeadlockError` instead of hanging;
* when no background thread can be started the refresh runs in the foreground;
* after ``os.fork()`` the child shares no lock, in-flight refresh or task with its parent
  (only the token, a value);
* time comes from an injected ``clock`` (tz-aware UTC), never from patching a module.
"""

from __future__ import annotations

import concurrent.futures
import enum
import os
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ._value import Value
from .exceptions import RefreshAbandonedError, RefreshDeadlockError

if TYPE_CHECKING:
    import asyncio

__all__ = ["Clock", "Token", "TokenCache", "TokenState", "utcnow"]

Clock = Callable[[], datetime]

#: Refresh this long before expiry at most (google-auth uses the same 3 min 45 s).
REFRESH_WINDOW = timedelta(minutes=3, seconds=45)
#: A token this close to expiry is treated as already expired (clock skew, request latency).
EXPIRY_SKEW = timedelta(seconds=10)


#: Waiters check this often (doubling up to the maximum) whether the refresh was abandoned.
_POLL_FIRST, _POLL_MAX = 0.05, 1.0
#: A waiter takes over at most this many abandoned refreshes before it gives up.
_TAKEOVERS = 3

# -- fork -----------------------------------------------------------------------------------
# A forked child inherits the parent's in-flight futures (whose owner threads do not exist in
# the child) and its locks in whatever state they were. Rather than tracking every cache, the
# child bumps a generation; a cache compares it on its slow path (never on the lock-free fast
# path) and starts over with a new lock and nothing in flight.
_generation = 0
_fork_lock = threading.RLock()


def _after_fork_in_child() -> None:
    global _generation, _fork_lock
    _generation += 1
    _fork_lock = threading.RLock()  # may have been held by a thread that is gone


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def utcnow() -> datetime:
    """The default clock: timezone-aware UTC now."""
    return datetime.now(timezone.utc)


class TokenState(enum.Enum):
    """FRESH: use it. STALE: use it, and refresh in the background. INVALID: refresh first."""

    FRESH = "fresh"
    STALE = "stale"
    INVALID = "invalid"


class Token(Value):
    """An access token (or self-signed JWT) with its expiry.

    ``expiry`` is timezone-aware UTC, or ``None`` for a token that does not expire.
    ``issued_at`` lets short-lived tokens (tests, emulator) get proportionate refresh windows:
    a token is stale for the last quarter of its life (at most 3 min 45 s) and invalid for the
    last tenth (at most 10 s).
    """

    __slots__ = ("access_token", "expiry", "scopes", "id_token", "token_type", "issued_at")
    _hidden = frozenset({"access_token", "id_token"})
    access_token: str
    expiry: datetime | None
    scopes: tuple[str, ...] | None
    id_token: str | None
    token_type: str
    issued_at: datetime | None

    def __init__(self, access_token: str, expiry: datetime | None = None,
                 scopes: tuple[str, ...] | None = None, id_token: str | None = None,
                 token_type: str = "Bearer", issued_at: datetime | None = None):
        if expiry is not None and expiry.tzinfo is None:
            raise ValueError("Token.expiry must be timezone-aware (UTC)")
        self._init(access_token=access_token, expiry=expiry, scopes=scopes, id_token=id_token,
                   token_type=token_type, issued_at=issued_at)

    def _windows(self) -> tuple[timedelta, timedelta]:
        if self.expiry is None or self.issued_at is None:
            return REFRESH_WINDOW, EXPIRY_SKEW
        lifetime = self.expiry - self.issued_at
        return min(REFRESH_WINDOW, lifetime / 4), min(EXPIRY_SKEW, lifetime / 10)

    def state(self, now: datetime) -> TokenState:
        """Where this token stands at ``now``."""
        if self.expiry is None:
            return TokenState.FRESH
        refresh_window, skew = self._windows()
        remaining = self.expiry - now
        if remaining <= skew:
            return TokenState.INVALID
        if remaining <= refresh_window:
            return TokenState.STALE
        return TokenState.FRESH

    def stale_at(self) -> datetime | None:
        """When this token turns stale (``None`` if it never expires)."""
        if self.expiry is None:
            return None
        return self.expiry - self._windows()[0]

    def __str__(self) -> str:
        return f"Token(type={self.token_type}, expiry={self.expiry}, scopes={self.scopes})"


class _Refresh:
    """One in-flight refresh: the future every caller waits on, and who is running it.

    The future is marked *running* at once, so ``cancel()`` (which :func:`asyncio.wrap_future`
    calls when an awaiting task is cancelled) can never cancel it for everybody else.
    """

    __slots__ = ("future", "thread", "loop", "task", "reason")

    def __init__(self, loop: asyncio.AbstractEventLoop | None):
        self.future: concurrent.futures.Future[Token] = concurrent.futures.Future()
        self.future.set_running_or_notify_cancel()
        self.loop = loop
        self.thread: threading.Thread | None = None if loop is not None \
            else threading.current_thread()
        self.task: asyncio.Task[None] | None = None
        self.reason: str | None = None  # set when abandoned

    def gone(self) -> str | None:
        """Why this refresh can no longer finish (``None`` while it can)."""
        if self.future.done():
            return None
        loop = self.loop
        if loop is not None:
            if loop.is_closed():
                return "its event loop was closed"
            if not loop.is_running():
                return "its event loop stopped running"
            if self.task is not None and self.task.done():
                return "its task ended"
        elif self.thread is not None and not self.thread.is_alive():
            return "its thread exited"
        return None


def _settle(future: concurrent.futures.Future[Token], token: Token | None,
            error: BaseException | None) -> None:
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(token)  # type: ignore[arg-type]
    except concurrent.futures.InvalidStateError:
        pass  # already settled (abandoned, then finished after all)


def _on_owning_loop(refresh: _Refresh) -> bool:
    """True when this thread runs the event loop that owns ``refresh`` (blocking deadlocks)."""
    if refresh.loop is None:
        return False
    import asyncio  # already imported: a loop owns the refresh

    return refresh.loop is asyncio._get_running_loop()


def _retrieved(future: asyncio.Future[Token]) -> None:
    if not future.cancelled():
        future.exception()


class TokenCache:
    """Holds one credential's current token and serialises its refreshes.

    The fast path (a fresh token) takes no lock: one clock read and one comparison. The single
    in-flight refresh is a :class:`concurrent.futures.Future`, which threads wait on directly
    and coroutines on any event loop await through :func:`asyncio.wrap_future`.
    """

    __slots__ = ("_clock", "_entry", "_inflight", "_lock", "_tasks", "_generation")

    def __init__(self, clock: Clock | None = None):
        self._clock: Clock = clock or utcnow
        # re-entrant: the garbage collector can finalize an abandoned refresh task (whose
        # coroutine then finishes its refresh) in the middle of a critical section
        self._lock = threading.RLock()
        self._generation = _generation
        # (token, stale_at) in one attribute, so the lock-free fast path reads a consistent pair
        self._entry: tuple[Token, datetime | None] | None = None
        self._inflight: _Refresh | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # strong refs to background refreshes

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def token(self) -> Token | None:
        """The cached token, whatever its state."""
        entry = self._entry
        return None if entry is None else entry[0]

    def state(self) -> TokenState:
        token = self.token
        return TokenState.INVALID if token is None else token.state(self._clock())

    def set(self, token: Token | None) -> None:
        """Replace the cached token (``None`` clears it)."""
        with self._locked():
            self._store(token)

    def invalidate(self, token: Token | str | None = None) -> None:
        """Drop the cached token, but only if it is still ``token`` (when given).

        Used after a 401: of many requests rejected with the same token, only the first
        drops it, so the herd still triggers a single refresh.
        """
        with self._locked():
            current = self.token
            if current is None:
                return
            if token is not None:
                value = token if isinstance(token, str) else token.access_token
                if current.access_token != value:
                    return
            self._store(None)

    def _store(self, token: Token | None) -> None:
        self._entry = None if token is None else (token, token.stale_at())

    def _fresh(self) -> Token | None:
        entry = self._entry
        if entry is None:
            return None
        token, stale_at = entry
        if stale_at is None or self._clock() < stale_at:
            return token
        return None

    def _locked(self) -> threading.RLock:
        """The lock, after dropping what a ``fork`` left behind (slow path only)."""
        if self._generation != _generation:
            with _fork_lock:
                if self._generation != _generation:
                    self._lock = threading.RLock()
                    self._inflight = None
                    self._tasks = set()
                    self._generation = _generation
        return self._lock

    def _claim(self, loop: asyncio.AbstractEventLoop | None, force: bool = False,
               ) -> tuple[Token | None, TokenState, _Refresh | None, bool]:
        """Under the lock: the token, its state, the refresh to wait for and whether the caller
        owns it (must run it). A refresh whose owner went away is abandoned and replaced."""
        dead: _Refresh | None = None
        with self._locked():
            token = self.token
            state = TokenState.INVALID if token is None else token.state(self._clock())
            refresh = self._inflight
            if refresh is not None:
                reason = refresh.gone()
                if reason is not None:
                    dead, refresh = refresh, None
                    self._drop(dead, reason)
            owner = False
            if refresh is None and (force or state is not TokenState.FRESH):
                refresh = self._inflight = _Refresh(loop)
                owner = True
        if dead is not None:
            self._wake(dead)
        return token, state, refresh, owner

    def _drop(self, refresh: _Refresh, reason: str) -> None:
        """Under the lock: forget an abandoned refresh (a later caller starts a new one)."""
        refresh.reason = reason
        if self._inflight is refresh:
            self._inflight = None
        if refresh.task is not None:
            self._tasks.discard(refresh.task)

    @staticmethod
    def _wake(refresh: _Refresh) -> None:
        """Outside the lock: tell the abandoned refresh's waiters to take it over."""
        _settle(refresh.future, None, RefreshAbandonedError(
            f"the token refresh this call was waiting for was abandoned: {refresh.reason}"))

    def _abandon(self, refresh: _Refresh, reason: str) -> None:
        if refresh.reason is None:
            with self._locked():
                if refresh.reason is None and not refresh.future.done():
                    self._drop(refresh, reason)
        if refresh.reason is not None:
            self._wake(refresh)

    def _finish(self, refresh: _Refresh, fetch_result: Token | None,
                error: BaseException | None) -> None:
        if fetch_result is None and refresh.reason is not None:
            return  # an abandoned refresh failing late (or closed by the garbage collector)
        with self._locked():
            if fetch_result is not None:
                self._store(fetch_result)
            if self._inflight is refresh:
                self._inflight = None
        _settle(refresh.future, fetch_result, error)

    def _run(self, refresh: _Refresh, fetch: Callable[[], Token]) -> None:
        """Run ``fetch`` for everybody waiting on ``refresh``; always settles it."""
        try:
            token = fetch()
        except Exception as exc:  # noqa: BLE001 - handed to every waiter
            self._finish(refresh, None, exc)
        except BaseException as exc:  # Ctrl-C, SystemExit: this thread's own business
            self._abandon(refresh, f"the refreshing thread was interrupted "
                                   f"({type(exc).__name__})")
            raise
        else:
            self._finish(refresh, token, None)
        finally:
            if not refresh.future.done():
                self._abandon(refresh, "the refreshing thread was interrupted")

    @staticmethod
    def _gave_up(refresh: _Refresh | None) -> RefreshAbandonedError:
        return RefreshAbandonedError(
            f"{_TAKEOVERS} token refreshes in a row were abandoned by their owners "
            f"(the last because {refresh.reason if refresh else 'it was abandoned'}); "
            "the next call starts a new one")

    # -- sync -----------------------------------------------------------------------------
    def get(self, fetch: Callable[[], Token], *, fresh: bool = False) -> Token:
        """Return a usable token, calling ``fetch`` (blocking) at most once per refresh.

        ``fresh=True`` waits for the refresh instead of returning a stale token: the retry after
        a 401 uses it, since a request that just outlived one token should not be resent with
        another that is about to expire.
        """
        token = self._fresh()
        if token is not None:
            return token
        refresh = None
        for _ in range(_TAKEOVERS):
            token, state, refresh, owner = self._claim(None)
            if state is TokenState.FRESH or (state is TokenState.STALE and not fresh):
                assert token is not None
                if owner:
                    assert refresh is not None
                    return self._background(refresh, fetch, token)
                return token
            assert refresh is not None
            if owner:
                self._run(refresh, fetch)
            try:
                return self._wait(refresh)
            except RefreshAbandonedError:
                if refresh.reason is None:
                    raise  # fetch itself raised it
        raise self._gave_up(refresh)

    def _background(self, refresh: _Refresh, fetch: Callable[[], Token], stale: Token) -> Token:
        """Refresh in a daemon thread and return ``stale``; in the foreground when no thread
        can be started (then the new token, or ``stale`` if that refresh failed)."""
        thread = threading.Thread(target=self._run, args=(refresh, fetch),
                                  name="gcauth-refresh", daemon=True)
        try:
            thread.start()
        except (RuntimeError, MemoryError):  # can't start new thread: resources exhausted
            self._run(refresh, fetch)
            if refresh.future.exception() is None:
                return refresh.future.result()
            if stale.state(self._clock()) is TokenState.INVALID:
                return refresh.future.result()  # raises the refresh's error
            return stale
        except BaseException:
            self._abandon(refresh, "the refreshing thread was interrupted")
            raise
        refresh.thread = thread
        return stale

    def _wait(self, refresh: _Refresh) -> Token:
        """Block until ``refresh`` settles; abandon it if its owner goes away."""
        future = refresh.future
        if not future.done() and _on_owning_loop(refresh):
            raise RefreshDeadlockError(
                "get_token() blocks, and it was called from a coroutine on the event loop that "
                "is refreshing this credential's token, so that refresh could never finish. "
                "Fix: in coroutines use `await credentials.aget_token(request)` (or an async "
                "authorized session) instead of the blocking API.")
        delay = _POLL_FIRST
        while True:
            try:
                error = future.exception(timeout=delay)
            except concurrent.futures.TimeoutError:
                reason = refresh.gone()
                if reason is not None:
                    self._abandon(refresh, reason)
                delay = min(delay * 2, _POLL_MAX)
                continue
            if error is not None:
                raise error
            return future.result()

    def refresh(self, fetch: Callable[[], Token]) -> Token:
        """Refresh now (joining a refresh already in flight), whatever the token's state."""
        refresh = None
        for _ in range(_TAKEOVERS):
            _, _, refresh, owner = self._claim(None, force=True)
            assert refresh is not None
            if owner:
                self._run(refresh, fetch)
            try:
                return self._wait(refresh)
            except RefreshAbandonedError:
                if refresh.reason is None:
                    raise
        raise self._gave_up(refresh)

    # -- async ----------------------------------------------------------------------------
    async def aget(self, fetch: Callable[[], Awaitable[Token]], *, fresh: bool = False) -> Token:
        """Async :meth:`get`: the refresh runs as a task on the caller's loop, never a thread."""
        token = self._fresh()
        if token is not None:
            return token
        return await self._aget(fetch, fresh, force=False)

    async def arefresh(self, fetch: Callable[[], Awaitable[Token]]) -> Token:
        """Async :meth:`refresh`."""
        return await self._aget(fetch, True, force=True)

    async def _aget(self, fetch: Callable[[], Awaitable[Token]], fresh: bool, force: bool,
                    ) -> Token:
        import asyncio

        loop = asyncio.get_running_loop()
        refresh = None
        for _ in range(_TAKEOVERS):
            token, state, refresh, owner = self._claim(loop, force)
            if not force and (state is TokenState.FRESH
                              or (state is TokenState.STALE and not fresh)):
                assert token is not None
                if owner:
                    assert refresh is not None
                    self._start_task(loop, refresh, fetch)
                return token
            assert refresh is not None
            if owner:
                self._start_task(loop, refresh, fetch)
            try:
                return await self._await(refresh, loop)
            except RefreshAbandonedError:
                if refresh.reason is None:
                    raise
        raise self._gave_up(refresh)

    def _start_task(self, loop: asyncio.AbstractEventLoop, refresh: _Refresh,
                    fetch: Callable[[], Awaitable[Token]]) -> None:
        try:
            task = loop.create_task(self._arun(refresh, fetch))
        except BaseException:
            self._abandon(refresh, "its task could not be started")
            raise
        refresh.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await(self, refresh: _Refresh, loop: asyncio.AbstractEventLoop) -> Token:
        """Await ``refresh`` without ever cancelling it; abandon it if its owner goes away.

        The caller's own cancellation cancels only its view of the future (the shared one is
        already *running*, so it is not cancelled for anyone else)."""
        import asyncio

        waiter = asyncio.wrap_future(refresh.future, loop=loop)
        # a caller cancelled just as the refresh failed never reads the error: mark it read so
        # asyncio does not log "exception was never retrieved"
        waiter.add_done_callback(_retrieved)
        if refresh.loop is loop:  # the refresh runs here: it settles or is cancelled here
            return await waiter
        delay = _POLL_FIRST
        try:
            while not waiter.done():
                await asyncio.wait((waiter,), timeout=delay)
                if not waiter.done():
                    reason = refresh.gone()
                    if reason is not None:
                        self._abandon(refresh, reason)
                    delay = min(delay * 2, _POLL_MAX)
            return waiter.result()
        finally:
            if not waiter.done():
                waiter.cancel()

    async def _arun(self, refresh: _Refresh, fetch: Callable[[], Awaitable[Token]]) -> None:
        try:
            token = await fetch()
        except Exception as exc:  # noqa: BLE001 - handed to every waiter
            self._finish(refresh, None, exc)
        except BaseException as exc:  # cancelled (the loop is shutting down), Ctrl-C
            self._abandon(refresh, f"its task was cancelled ({type(exc).__name__})")
            raise
        else:
            self._finish(refresh, token, None)
        finally:
            if not refresh.future.done():
                self._abandon(refresh, "its task ended")
