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
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

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


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request a flow wants sent. ``body`` is bytes or ``None``."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @property
    def endpoint(self) -> str:
        """The URL without query or fragment: safe to put in an error message."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """The reply a driver hands back to the flow."""

    status: int
    headers: Headers
    body: bytes = field(repr=False)

    @property
    def data(self) -> bytes:
        """google-auth's name for the body."""
        return self.body


@dataclass(frozen=True, slots=True)
class Sleep:
    """Yielded by a flow that wants the driver to wait (retry backoff)."""

    seconds: float


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
