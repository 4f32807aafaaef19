"""The one refresh-on-401 rule, as a sans-IO generator every adapter drives.

:func:`auth_flow` says *what* to do with an API request; an adapter only says *how*:

* it yields :class:`NeedToken` -- the driver answers with a :class:`~gcauth.tokens.Token`
  (``fresh=True``: wait for a refresh rather than take a stale token);
* it yields :class:`Send` -- the driver sends the request with these headers added and answers
  with the response (or, for libraries that raise on an error status, the exception);
* it yields :class:`Discard` -- the driver releases that response (drain, close) and answers
  ``None``;
* it returns the response the caller gets.

The rule: a request is resent at most ``max_refresh_attempts`` times (once by default), with a
new token, when the API answers a refresh status (401 by default) *and* its body can be sent
again (none, bytes or str; never a stream). The rejected token is invalidated only if it is
still the cached one, so a burst of 401s on the same token makes a single token request; and
the resend waits for a *fresh* token, since a request that outlived one token must not be
resent with another that is itself in its last moments.

:func:`run_auth_sync` and :func:`run_auth_async` drive it for adapters that send with a plain
function; httpx and requests drive it from their own hooks, in a few lines each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Generator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .._value import Value

if TYPE_CHECKING:
    from ..credentials import Credentials
    from ..tokens import Token

__all__ = [
    "DEFAULT_REFRESH_STATUS_CODES",
    "Discard",
    "NeedToken",
    "Send",
    "auth_flow",
    "replayable",
    "run_auth_async",
    "run_auth_sync",
]

R = TypeVar("R")

DEFAULT_REFRESH_STATUS_CODES: Collection[int] = (401,)


def replayable(body: object) -> bool:
    """Whether a request body can be sent a second time (a stream cannot)."""
    return body is None or isinstance(body, (bytes, bytearray, str))


class NeedToken(Value):
    """Answer with a token for the request (``fresh``: not a stale one)."""

    __slots__ = ("fresh",)
    fresh: bool

    def __init__(self, fresh: bool):
        self._init(fresh=fresh)


class Send(Value):
    """Send the request with ``headers`` added; answer with the response."""

    __slots__ = ("headers",)
    _hidden = frozenset({"headers"})
    headers: Mapping[str, str]

    def __init__(self, headers: Mapping[str, str]):
        self._init(headers=headers)


class Discard(Value):
    """Release ``response`` (it is being replaced by a resend); answer ``None``."""

    __slots__ = ("response",)
    response: Any

    def __init__(self, response: Any):
        self._init(response=response)


Step = NeedToken | Send | Discard
AuthFlow = Generator[Step, Any, R]


def auth_flow(
    credentials: Credentials,
    status_of: Callable[[R], int],
    *,
    can_resend: bool,
    refresh_status_codes: Collection[int] = DEFAULT_REFRESH_STATUS_CODES,
    max_refresh_attempts: int = 1,
) -> AuthFlow[R]:
    """The refresh-on-401 rule for one API request (see the module docstring)."""
    token: Token = yield NeedToken(False)
    attempts = 0
    while True:
        response: R = yield Send(credentials.headers_for(token))
        if (not can_resend or attempts >= max_refresh_attempts
                or status_of(response) not in refresh_status_codes):
            return response
        attempts += 1
        credentials.invalidate(token)
        yield Discard(response)
        token = yield NeedToken(True)


def run_auth_sync(
    flow: AuthFlow[R],
    get_token: Callable[[bool], Token],
    send: Callable[[Mapping[str, str]], R],
    discard: Callable[[R], object],
) -> R:
    """Drive :func:`auth_flow` with blocking calls."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, NeedToken):
                step = flow.send(get_token(step.fresh))
            elif isinstance(step, Send):
                step = flow.send(send(step.headers))
            else:
                discard(step.response)
                step = flow.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def run_auth_async(
    flow: AuthFlow[R],
    get_token: Callable[[bool], Awaitable[Token]],
    send: Callable[[Mapping[str, str]], Awaitable[R]],
    discard: Callable[[R], object],
) -> R:
    """Drive :func:`auth_flow` on an event loop."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, NeedToken):
                step = flow.send(await get_token(step.fresh))
            elif isinstance(step, Send):
                step = flow.send(await send(step.headers))
            else:
                discard(step.response)
                step = flow.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
