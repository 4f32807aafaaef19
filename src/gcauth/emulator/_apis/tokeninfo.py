"""Token introspection and revocation (``/tokeninfo``, ``/revoke``), the certificates that
verify the emulator's signatures, and the OpenID Connect discovery document."""

from __future__ import annotations

from .._errors import GoogleError, OAuthError
from .._jwt import JWTError, decode_unverified, verify_signature
from .._routing import Call
from .._state import GOOGLE_ISSUER, USERINFO_EMAIL, ServiceAccount
from .._wire import BadParams, Reply, form_pairs, json_reply, parse_params
from ._oauth import DEVICE_CODE_GRANT, JWT_BEARER

__all__ = ["certs_jwks", "certs_pem", "openid_configuration", "revoke", "robot_certs",
           "robot_jwks", "tokeninfo"]


def _cache(call: Call) -> list[tuple[str, str]]:
    """Google's caching headers on certificate documents (``config.certs_max_age``)."""
    return [("Cache-Control", f"public, max-age={int(call.config.certs_max_age)}, "
                              "must-revalidate, no-transform")]


def _params(call: Call, *, body: bool) -> dict[str, str]:
    """Query parameters plus (when ``body``) the urlencoded body; ``invalid_request`` for a
    repeated parameter or a non-UTF-8 body."""
    pairs = list(call.req.query)
    try:
        if body:
            pairs += form_pairs(call.req.body)
        return parse_params(pairs)
    except BadParams as exc:
        raise OAuthError(400, "invalid_request", str(exc)) from exc


def tokeninfo(call: Call) -> Reply:
    """``GET|POST /tokeninfo``: describe a live access token or a valid ID token."""
    req, state = call.req, call.state
    params = _params(call, body=req.method == "POST" and req.is_form())
    invalid = OAuthError(400, "invalid_token", "Invalid Value")
    if "access_token" in params:
        rec = state.live_access_token(params["access_token"], call.now)
        if rec is None:
            raise invalid
        info: dict[str, str] = {"azp": rec.azp, "aud": rec.azp}
        if rec.sub is not None and rec.source != "service_account":
            info["sub"] = rec.sub
        info["scope"] = " ".join(rec.scopes)
        info["exp"] = str(int(rec.expiry))
        info["expires_in"] = str(max(0, int(rec.expiry - call.now)))
        if rec.email is not None and USERINFO_EMAIL in rec.scopes:
            info["email"] = rec.email
            info["email_verified"] = "true"
        info["access_type"] = rec.access_type
        return json_reply(200, info)
    if "id_token" in params:
        try:
            parsed = decode_unverified(params["id_token"])
        except JWTError as exc:
            raise invalid from exc
        key = state.signing_key
        exp = parsed.claims.get("exp")
        if (parsed.header.get("kid") != key.kid or not verify_signature(parsed, key.public_key)
                or isinstance(exp, bool) or not isinstance(exp, (int, float))
                or exp <= call.now):
            raise invalid
        out = {k: (str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, int)
                   else v) for k, v in parsed.claims.items()}
        out.update({"alg": "RS256", "kid": key.kid, "typ": "JWT"})
        return json_reply(200, out)
    raise OAuthError(400, "invalid_request",
                     "Either access_token, id_token, or token_handle required")


def revoke(call: Call) -> Reply:
    """``POST /revoke``: revoke an access or refresh token (and its grant)."""
    req = call.req
    has_body = req.method == "POST" and bool(req.body)
    if has_body and not req.is_form():
        raise OAuthError(400, "invalid_request", "Invalid content type.")
    params = _params(call, body=has_body)
    value = params.get("token")
    if not value:
        raise OAuthError(400, "invalid_request", "Missing required parameter: token")
    if not call.state.revoke(value, call.now):
        raise OAuthError(400, "invalid_token", "Token expired or revoked")
    return json_reply(200, {})


def certs_jwks(call: Call) -> Reply:
    """``/oauth2/v3/certs``: the ID-token signing key as a JWKS."""
    return json_reply(200, {"keys": [call.state.signing_key.jwk()]}, _cache(call))


def certs_pem(call: Call) -> Reply:
    """``/oauth2/v1/certs``: ``{kid: PEM certificate}`` of the ID-token signing key."""
    key = call.state.signing_key
    return json_reply(200, {key.kid: key.certificate_pem}, _cache(call))


def _robot(call: Call) -> ServiceAccount:
    email = call.args["email"]
    sa = call.state.account(email)
    if sa is None:
        raise GoogleError(404, f"Unknown service account {email!r}.")
    return sa


def robot_certs(call: Call) -> Reply:
    """``/robot/v1/metadata/x509/{email}``: a service account's key certificates (its
    uploaded keys and, once IAM signed with it, its Google-managed key)."""
    sa = _robot(call)
    return json_reply(200, {k.kid: k.certificate_pem for k in sa.keys.values()}, _cache(call))


def robot_jwks(call: Call) -> Reply:
    """``/robot/v1/metadata/jwk/{email}``: the same keys as a JWK Set."""
    sa = _robot(call)
    return json_reply(200, {"keys": [k.jwk() for k in sa.keys.values()]}, _cache(call))


def openid_configuration(call: Call) -> Reply:
    """``/.well-known/openid-configuration``: a minimal discovery document."""
    url = call.config.url
    return json_reply(200, {
        "issuer": GOOGLE_ISSUER,
        "authorization_endpoint": url + "/o/oauth2/auth",
        "device_authorization_endpoint": url + "/device/code",
        "token_endpoint": url + "/token",
        "revocation_endpoint": url + "/revoke",
        "jwks_uri": url + "/oauth2/v3/certs",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT,
                                  JWT_BEARER],
    })
