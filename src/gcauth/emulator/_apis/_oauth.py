"""Shared by the OAuth 2.0 server modules: form parsing, client authentication and
minting a user's tokens."""

from __future__ import annotations

import base64
import hmac
from typing import Any
from urllib.parse import unquote_plus

from .._errors import OAuthError
from .._jwt import at_hash
from .._routing import Call
from .._state import USERINFO_EMAIL, OAuthClient, numeric_id
from .._wire import BadParams, form_pairs, parse_params

__all__ = [
    "DEVICE_CODE_GRANT",
    "JWT_BEARER",
    "NO_STORE",
    "authenticate_client",
    "read_form",
    "user_sub",
    "user_tokens",
]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
NO_CLIENT_ID = "Could not determine client ID from request."
NO_STORE = [("Cache-Control", "no-store")]


def user_sub(account: str) -> str:
    """A stable Google-like subject id for a test user."""
    return numeric_id("user:" + account.lower())


def read_form(call: Call) -> dict[str, str]:
    """The urlencoded body as a dict; ``invalid_request`` for another content type, a
    repeated parameter or a non-UTF-8 body."""
    if not call.req.is_form():
        raise OAuthError(400, "invalid_request",
                         "Invalid content type; expected application/x-www-form-urlencoded.")
    try:
        return parse_params(form_pairs(call.req.body))
    except BadParams as exc:
        raise OAuthError(400, "invalid_request", str(exc)) from exc


def authenticate_client(call: Call, params: dict[str, str], *,
                        secret_required: bool = True) -> OAuthClient:
    """The client named by HTTP Basic (RFC 6749 §2.3.1) or the body, not both.

    Unknown client → 401 ``invalid_client`` "The OAuth client was not found."; a wrong
    secret (or a missing one when ``secret_required``) → 401 ``invalid_client``
    "Unauthorized", with a ``WWW-Authenticate: Basic`` challenge when Basic was used.
    """
    auth = call.req.header("authorization") or ""
    basic = auth[:6].lower() == "basic "
    if basic:
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            raw_id, raw_secret = decoded.split(":", 1)
        except (ValueError, UnicodeDecodeError) as exc:
            raise OAuthError(400, "invalid_request", "Malformed HTTP Basic credentials.") from exc
        cid: str | None = unquote_plus(raw_id)
        secret: str | None = unquote_plus(raw_secret)
        if "client_secret" in params or params.get("client_id", cid) != cid:
            raise OAuthError(400, "invalid_request",
                             "Client authentication must use only one method.")
    else:
        cid, secret = params.get("client_id"), params.get("client_secret")
    challenge = [("WWW-Authenticate", 'Basic realm="gcauth-emulator"')] if basic else []
    if not cid:
        raise OAuthError(400, "invalid_request", NO_CLIENT_ID)
    client = call.state.clients.get(cid)
    if client is None:
        raise OAuthError(401, "invalid_client", "The OAuth client was not found.", challenge)
    if secret is None and not secret_required:
        return client
    if secret is None or not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
        raise OAuthError(401, "invalid_client", "Unauthorized", challenge)
    return client


def user_tokens(call: Call, client: OAuthClient, account: str, scopes: tuple[str, ...],
                refresh_value: str, *, include_refresh: bool,
                nonce: str | None = None) -> dict[str, Any]:
    """Mint an access token (and an ID token when ``openid`` is granted) for a user grant;
    counts ``token_issued``."""
    state = call.state
    access, expires_in = state.new_access_token(
        now=call.now, scopes=scopes, azp=client.client_id, email=account,
        sub=user_sub(account), source="user", refresh_token=refresh_value,
        access_type="offline", expired=call.expired,
    )
    out: dict[str, Any] = {
        "access_token": access,
        "expires_in": expires_in,
        "scope": " ".join(scopes),
        "token_type": "Bearer",
    }
    if "openid" in scopes:
        extra: dict[str, object] = {"at_hash": at_hash(access)}
        if nonce is not None:
            extra["nonce"] = nonce
        email = account if USERINFO_EMAIL in scopes else None
        out["id_token"] = state.id_token(
            now=call.now, aud=client.client_id, azp=client.client_id, sub=user_sub(account),
            email=email, extra=extra, expired=call.expired,
        )
    if include_refresh:
        out["refresh_token"] = refresh_value
    state.count("token_issued")
    return out
