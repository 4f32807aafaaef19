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
* time comes from an injected ``clock`` (tz-aware UTC), never from patching a module.
"""

from __future__ import annotations

import concurrent.futures
import enum
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ._value import Value

if TYPE_CHECKING:
    import asyncio

__all__ = ["Clock", "Token", "TokenCache", "TokenState", "utcnow"]

Clock = Callable[[], datetime]

#: Refresh this long before expiry at most (google-auth uses the same 3 min 45 s).
REFRESH_WINDOW = timedelta(minutes=3, seconds=45)
#: A token this close to expiry is treated as already expired (clock skew, request latency).
EXPIRY_SKEW = timedelta(seconds=10)


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


class TokenCache:
    """Holds one credential's current token and serialises its refreshes.

    The fast path (a fresh token) takes no lock. The single in-flight refresh is a
    :class:`concurrent.futures.Future`, which threads wait on directly and coroutines on any
    event loop await through :func:`asyncio.wrap_future`.
    """

    __slots__ = ("_clock", "_entry", "_inflight", "_lock", "_tasks")

    def __init__(self, clock: Clock | None = None):
        self._clock: Clock = clock or utcnow
        self._lock = threading.Lock()
        # (token, stale_at) in one attribute, so the lock-free fast path reads a consistent pair
        self._entry: tuple[Token, datetime | None] | None = None
        self._inflight: concurrent.futures.Future[Token] | None = None
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
        with self._lock:
            self._store(token)

    def invalidate(self, token: Token | str | None = None) -> None:
        """Drop the cached token, but only if it is still ``token`` (when given).

        Used after a 401: of many requests rejected with the same token, only the first
        drops it, so the herd still triggers a single refresh.
        """
        with self._lock:
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

    def _claim(self) -> tuple[Token | None, TokenState, concurrent.futures.Future[Token], bool]:
        with self._lock:
            token = self.token
            state = TokenState.INVALID if token is None else token.state(self._clock())
            future = self._inflight
            owner = False
            if state is not TokenState.FRESH and future is None:
                future = self._inflight = concurrent.futures.Future()
                owner = True
            return token, state, future, owner  # type: ignore[return-value]

    def _finish(self, future: concurrent.futures.Future[Token], fetch_result: Token | None,
                error: BaseException | None) -> None:
        with self._lock:
            if fetch_result is not None:
                self._store(fetch_result)
            if self._inflight is future:
                self._inflight = None
        if error is not None:
            future.set_exception(error)
        else:
            assert fetch_result is not None
            future.set_result(fetch_result)

    def _run(self, future: concurrent.futures.Future[Token], fetch: Callable[[], Token]) -> None:
        try:
            token = fetch()
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter
            self._finish(future, None, exc)
            return
        self._finish(future, token, None)

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
        token, state, future, owner = self._claim()
        if state is TokenState.FRESH:
            assert token is not None
            return token
        if state is TokenState.STALE and not fresh:
            assert token is not None
            if owner:
                threading.Thread(
                    target=self._run, args=(future, fetch), name="gcauth-refresh", daemon=True
                ).start()
            return token
        if owner:
            self._run(future, fetch)
        return future.result()

    def refresh(self, fetch: Callable[[], Token]) -> Token:
        """Refresh now (joining a refresh already in flight), whatever the token's state."""
        with self._lock:
            future = self._inflight
            owner = future is None
            if future is None:
                future = self._inflight = concurrent.futures.Future()
        if owner:
            self._run(future, fetch)
        return future.result()

    # -- async ----------------------------------------------------------------------------
    async def aget(self, fetch: Callable[[], Awaitable[Token]], *, fresh: bool = False) -> Token:
        """Async :meth:`get`: the refresh runs as a task on the caller's loop, never a thread."""
        import asyncio

        token = self._fresh()
        if token is not None:
            return token
        token, state, future, owner = self._claim()
        if state is TokenState.FRESH:
            assert token is not None
            return token
        if owner:
            task = asyncio.get_running_loop().create_task(self._arun(future, fetch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if state is TokenState.STALE and not fresh:
                assert token is not None
                return token
            # shield: cancelling this caller must not cancel the refresh others wait on
            await asyncio.shield(task)
        elif state is TokenState.STALE and not fresh:
            assert token is not None
            return token
        return await asyncio.wrap_future(future)

    async def arefresh(self, fetch: Callable[[], Awaitable[Token]]) -> Token:
        """Async :meth:`refresh`."""
        import asyncio

        with self._lock:
            future = self._inflight
            owner = future is None
            if future is None:
                future = self._inflight = concurrent.futures.Future()
        if owner:
            task = asyncio.get_running_loop().create_task(self._arun(future, fetch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            await asyncio.shield(task)
        return await asyncio.wrap_future(future)

    async def _arun(
        self, future: concurrent.futures.Future[Token], fetch: Callable[[], Awaitable[Token]]
    ) -> None:
        import asyncio

        try:
            token = await fetch()
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter
            self._finish(future, None, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                raise
            return
        self._finish(future, token, None)
