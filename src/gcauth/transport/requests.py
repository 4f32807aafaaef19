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
        "gcauth.transport.requests needs the requests package: pip install requests "
        "(or install gcauth with its requests extra)"
    ) from exc

from .._http import (
    Attempt,
    Headers,
    HttpRequest,
    HttpResponse,
    callable_compat,
    failed,
    send_within_deadline,
    timed_out,
)
from .._sender import resolve_request
from .._urllib3 import read_body
from ..credentials import Credentials
from ._authflow import (
    DEFAULT_REFRESH_STATUS_CODES,
    AuthFlow,
    Discard,
    NeedToken,
    Send,
    auth_flow,
    replayable,
)

__all__ = ["Auth", "AuthorizedSession", "Request"]


class Request:
    """Sends flow requests with a ``requests.Session`` (no redirects followed)."""

    def __init__(self, session: requests.Session | None = None):
        self.session = session if session is not None else requests.Session()

    def send(self, request: HttpRequest) -> HttpResponse:
        return send_within_deadline(request, self._send)

    def _send(self, attempt: Attempt) -> HttpResponse:
        request = attempt.request
        try:
            reply = self.session.request(
                request.method, request.url, data=request.body,
                headers=request.wire_headers(), timeout=request.timeout,
                allow_redirects=False, stream=True)
        except requests.Timeout:
            raise timed_out(request) from None
        except requests.RequestException as exc:
            raise failed(request, type(exc).__name__) from None
        try:
            body = read_body(reply.raw, attempt, reply.headers.get("content-encoding"))
        finally:
            reply.close()
        return HttpResponse(reply.status_code, Headers(dict(reply.headers)), body)

    def __call__(self, url: str, method: str = "GET", body: Any = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> HttpResponse:
        return callable_compat(self.send, url, method, body, headers, timeout)


class Auth(requests.auth.AuthBase):
    """A requests auth hook: attaches the token (and quota project), retries once on 401.

    Drives :func:`~gcauth.transport._authflow.auth_flow`: ``__call__`` runs it up to the first
    send (requests then sends the request itself), and a response hook runs the rest.
    """

    def __init__(self, credentials: Credentials, *, auth_request: object | None = None,
                 refresh_status_codes: Collection[int] = DEFAULT_REFRESH_STATUS_CODES):
        self.credentials = credentials
        self._auth_request = resolve_request(
            auth_request if auth_request is not None else Request())
        self._refresh_status_codes = tuple(refresh_status_codes)

    def _answer(self, step: NeedToken | Send | Discard, flow: AuthFlow[requests.Response],
                ) -> Send:
        """Run ``flow`` from ``step`` until it asks for a send."""
        while not isinstance(step, Send):
            if isinstance(step, NeedToken):
                step = flow.send(self.credentials.get_token(self._auth_request, fresh=step.fresh))
            else:
                step.response.content  # noqa: B018 - drain so the connection can be reused
                step.response.close()
                step = flow.send(None)
        return step

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        flow = auth_flow(self.credentials, _status, can_resend=replayable(r.body),
                         refresh_status_codes=self._refresh_status_codes)
        r.headers.update(self._answer(next(flow), flow).headers)
        r.register_hook("response", _ResponseHook(self, flow))  # type: ignore[no-untyped-call]
        return r


def _status(response: requests.Response) -> int:
    return response.status_code


class _ResponseHook:
    """The rest of one request's auth flow, run when its response arrives."""

    __slots__ = ("_auth", "_flow")

    def __init__(self, auth: Auth, flow: AuthFlow[requests.Response]):
        self._auth = auth
        self._flow = flow

    def __call__(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        flow = self._flow
        try:
            step = flow.send(response)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        send = self._auth._answer(step, flow)
        original = response.request
        retry = original.copy()
        retry.headers.update(send.headers)
        retry.hooks = {"response": []}  # this hook runs the rest of the flow itself
        assert response.connection is not None
        new_response: requests.Response = response.connection.send(retry, **kwargs)
        new_response.history.append(response)
        new_response.request = retry
        return self(new_response, **kwargs)


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
