"""OAuth 2.0 Token Revocation (RFC 7009) as a sans-IO flow.

Google's endpoint (``https://oauth2.googleapis.com/revoke``) takes the token in a form body
(RFC 7009 §2.1) and revokes the whole grant: revoking a refresh token also invalidates the
access tokens issued from it.
"""

from __future__ import annotations

from .._http import DEFAULT_TIMEOUT, Flow
from .._retry import RetryPolicy, with_retries
from .rfc6749 import parse_error, token_request

__all__ = ["GOOGLE_REVOKE_URI", "revoke_flow"]

GOOGLE_REVOKE_URI = "https://oauth2.googleapis.com/revoke"


def revoke_flow(
    revoke_uri: str,
    token: str,
    *,
    token_type_hint: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Flow[bool]:
    """Flow: revoke ``token`` (RFC 7009 §2.1).

    Returns ``True`` when the server revoked it and ``False`` when the server says the token
    was already invalid (``invalid_token``/``invalid_grant``: the goal is reached either way).
    Any other refusal raises :class:`~gcauth.exceptions.RefreshError`.
    """
    params = {"token": token}
    if token_type_hint:
        params["token_type_hint"] = token_type_hint
    request = token_request(revoke_uri, params, timeout=timeout)

    def attempt() -> Flow[bool]:
        response = yield request
        assert response is not None
        if 200 <= response.status < 300:
            return True
        error = parse_error(response, request.endpoint, what="revocation")
        if error.error in ("invalid_token", "invalid_grant"):
            return False
        raise error

    return with_retries(attempt, retry)
