"""OAuth 2.0 grants for callers that drive them themselves (AIP-4113's sample reads the same)::

    from gcauth.oauth2 import refresh_grant
    from gcauth.transport.urllib3 import Request
    access_token, refresh_token, expiry, extra = refresh_grant(
        Request(urllib3.PoolManager()), token_uri, refresh_token, client_id, client_secret, scopes)

Also :func:`jwt_grant` (RFC 7523), :func:`id_token_jwt_grant`, :func:`decode_id_token` and
:func:`verify_id_token`. ``from gcauth.oauth2 import service_account`` works like
``google.oauth2``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .._http import run_sync
from .._protocol import jwt as _jwt
from .._protocol.rfc6749 import TokenResponse, token_exchange
from .._protocol.rfc7523 import JWT_BEARER_GRANT
from ..exceptions import GCAuthError, RefreshError
from ..tokens import utcnow

__all__ = [
    "decode_id_token",
    "id_token_jwt_grant",
    "jwt_grant",
    "refresh_grant",
    "verify_id_token",
]


def _send(request: Any, token_uri: str, params: Mapping[str, str],
          require_access_token: bool = True) -> tuple[TokenResponse, datetime]:
    from .._sender import resolve_request

    now = utcnow()
    reply = run_sync(token_exchange(token_uri, params, require_access_token=require_access_token),
                     resolve_request(request).send)
    return reply, now


def refresh_grant(
    request: Any,
    token_uri: str,
    refresh_token: str,
    client_id: str,
    client_secret: str,
    scopes: Sequence[str] | None = None,
    rapt_token: str | None = None,
) -> tuple[str, str, datetime | None, Mapping[str, Any]]:
    """RFC 6749 §6: ``(access_token, refresh_token, expiry, raw_response)``.

    The refresh token returned is the server's new one if it rotated it, else the one given.
    """
    params = {"grant_type": "refresh_token", "refresh_token": refresh_token,
              "client_id": client_id, "client_secret": client_secret}
    if scopes:
        params["scope"] = " ".join(scopes)
    if rapt_token:
        params["rapt"] = rapt_token
    reply, now = _send(request, token_uri, params)
    assert reply.access_token is not None
    return (reply.access_token, reply.refresh_token or refresh_token, reply.expiry(now),
            reply.raw)


def jwt_grant(request: Any, token_uri: str, assertion: str,
              ) -> tuple[str, datetime | None, Mapping[str, Any]]:
    """RFC 7523 §2.1: exchange a signed assertion; ``(access_token, expiry, raw_response)``."""
    reply, now = _send(request, token_uri, {"grant_type": JWT_BEARER_GRANT,
                                            "assertion": assertion})
    assert reply.access_token is not None
    return reply.access_token, reply.expiry(now), reply.raw


def id_token_jwt_grant(request: Any, token_uri: str, assertion: str,
                       ) -> tuple[str, datetime | None, Mapping[str, Any]]:
    """Exchange an assertion with a ``target_audience`` claim for a Google-signed ID token."""
    reply, _ = _send(request, token_uri, {"grant_type": JWT_BEARER_GRANT, "assertion": assertion},
                     require_access_token=False)
    if not reply.id_token:
        raise RefreshError(f"{token_uri} replied without an id_token.", endpoint=token_uri)
    payload = decode_id_token(reply.id_token)
    exp = payload.get("exp")
    from datetime import timezone

    expiry = datetime.fromtimestamp(exp, timezone.utc) if isinstance(exp, (int, float)) else None
    return reply.id_token, expiry, reply.raw


def decode_id_token(id_token: str) -> dict[str, Any]:
    """The claims of an ID token, *without* verifying its signature."""
    try:
        return _jwt.decode(id_token)[1]
    except GCAuthError as exc:
        raise GCAuthError(f"not a valid ID token: {exc}") from None


def verify_id_token(id_token: str, certs: Mapping[str, str], audience: str | None = None,
                    now: datetime | None = None, clock_skew: int = 10) -> dict[str, Any]:
    """Verify an RS256 ID token against PEM certs keyed by ``kid``; check ``aud`` and ``exp``."""
    header, payload, _, _ = _jwt.decode(id_token)
    kid = header.get("kid")
    pem = certs.get(kid) if isinstance(kid, str) else None
    if pem is None:
        raise GCAuthError(f"ID token key id {kid!r} is not among the certificates given")
    claims = _jwt.verify_rs256(id_token, _jwt.load_public_key(pem))
    ts = (now or utcnow()).timestamp()
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or ts > exp + clock_skew:
        raise GCAuthError("ID token has expired")
    if audience is not None and claims.get("aud") != audience:
        raise GCAuthError("ID token audience does not match")
    return claims
