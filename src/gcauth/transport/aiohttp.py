"""aiohttp transport: ``AsyncRequest`` for token calls, ``AuthorizedSession`` for APIs.

::

    from gcauth.transport.aiohttp import AuthorizedSession

    async with AuthorizedSession(credentials) as session:
        async with session.get(url) as response:          # streamed, like aiohttp
            data = await response.json()
        response = await session.request("GET", url)      # or awaited directly
        response.release()

Each request carries the token and the quota-project header; on a 401 the rejected token is
invalidated and the request sent once more with a new token, when its body can be sent again
(none, bytes, str, a form mapping or ``json=``; never a stream). Token refreshes are async
I/O on the caller's event loop, driving the same sans-IO flow as every other transport.

Needs the ``aiohttp`` extra: ``pip install 'gcauth[aiohttp]'``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Generator, Mapping
from types import TracebackType
from typing import Any

try:
    import aiohttp
    from multidict import CIMultiDict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "gcauth.transport.aiohttp needs the aiohttp package: pip install aiohttp "
        "(or install gcauth with its aiohttp extra)"
    ) from exc

from .._http import CHUNK, BodyReader, Headers, HttpRequest, HttpResponse, failed, timed_out
from .._http import AsyncRequest as AsyncRequestProtocol
from ..credentials import Credentials
from ._authflow import DEFAULT_REFRESH_STATUS_CODES, auth_flow, replayable, run_auth_async

__all__ = ["AsyncRequest", "AuthorizedSession"]


class AsyncRequest:
    """Sends flow requests (token, metadata) with aiohttp; never follows redirects.

    With a ``session`` every request goes through it (it belongs to one event loop). Without
    one, each send opens a short-lived session on the *current* loop, so one ``AsyncRequest``
    can serve any number of event loops; tokens are fetched rarely, so this costs one
    connection per refresh.
    """

    def __init__(self, session: aiohttp.ClientSession | None = None):
        self._session = session

    async def send(self, request: HttpRequest) -> HttpResponse:
        timeout = aiohttp.ClientTimeout(total=request.timeout)
        try:
            if self._session is not None:
                return await _send(self._session, request, timeout)
            async with aiohttp.ClientSession() as session:
                return await _send(session, request, timeout)
        except asyncio.TimeoutError:
            raise timed_out(request) from None
        except aiohttp.ClientError as exc:
            raise failed(request, type(exc).__name__) from None


async def _send(session: aiohttp.ClientSession, request: HttpRequest,
                timeout: aiohttp.ClientTimeout) -> HttpResponse:
    async with session.request(
            request.method, request.url, data=request.body, headers=request.wire_headers(),
            timeout=timeout, allow_redirects=False, raise_for_status=False,
            auto_decompress=False) as reply:
        # undecoded, so that BodyReader bounds what a compressed body inflates to
        reader = BodyReader(request, reply.headers.get("content-encoding"))
        async for chunk in reply.content.iter_chunked(CHUNK):
            reader.feed(chunk)
        return HttpResponse(reply.status, Headers(dict(reply.headers)), reader.body())


_Reply = aiohttp.ClientResponse | aiohttp.ClientResponseError


def _status(reply: _Reply) -> int:
    return reply.status


def _can_replay(kwargs: Mapping[str, Any]) -> bool:
    data = kwargs.get("data")
    return replayable(data) or isinstance(data, Mapping)


class _RequestContext:
    """What :meth:`AuthorizedSession.request` returns: awaitable, or an async context manager
    that releases the response on exit (aiohttp's own calling conventions)."""

    __slots__ = ("_coro", "_response")

    def __init__(self, coro: Awaitable[aiohttp.ClientResponse]):
        self._coro = coro
        self._response: aiohttp.ClientResponse | None = None

    def __await__(self) -> Generator[Any, None, aiohttp.ClientResponse]:
        return self._coro.__await__()

    async def __aenter__(self) -> aiohttp.ClientResponse:
        self._response = await self._coro
        return self._response

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._response is not None:
            self._response.release()


class AuthorizedSession:
    """An ``aiohttp.ClientSession`` wrapper whose requests carry the credential's token.

    Pass a ``session`` to use one you already have (it is not closed by :meth:`close`);
    otherwise one is created on first use with ``session_kwargs``. Token requests go through
    ``auth_request`` when given, else through the session this object created, else (a
    caller's session, whose defaults are not ours to send to a token endpoint) through
    short-lived sessions of :class:`AsyncRequest`.
    """

    def __init__(
        self,
        credentials: Credentials,
        session: aiohttp.ClientSession | None = None,
        *,
        auth_request: AsyncRequestProtocol | None = None,
        refresh_status_codes: Collection[int] = DEFAULT_REFRESH_STATUS_CODES,
        **session_kwargs: Any,
    ):
        if session is not None and session_kwargs:
            raise TypeError("pass either a session or session keyword arguments, not both")
        self.credentials = credentials
        self._session = session
        self._owns_session = session is None
        self._session_kwargs = session_kwargs
        self._auth_request = auth_request
        self._refresh_status_codes = frozenset(refresh_status_codes)

    @property
    def session(self) -> aiohttp.ClientSession:
        """The wrapped session (created on first use, inside the caller's event loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(**self._session_kwargs)
        return self._session

    def _sender(self) -> AsyncRequestProtocol:
        if self._auth_request is None:
            self._auth_request = AsyncRequest(self.session if self._owns_session else None)
        return self._auth_request

    def request(self, method: str, url: Any, **kwargs: Any) -> _RequestContext:
        """Like ``ClientSession.request``: ``await`` it, or use it with ``async with``."""
        return _RequestContext(self._request(method, url, kwargs))

    async def _request(self, method: str, url: Any,
                       kwargs: dict[str, Any]) -> aiohttp.ClientResponse:
        session = self.session
        sender = self._sender()
        credentials = self.credentials
        headers: CIMultiDict[str] = CIMultiDict(kwargs.pop("headers", None) or {})

        async def send(auth_headers: Mapping[str, str]) -> _Reply:
            headers.update(auth_headers)
            try:
                return await session.request(method, url, headers=headers, **kwargs)
            except aiohttp.ClientResponseError as exc:  # a session that raises for status
                return exc

        def discard(reply: _Reply) -> None:
            if isinstance(reply, aiohttp.ClientResponse):
                reply.release()

        async def get_token(fresh: bool) -> Any:
            return await credentials.aget_token(sender, fresh=fresh)

        flow = auth_flow(credentials, _status, can_resend=_can_replay(kwargs),
                         refresh_status_codes=self._refresh_status_codes)
        reply = await run_auth_async(flow, get_token, send, discard)
        if isinstance(reply, aiohttp.ClientResponseError):
            raise reply
        return reply

    def get(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("GET", url, **kwargs)

    def head(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("POST", url, **kwargs)

    def put(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: Any, **kwargs: Any) -> _RequestContext:
        return self.request("DELETE", url, **kwargs)

    async def close(self) -> None:
        """Close the session if this object created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> AuthorizedSession:
        _ = self.session
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
