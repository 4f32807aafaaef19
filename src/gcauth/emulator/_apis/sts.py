"""Google's Security Token Service (``sts.googleapis.com``): ``POST /v1/token`` (RFC 8693
token exchange for workload identity / workforce pools), ``POST /v1/oauthtoken`` (the
refresh grant of ``external_account_authorized_user`` files), ``POST /v1/introspect``
(RFC 7662) and ``POST /v1/revoke`` (RFC 7009).

Errors use the RFC 6749 body ``{"error", "error_description"}`` as Google's STS does.
The exchange really validates the subject token (see docs/emulator.md, "STS"); the access
token it issues is an ordinary emulator access token whose record names the federated
principal (``principal://iam.googleapis.com/.../subject/SUB``), so the sample API,
tokeninfo and (with the Workload Identity User role) the IAM Credentials API accept it.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives.asymmetric import rsa

from .._cel import CelError, evaluate
from .._errors import OAuthError
from .._jwt import JWTError, b64url_decode, decode_unverified, verify_signature
from .._routing import Call
from .._state import (
    AWS4_TOKEN_TYPE,
    ID_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    SAML2_TOKEN_TYPE,
    IdentityPool,
    OAuthClient,
    is_valid_scope,
    normalize_scopes,
)
from .._wire import Reply, json_reply
from . import aws
from ._oauth import NO_STORE, authenticate_client, read_form
from .oidc import MAX_OIDC_LIFETIME

__all__ = ["AUDIENCE_RE", "exchange", "introspect", "oauthtoken", "revoke"]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TOKEN_TYPES = (JWT_TOKEN_TYPE, ID_TOKEN_TYPE, SAML2_TOKEN_TYPE, AWS4_TOKEN_TYPE)
#: The lifetime of an STS access token (Google's: one hour; also capped by the
#: emulator's ``token_lifetime``).
STS_TOKEN_LIFETIME = 3600
#: Google's limit on the mapped ``google.subject``.
MAX_SUBJECT_BYTES = 127
_ID = r"[a-z0-9][a-z0-9-]{2,62}"
AUDIENCE_RE = re.compile(
    rf"//iam\.googleapis\.com/(?:projects/[0-9]+/locations/global/workloadIdentityPools/{_ID}"
    rf"|locations/global/workforcePools/{_ID})/providers/{_ID}")
BAD_AUDIENCE = (
    'Invalid value for "audience". This value should be the full resource name of the '
    "Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/"
    "token for the list of possible formats.")
BAD_TARGET = (
    'The target service indicated by the "audience" parameters is invalid. This might either '
    "be because the pool or provider is disabled or deleted or because it doesn't exist.")
REJECTED = "The given credential is rejected by the attribute condition."


def _invalid_request(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


def _client(call: Call, params: dict[str, str]) -> OAuthClient | None:
    """The OAuth client of HTTP Basic (or body) client authentication, if any was sent."""
    auth = call.req.header("authorization") or ""
    if auth[:6].lower() != "basic " and "client_id" not in params:
        return None
    return authenticate_client(call, params)


def _options(params: dict[str, str]) -> dict[str, Any]:
    """``options``: a JSON object, URL-encoded (google-auth quotes it once more than the
    form encoding; both forms are accepted)."""
    raw = params.get("options")
    if raw is None or raw == "":
        return {}
    for text in (raw, unquote(raw)):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
        break
    raise _invalid_request('Invalid value for "options": a URL-encoded JSON object expected.')


# ---------------------------------------------------------------------------- token exchange
def exchange(call: Call) -> Reply:
    """``POST /v1/token``: exchange an external credential for a Google access token."""
    params = read_form(call)
    grant_type = params.get("grant_type", "")
    if grant_type != TOKEN_EXCHANGE:
        raise OAuthError(400, "unsupported_grant_type",
                         f"Invalid value for \"grant_type\": {grant_type!r}; expected "
                         f"{TOKEN_EXCHANGE}.")
    requested = params.get("requested_token_type")
    if requested != ACCESS_TOKEN_TYPE:
        raise _invalid_request(f'Invalid value for "requested_token_type": expected '
                               f"{ACCESS_TOKEN_TYPE}.")
    token_type = params.get("subject_token_type", "")
    if token_type not in SUBJECT_TOKEN_TYPES:
        raise _invalid_request('Invalid value for "subject_token_type": expected one of '
                               + ", ".join(SUBJECT_TOKEN_TYPES) + ".")
    subject_token = params.get("subject_token")
    if not subject_token:
        raise _invalid_request("Missing required parameter: subject_token")
    audience = params.get("audience", "")
    if not AUDIENCE_RE.fullmatch(audience):
        raise _invalid_request(BAD_AUDIENCE)
    pool = call.state.pools.get(audience)
    if pool is None:
        raise OAuthError(400, "invalid_target", BAD_TARGET)
    scope = params.get("scope", "").split()
    if not scope:
        raise _invalid_request("Missing required parameter: scope (space-separated OAuth "
                               "scopes, required when exchanging an external credential).")
    if not all(is_valid_scope(s) for s in scope):
        raise OAuthError(400, "invalid_scope", "Invalid OAuth scope provided.")
    client = _client(call, params)
    options = _options(params)

    if token_type == AWS4_TOKEN_TYPE:
        if pool.kind != "aws":
            raise _wrong_type(pool, token_type)
        assertion = aws.verify_subject_token(call, pool, subject_token, audience)
    elif token_type == SAML2_TOKEN_TYPE or pool.kind != "oidc":
        raise _wrong_type(pool, token_type)
    else:
        assertion = _verify_oidc(call, pool, subject_token)

    subject, attributes = _map(pool, assertion)
    if pool.condition is not None:
        env = {"assertion": assertion, "attribute": attributes,
               "google": {"subject": subject}}
        try:
            allowed = evaluate(pool.condition, env) is True
        except CelError:
            allowed = False
        if not allowed:
            raise OAuthError(400, "unauthorized_client", REJECTED)
    if pool.workforce:
        _check_user_project(call, pool, options, client)

    principal = pool.principal(subject)
    token, expires_in = call.state.new_access_token(
        now=call.now, scopes=tuple(normalize_scopes(scope)), azp=pool.name, email=None,
        sub=subject, source="federated", expired=call.expired, lifetime=STS_TOKEN_LIFETIME,
        principal=principal)
    call.state.count("sts_issued")
    return json_reply(200, {"access_token": token, "issued_token_type": ACCESS_TOKEN_TYPE,
                            "token_type": "Bearer", "expires_in": expires_in}, NO_STORE)


def _wrong_type(pool: IdentityPool, token_type: str) -> OAuthError:
    accepted = {"oidc": f"{JWT_TOKEN_TYPE} or {ID_TOKEN_TYPE}",
                "aws": AWS4_TOKEN_TYPE}[pool.kind]
    extra = (" The emulator has no SAML providers." if token_type == SAML2_TOKEN_TYPE else "")
    return _invalid_request(
        f'Invalid value for "subject_token_type": the provider {pool.name} is an '
        f"{pool.kind.upper()} provider and accepts {accepted}, not {token_type}.{extra}")


def _public_keys(call: Call, pool: IdentityPool, kid: Any) -> list[rsa.RSAPublicKey]:
    if not pool.jwks:
        key = call.state.oidc_key
        return [key.public_key] if kid in (None, key.kid) else []
    keys = []
    for jwk in pool.jwks:
        if kid is not None and jwk.get("kid") != kid:
            continue
        try:
            n = int.from_bytes(b64url_decode(str(jwk["n"])), "big")
            e = int.from_bytes(b64url_decode(str(jwk["e"])), "big")
            keys.append(rsa.RSAPublicNumbers(e, n).public_key())
        except (KeyError, ValueError):
            continue
    return keys


def _verify_oidc(call: Call, pool: IdentityPool, token: str) -> dict[str, Any]:
    """The claims of an OIDC ID token the provider accepts; ``invalid_grant`` otherwise."""
    try:
        parsed = decode_unverified(token)
    except JWTError:
        raise _invalid_grant("Unable to parse the ID Token: it is not a compact JWS "
                             "(header.payload.signature).") from None
    if parsed.header.get("alg") != "RS256":
        raise _invalid_grant(f"Invalid ID Token: unsupported signing algorithm "
                             f"{parsed.header.get('alg')!r} (RS256 expected).")
    keys = _public_keys(call, pool, parsed.header.get("kid"))
    if not any(verify_signature(parsed, key) for key in keys):
        raise _invalid_grant(f"Invalid ID Token signature: no key of the issuer {pool.issuer}'s "
                             "JWKS verifies it.")
    claims = parsed.claims
    if claims.get("iss") != pool.issuer:
        raise _invalid_grant(f"The issuer in ID Token {claims.get('iss')!r} does not match the "
                             f"expected ones: [{pool.issuer}].")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    accepted = pool.allowed_audiences or (pool.name, "https:" + pool.name)
    if not any(isinstance(a, str) and a in accepted for a in auds):
        raise _invalid_grant(f"The audience in ID Token {aud!r} does not match the expected "
                             f"audience: [{', '.join(accepted)}].")
    iat, exp = claims.get("iat"), claims.get("exp")
    for name, value in (("iat", iat), ("exp", exp)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise _invalid_grant(f'Invalid ID Token: the "{name}" claim is missing or not a '
                                 "number.")
    assert isinstance(iat, (int, float)) and isinstance(exp, (int, float))
    if exp <= call.now:
        raise _invalid_grant(f"ID Token expired at {int(exp)} (the server time is "
                             f"{int(call.now)}).")
    if iat > call.now + 300:
        raise _invalid_grant(f"ID Token issued at {int(iat)} is in the future (the server "
                             f"time is {int(call.now)}).")
    if exp - iat > MAX_OIDC_LIFETIME:
        raise _invalid_grant(f'Invalid ID Token: "exp" - "iat" is more than '
                             f"{MAX_OIDC_LIFETIME} seconds.")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise _invalid_grant('Invalid ID Token: the "sub" claim is missing.')
    return claims


def _map(pool: IdentityPool, assertion: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Apply the provider's attribute mapping: ``(google.subject, {attribute: value})``."""
    env = {"assertion": assertion}
    subject: Any = None
    attributes: dict[str, Any] = {}
    for target, tree in pool.mapping.items():
        try:
            value = evaluate(tree, env)
        except CelError:
            if target == "google.subject":
                raise _invalid_grant(f"The attribute mapping for google.subject "
                                     f"({pool.attribute_mapping[target]}) failed on this "
                                     "credential.") from None
            continue
        if target == "google.subject":
            subject = value
        elif target.startswith("attribute."):
            attributes[target[len("attribute."):]] = value
    if pool.kind == "aws" and "aws_role" not in attributes:
        # Google's default AWS mapping: the assumed role's ARN without the session name
        arn = str(assertion.get("arn", ""))
        attributes["aws_role"] = arn.rsplit("/", 1)[0] if "assumed-role/" in arn else arn
    if not isinstance(subject, str) or not subject:
        raise _invalid_grant("The mapped google.subject is empty or not a string.")
    if len(subject.encode()) > MAX_SUBJECT_BYTES:
        raise _invalid_grant(f"The mapped google.subject is longer than {MAX_SUBJECT_BYTES} "
                             "bytes.")
    return subject, attributes


def _check_user_project(call: Call, pool: IdentityPool, options: dict[str, Any],
                        client: OAuthClient | None) -> None:
    """Workforce pools bill a user project: ``options.userProject`` (or the project of the
    authenticated OAuth client)."""
    project = options.get("userProject")
    if project is None:
        if client is not None:
            return
        raise _invalid_request(
            f"The workforce pool provider {pool.name} requires a user project: send "
            'options={"userProject": PROJECT_NUMBER} (workforce_pool_user_project in the '
            "credential configuration) or authenticate as an OAuth client.")
    if not isinstance(project, str) or call.state.project_id_for(project) is None:
        raise _invalid_request(f"The user project {project!r} in options.userProject was not "
                               "found.")


# ---------------------------------------------------------------------------- oauthtoken
def oauthtoken(call: Call) -> Reply:
    """``POST /v1/oauthtoken``: an ``external_account_authorized_user`` refresh (Basic
    client authentication)."""
    params = read_form(call)
    if params.get("grant_type") != "refresh_token":
        raise OAuthError(400, "unsupported_grant_type",
                         f"Invalid grant_type: {params.get('grant_type', '')}")
    client = authenticate_client(call, params)
    value = params.get("refresh_token")
    if not value:
        raise _invalid_request("Missing required parameter: refresh_token")
    rt = call.state.refresh_tokens.get(value)
    if (rt is None or rt.revoked or rt.audience is None
            or rt.client_id != client.client_id):
        raise _invalid_grant("Token has been expired or revoked.")
    pool = call.state.pools.get(rt.audience)
    if pool is None:
        raise _invalid_grant("The workforce pool of this refresh token no longer exists.")
    token, expires_in = call.state.new_access_token(
        now=call.now, scopes=rt.scopes, azp=client.client_id, email=None, sub=rt.account,
        source="federated", refresh_token=value, access_type="offline",
        expired=call.expired, lifetime=STS_TOKEN_LIFETIME,
        principal=pool.principal(rt.account))
    call.state.count("sts_issued")
    return json_reply(200, {"access_token": token, "expires_in": expires_in,
                            "token_type": "Bearer", "scope": " ".join(rt.scopes)}, NO_STORE)


# ---------------------------------------------------------------------------- introspect
def introspect(call: Call) -> Reply:
    """``POST /v1/introspect`` (RFC 7662): ``{"active": true, ...}`` for a live token of
    this emulator, ``{"active": false}`` otherwise. Client authentication is checked when
    sent."""
    params = read_form(call)
    _client(call, params)
    value = params.get("token")
    if not value:
        raise _invalid_request("Missing required parameter: token")
    state = call.state
    rec = state.live_access_token(value, call.now)
    if rec is not None:
        out: dict[str, Any] = {"active": True, "token_type": "Bearer", "client_id": rec.azp,
                               "scope": " ".join(rec.scopes), "exp": int(rec.expiry)}
        if rec.principal is not None:
            out["username"] = rec.principal
        elif rec.email is not None:
            out["username"] = rec.email
        if rec.sub is not None:
            out["sub"] = rec.sub
        return json_reply(200, out, NO_STORE)
    rt = state.refresh_tokens.get(value)
    if rt is not None and not rt.revoked:
        return json_reply(200, {"active": True, "token_type": "refresh_token",
                                "client_id": rt.client_id, "scope": " ".join(rt.scopes),
                                "username": rt.account}, NO_STORE)
    return json_reply(200, {"active": False}, NO_STORE)


# ---------------------------------------------------------------------------- revoke
def revoke(call: Call) -> Reply:
    """``POST /v1/revoke`` (RFC 7009, client authentication required): 200 with an empty
    body, also for an unknown token (RFC 7009 §2.2)."""
    params = read_form(call)
    client = authenticate_client(call, params)
    value = params.get("token")
    if not value:
        raise _invalid_request("Missing required parameter: token")
    rt = call.state.refresh_tokens.get(value)
    if rt is not None and rt.client_id != client.client_id:
        raise OAuthError(400, "invalid_request", "The token was not issued to this client.")
    call.state.revoke(value, call.now)
    return Reply(200, b"", headers=list(NO_STORE))

