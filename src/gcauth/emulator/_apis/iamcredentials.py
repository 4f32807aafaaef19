"""The IAM Service Account Credentials API (``iamcredentials.googleapis.com``):
``POST /v1/projects/-/serviceAccounts/{sa}:generateAccessToken`` (and ``:generateIdToken``,
``:signBlob``, ``:signJwt``), with a permission model.

The caller is named by its bearer token (an access token the emulator issued, or a
self-signed service-account JWT) and must carry the ``iam`` or ``cloud-platform`` scope.
It may act as ``{sa}`` only when granted the Service Account Token Creator role on it
(``emu.grant_token_creator``; for a federated principal of a workload identity pool, the
Workload Identity User role its pool was given with ``service_account=``); with
``delegates`` each identity of the chain needs the role on the next one. Otherwise 403
``PERMISSION_DENIED`` as Google words it; 401 without
a (live) bearer token.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .._errors import GoogleError
from .._jwt import JWTError, check_times, decode_unverified, encode, verify_signature
from .._routing import Call
from .._state import CLOUD_PLATFORM, ServiceAccount, is_valid_scope, normalize_scopes
from .._wire import Reply, json_reply
from .sqladmin import INVALID_CREDENTIAL, MISSING_CREDENTIAL

__all__ = ["generate_access_token", "generate_id_token", "sign_blob", "sign_jwt"]

IAM_SCOPE = "https://www.googleapis.com/auth/iam"
IAM_AUDIENCE = "https://iamcredentials.googleapis.com/"
CALLER_SCOPES = frozenset({IAM_SCOPE, CLOUD_PLATFORM})
#: The longest lifetime generateAccessToken grants (12 h, Google's limit with the
#: lifetime-extension organisation policy) and signJwt accepts for ``exp``.
MAX_LIFETIME = 12 * 3600
_PREFIX = "projects/-/serviceAccounts/"
_CHALLENGE = 'Bearer realm="https://accounts.google.com/"'


def _permission_denied(permission: str) -> GoogleError:
    return GoogleError(
        403, f"Permission '{permission}' denied on resource (or it may not exist).",
        details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                  "reason": "IAM_PERMISSION_DENIED", "domain": "iam.googleapis.com",
                  "metadata": {"permission": permission}}])


def _bad_request(message: str) -> GoogleError:
    return GoogleError(400, message)


def _caller(call: Call) -> str:
    """The IAM member the bearer token stands for; 401/403 when there is none."""
    auth = call.req.header("authorization") or ""
    if auth[:7].lower() != "bearer " or not auth[7:].strip():
        raise GoogleError(401, MISSING_CREDENTIAL, [("WWW-Authenticate", _CHALLENGE)])
    bearer = auth[7:].strip()
    invalid = GoogleError(401, INVALID_CREDENTIAL,
                          [("WWW-Authenticate", _CHALLENGE + ', error="invalid_token"')])
    state = call.state
    if bearer.count(".") != 2:
        rec = state.live_access_token(bearer, call.now)
        if rec is None or (rec.email is None and rec.principal is None):
            raise invalid
        if not CALLER_SCOPES.intersection(rec.scopes):
            raise _insufficient_scopes()
        if rec.principal is not None:  # an STS token: a federated principal
            return rec.principal
        assert rec.email is not None
        kind = "user:" if rec.source in ("user", "delegated") else "serviceAccount:"
        return kind + rec.email
    try:  # a self-signed service-account JWT (AIP-4111)
        parsed = decode_unverified(bearer)
    except JWTError:
        raise invalid from None
    kid = parsed.header.get("kid")
    sa = state.keys_by_kid.get(kid) if isinstance(kid, str) else None
    if sa is None or not verify_signature(parsed, sa.keys[str(kid)].public_key):
        raise invalid
    claims = parsed.claims
    if claims.get("iss") != sa.email or claims.get("sub") != sa.email:
        raise invalid
    try:
        check_times(claims, call.now)
    except JWTError:
        raise invalid from None
    scope = claims.get("scope")
    if isinstance(scope, str):
        if not CALLER_SCOPES.intersection(scope.split()):
            raise _insufficient_scopes()
    elif claims.get("aud") != IAM_AUDIENCE:
        raise invalid
    return sa.member


def _insufficient_scopes() -> GoogleError:
    return GoogleError(
        403, "Request had insufficient authentication scopes.",
        [("WWW-Authenticate", _CHALLENGE + ', error="insufficient_scope", '
          f'scope="{IAM_SCOPE} {CLOUD_PLATFORM}"')],
        details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                  "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "domain": "googleapis.com",
                  "metadata": {"service": "iamcredentials.googleapis.com"}}])


def _body(call: Call) -> dict[str, Any]:
    try:
        data = json.loads(call.req.body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _bad_request("Invalid JSON payload received.") from None
    if not isinstance(data, dict):
        raise _bad_request("Invalid JSON payload received. Expected an object.")
    return data


def _delegates(data: dict[str, Any]) -> list[str]:
    raw = data.get("delegates")
    if raw is None:  # google-auth sends "delegates": null
        return []
    if not isinstance(raw, list) or not all(isinstance(d, str) and d for d in raw):
        raise _bad_request("Invalid value at 'delegates': a list of "
                           "projects/-/serviceAccounts/EMAIL names expected.")
    return [d[len(_PREFIX):] if d.startswith(_PREFIX) else d for d in raw]


def _authorize(call: Call, data: dict[str, Any], permission: str) -> ServiceAccount:
    """The target account, once the caller may act as it along the delegate chain."""
    caller = _caller(call)
    state = call.state
    name = call.args["sa"]
    if name.startswith(_PREFIX):
        name = name[len(_PREFIX):]
    chain: list[ServiceAccount] = []
    for account in [*_delegates(data), name]:
        sa = state.account(account)
        if sa is None:
            raise _permission_denied(permission)
        chain.append(sa)
    member = caller
    for sa in chain:
        if not state.may_act_as(member, sa.email):
            raise _permission_denied(permission)
        member = sa.member
    return chain[-1]


def _rfc3339(seconds: float) -> str:
    """Google's ``expireTime``: RFC 3339, UTC, no fractional seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def _lifetime(data: dict[str, Any]) -> float:
    raw = data.get("lifetime")
    if raw is None:
        return 3600.0
    if not isinstance(raw, str) or not raw.endswith("s"):
        raise _bad_request("Invalid value at 'lifetime': a duration such as \"3600s\" "
                           "expected.")
    try:
        seconds = float(raw[:-1])
    except ValueError:
        raise _bad_request("Invalid value at 'lifetime'.") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise _bad_request("Invalid value at 'lifetime'.")
    if seconds > MAX_LIFETIME:
        raise _bad_request(f"The lifetime requested is more than the maximum allowed "
                           f"({MAX_LIFETIME}s).")
    return seconds


def generate_access_token(call: Call) -> Reply:
    """``:generateAccessToken`` → ``{"accessToken", "expireTime"}``."""
    data = _body(call)
    sa = _authorize(call, data, "iam.serviceAccounts.getAccessToken")
    scope = data.get("scope")
    if not isinstance(scope, list) or not scope or \
            not all(isinstance(s, str) and s for s in scope):
        raise _bad_request("Scope required.")
    if not all(is_valid_scope(s) for s in scope):
        raise _bad_request("Invalid OAuth scope provided.")
    token, expires_in = call.state.new_access_token(
        now=call.now, scopes=tuple(normalize_scopes(scope)), azp=sa.unique_id, email=sa.email,
        sub=sa.unique_id, source="impersonated", expired=call.expired,
        lifetime=_lifetime(data))
    return json_reply(200, {"accessToken": token,
                            "expireTime": _rfc3339(call.now + expires_in)})


def generate_id_token(call: Call) -> Reply:
    """``:generateIdToken`` → ``{"token"}``: signed by the emulator's ID-token key; the
    ``email`` claim only with ``includeEmail``."""
    data = _body(call)
    sa = _authorize(call, data, "iam.serviceAccounts.getOpenIdToken")
    audience = data.get("audience")
    if not isinstance(audience, str) or not audience:
        raise _bad_request("Audience required.")
    include = data.get("includeEmail", False)
    if not isinstance(include, bool):
        raise _bad_request("Invalid value at 'include_email' (TYPE_BOOL).")
    token = call.state.id_token(now=call.now, aud=audience, azp=sa.unique_id, sub=sa.unique_id,
                                email=sa.email if include else None, expired=call.expired)
    return json_reply(200, {"token": token})


def sign_blob(call: Call) -> Reply:
    """``:signBlob`` → ``{"keyId", "signedBlob"}`` (RS256 by the account's Google-managed
    key, published at ``/robot/v1/metadata/x509/{email}``)."""
    data = _body(call)
    sa = _authorize(call, data, "iam.serviceAccounts.signBlob")
    payload = data.get("payload")
    if not isinstance(payload, str):
        raise _bad_request("Payload required.")
    try:
        blob = base64.b64decode(payload.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise _bad_request("Invalid value at 'payload' (TYPE_BYTES): not base64.") from None
    key = call.state.system_key(sa)
    signature = key.private_key.sign(blob, padding.PKCS1v15(), hashes.SHA256())
    return json_reply(200, {"keyId": key.kid,
                            "signedBlob": base64.b64encode(signature).decode("ascii")})


def sign_jwt(call: Call) -> Reply:
    """``:signJwt`` → ``{"keyId", "signedJwt"}``: the payload (a JSON object; ``exp`` at most
    12 hours ahead) signed RS256 with ``kid`` = the account's Google-managed key."""
    data = _body(call)
    sa = _authorize(call, data, "iam.serviceAccounts.signJwt")
    payload = data.get("payload")
    if not isinstance(payload, str):
        raise _bad_request("Payload required.")
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        raise _bad_request("Invalid JWT payload: not JSON.") from None
    if not isinstance(claims, dict):
        raise _bad_request("Invalid JWT payload: not a JSON object.")
    exp = claims.get("exp")
    if exp is not None:
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not math.isfinite(exp):
            raise _bad_request("Invalid JWT payload: 'exp' must be a number.")
        if exp > call.now + MAX_LIFETIME:
            raise _bad_request("Invalid JWT payload: 'exp' is more than 12 hours in the "
                               "future.")
    key = call.state.system_key(sa)
    return json_reply(200, {"keyId": key.kid, "signedJwt": encode(claims, key)})
