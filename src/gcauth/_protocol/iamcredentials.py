"""The IAM Service Account Credentials API (``iamcredentials.googleapis.com``), pure.

Four methods, each ``POST {base}/v1/projects/-/serviceAccounts/{email}:{method}`` with a JSON
body and the *caller's* bearer token:

* ``generateAccessToken`` -- ``{"delegates", "scope", "lifetime": "3600s"}`` →
  ``{"accessToken", "expireTime"}`` (RFC 3339);
* ``generateIdToken`` -- ``{"delegates", "audience", "includeEmail"}`` → ``{"token"}``;
* ``signBlob`` -- ``{"delegates", "payload": base64}`` → ``{"keyId", "signedBlob"}``;
* ``signJwt`` -- ``{"delegates", "payload": "<JSON claims>"}`` → ``{"keyId", "signedJwt"}``.

The caller needs the Service Account Token Creator role on the target (and, with
``delegates``, each identity of the chain on the next one). Everything here builds requests,
reads replies and words errors; which token is sent, and who the caller is, is decided by the
credentials that use it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .._checks import is_b64token, terminal_safe
from .._endpoints import DEFAULT_UNIVERSE_DOMAIN, check_endpoint
from .._http import DEFAULT_TIMEOUT, Flow, HttpRequest, HttpResponse
from .._json import loads as json_loads
from .._retry import RetryPolicy, with_retries
from ..exceptions import RefreshError, UsageError

__all__ = [
    "IAM_SCOPE",
    "MAX_LIFETIME",
    "METHODS",
    "TOKEN_CREATOR_ROLE",
    "Caller",
    "call_flow",
    "default_base",
    "delegate_emails",
    "delegate_names",
    "method_url",
    "parse_access_token",
    "parse_id_token_reply",
    "parse_rfc3339",
    "parse_sign_blob",
    "parse_sign_jwt",
    "split_endpoint",
]

IAM_SCOPE = "https://www.googleapis.com/auth/iam"
TOKEN_CREATOR_ROLE = "roles/iam.serviceAccountTokenCreator"
#: generateAccessToken accepts at most 12 hours (more than 1 hour needs the organisation
#: policy ``constraints/iam.allowServiceAccountCredentialLifetimeExtension``).
MAX_LIFETIME = 12 * 3600
METHODS = ("generateAccessToken", "generateIdToken", "signBlob", "signJwt")
_PERMISSION = {"generateAccessToken": "iam.serviceAccounts.getAccessToken",
               "generateIdToken": "iam.serviceAccounts.getOpenIdToken",
               "signBlob": "iam.serviceAccounts.signBlob",
               "signJwt": "iam.serviceAccounts.signJwt"}
_DOING = {"generateAccessToken": "get an access token for",
          "generateIdToken": "get an ID token for",
          "signBlob": "sign bytes as", "signJwt": "sign a JWT as"}
_PATH = "/v1/projects/-/serviceAccounts/"
_PREFIX = "projects/-/serviceAccounts/"
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]{1,128}@[A-Za-z0-9.\-]{1,255}")
#: Transient IAM failures a retry may cure (google-auth retries the 5xx ones for signBlob).
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
DEFAULT_RETRY = RetryPolicy(max_attempts=4, initial=0.2, cap=2.0, deadline=8.0)


def default_base(universe_domain: str = DEFAULT_UNIVERSE_DOMAIN) -> str:
    """Google's IAM Credentials endpoint in ``universe_domain``."""
    return f"https://iamcredentials.{universe_domain}"


def split_endpoint(url: object, *, field: str, source: str,
                   allowed_hosts: Collection[str] = ()) -> tuple[str, str | None]:
    """``(base, principal)`` of an IAM endpoint given by a user or a file.

    Either a base (``https://iamcredentials.googleapis.com``, a regional or loopback host) or
    a full method URL as google-auth's ``iam_endpoint_override`` and an ADC file's
    ``service_account_impersonation_url`` hold it
    (``.../v1/projects/-/serviceAccounts/EMAIL:generateAccessToken``): then ``principal`` is
    the email it names and every other method is the same URL with the method swapped.
    Checked by the same allow-list as ``token_uri``.
    """
    checked = check_endpoint(url, field=field, source=source, allowed_hosts=allowed_hosts)
    parts = urlsplit(checked)
    if parts.query or parts.fragment:
        raise UsageError(f"{source}: {field} must be a URL without a query or fragment.")
    where = checked.find(_PATH)
    if where < 0:
        return checked.rstrip("/"), None
    rest = checked[where + len(_PATH):]
    principal, colon, method = rest.partition(":")
    principal = unquote(principal)  # ...serviceAccounts/name%40project... is the same account
    if not colon or method not in METHODS or not _EMAIL.fullmatch(principal):
        raise UsageError(
            f"{source}: {field} names a service account method URL that gcauth cannot read: "
            "expected .../v1/projects/-/serviceAccounts/EMAIL:generateAccessToken (or "
            "another IAM Credentials method), or just the endpoint's base URL.")
    return checked[:where], principal


def method_url(base: str, email: str, method: str) -> str:
    """``{base}/v1/projects/-/serviceAccounts/{email}:{method}``."""
    return f"{base}{_PATH}{quote(email, safe='@')}:{method}"


def delegate_names(delegates: Sequence[str] | None, *, source: str) -> list[str]:
    """Delegates as the API names them (``projects/-/serviceAccounts/EMAIL``); bare emails (as
    gcloud writes them) are accepted too."""
    if delegates is None:
        return []
    if isinstance(delegates, str) or not isinstance(delegates, Sequence):
        raise UsageError(f"{source}: delegates must be a list of service-account emails.")
    names = []
    for item in delegates:
        email = item[len(_PREFIX):] if isinstance(item, str) and item.startswith(_PREFIX) \
            else item
        if not isinstance(email, str) or not _EMAIL.fullmatch(email):
            raise UsageError(
                f"{source}: each delegate must be a service-account email (or "
                "projects/-/serviceAccounts/EMAIL); one is not.")
        names.append(_PREFIX + email)
    return names


def delegate_emails(names: Sequence[str]) -> list[str]:
    return [name[len(_PREFIX):] if name.startswith(_PREFIX) else name for name in names]


class Caller:
    """Who calls IAM and for what, to word errors: ``principal`` is the IAM member of the
    caller (``user:alice@example.com``, ``serviceAccount:...``) or ``None`` when unknown."""

    __slots__ = ("principal", "target", "delegates")

    def __init__(self, principal: str | None, target: str, delegates: Sequence[str] = ()):
        self.principal = principal
        self.target = target
        self.delegates = list(delegates)


def _request(url: str, body: Mapping[str, Any], headers: Mapping[str, str],
             timeout: float) -> HttpRequest:
    all_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    all_headers.update(headers)
    data = json.dumps(dict(body), separators=(",", ":")).encode("utf-8")
    return HttpRequest("POST", url, all_headers, data, timeout)


def call_flow(base: str, method: str, caller: Caller, body: Mapping[str, Any],
              headers: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT,
              retry: RetryPolicy | None = None) -> Flow[dict[str, Any]]:
    """Flow: call ``method`` on ``caller.target`` with ``headers`` (the caller's
    ``Authorization``), retrying transient failures; returns the reply's JSON object."""
    request = _request(method_url(base, caller.target, method), body, headers, timeout)

    def attempt() -> Flow[dict[str, Any]]:
        response = yield request
        assert response is not None
        if not 200 <= response.status < 300:
            raise iam_error(response, request.endpoint, method, caller)
        try:
            data = json_loads(response.body)
        except (ValueError, UnicodeDecodeError):
            raise RefreshError(
                f"IAM endpoint {request.endpoint} replied HTTP {response.status} with a body "
                "that is not JSON. Fix: check the IAM endpoint (iam_endpoint_override).",
                status=response.status, endpoint=request.endpoint, retryable=True) from None
        if not isinstance(data, dict):
            raise RefreshError(f"IAM endpoint {request.endpoint} replied with JSON that is not "
                               "an object.", status=response.status, endpoint=request.endpoint)
        return data

    return with_retries(attempt, retry or DEFAULT_RETRY)


def _who(caller: Caller) -> str:
    if caller.principal is None:
        return "The caller (account unknown)"
    return terminal_safe(caller.principal[:200])


def iam_error(response: HttpResponse, endpoint: str, method: str,
              caller: Caller) -> RefreshError:
    """A non-2xx IAM reply as a :class:`RefreshError` that says who may not do what, and how to
    fix it (never quoting a token)."""
    status_name = message = None
    try:
        data = json_loads(response.body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        status_name = err.get("status") if isinstance(err.get("status"), str) else None
        message = err.get("message") if isinstance(err.get("message"), str) else None
    status = response.status
    retryable = status in RETRYABLE_STATUS
    target = terminal_safe(caller.target[:200])
    said = f" (IAM said: {terminal_safe(message[:300]).rstrip('.')})" if message else ""
    head = f"IAM {method} for {target} at {endpoint} failed: HTTP {status}"
    if status_name:
        head += f" {terminal_safe(status_name[:40])}"
    chain = [caller.principal or "the caller", *delegate_emails(caller.delegates),
             caller.target]
    who = _who(caller)
    whose = who[0].lower() + who[1:]
    if status == 403 and message and "scope" in message.lower():
        text = (f"{head}{said}. The token of {whose} lacks the scope IAM needs. Fix: give "
                f"the source credentials the {IAM_SCOPE} or "
                "https://www.googleapis.com/auth/cloud-platform scope.")
    elif status == 403:
        member = caller.principal or "MEMBER"
        text = (f"{head}{said}. {who} may not {_DOING.get(method, method)} {target}: "
                f"it needs the Service Account Token Creator role ({TOKEN_CREATOR_ROLE}, "
                f"permission {_PERMISSION.get(method, method)}) on {target}")
        if caller.delegates:
            text += (". With delegates, every identity of the chain needs that role on the next "
                     "one: " + " -> ".join(terminal_safe(c[:200]) for c in chain))
        text += (f". Fix: gcloud iam service-accounts add-iam-policy-binding {target} "
                 f"--member={terminal_safe(member[:200])} --role={TOKEN_CREATOR_ROLE}"
                 + (" (and likewise along the chain)" if caller.delegates else "") + ".")
    elif status == 401:
        text = (f"{head}{said}. IAM refused the token of {whose} (expired or revoked). "
                "Fix: refresh the source credentials; for a user login, run "
                "`gcauth auth application-default login` again.")
    elif status == 404:
        text = (f"{head}{said}. The service account {target}"
                + (" or one of its delegates" if caller.delegates else "")
                + " does not exist. Fix: check the email.")
    elif retryable:
        text = f"{head}{said}. IAM reported a temporary failure; retries were exhausted."
    else:
        text = f"{head}{said}. Fix: see IAM's message."
    return RefreshError(text, error=status_name, error_description=message, status=status,
                        endpoint=endpoint, retryable=retryable,
                        retry_after=_retry_after(response))


def _retry_after(response: HttpResponse) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
                      r"([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(value: object) -> datetime | None:
    """An RFC 3339 timestamp (``2026-01-01T12:00:00Z``, fractional seconds and offsets
    allowed) as an aware UTC datetime, or ``None`` if it is not one."""
    if not isinstance(value, str):
        return None
    m = _RFC3339.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or ".0")[1:7].ljust(6, "0"))
    zone = m.group(8)
    offset = timedelta(0) if zone in ("Z", "z") else (
        (1 if zone[0] == "+" else -1) * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        moment = datetime(year, month, day, hour, minute, min(second, 59), micro,
                          tzinfo=timezone(offset))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc)


def _bad(endpoint: str, what: str) -> RefreshError:
    return RefreshError(
        f"IAM endpoint {endpoint} sent {what}; it was not used. Fix: check the IAM endpoint "
        "(iam_endpoint_override) points at the IAM Credentials API.", endpoint=endpoint)


def parse_access_token(data: Mapping[str, Any], endpoint: str) -> tuple[str, datetime]:
    """``(accessToken, expireTime)`` of a generateAccessToken reply."""
    token = data.get("accessToken")
    if not isinstance(token, str):
        raise _bad(endpoint, "a reply without accessToken")
    if not is_b64token(token):
        raise _bad(endpoint, "an accessToken that is not a valid bearer token (RFC 6750 "
                             "syntax: letters, digits and -._~+/ only, at most 16 KiB)")
    expiry = parse_rfc3339(data.get("expireTime"))
    if expiry is None:
        raise _bad(endpoint, "an expireTime that is not an RFC 3339 timestamp")
    return token, expiry


def parse_id_token_reply(data: Mapping[str, Any], endpoint: str) -> str:
    """The ``token`` of a generateIdToken reply (checked as a bearer token)."""
    token = data.get("token")
    if not isinstance(token, str):
        raise _bad(endpoint, "a reply without token")
    if not is_b64token(token) or token.count(".") != 2:
        raise _bad(endpoint, "a token that is not a JWT in bearer-token syntax")
    return token


def parse_sign_blob(data: Mapping[str, Any], endpoint: str) -> tuple[str | None, bytes]:
    """``(keyId, signature)`` of a signBlob reply."""
    blob = data.get("signedBlob")
    if not isinstance(blob, str):
        raise _bad(endpoint, "a reply without signedBlob")
    try:
        signature = base64.b64decode(blob.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise _bad(endpoint, "a signedBlob that is not base64") from None
    if not signature:
        raise _bad(endpoint, "an empty signedBlob")
    key_id = data.get("keyId")
    return (key_id if isinstance(key_id, str) else None), signature


def parse_sign_jwt(data: Mapping[str, Any], endpoint: str) -> tuple[str | None, str]:
    """``(keyId, signedJwt)`` of a signJwt reply."""
    signed = data.get("signedJwt")
    if not isinstance(signed, str):
        raise _bad(endpoint, "a reply without signedJwt")
    if not is_b64token(signed) or signed.count(".") != 2:
        raise _bad(endpoint, "a signedJwt that is not a JWT in bearer-token syntax")
    key_id = data.get("keyId")
    return (key_id if isinstance(key_id, str) else None), signed
