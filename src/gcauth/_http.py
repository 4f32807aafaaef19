"""Sans-IO HTTP messages and the two drivers that run a flow.

A *flow* is a generator that yields :class:`HttpRequest` (send this, give me the reply) or
:class:`Sleep` (wait this long, used by retries) and finally returns its result. It never does
I/O itself, so every protocol step is unit-testable with ``next()``/``send()`` and one flow
serves both sync and async transports (the idea of httpx's ``Auth.auth_flow``).

When sending fails, the driver throws :class:`~gcauth.exceptions.TransportError` *into* the
flow, so retry logic lives in the flow and not in each transport.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from ._value import Value
from .exceptions import TransportError, UsageError

__all__ = [
    "AsyncRequest",
    "Flow",
    "Headers",
    "HttpRequest",
    "HttpResponse",
    "Join",
    "Request",
    "Sleep",
    "MAX_REPLY_BYTES",
    "Attempt",
    "BodyReader",
    "callable_compat",
    "failed",
    "send_within_deadline",
    "run_async",
    "run_sync",
    "timed_out",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
#: The largest reply (after content decoding) gcauth reads from a token, metadata, revoke or
#: other auth endpoint. Real replies are a few KiB; more is a misbehaving or hostile server.
MAX_REPLY_BYTES = 1 << 20


#: The longest timeout gcauth accepts (a day): more is a mistake, not a wish to wait.
MAX_TIMEOUT = 86400.0


def checked_timeout(value: object, name: str = "timeout") -> float:
    """``value`` as a timeout in seconds, or :class:`UsageError` if it is not a positive,
    finite number (``nan`` would spin, ``inf`` or a negative one would wait for ever)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{name} must be a number of seconds, not {type(value).__name__}.")
    seconds = float(value)
    if not 0 < seconds <= MAX_TIMEOUT:  # also false for NaN
        raise UsageError(f"{name} must be more than 0 and at most {MAX_TIMEOUT:g} seconds "
                         f"(got {seconds!r}).")
    return seconds


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

    ``timeout`` is the deadline of one attempt, from connecting to the last byte of the reply,
    whatever the server does (every gcauth sender enforces it); ``max_reply`` caps the reply
    body after content decoding.
    """

    __slots__ = ("method", "url", "headers", "body", "timeout", "max_reply")
    _hidden = frozenset({"body"})
    method: str
    url: str
    headers: Headers
    body: bytes | None
    timeout: float
    max_reply: int

    def __init__(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                 body: bytes | None = None, timeout: float = DEFAULT_TIMEOUT,
                 max_reply: int = MAX_REPLY_BYTES):
        self._init(method=method, url=url,
                   headers=headers if isinstance(headers, Headers) else Headers(headers),
                   body=body, timeout=checked_timeout(timeout), max_reply=max_reply)

    def wire_headers(self) -> dict[str, str]:
        """The headers to put on the wire: the flow's, plus ``Accept-Encoding: identity``
        unless the flow chose an encoding (a compressed reply is still decoded, within
        :attr:`max_reply`)."""
        headers = dict(self.headers)
        headers.setdefault("accept-encoding", "identity")
        return headers

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


def too_large(request: HttpRequest) -> TransportError:
    error = TransportError(
        f"reply from {request.endpoint} is larger than {request.max_reply} bytes: that is no "
        "token or metadata reply. Fix: check that the URL points at the right server.",
        url=request.endpoint)
    error.retryable = False
    return error


class Attempt:
    """One attempt at sending a request: its deadline, and how to cut it short.

    A sender's worker registers :meth:`on_abort` (shut the socket down) once it has a
    connection; the caller that stops waiting calls :meth:`abort`, which runs it at once or, if
    the worker registers later, as soon as it does.
    """

    __slots__ = ("request", "deadline", "_lock", "_abort", "_aborted")

    def __init__(self, request: HttpRequest):
        self.request = request
        self.deadline = time.monotonic() + request.timeout
        self._lock = threading.Lock()
        self._abort: Callable[[], object] | None = None
        self._aborted = False

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        """Raise :func:`timed_out` once the deadline has passed or the caller gave up."""
        if self._aborted or time.monotonic() > self.deadline:
            raise timed_out(self.request)

    def on_abort(self, callback: Callable[[], object]) -> None:
        with self._lock:
            self._abort = callback
            aborted = self._aborted
        if aborted:
            _quietly(callback)

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            callback = self._abort
        if callback is not None:
            _quietly(callback)


def _quietly(callback: Callable[[], object]) -> None:
    try:
        callback()
    except Exception:  # noqa: BLE001 - best effort: the connection is being abandoned anyway
        pass


class BodyReader:
    """Collects a reply body from raw (still encoded) chunks within the request's limits.

    Decodes ``gzip`` and ``deflate`` itself, incrementally and bounded by
    :attr:`HttpRequest.max_reply`, so a small compressed body that inflates to gigabytes costs
    at most the cap; raises :func:`too_large` past it, or :func:`timed_out` once the attempt's
    deadline has passed (checked between chunks).
    """

    __slots__ = ("_request", "_parts", "_size", "_decoder", "_attempt")

    def __init__(self, request: HttpRequest, content_encoding: str | None,
                 attempt: Attempt | None = None):
        self._request = request
        self._parts: list[bytes] = []
        self._size = 0
        self._attempt = attempt
        encoding = (content_encoding or "identity").strip().lower()
        self._decoder: Any
        if encoding in ("", "identity"):
            self._decoder = None
        elif encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        else:
            raise failed(request, f"the reply is encoded as {encoding[:40]!r}, which gcauth did "
                                  "not ask for (it sends Accept-Encoding: identity)")

    def feed(self, chunk: bytes) -> None:
        if self._attempt is not None:
            self._attempt.check()
        if self._decoder is None:
            self._add(chunk)
            return
        data = chunk
        try:
            while data:
                room = self._request.max_reply - self._size + 1
                self._add(self._decoder.decompress(data, room))
                data = self._decoder.unconsumed_tail
        except zlib.error:
            raise failed(self._request, "the compressed reply is corrupt") from None

    def _add(self, data: bytes) -> None:
        if data:
            self._size += len(data)
            if self._size > self._request.max_reply:
                raise too_large(self._request)
            self._parts.append(data)

    def feed_all(self, chunks: Iterable[bytes]) -> bytes:
        for chunk in chunks:
            self.feed(chunk)
        return self.body()

    def body(self) -> bytes:
        if self._decoder is not None:
            try:
                self._add(self._decoder.flush())
            except zlib.error:
                raise failed(self._request, "the compressed reply is corrupt") from None
        return b"".join(self._parts)


#: Size of the raw chunks senders read (small, so one chunk can never inflate past the cap by
#: much before it is checked).
CHUNK = 16 * 1024


def send_within_deadline(request: HttpRequest,
                         work: Callable[[Attempt], HttpResponse]) -> HttpResponse:
    """Run a blocking send so that the caller has its answer by ``request.timeout``.

    HTTP libraries apply their timeout to each socket operation, so a server that drips a
    byte at a time never trips it. ``work(attempt)`` runs in a short-lived daemon thread; if
    it is not done by the deadline the caller gets :func:`timed_out`, and the attempt is
    aborted (the worker's socket is shut down, which ends any read it is blocked in). Should no
    thread be available, ``work`` runs in the caller's thread and the deadline is checked
    between chunks only.
    """
    attempt = Attempt(request)
    outcome: list[object] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(work(attempt))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=run, name="gcauth-send", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no thread can be started: degrade, never fail
        return work(attempt)
    if not done.wait(max(0.0, attempt.remaining())):
        attempt.abort()
        raise timed_out(request)
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, HttpResponse)
    return result


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


class Join(Value):
    """Yielded by a flow that needs what another cached operation produces (another
    credential's token, from that credential's own cache): the blocking driver answers with
    ``sync(send)``, the async driver with ``await async_(send)``, where ``send`` is the
    driver's own send function. An exception either raises is thrown into the flow.

    This keeps a flow that depends on another credential sans-IO: the flow never refreshes
    that credential itself, so all its callers still share one refresh, sync or async.
    """

    __slots__ = ("sync", "async_")
    sync: Callable[[Callable[[HttpRequest], HttpResponse]], Any]
    async_: Callable[[Callable[[HttpRequest], Awaitable[HttpResponse]]], Awaitable[Any]]

    def __init__(self, sync: Callable[[Callable[[HttpRequest], HttpResponse]], Any],
                 async_: Callable[[Callable[[HttpRequest], Awaitable[HttpResponse]]],
                                  Awaitable[Any]]):
        self._init(sync=sync, async_=async_)


Flow = Generator["HttpRequest | Sleep | Join", "HttpResponse | None", T]


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
            if isinstance(step, Join):
                try:
                    joined = step.sync(send)
                except Exception as exc:  # noqa: BLE001 - the flow decides what it means
                    step = flow.throw(exc)
                    continue
                step = flow.send(joined)
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
            if isinstance(step, Join):
                try:
                    joined = await step.async_(send)
                except Exception as exc:  # noqa: BLE001 - the flow decides what it means
                    step = flow.throw(exc)
                    continue
                step = flow.send(joined)
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
