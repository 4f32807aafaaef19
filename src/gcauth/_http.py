"""Sans-IO HTTP messages and the two drivers that run a flow.

A *flow* is a generator that yields :class:`HttpRequest` (send this, give me the reply) or
:class:`Sleep` (wait this long, used by retries) and finally returns its result. It never does
I/O itself, so every protocol step is unit-testable with ``next()``/``send()`` and one flow
serves both sync and async transports (the idea of httpx's ``Auth.auth_flow``).

When sending fails, the driver throws :class:`~gcauth.exceptions.TransportError` *into* the
flow, so retry logic lives in the flow and not in each transport.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from ._value import Value
from .exceptions import TransportError

__all__ = [
    "AsyncRequest",
    "Flow",
    "Headers",
    "HttpRequest",
    "HttpResponse",
    "Request",
    "Sleep",
    "callable_compat",
    "failed",
    "run_async",
    "run_sync",
    "timed_out",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive header mapping (keys compared lower-cased)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None):
        self._items: dict[str, str] = {}
        if items:
            for key, value in items.items():
                self._items[key.lower()] = value

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == {str(k).lower(): v for k, v in other.items()}
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        shown = {k: ("<redacted>" if k in ("authorization", "cookie") else v)
                 for k, v in self._items.items()}
        return f"Headers({shown!r})"


class HttpRequest(Value):
    """One HTTP request a flow wants sent. ``body`` is bytes or ``None``.

    Immutable and hashable: ``headers`` is a read-only :class:`Headers` copy of what the caller
    passed, so a flow that keeps a request (to resend it) cannot see it change.
    """

    __slots__ = ("method", "url", "headers", "body", "timeout")
    _hidden = frozenset({"body"})
    method: str
    url: str
    headers: Headers
    body: bytes | None
    timeout: float

    def __init__(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                 body: bytes | None = None, timeout: float = DEFAULT_TIMEOUT):
        self._init(method=method, url=url,
                   headers=headers if isinstance(headers, Headers) else Headers(headers),
                   body=body, timeout=timeout)

    @property
    def endpoint(self) -> str:
        """The URL without query or fragment: safe to put in an error message."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


class HttpResponse(Value):
    """The reply a driver hands back to the flow."""

    __slots__ = ("status", "headers", "body")
    _hidden = frozenset({"body"})
    status: int
    headers: Headers
    body: bytes

    def __init__(self, status: int, headers: Headers, body: bytes):
        self._init(status=status, headers=headers, body=body)

    @property
    def data(self) -> bytes:
        """google-auth's name for the body."""
        return self.body


def timed_out(request: HttpRequest) -> TransportError:
    """The error every sender raises when ``request`` got no reply within its timeout."""
    return TransportError(f"request to {request.endpoint} timed out after {request.timeout:g} s",
                          url=request.endpoint, timeout=True)


def failed(request: HttpRequest, reason: str) -> TransportError:
    """The error every sender raises when ``request`` got no usable reply (``reason`` must not
    quote the request: it may carry secrets)."""
    return TransportError(f"request to {request.endpoint} failed: {reason}",
                          url=request.endpoint)


@runtime_checkable
class Request(Protocol):
    """What a flow is sent with: sends one request and blocks for the reply.

    Raises :class:`~gcauth.exceptions.TransportError` when there is no reply; never follows
    redirects. :mod:`gcauth.transport` has one per HTTP library.
    """

    def send(self, request: HttpRequest) -> HttpResponse: ...


@runtime_checkable
class AsyncRequest(Protocol):
    """Sends one request on an event loop (the async :class:`Request`)."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...


def callable_compat(send: Callable[[HttpRequest], HttpResponse], url: str, method: str = "GET",
                    body: Any = None, headers: Mapping[str, str] | None = None,
                    timeout: float | None = None) -> HttpResponse:
    """google-auth's ``request(url, method, body, headers, timeout)`` on top of ``send``."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return send(HttpRequest(method, url, dict(headers or {}), body,
                            timeout if timeout is not None else DEFAULT_TIMEOUT))


class Sleep(Value):
    """Yielded by a flow that wants the driver to wait (retry backoff)."""

    __slots__ = ("seconds",)
    seconds: float

    def __init__(self, seconds: float):
        self._init(seconds=seconds)


Flow = Generator["HttpRequest | Sleep", "HttpResponse | None", T]


def run_sync(
    flow: Flow[T],
    send: Callable[[HttpRequest], HttpResponse],
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Drive ``flow`` to completion with a blocking ``send``."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                sleep(step.seconds)
                step = flow.send(None)
                continue
            try:
                response = send(step)
            except TransportError as exc:
                step = flow.throw(exc)
                continue
            step = flow.send(response)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()


async def run_async(
    flow: Flow[T],
    send: Callable[[HttpRequest], Awaitable[HttpResponse]],
    sleep: Callable[[float], Awaitable[object]] | None = None,
) -> T:
    """Drive the same ``flow`` with an async ``send``; sleeps never block the event loop."""
    if sleep is None:
        import asyncio

        sleep = asyncio.sleep
    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                await sleep(step.seconds)
                step = flow.send(None)
                continue
            try:
                response = await send(step)
            except TransportError as exc:
                step = flow.throw(exc)
                continue
            step = flow.send(response)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()
