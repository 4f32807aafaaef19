"""requests transport: ``Request`` for token calls; ``Auth`` and ``AuthorizedSession`` for APIs.

::

    from gcauth.transport.requests import AuthorizedSession
    session = AuthorizedSession(credentials)
    session.get("https://sqladmin.googleapis.com/sql/v1beta4/projects/p/instances")

    # or with any session you already have:
    from gcauth.transport.requests import Auth
    requests.get(url, auth=Auth(credentials))

Needs the ``requests`` extra: ``pip install 'gcauth[requests]'``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

try:
    import requests
    import requests.adapters
    import requests.auth
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "gcauth.transport.requests needs the requests package: pip install 'gcauth[requests]'"
    ) from exc

from .._http import Headers, HttpRequest, HttpResponse
from ..credentials import Credentials
from ..exceptions import TransportError
from ..tokens import Token
from . import callable_compat, resolve_request
from ._retry401 import DEFAULT_REFRESH_STATUS_CODES, replayable

__all__ = ["Auth", "AuthorizedSession", "Request"]


class Request:
    """Sends flow requests with a ``requests.Session`` (no redirects followed)."""

    def __init__(self, session: requests.Session | None = None):
        self.session = session if session is not None else requests.Session()

    def send(self, request: HttpRequest) -> HttpResponse:
        try:
            reply = self.session.request(
                request.method, request.url, data=request.body, headers=dict(request.headers),
                timeout=request.timeout, allow_redirects=False)
        except requests.Timeout:
            raise TransportError(
                f"request to {request.endpoint} timed out after {request.timeout:g} s",
                url=request.endpoint, timeout=True) from None
        except requests.RequestException as exc:
            raise TransportError(
                f"request to {request.endpoint} failed: {type(exc).__name__}",
                url=request.endpoint) from None
        return HttpResponse(reply.status_code, Headers(dict(reply.headers)), reply.content)

    def __call__(self, url: str, method: str = "GET", body: Any = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> HttpResponse:
        return callable_compat(self.send, url, method, body, headers, timeout)


class Auth(requests.auth.AuthBase):
    """A requests auth hook: attaches the token (and quota project), retries once on 401."""

    def __init__(self, credentials: Credentials, *, auth_request: object | None = None,
                 refresh_status_codes: Collection[int] = DEFAULT_REFRESH_STATUS_CODES):
        self.credentials = credentials
        self._auth_request = resolve_request(
            auth_request if auth_request is not None else Request())
        self._refresh_status_codes = tuple(refresh_status_codes)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.credentials.get_token(self._auth_request)
        r.headers.update(self.credentials.headers_for(token))
        r.register_hook("response", _RetryHook(self, token))  # type: ignore[no-untyped-call]
        return r

    def _retry(self, response: requests.Response, token: Token,
               **kwargs: Any) -> requests.Response:
        original = response.request
        if (response.status_code not in self._refresh_status_codes
                or getattr(original, "_gcauth_retried", False)
                or not replayable(original.body)):
            return response
        self.credentials.invalidate(token)
        new_token = self.credentials.get_token(self._auth_request, fresh=True)
        response.content  # noqa: B018 - drain so the connection can be reused
        response.close()
        retry = original.copy()
        retry.headers.update(self.credentials.headers_for(new_token))
        retry.hooks = {"response": []}
        retry._gcauth_retried = True  # type: ignore[attr-defined]
        assert response.connection is not None
        new_response: requests.Response = response.connection.send(retry, **kwargs)
        new_response.history.append(response)
        new_response.request = retry
        return new_response


class _RetryHook:
    __slots__ = ("_auth", "_token")

    def __init__(self, auth: Auth, token: Token):
        self._auth = auth
        self._token = token

    def __call__(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        return self._auth._retry(response, self._token, **kwargs)


class AuthorizedSession(requests.Session):
    """A ``requests.Session`` whose requests carry the credential's token.

    All the logic is in :class:`Auth`; this class only installs it, so
    ``AuthorizedSession(credentials).get(url)`` reads like google-auth's.
    """

    def __init__(self, credentials: Credentials, *, auth_request: object | None = None,
                 refresh_status_codes: Collection[int] = DEFAULT_REFRESH_STATUS_CODES):
        super().__init__()
        self.credentials = credentials
        self.auth = Auth(credentials, auth_request=auth_request,
                         refresh_status_codes=refresh_status_codes)
