"""OAuth 2.0 token endpoint (RFC 6749 §3.2, §4.1.3, §5, §6) as pure functions and flows.

``token_request`` builds the POST, ``parse_token_response`` reads the reply (success per §5.1,
error per §5.2) and ``token_exchange`` is the flow that sends it with bounded, jittered retries
(:mod:`gcauth._retry`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from .._checks import is_b64token, is_token_type, terminal_safe
from .._http import DEFAULT_TIMEOUT, Flow, HttpRequest, HttpResponse
from .._json import loads as json_loads
from .._retry import RetryPolicy, with_retries
from .._value import Value
from ..exceptions import RefreshError

__all__ = [
    "GOOGLE_TOKEN_URI",
    "TokenResponse",
    "parse_token_response",
    "token_exchange",
    "token_request",
]

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
FORM = "application/x-www-form-urlencoded"

#: RFC 6749 §5.2 codes (and Google's extras) that a retry may cure.
RETRYABLE_ERRORS = frozenset({"temporarily_unavailable", "server_error", "internal_failure"})
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

#: What to tell the user for each permanent RFC 6749 error.
_HINTS = {
    "invalid_grant": "the grant (refresh token, assertion or code) is invalid, expired or revoked",
    "invalid_scope": "ask only for scopes this client or account is allowed",
    "unauthorized_client": (
        "this client may not use this grant; for a service account with `subject`, grant it "
        "domain-wide delegation for these scopes in the Admin console"),
    "invalid_client": "check client_id and client_secret in the credential file",
    "unsupported_grant_type": "the server does not support this grant type",
    "invalid_request": "the request was malformed; check the credential file's fields",
    "access_denied": "the user or administrator denied access",
}


class TokenResponse(Value):
    """A successful token response (RFC 6749 §5.1). Secrets are kept out of ``repr``."""

    __slots__ = ("access_token", "expires_in", "token_type", "refresh_token", "scope", "id_token",
                 "raw")
    _hidden = frozenset({"access_token", "refresh_token", "id_token", "raw"})
    access_token: str | None
    expires_in: float | None
    token_type: str
    refresh_token: str | None
    scope: tuple[str, ...] | None
    id_token: str | None
    raw: Mapping[str, Any]

    def __init__(self, *, access_token: str | None, expires_in: float | None, token_type: str,
                 refresh_token: str | None, scope: tuple[str, ...] | None,
                 id_token: str | None, raw: Mapping[str, Any]):
        self._init(access_token=access_token, expires_in=expires_in, token_type=token_type,
                   refresh_token=refresh_token, scope=scope, id_token=id_token, raw=raw)

    def expiry(self, now: datetime) -> datetime | None:
        return None if self.expires_in is None else now + timedelta(seconds=self.expires_in)


#: Longest lifetime believed from a server (a year); more is clamped, so dates never overflow.
MAX_EXPIRES_IN = 365 * 24 * 3600.0


def seconds_value(value: object) -> float | None:
    """A server's ``expires_in``: a finite number (or numeric string) clamped to [0, a year]."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return MAX_EXPIRES_IN
    if number != number:  # NaN
        return None
    return min(max(number, 0.0), MAX_EXPIRES_IN)


def token_request(
    token_uri: str,
    params: Mapping[str, str],
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> HttpRequest:
    """Build the form-encoded POST to the token endpoint (RFC 6749 §4.1.3, §6)."""
    all_headers = {"Content-Type": FORM, "Accept": "application/json"}
    if headers:
        all_headers.update(headers)
    body = urlencode({k: v for k, v in params.items() if v is not None}).encode("ascii")
    return HttpRequest("POST", token_uri, all_headers, body, timeout)


def _retry_after(response: HttpResponse) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


def parse_error(response: HttpResponse, endpoint: str, *, what: str = "token") -> RefreshError:
    """Turn a non-2xx reply into a :class:`RefreshError` (RFC 6749 §5.2), redacting nothing
    sensitive because error bodies carry no secrets; the raw body is not copied into the text."""
    error = description = uri = None
    try:
        data = json_loads(response.body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        raw_error = data.get("error")
        if isinstance(raw_error, str):
            error = raw_error
            if isinstance(data.get("error_description"), str):
                description = data["error_description"]
            if isinstance(data.get("error_uri"), str):
                uri = data["error_uri"]
        elif isinstance(raw_error, dict):  # Google API style {"error": {"message", "status"}}
            error = str(raw_error.get("status") or raw_error.get("code") or "") or None
            if isinstance(raw_error.get("message"), str):
                description = raw_error["message"]
    status = response.status
    retryable = status in RETRYABLE_STATUS or (error in RETRYABLE_ERRORS)
    if error in _HINTS and not retryable:
        hint = _HINTS[error]
    elif retryable:
        hint = "the server reported a temporary failure; retries were exhausted"
    else:
        hint = "see the error description"
    # what the server said goes into the message cleaned: one line, no control characters
    text = f"{what} request to {endpoint} failed: HTTP {status}"
    if error:
        text += f", error {terminal_safe(error[:100])!r}"
    if description:
        text += f" ({terminal_safe(description[:300])})"
    text += f". Fix: {hint}."
    return RefreshError(
        text, error=error, error_description=description, error_uri=uri, status=status,
        endpoint=endpoint, retryable=retryable, retry_after=_retry_after(response))


def parse_token_response(
    response: HttpResponse, endpoint: str, *, require_access_token: bool = True
) -> TokenResponse:
    """Read a token endpoint reply; any failure is a :class:`RefreshError` naming ``endpoint``."""
    if not 200 <= response.status < 300:
        raise parse_error(response, endpoint)
    try:
        data = json_loads(response.body)
    except (ValueError, UnicodeDecodeError):
        raise RefreshError(
            f"token endpoint {endpoint} replied HTTP {response.status} with a body that is not "
            "JSON (truncated, or not a token endpoint). Fix: check the token_uri; retrying may "
            "help.",
            status=response.status, endpoint=endpoint, retryable=True) from None
    if not isinstance(data, dict):
        raise RefreshError(f"token endpoint {endpoint} replied with JSON that is not an object.",
                           status=response.status, endpoint=endpoint, retryable=True)
    access_token = data.get("access_token")
    id_token = data.get("id_token")
    if require_access_token and not isinstance(access_token, str):
        raise RefreshError(
            f"token endpoint {endpoint} replied without an access_token (fields: "
            f"{', '.join(sorted(map(str, data)))}). Fix: check the token_uri points at an "
            "OAuth 2.0 token endpoint.", status=response.status, endpoint=endpoint)
    if access_token is not None and not is_b64token(access_token):
        raise RefreshError(
            f"token endpoint {endpoint} sent an access_token that is not a valid bearer token "
            "(RFC 6750: letters, digits and -._~+/ only, at most 16 KiB; it was empty, too long, "
            "or held spaces, control or non-ASCII characters). It was not used. Fix: check the "
            "token_uri points at a real OAuth 2.0 token endpoint.",
            status=response.status, endpoint=endpoint)
    if id_token is not None and not is_b64token(id_token):
        raise RefreshError(
            f"token endpoint {endpoint} sent an id_token that is not a JWT (RFC 6750 token "
            "syntax). It was not used.", status=response.status, endpoint=endpoint)
    expires_in: float | None = None
    raw_expires = data.get("expires_in")
    if raw_expires is not None:
        expires_in = seconds_value(raw_expires)
        if expires_in is None:
            raise RefreshError(f"token endpoint {endpoint} sent an expires_in that is not a "
                               "number of seconds.", status=response.status, endpoint=endpoint)
    scope = data.get("scope")
    refresh_token = data.get("refresh_token")
    token_type = data.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() == "bearer":
        token_type = "Bearer"  # RFC 6749 §5.1: case-insensitive
    elif not is_token_type(token_type):
        raise RefreshError(
            f"token endpoint {endpoint} sent a token_type that is not an HTTP auth scheme. "
            "Fix: check the token_uri points at a real OAuth 2.0 token endpoint.",
            status=response.status, endpoint=endpoint)
    return TokenResponse(
        access_token=access_token if isinstance(access_token, str) else None,
        expires_in=expires_in,
        token_type=token_type,
        refresh_token=refresh_token if isinstance(refresh_token, str) else None,
        scope=tuple(scope.split()) if isinstance(scope, str) else None,
        id_token=id_token if isinstance(id_token, str) else None,
        raw=data,
    )


def token_exchange(
    token_uri: str,
    params: Mapping[str, str],
    *,
    headers: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    require_access_token: bool = True,
) -> Flow[TokenResponse]:
    """Flow: POST ``params`` to ``token_uri`` and parse the reply, retrying transient failures."""
    request = token_request(token_uri, params, headers=headers, timeout=timeout)

    def attempt() -> Flow[TokenResponse]:
        response = yield request
        assert response is not None
        return parse_token_response(
            response, request.endpoint, require_access_token=require_access_token)

    return with_retries(attempt, retry)


def scopes_param(scopes: Sequence[str] | None) -> str | None:
    return " ".join(scopes) if scopes else None


# -- authorization endpoint (RFC 6749 §3.1, §4.1.1, §4.1.2) ----------------------------------
# The front-channel half of the authorization-code grant, as pure functions: build the URL the
# user's browser is sent to, read the redirect that comes back, and say what its error means.
# The installed-app flow (gcauth.flow) orchestrates them; nothing here opens a socket. Kept in
# its own section, apart from the token-endpoint code above.
from urllib.parse import parse_qsl, urlsplit, urlunsplit  # noqa: E402

from ..exceptions import FlowError  # noqa: E402

__all__ += [
    "RESERVED_AUTHORIZATION_PARAMS",
    "authorization_code_from",
    "authorization_code_params",
    "authorization_error",
    "authorization_params",
    "authorization_url",
    "new_state",
    "parse_redirect",
]

#: Parameters of the authorization request (§4.1.1, RFC 7636 §4.3) a client sets itself and
#: never takes from its caller: they carry the flow's security.
RESERVED_AUTHORIZATION_PARAMS = frozenset({
    "client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge",
    "code_challenge_method"})
#: Most parameters a redirect may carry before it is refused (a bound on parsing work).
MAX_REDIRECT_PARAMS = 50
_COPY_ADDRESS = "Fix: copy the whole address of the page you were sent to."


def new_state() -> str:
    """A fresh ``state``: 256 bits from the CSPRNG, URL-safe (§10.10: "the probability of an
    attacker guessing generated tokens ... MUST be less than or equal to 2^(-128)"; §10.12:
    the value binds the redirect to this user agent's request)."""
    import secrets

    return secrets.token_urlsafe(32)


def authorization_params(*, client_id: str, redirect_uri: str, scopes: Sequence[str],
                         state: str) -> dict[str, str]:
    """The query parameters of an authorization request (§4.1.1): ``response_type=code``,
    ``client_id``, ``redirect_uri``, ``scope`` (space-delimited, §3.3) and ``state``."""
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
    }


def authorization_url(auth_uri: str, params: Mapping[str, str]) -> str:
    """``auth_uri`` with ``params`` added, form-encoded (§4.1.1, Appendix B).

    §3.1: the endpoint URI "MAY include an application/x-www-form-urlencoded formatted ...
    query component, which MUST be retained when adding additional query parameters" and
    "MUST NOT include a fragment component" (a fragment is dropped).
    """
    parts = urlsplit(auth_uri)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def parse_redirect(response: str) -> dict[str, str]:
    """The parameters of an authorization response (§4.1.2): a full redirect URL, ``?query``
    or a bare query string (a URL without a query is read from its fragment).

    §3.1: "Request and response parameters MUST NOT be included more than once", so a
    repeated parameter makes the response invalid. Anything that cannot be parsed is a
    :class:`FlowError` with ``error="invalid_request"``.
    """
    text = response.strip()
    if text.lower().startswith(("http://", "https://")):
        try:
            parts = urlsplit(text)
        except ValueError:
            raise FlowError(f"the redirect address is malformed. {_COPY_ADDRESS}",
                            error="invalid_request") from None
        query = parts.query or parts.fragment
    else:
        query = text.lstrip("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query),
                          max_num_fields=MAX_REDIRECT_PARAMS)
    except ValueError:
        raise FlowError(f"the redirect address is malformed. {_COPY_ADDRESS}",
                        error="invalid_request") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise FlowError(f"the redirect repeats the parameter {key!r} (RFC 6749 §3.1).",
                            error="invalid_request")
        params[key] = value
    return params


def _printable(text: str, limit: int) -> str:
    return "".join(c for c in text if c.isprintable())[:limit]


def authorization_error(error: str, description: str | None) -> FlowError:
    """An error response (§4.1.2.1) as a :class:`FlowError` whose ``error`` is the code and
    whose message says what it means and how to fix it. The server's text is shown with
    non-printable characters removed and its length bounded."""
    if error == "access_denied":
        text = ("access was denied: the sign-in was cancelled or the account refused the "
                "requested access. Fix: run the login again and choose Allow.")
    elif error == "invalid_scope":
        text = "the requested scopes are not allowed for this client. Fix: check --scopes."
    elif error in ("unauthorized_client", "invalid_client"):
        text = ("the OAuth client is not allowed to use this flow. Fix: use an OAuth client "
                "of type 'Desktop app'.")
    elif error in ("server_error", "temporarily_unavailable"):
        text = "the authorization server failed. Fix: try again in a minute."
    else:
        text = "the authorization server refused the request."
    safe = _printable(error, 60)
    detail = f" ({_printable(description, 200)})" if description else ""
    return FlowError(f"sign-in failed with error {safe!r}{detail}: {text}", error=safe)


def authorization_code_from(params: Mapping[str, str], expected_state: str) -> str:
    """The ``code`` of an authorization response, after the checks a client must make.

    In this order: ``state`` must equal ``expected_state`` (§4.1.2, §10.12; compared in
    constant time), else ``error="state_mismatch"``; an ``error`` parameter (§4.1.2.1) raises
    :func:`authorization_error`; a response without a ``code`` is ``error="invalid_request"``.
    The state is checked first so that a forged error response is refused like a forged code.
    """
    import hmac

    state = params.get("state")
    if state is None or not hmac.compare_digest(state.encode(), expected_state.encode()):
        raise FlowError(
            "the redirect's state does not match this login (a stale or forged link). "
            "Fix: use the address from the sign-in you just started, or start again.",
            error="state_mismatch")
    error = params.get("error")
    if error is not None:
        raise authorization_error(error, params.get("error_description"))
    code = params.get("code")
    if not code:
        raise FlowError(f"the redirect carries no authorization code. {_COPY_ADDRESS}",
                        error="invalid_request")
    return code


def authorization_code_params(
    code: str,
    *,
    redirect_uri: str,
    client_id: str,
    client_secret: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The token request of the authorization-code grant (§4.1.3): ``grant_type``,
    ``code``, the ``redirect_uri`` of the authorization request, ``client_id``, then ``extra``
    (the PKCE ``code_verifier``, RFC 7636 §4.5) and the client secret when the client has one
    (§2.3.1 allows it in the body)."""
    params = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
              "client_id": client_id}
    if extra:
        params.update(extra)
    if client_secret:
        params["client_secret"] = client_secret
    return params
