"""Transports: how flows reach the network, and authorized sessions for API calls.

A *request* object sends one :class:`~gcauth._http.HttpRequest` and returns the
:class:`~gcauth._http.HttpResponse`; it raises :class:`~gcauth.exceptions.TransportError` when
there is no reply. Token, metadata and revoke calls never follow redirects.

Adapters (each an optional extra except urllib3, the core default):

* :mod:`gcauth.transport.urllib3` -- ``Request``, ``AuthorizedHttp``
* :mod:`gcauth.transport.requests` -- ``Request``, ``AuthorizedSession``, ``Auth``
* :mod:`gcauth.transport.httpx` -- ``Request``, ``AsyncRequest``, ``Auth`` (sync + async)
* :mod:`gcauth.transport.aiohttp` -- ``AsyncRequest``, ``AuthorizedSession``

For google-auth compatibility each ``Request`` is also callable as
``request(url, method="GET", body=None, headers=None, timeout=None)`` and returns an object with
``status``, ``headers`` and ``data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from .._http import DEFAULT_TIMEOUT, Headers, HttpRequest, HttpResponse

__all__ = ["AsyncRequest", "Request", "resolve_request"]


@runtime_checkable
class Request(Protocol):
    """Sends one request and blocks for the reply."""

    def send(self, request: HttpRequest) -> HttpResponse: ...


@runtime_checkable
class AsyncRequest(Protocol):
    """Sends one request on an event loop."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...


class _CallableAdapter:
    """Wraps a google-auth style ``request(url, method, body, headers, timeout)`` callable."""

    def __init__(self, func: Any):
        self._func = func

    def send(self, request: HttpRequest) -> HttpResponse:
        from ..exceptions import TransportError

        try:
            reply = self._func(url=request.url, method=request.method, body=request.body,
                               headers=dict(request.headers), timeout=request.timeout)
        except Exception as exc:  # noqa: BLE001 - foreign transports raise their own errors
            raise TransportError(f"request to {request.endpoint} failed: {type(exc).__name__}",
                                 url=request.endpoint) from exc
        return HttpResponse(int(reply.status), Headers(dict(reply.headers)), bytes(reply.data))


_default: Request | None = None


def resolve_request(request: object | None) -> Request:
    """The object to send with: ``request`` itself, an adapter for it, or the shared default."""
    global _default
    if request is None:
        if _default is None:
            import atexit

            from .urllib3 import Request as Urllib3Request

            default = Urllib3Request()
            atexit.register(default.http.clear)  # close pooled keep-alive sockets at exit
            _default = default
        return _default
    if isinstance(request, Request):
        return request
    if callable(request):
        return _CallableAdapter(request)
    raise TypeError(f"not a transport request object: {type(request).__name__}")


def callable_compat(send: Any, url: str, method: str = "GET", body: Any = None,
                    headers: Mapping[str, str] | None = None,
                    timeout: float | None = None) -> HttpResponse:
    """Implements the google-auth call signature on top of ``send``."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    result: HttpResponse = send(HttpRequest(method, url, dict(headers or {}), body,
                                            timeout if timeout is not None else DEFAULT_TIMEOUT))
    return result
