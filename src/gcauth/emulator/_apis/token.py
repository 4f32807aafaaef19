"""``POST /token``: the OAuth 2.0 token endpoint and its four grant types (JWT bearer,
refresh token, authorization code with PKCE, device code)."""

from __future__ import annotations

import hashlib
import hmac
import re

from .._errors import OAuthError
from .._jwt import (
    JWTError,
    JWTTimeError,
    b64url_encode,
    check_times,
    decode_unverified,
    verify_any,
)
from .._routing import Call
from .._state import GOOGLE_TOKEN_URI, is_valid_scope, normalize_scopes
from .._wire import Reply, json_reply
from ._oauth import (
    DEVICE_CODE_GRANT,
    JWT_BEARER,
    NO_STORE,
    authenticate_client,
    read_form,
    user_sub,
    user_tokens,
)

__all__ = ["PKCE_RE", "pkce_ok", "token"]

#: Token URIs Google accepts as a JWT-bearer ``aud`` (current and legacy).
GOOGLE_TOKEN_AUDIENCES = frozenset(
    {
        GOOGLE_TOKEN_URI,
        "https://accounts.google.com/o/oauth2/token",
        "https://www.googleapis.com/oauth2/v4/token",
    }
)
TIMEFRAME = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)
DWD_DENIED = (
    "Client is unauthorized to retrieve access tokens using this method, or client not "
    "authorized for any of the scopes requested."
)
PKCE_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def pkce_ok(verifier: str, challenge: str, method: str) -> bool:
    """RFC 7636 §4.6: does ``verifier`` match ``challenge``?"""
    if not PKCE_RE.fullmatch(verifier):
        return False
    if method == "S256":
        expected = b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())
    else:
        expected = verifier
    return hmac.compare_digest(expected, challenge)


def token(call: Call) -> Reply:
    """``POST /token``: dispatch on ``grant_type``."""
    params = read_form(call)
    grant_type = params.get("grant_type", "")
    if grant_type == JWT_BEARER:
        return _jwt_bearer(call, params)
    if grant_type == "refresh_token":
        return _refresh(call, params)
    if grant_type == "authorization_code":
        return _auth_code(call, params)
    if grant_type == DEVICE_CODE_GRANT:
        return _device_code(call, params)
    raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


def _jwt_bearer(call: Call, params: dict[str, str]) -> Reply:
    """RFC 7523 JWT bearer grant for service accounts (access or ID token)."""
    state = call.state
    assertion = params.get("assertion")
    if not assertion:
        raise OAuthError(400, "invalid_request", "Missing required parameter: assertion")
    try:
        parsed = decode_unverified(assertion)
    except JWTError as exc:
        raise _invalid_grant("Invalid JWT: the assertion is not a compact signed JWT.") from exc
    claims = parsed.claims
    iss = claims.get("iss")
    sa = state.service_accounts.get(iss) if isinstance(iss, str) else None
    if sa is None:
        raise _invalid_grant("Invalid grant: account not found")
    kid = parsed.header.get("kid")
    if kid is None:
        candidates = list(sa.keys.values())
    else:
        key = sa.keys.get(kid) if isinstance(kid, str) else None
        candidates = [key] if key is not None else []
    if not verify_any(parsed, candidates):
        raise _invalid_grant("Invalid JWT Signature.")
    aud = claims.get("aud")
    if aud not in GOOGLE_TOKEN_AUDIENCES and aud != call.config.token_uri:
        raise _invalid_grant(
            f'Invalid JWT: Failed audience check. The "aud" claim must be {GOOGLE_TOKEN_URI} '
            f"(or this emulator's token URI), was: {aud!r}.")
    try:
        check_times(claims, call.now)
    except JWTTimeError as exc:
        raise _invalid_grant(f"Invalid JWT: {exc.detail}" if exc.missing
                             else f"{TIMEFRAME} ({exc.detail})") from exc

    target_audience = claims.get("target_audience")
    if target_audience is not None:
        if not isinstance(target_audience, str) or not target_audience:
            raise OAuthError(400, "invalid_request",
                             'Invalid JWT: "target_audience" must be a non-empty string.')
        id_token = state.id_token(now=call.now, aud=target_audience, azp=sa.unique_id,
                                  sub=sa.unique_id, email=sa.email, expired=call.expired)
        state.count("token_issued")
        return json_reply(200, {"id_token": id_token}, NO_STORE)

    sub = claims.get("sub")
    delegated: str | None = None
    if sub is not None and sub != sa.email:
        if not sa.domain_wide_delegation:
            raise OAuthError(401, "unauthorized_client", DWD_DENIED)
        if not isinstance(sub, str) or "@" not in sub:
            raise _invalid_grant("Invalid email or User ID")
        delegated = sub
    scope = claims.get("scope")
    if not isinstance(scope, str) or not scope.split():
        raise OAuthError(400, "invalid_scope", "Empty or missing scope not allowed.")
    requested = scope.split()
    if not all(is_valid_scope(s) for s in requested):
        raise OAuthError(400, "invalid_scope",
                         "Invalid OAuth scope or ID token audience provided.")
    access, expires_in = state.new_access_token(
        now=call.now,
        scopes=tuple(normalize_scopes(requested)),
        azp=sa.unique_id,
        email=delegated or sa.email,
        sub=user_sub(delegated) if delegated else sa.unique_id,
        source="delegated" if delegated else "service_account",
        expired=call.expired,
    )
    state.count("token_issued")
    return json_reply(
        200, {"access_token": access, "expires_in": expires_in, "token_type": "Bearer"},
        NO_STORE)


def _refresh(call: Call, params: dict[str, str]) -> Reply:
    client = authenticate_client(call, params)
    value = params.get("refresh_token")
    if not value:
        raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token")
    rt = call.state.refresh_tokens.get(value)
    # an external_account_authorized_user grant is redeemed at the STS, not here
    if (rt is None or rt.revoked or rt.client_id != client.client_id
            or rt.audience is not None):
        raise _invalid_grant("Token has been expired or revoked.")
    scopes = rt.scopes
    if params.get("scope"):
        requested = tuple(normalize_scopes(params["scope"].split()))
        extra = [s for s in requested if s not in rt.scopes]
        if extra:
            raise OAuthError(
                400, "invalid_scope",
                f"Some requested scopes were not granted by the user: {' '.join(extra)}")
        scopes = requested
    out = user_tokens(call, client, rt.account, scopes, value, include_refresh=False)
    return json_reply(200, out, NO_STORE)


def _auth_code(call: Call, params: dict[str, str]) -> Reply:
    state = call.state
    client = authenticate_client(call, params)
    code = params.get("code")
    if not code:
        raise OAuthError(400, "invalid_request", "Missing required parameter: code")
    rec = state.codes.get(code)
    if rec is None:
        raise _invalid_grant("Malformed auth code.")
    if rec.used:
        # RFC 6749 §4.1.2: a replayed code revokes what it produced.
        if rec.refresh_token is not None:
            state.revoke(rec.refresh_token, call.now)
        raise _invalid_grant("Code was already redeemed.")
    if rec.client_id != client.client_id:
        raise _invalid_grant("Malformed auth code.")
    rec.used = True  # any attempt by the right client burns the code
    if call.now >= rec.expiry:
        raise _invalid_grant("Token has been expired or revoked.")
    if params.get("redirect_uri") != rec.redirect_uri:
        raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
    verifier = params.get("code_verifier")
    if not verifier:
        raise _invalid_grant("Missing code verifier.")
    if not pkce_ok(verifier, rec.code_challenge, rec.code_challenge_method):
        raise _invalid_grant("Invalid code verifier.")
    refresh_value = state.new_refresh_token(client.client_id, rec.account, rec.scopes)
    rec.refresh_token = refresh_value
    include = rec.access_type == "offline" or client.kind == "installed"
    out = user_tokens(call, client, rec.account, rec.scopes, refresh_value,
                      include_refresh=include, nonce=rec.nonce)
    return json_reply(200, out, NO_STORE)


def _device_code(call: Call, params: dict[str, str]) -> Reply:
    """RFC 8628 §3.4 polling."""
    state = call.state
    client = authenticate_client(call, params)
    value = params.get("device_code")
    if not value:
        raise OAuthError(400, "invalid_request", "Missing required parameter: device_code")
    grant = state.devices.get(value)
    if grant is None or grant.client_id != client.client_id or grant.status == "done":
        raise _invalid_grant("Bad Request")
    if call.now >= grant.expiry:
        raise OAuthError(400, "expired_token", "Bad Request")
    if grant.status == "denied":
        raise OAuthError(403, "access_denied", "Forbidden")
    mono = state.clock.monotonic()
    last, grant.last_poll = grant.last_poll, mono
    if grant.status == "pending":
        if last is not None and mono - last < grant.interval * 0.8:
            raise OAuthError(403, "slow_down", "Forbidden")
        raise OAuthError(428, "authorization_pending", "Precondition Required")
    assert grant.account is not None
    grant.status = "done"
    refresh_value = state.new_refresh_token(client.client_id, grant.account, grant.scopes)
    out = user_tokens(call, client, grant.account, grant.scopes, refresh_value,
                      include_refresh=True)
    return json_reply(200, out, NO_STORE)
