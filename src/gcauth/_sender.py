"""Which object a flow is sent with: the caller's transport, an adapter for it, or the default.

Below :mod:`gcauth.transport` on purpose: credentials, ADC and the login flows resolve their
sender here, so nothing in the core imports the transport adapters (which import credentials).
The default is one process-wide :class:`gcauth._urllib3.Request`; a forked child gets a new one
(its parent's pooled keep-alive sockets are never shared).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ._http import Headers, HttpRequest, HttpResponse, Request, failed
from .exceptions import UsageError

__all__ = ["resolve_request"]


class _CallableAdapter:
    """Wraps a google-auth style ``request(url, method, body, headers, timeout)`` callable."""

    __slots__ = ("_func",)

    def __init__(self, func: Any):
        self._func = func

    def send(self, request: HttpRequest) -> HttpResponse:
        try:
            reply = self._func(url=request.url, method=request.method, body=request.body,
                               headers=dict(request.headers), timeout=request.timeout)
        except Exception as exc:  # noqa: BLE001 - foreign transports raise their own errors
            raise failed(request, type(exc).__name__) from exc
        return HttpResponse(int(reply.status), Headers(dict(reply.headers)), bytes(reply.data))


_lock = threading.Lock()
_default: Request | None = None

#: What to pass instead of an HTTP library's own client object.
_INSTEAD = {
    "requests.sessions.Session": "gcauth.transport.requests.Request(session)",
    "httpx.Client": "gcauth.transport.httpx.Request(client)",
    "httpx.AsyncClient": "gcauth.transport.httpx.AsyncRequest(client)",
    "aiohttp.client.ClientSession": "gcauth.transport.aiohttp.AsyncRequest(session)",
    "urllib3.poolmanager.PoolManager": "gcauth.transport.urllib3.Request(http)",
}


def default_request() -> Request:
    """The process-wide default sender (urllib3), created on first use."""
    global _default
    default = _default
    if default is None:
        with _lock:
            if _default is None:
                import atexit

                from ._urllib3 import Request as Urllib3Request

                made = Urllib3Request()
                atexit.register(made.http.clear)  # close pooled keep-alive sockets at exit
                _default = made
            default = _default
    return default


def resolve_request(request: object | None) -> Request:
    """The object to send with: ``request`` itself, an adapter for it, or the shared default."""
    if request is None:
        return default_request()
    kind = type(request)
    if not kind.__module__.startswith("gcauth."):
        # an HTTP library's own client has a ``send`` too, of another kind: say what to pass
        for base in kind.__mro__:
            instead = _INSTEAD.get(f"{base.__module__}.{base.__qualname__}")
            if instead:
                raise UsageError(
                    f"got a {kind.__module__}.{kind.__qualname__} where a gcauth transport "
                    f"request is expected: pass {instead} instead (or nothing, for the "
                    "default).")
    if isinstance(request, Request):
        return request
    if callable(request):
        return _CallableAdapter(request)
    raise UsageError(f"got a {kind.__module__}.{kind.__qualname__} where a gcauth transport "
                     "request is expected: pass a gcauth.transport.<library>.Request, a "
                     "google-auth style request callable, or nothing for the default.")


def _after_fork_in_child() -> None:
    # a child must never reuse its parent's pooled keep-alive connections: the parent may be
    # reading from the same socket, and each would get the other's reply
    global _default, _lock
    _lock = threading.Lock()
    _default = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
