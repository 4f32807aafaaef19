"""AWS stand-ins for workload identity federation from AWS:

* the EC2 **instance metadata service**, IMDSv2 only (``PUT /latest/api/token``, then GETs
  carrying ``X-aws-ec2-metadata-token``): the availability zone and the instance role's
  temporary credentials;
* the check Google's STS makes of an ``aws4_request`` subject token: a SigV4-signed
  ``GetCallerIdentity`` request that the emulator verifies itself (it never contacts AWS),
  recomputing the signature with the credentials it issued.
"""

from __future__ import annotations

import calendar
import hmac
import json
import secrets
import string
import time
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..._protocol import sigv4
from ...exceptions import UsageError
from .._errors import OAuthError, TextError
from .._routing import Api, Call, TextErrors
from .._state import AwsCredentials, IdentityPool, State
from .._wire import Reply, json_reply, text_reply

__all__ = ["IMDS", "issue_credentials", "verify_subject_token"]

TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
MAX_TTL = 21600
#: How far an ``x-amz-date`` may be from the emulator's clock (either way).
MAX_DATE_SKEW = 15 * 60
#: Lifetime of the instance role's credentials (AWS rotates them well before expiry).
IMDS_CREDENTIALS_LIFETIME = 6 * 3600
VERIFY_ACTION = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
_UPPER = string.ascii_uppercase + string.digits


def _no_proxies(call: Call) -> None:
    if call.req.method == "PUT" and call.req.header("x-forwarded-for") is not None:
        raise TextError(403, "Forbidden\n")


#: IMDS answers in plain text; a token PUT through a proxy (``X-Forwarded-For``) is refused.
IMDS = Api("aws_imds", TextErrors(), headers=(("Server", "EC2ws"),), guard=_no_proxies)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


def issue_credentials(state: State, *, now: float, role: str, account_id: str,
                      lifetime: float, session_name: str | None = None) -> AwsCredentials:
    """Mint temporary AWS credentials (``ASIA...`` access key id, secret, session token)."""
    creds = AwsCredentials(
        access_key_id="ASIA" + "".join(secrets.choice(_UPPER) for _ in range(16)),
        secret_access_key=secrets.token_urlsafe(30)[:40],
        session_token="IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(96),
        expiry=now + lifetime, account_id=account_id, role_name=role,
        session_name=session_name or ("i-" + secrets.token_hex(8)))
    with state.lock:
        state.aws_credentials[creds.access_key_id] = creds
    return creds


def credentials_document(creds: AwsCredentials, now: float) -> dict[str, str]:
    """The JSON IMDS serves at ``iam/security-credentials/{role}``."""
    return {"Code": "Success", "LastUpdated": _iso(now), "Type": "AWS-HMAC",
            "AccessKeyId": creds.access_key_id, "SecretAccessKey": creds.secret_access_key,
            "Token": creds.session_token, "Expiration": _iso(creds.expiry)}


# ---------------------------------------------------------------------------- IMDS
def session_token(call: Call) -> Reply:
    """``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds: 1..21600``."""
    raw = (call.req.header(TTL_HEADER) or "").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TTL:
        raise TextError(400, "Bad Request\n")
    value = "AQAEA" + secrets.token_urlsafe(40)
    with call.state.lock:
        sessions = call.state.imds_sessions
        for old in [t for t, exp in sessions.items() if exp <= call.now]:
            del sessions[old]
        sessions[value] = call.now + int(raw)
    reply = text_reply(200, value)
    reply.headers.append(("X-aws-ec2-metadata-token-ttl-seconds", raw))
    return reply


def _session(call: Call) -> None:
    """IMDSv2 only: a GET needs a live session token, else 401 (as with
    ``HttpTokens=required``)."""
    value = call.req.header(TOKEN_HEADER)
    expiry = call.state.imds_sessions.get(value or "")
    if value is None or expiry is None or expiry <= call.now:
        raise TextError(401, "Unauthorized\n")


def availability_zone(call: Call) -> Reply:
    """``GET /latest/meta-data/placement/availability-zone`` → ``{region}a``."""
    _session(call)
    return text_reply(200, call.config.aws_region + "a")


def region(call: Call) -> Reply:
    """``GET /latest/meta-data/placement/region``."""
    _session(call)
    return text_reply(200, call.config.aws_region)


def role_name(call: Call) -> Reply:
    """``GET /latest/meta-data/iam/security-credentials/`` → the instance role's name."""
    _session(call)
    return text_reply(200, call.config.aws_role)


def role_credentials(call: Call) -> Reply:
    """``GET /latest/meta-data/iam/security-credentials/{role}`` → the role's temporary
    credentials (the same ones until they are within 15 minutes of expiry)."""
    _session(call)
    role, config, state = call.args["role"], call.config, call.state
    if role != config.aws_role:
        raise TextError(404, "Not Found\n")
    current = [c for c in state.aws_credentials.values()
               if c.session_name.startswith("i-") and c.role_name == role
               and c.account_id == config.aws_account_id and c.expiry - call.now > 900]
    creds = current[-1] if current else issue_credentials(
        state, now=call.now, role=role, account_id=config.aws_account_id,
        lifetime=IMDS_CREDENTIALS_LIFETIME)
    return json_reply(200, credentials_document(creds, call.now))


def not_found(call: Call) -> Reply:
    """Any other ``/latest/...`` path (after the session check)."""
    _session(call)
    raise TextError(404, "Not Found\n")


# ---------------------------------------------------------------------------- STS check
def _grant(description: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


def _aws_error(code: str, message: str) -> OAuthError:
    """What Google's STS answers when AWS refused the ``GetCallerIdentity`` request."""
    return _grant(f"Received invalid AWS response of type {code} with error message: "
                  f"{message}")


def _parse(token: str) -> dict[str, Any]:
    for text in (token, unquote(token)):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    raise _grant("The AWS subject token is not a URL-encoded JSON object "
                 '{"url", "method", "headers"} (a serialized, signed GetCallerIdentity '
                 "request).")


def _target(pool: IdentityPool) -> str:
    return (f"a signed POST to https://sts.{pool.aws_region}.amazonaws.com"
            "?Action=GetCallerIdentity&Version=2011-06-15")


def verify_subject_token(call: Call, pool: IdentityPool, token: str,
                         audience: str) -> dict[str, Any]:
    """The ``assertion`` (``arn``, ``account``, ``userid``) of a valid ``aws4_request``
    subject token; ``invalid_grant`` naming what is wrong otherwise."""
    doc = _parse(token)
    url, method, raw_headers = doc.get("url"), doc.get("method"), doc.get("headers")
    if not isinstance(url, str) or not isinstance(method, str) or not isinstance(
            raw_headers, list):
        raise _grant('The AWS subject token needs "url" and "method" strings and a '
                     '"headers" list.')
    pairs: list[tuple[str, str]] = []
    for item in raw_headers:
        if not (isinstance(item, dict) and isinstance(item.get("key"), str)
                and isinstance(item.get("value"), str)):
            raise _grant('Each header of the AWS subject token must be {"key": ..., '
                         '"value": ...} with string values.')
        pairs.append((item["key"], item["value"]))
    headers: dict[str, str] = {}
    for name, value in pairs:
        if name.lower() in headers:
            raise _grant(f"The AWS subject token repeats the header {name.lower()!r}.")
        headers[name.lower()] = value
    if method.upper() != "POST":
        raise _grant(f"The AWS subject token must be {_target(pool)}, not a {method}.")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "sts.amazonaws.com":
        url_region = "us-east-1"  # the global endpoint signs for us-east-1
    elif host.startswith("sts.") and host.endswith(".amazonaws.com"):
        url_region = host[len("sts."):-len(".amazonaws.com")]
        if url_region != pool.aws_region:
            raise _grant(f"The AWS subject token is signed for region {url_region}, but the "
                         f"provider's region is {pool.aws_region}: it must be "
                         f"{_target(pool)}.")
    else:
        raise _grant(f"The AWS subject token must be {_target(pool)} (its URL's host is "
                     f"{host or 'missing'}).")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if (parts.scheme != "https" or parts.path not in ("", "/") or parts.port is not None
            or query != VERIFY_ACTION or len(parse_qsl(parts.query)) != 2):
        raise _grant(f"The AWS subject token must be {_target(pool)}.")
    if headers.get("host", "").lower() != host:
        raise _grant("The AWS subject token's host header does not match its URL.")
    target = headers.get("x-goog-cloud-target-resource")
    if target != audience:
        raise _grant("The x-goog-cloud-target-resource header of the AWS subject token "
                     f"({target!r}) must be the audience of this exchange ({audience}).")
    if "authorization" not in headers:
        raise _aws_error("MissingAuthenticationToken", "Request is missing Authentication "
                         "Token")
    try:
        auth = sigv4.parse_authorization(headers["authorization"])
    except UsageError as exc:
        raise _aws_error("IncompleteSignature", str(exc).removeprefix("SigV4: ")) from None
    if auth.service != "sts" or auth.region != url_region:
        raise _aws_error("SignatureDoesNotMatch", f"Credential should be scoped to a valid "
                         f"region and service: {url_region}/sts, not "
                         f"{auth.region}/{auth.service}.")
    for required in ("host", "x-amz-date"):
        if required not in auth.signed_headers:
            raise _aws_error("IncompleteSignature", f"The {required} header must be signed.")
    amz = headers.get("x-amz-date", "")
    try:
        moment = calendar.timegm(time.strptime(amz, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise _aws_error("IncompleteSignature", "x-amz-date is not YYYYMMDDTHHMMSSZ.") from None
    if auth.date != amz[:8]:
        raise _aws_error("SignatureDoesNotMatch", "The credential scope date does not match "
                         "x-amz-date.")
    if abs(moment - call.now) > MAX_DATE_SKEW:
        raise _aws_error("SignatureDoesNotMatch", f"Signature expired: {amz} is more than 15 "
                         f"minutes away from the server time {_iso(call.now)}.")
    creds = call.state.aws_credentials.get(auth.access_key_id)
    if creds is None:
        raise _aws_error("InvalidClientTokenId", "The security token included in the request "
                         "is invalid.")
    given = headers.get("x-amz-security-token", "")
    if not hmac.compare_digest(given.encode(), creds.session_token.encode()):
        raise _aws_error("InvalidClientTokenId", "The security token included in the request "
                         "is invalid.")
    if creds.expiry <= call.now:
        raise _aws_error("ExpiredToken", "The security token included in the request is "
                         "expired")
    try:
        canonical = sigv4.canonical_request("POST", url, pairs, b"", service="sts",
                                            signed_headers=auth.signed_headers)
        to_sign = sigv4.string_to_sign(canonical, amz_date=amz, region=auth.region,
                                       service="sts")
        key = sigv4.signing_key(creds.secret_access_key, auth.date, auth.region, "sts")
    except UsageError as exc:
        raise _aws_error("IncompleteSignature", str(exc).removeprefix("SigV4: ")) from None
    if not hmac.compare_digest(sigv4.signature(key, to_sign), auth.signature):
        raise _aws_error("SignatureDoesNotMatch", "The request signature we calculated does "
                         "not match the signature you provided. Check your AWS Secret Access "
                         "Key and signing method.")
    if creds.account_id != pool.aws_account_id:
        raise _grant(f"The AWS account {creds.account_id} is not the account of the provider "
                     f"{pool.name} ({pool.aws_account_id}).")
    return {"arn": creds.assumed_role_arn, "account": creds.account_id,
            "userid": f"AROA{creds.access_key_id[4:]}:{creds.session_name}"}
