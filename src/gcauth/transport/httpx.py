"""httpx transport: one :class:`Auth` for ``httpx.Client`` *and* ``httpx.AsyncClient``.

::

    import httpx
    from gcauth.transport.httpx import Auth

    auth = Auth(credentials)
    with httpx.Client(auth=auth) as client:
        client.get("https://sqladmin.googleapis.com/sql/v1beta4/projects/p/instances")

    async with httpx.AsyncClient(auth=auth) as client:
        await client.get("https://sqladmin.googleapis.com/sql/v1beta4/projects/p/instances")

httpx drives :meth:`Auth.sync_auth_flow` from ``Client`` and :meth:`Auth.async_auth_flow` from
``AsyncClient``; both attach the token and quota-project header and, on a 401, invalidate the
rejected token and resend once with a new one (replayable bodies only). A token refresh made
from ``async_auth_flow`` is async I/O on the caller's event loop: the same sans-IO token flow,
driven by :class:`AsyncRequest`, with no thread hop.

Needs the ``httpx`` extra: ``pip install 'gcauth[httpx]'``.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import socket
import ssl
import threading
from collections.abc import AsyncGenerator, Collection, Generator, Mapping
from typing import Any

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "gcauth.transport.httpx needs the httpx package: pip install httpx "
        "(or install gcauth with its httpx extra)"
    ) from exc

from .._http import (
    CHUNK,
    Attempt,
    BodyReader,
    Headers,
    HttpRequest,
    HttpResponse,
    callable_compat,
    failed,
    send_within_deadline,
    timed_out,
)
from .._http import AsyncRequest as AsyncRequestProtocol
from .._http import Request as RequestProtocol
from .._sender import resolve_request
from ..credentials import Credentials
from ..exceptions import TransportError
from ._authflow import DEFAULT_REFRESH_STATUS_CODES, AuthFlow, NeedToken, Send, auth_flow

__all__ = ["AsyncRequest", "Auth", "Request"]

_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def _shared_ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for every client gcauth creates itself.

    Building a context (loading the CA bundle) costs milliseconds; short-lived token clients
    reuse this one so a refresh never pays for it again.
    """
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()
        return _ssl_context


def _convert(reply: httpx.Response, body: bytes) -> HttpResponse:
    return HttpResponse(reply.status_code, Headers(dict(reply.headers)), body)


def _error(request: HttpRequest, exc: httpx.HTTPError) -> TransportError:
    if isinstance(exc, httpx.TimeoutException):
        return timed_out(request)
    return failed(request, type(exc).__name__)


class Request:
    """Sends flow requests (token, metadata) with an ``httpx.Client``; never follows redirects.

    Without a ``client`` one is created on first use and kept (``httpx.Client`` is safe to use
    from many threads); :meth:`close` closes a client created here.
    """

    def __init__(self, client: httpx.Client | None = None):
        self._client = client
        self._owned = client is None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(verify=_shared_ssl_context())
                client = self._client
        return client

    def send(self, request: HttpRequest) -> HttpResponse:
        return send_within_deadline(request, self._send)

    def _send(self, attempt: Attempt) -> HttpResponse:
        request = attempt.request
        try:
            with self.client.stream(
                    request.method, request.url, content=request.body,
                    headers=request.wire_headers(), timeout=request.timeout,
                    follow_redirects=False) as reply:
                attempt.on_abort(lambda: _shutdown(reply))
                reader = BodyReader(request, reply.headers.get("content-encoding"), attempt)
                for chunk in reply.iter_raw(CHUNK):
                    reader.feed(chunk)
                return _convert(reply, reader.body())
        except httpx.HTTPError as exc:
            raise _error(request, exc) from None

    def __call__(self, url: str, method: str = "GET", body: Any = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> HttpResponse:
        return callable_compat(self.send, url, method, body, headers, timeout)

    def close(self) -> None:
        """Close the client if this object created it."""
        with self._lock:
            client, self._client = self._client, (None if self._owned else self._client)
        if self._owned and client is not None:
            client.close()


class AsyncRequest:
    """Sends flow requests with an ``httpx.AsyncClient``; never follows redirects.

    With a ``client``, every request goes through it (so it must belong to the caller's event
    loop). Without one, each send uses a short-lived client on the *current* loop, so one
    ``AsyncRequest`` (and one :class:`Auth`) can serve any number of event loops; tokens are
    fetched rarely, and the SSL context is shared, so this costs one connection per refresh.
    """

    def __init__(self, client: httpx.AsyncClient | None = None):
        self._client = client

    async def send(self, request: HttpRequest) -> HttpResponse:
        try:
            return await asyncio.wait_for(self._send(request), request.timeout)
        except asyncio.TimeoutError:
            raise timed_out(request) from None
        except httpx.HTTPError as exc:
            raise _error(request, exc) from None

    async def _send(self, request: HttpRequest) -> HttpResponse:
        if self._client is not None:
            return await _astream(self._client, request)
        async with httpx.AsyncClient(verify=_shared_ssl_context()) as client:
            return await _astream(client, request)


async def _astream(client: httpx.AsyncClient, request: HttpRequest) -> HttpResponse:
    async with client.stream(request.method, request.url, content=request.body,
                             headers=request.wire_headers(), timeout=request.timeout,
                             follow_redirects=False) as reply:
        reader = BodyReader(request, reply.headers.get("content-encoding"))
        async for chunk in reply.aiter_raw(CHUNK):
            reader.feed(chunk)
        return _convert(reply, reader.body())


def _shutdown(reply: httpx.Response) -> None:
    """End a read blocked on ``reply``'s connection (closing alone does not wake it)."""
    stream = reply.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        sock.shutdown(socket.SHUT_RDWR)
    else:
        reply.close()


_default: Request | None = None


def _default_request() -> Request:
    """The process-wide httpx :class:`Request` for token calls of every :class:`Auth` that is
    given none: one connection pool, created on first use, that lives as long as the process."""
    global _default
    with _ssl_lock:
        if _default is None:
            _default = Request()
            atexit.register(_default.close)
        return _default


def _after_fork_in_child() -> None:
    # a child never shares its parent's pooled connections, nor a lock a parent thread held
    global _default, _ssl_lock
    _ssl_lock = threading.Lock()
    _default = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Auth(httpx.Auth):
    """httpx authentication for Google-style APIs, for sync and async clients alike.

    ``request`` (sync) and ``async_request`` (async) send the token requests; by default a
    process-wide httpx :class:`Request` and a loop-agnostic :class:`AsyncRequest`. A request
    whose body is a stream (a generator, a file) is not resent after a 401: its 401 response
    is returned.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        credentials: Credentials,
        *,
        request: object | None = None,
        async_request: AsyncRequestProtocol | None = None,
        refresh_status_codes: Collection[int] = DEFAULT_REFRESH_STATUS_CODES,
    ):
        self.credentials = credentials
        self._request: RequestProtocol = (
            resolve_request(request) if request is not None else _default_request())
        self._async_request: AsyncRequestProtocol = (
            async_request if async_request is not None else AsyncRequest())
        self._refresh_status_codes = frozenset(refresh_status_codes)

    def _flow(self, request: httpx.Request) -> AuthFlow[httpx.Response]:
        # a ByteStream (bytes, str, form, json or no body) can be sent again; a stream cannot
        return auth_flow(self.credentials, _status,
                         can_resend=isinstance(request.stream, httpx.ByteStream),
                         refresh_status_codes=self._refresh_status_codes)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self._flow(request)
        try:
            step = next(flow)
            while True:
                if isinstance(step, NeedToken):
                    step = flow.send(self.credentials.get_token(self._request, fresh=step.fresh))
                elif isinstance(step, Send):
                    request.headers.update(step.headers)
                    step = flow.send((yield request))
                else:  # Discard: httpx closes a response its auth flow replaced
                    step = flow.send(None)
        except StopIteration:
            return

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self._flow(request)
        try:
            step = next(flow)
            while True:
                if isinstance(step, NeedToken):
                    step = flow.send(await self.credentials.aget_token(self._async_request,
                                                                       fresh=step.fresh))
                elif isinstance(step, Send):
                    request.headers.update(step.headers)
                    step = flow.send((yield request))
                else:
                    step = flow.send(None)
        except StopIteration:
            return


def _status(response: httpx.Response) -> int:
    return response.status_code
