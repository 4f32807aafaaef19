"""urllib3 transport (the core default): ``Request`` for token calls, ``AuthorizedHttp`` for APIs.

::

    import urllib3
    from gcauth.transport.urllib3 import AuthorizedHttp, Request
    http = AuthorizedHttp(credentials)
    response = http.request("GET", "https://sqladmin.googleapis.com/sql/v1beta4/projects/p/instances")
"""

from __future__ import annotations

import json as _json
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlencode

import urllib3
import urllib3.exceptions

from .._http import Headers, HttpRequest, HttpResponse
from ..credentials import Credentials
from ..exceptions import TransportError
from . import callable_compat, resolve_request
from ._retry401 import DEFAULT_REFRESH_STATUS_CODES, replayable

__all__ = ["AuthorizedHttp", "Request"]


class Request:
    """Sends flow requests through a ``urllib3.PoolManager`` (no retries, no redirects)."""

    def __init__(self, http: urllib3.PoolManager | None = None):
        self.http = http if http is not None else urllib3.PoolManager()

    def send(self, request: HttpRequest) -> HttpResponse:
        try:
            reply = self.http.request(
                request.method, request.url, body=request.body, headers=dict(request.headers),
                timeout=urllib3.Timeout(connect=request.timeout, read=request.timeout),
                retries=False, redirect=False, preload_content=True)
        except urllib3.exceptions.NewConnectionError as exc:
            # checked first: urllib3 derives it from ConnectTimeoutError, but it means refused,
            # unreachable or unresolvable, not a timeout
            raise TransportError(
                f"request to {request.endpoint} failed: {_reason(exc)}",
                url=request.endpoint) from None
        except urllib3.exceptions.TimeoutError:
            raise TransportError(
                f"request to {request.endpoint} timed out after {request.timeout:g} s",
                url=request.endpoint, timeout=True) from None
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(
                f"request to {request.endpoint} failed: {_reason(exc)}",
                url=request.endpoint) from None
        return HttpResponse(reply.status, Headers(dict(reply.headers)), reply.data)

    def __call__(self, url: str, method: str = "GET", body: Any = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> HttpResponse:
        return callable_compat(self.send, url, method, body, headers, timeout)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    inner = reason if isinstance(reason, BaseException) else exc
    text = type(inner).__name__
    detail = str(inner).split(": ", 1)[-1]
    return f"{text} ({detail[:200]})" if detail else text


class AuthorizedHttp:
    """A urllib3 pool that attaches the credential's token and refreshes once on 401."""

    def __init__(
        self,
        credentials: Credentials,
        http: urllib3.PoolManager | None = None,
        refresh_status_codes: Collection[int] = DEFAULT_REFRESH_STATUS_CODES,
        max_refresh_attempts: int = 1,
        auth_request: object | None = None,
    ):
        self.credentials = credentials
        self.http = http if http is not None else urllib3.PoolManager()
        self._refresh_status_codes = tuple(refresh_status_codes)
        self._max_refresh_attempts = max_refresh_attempts
        self._auth_request = resolve_request(
            auth_request if auth_request is not None else Request(self.http))

    def request(self, method: str, url: str, body: Any = None,
                headers: Mapping[str, str] | None = None, *,
                fields: Mapping[str, str] | None = None, json: Any = None,
                **kwargs: Any) -> Any:
        """Like ``PoolManager.request``: ``fields`` go in the query string, ``json`` is encoded."""
        request_headers = dict(headers or {})
        if fields:
            url += ("&" if "?" in url else "?") + urlencode(fields)
        if json is not None:
            body = _json.dumps(json).encode("utf-8")
            request_headers.setdefault("Content-Type", "application/json")
        return self.urlopen(method, url, body=body, headers=request_headers, **kwargs)

    def urlopen(self, method: str, url: str, body: Any = None,
                headers: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        """Send with the token attached; on 401, refresh once and send again."""
        attempts = 0
        while True:
            token = self.credentials.get_token(self._auth_request, fresh=attempts > 0)
            request_headers = dict(headers or {})
            request_headers.update(self.credentials.headers_for(token))
            response = self.http.urlopen(method, url, body=body, headers=request_headers,
                                         **kwargs)
            if (response.status not in self._refresh_status_codes
                    or attempts >= self._max_refresh_attempts or not replayable(body)):
                return response
            attempts += 1
            self.credentials.invalidate(token)
            response.drain_conn()
            response.release_conn()

    def __enter__(self) -> AuthorizedHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.clear()
