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
from typing import TypeVar
from urllib.parse import urlsplit

from ._value import Value
from .exceptions import TransportError

__all__ = ["Flow", "Headers", "HttpRequest", "HttpResponse", "Sleep", "run_async", "run_sync"]

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

    def __repr__(self) -> str:
        shown = {k: ("<redacted>" if k in ("authorization", "cookie") else v)
                 for k, v in self._items.items()}
        return f"Headers({shown!r})"


class HttpRequest(Value):
    """One HTTP request a flow wants sent. ``body`` is bytes or ``None``."""

    __slots__ = ("method", "url", "headers", "body", "timeout")
    _hidden = frozenset({"body"})
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    timeout: float

    def __init__(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                 body: bytes | None = None, timeout: float = DEFAULT_TIMEOUT):
        self._init(method=method, url=url, headers={} if headers is None else headers,
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
