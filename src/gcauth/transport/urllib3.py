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

from .._sender import resolve_request
from .._urllib3 import Request
from ..credentials import Credentials
from ._authflow import DEFAULT_REFRESH_STATUS_CODES, auth_flow, replayable, run_auth_sync

__all__ = ["AuthorizedHttp", "Request"]


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
        credentials = self.credentials

        def send(auth_headers: Mapping[str, str]) -> Any:
            request_headers = dict(headers or {})
            request_headers.update(auth_headers)
            return self.http.urlopen(method, url, body=body, headers=request_headers, **kwargs)

        def discard(response: Any) -> None:
            response.drain_conn()
            response.release_conn()

        flow = auth_flow(credentials, _status, can_resend=replayable(body),
                         refresh_status_codes=self._refresh_status_codes,
                         max_refresh_attempts=self._max_refresh_attempts)
        return run_auth_sync(
            flow, lambda fresh: credentials.get_token(self._auth_request, fresh=fresh),
            send, discard)

    def __enter__(self) -> AuthorizedHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.clear()


def _status(response: Any) -> int:
    return int(response.status)
