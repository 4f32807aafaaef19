"""The Compute Engine metadata server: where it is, how to ask it, how to read its replies.

Environment (read at call time, never at import): ``GCE_METADATA_HOST`` (host[:port] of the
server), ``GCE_METADATA_IP`` (address used for the detection ping), ``NO_GCE_CHECK`` (skip
detection, treat as "not on GCE"), ``GCE_METADATA_TIMEOUT`` (probe timeout, seconds).
Without overrides the link-local IP is used, so detection never waits on DNS.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from .._http import Flow, HttpRequest, HttpResponse
from .._json import loads as json_loads
from .._retry import RetryPolicy, with_retries
from ..exceptions import RefreshError, TransportError
from ..tokens import Token
from .rfc6749 import seconds_value

__all__ = [
    "DEFAULT_IP",
    "DMI_PRODUCT_NAME",
    "Residency",
    "detect_residency",
    "metadata_host",
    "ping_flow",
    "ping_host",
]

DEFAULT_IP = "169.254.169.254"
DMI_PRODUCT_NAME = "/sys/class/dmi/id/product_name"
FLAVOR_HEADER = {"Metadata-Flavor": "Google"}
#: Probe timeout when nothing says we are on Google Cloud (seconds).
PROBE_TIMEOUT = 0.5
#: Probe timeout when the machine says it is a Google VM.
ON_GCE_PROBE_TIMEOUT = 3.0
#: Serverless platforms that have a metadata server but no DMI.
_SERVERLESS_VARS = ("K_SERVICE", "FUNCTION_TARGET", "GAE_APPLICATION", "CLOUD_RUN_JOB")

_RETRY = RetryPolicy(max_attempts=3, initial=0.1, cap=1.0, deadline=3.0)

Environ = Mapping[str, str]


def _env(environ: Environ | None) -> Environ:
    return os.environ if environ is None else environ


def metadata_host(environ: Environ | None = None) -> str:
    env = _env(environ)
    return env.get("GCE_METADATA_HOST") or env.get("GCE_METADATA_IP") or DEFAULT_IP


def ping_host(environ: Environ | None = None) -> str:
    env = _env(environ)
    return env.get("GCE_METADATA_IP") or env.get("GCE_METADATA_HOST") or DEFAULT_IP


def overridden(environ: Environ | None = None) -> bool:
    env = _env(environ)
    return bool(env.get("GCE_METADATA_HOST") or env.get("GCE_METADATA_IP"))


def check_disabled(environ: Environ | None = None) -> bool:
    """``NO_GCE_CHECK`` set to a true value: never probe the metadata server."""
    return _env(environ).get("NO_GCE_CHECK", "").strip().lower() in ("1", "true", "yes", "on")


def probe_timeout(default: float, environ: Environ | None = None) -> float:
    raw = _env(environ).get("GCE_METADATA_TIMEOUT")
    if raw:
        try:
            return max(0.01, float(raw))
        except ValueError:
            pass
    return default


class Residency:
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


def detect_residency(
    environ: Environ | None = None, dmi_path: str = DMI_PRODUCT_NAME, platform: str | None = None
) -> tuple[str, str]:
    """Decide from local evidence alone whether this may be Google Cloud: ``(residency, why)``.

    On Linux the DMI product name of a Compute Engine VM (and of every GKE node) starts with
    "Google"; any other product name means no metadata server, so no network probe is needed.
    """
    env = _env(environ)
    for name in _SERVERLESS_VARS:
        if env.get(name):
            return Residency.ON, f"{name} is set (Google serverless runtime)"
    if (platform or sys.platform).startswith("linux"):
        try:
            with open(dmi_path, encoding="utf-8", errors="replace") as handle:
                product = handle.read(256).strip()
        except OSError:
            return Residency.UNKNOWN, f"{dmi_path} is not readable"
        if product.startswith("Google"):
            return Residency.ON, f"DMI product name is {product!r}"
        return Residency.OFF, f"DMI product name is {product!r}, not a Google VM"
    return Residency.UNKNOWN, "no local evidence on this platform"


def base_url(environ: Environ | None = None) -> str:
    return f"http://{metadata_host(environ)}/computeMetadata/v1/"


def get_request(path: str, *, params: Mapping[str, str] | None = None,
                timeout: float = ON_GCE_PROBE_TIMEOUT, environ: Environ | None = None,
                ) -> HttpRequest:
    url = base_url(environ) + path.lstrip("/")
    if params:
        url += "?" + urlencode(params)
    return HttpRequest("GET", url, FLAVOR_HEADER, None, timeout)


def ping_flow(timeout: float, environ: Environ | None = None, attempts: int = 1) -> Flow[bool]:
    """Flow: is a metadata server answering at :func:`ping_host`? Never raises."""
    request = HttpRequest("GET", f"http://{ping_host(environ)}/", FLAVOR_HEADER, None, timeout)
    for _ in range(max(1, attempts)):
        try:
            response = yield request
        except TransportError:
            continue
        assert response is not None
        return response.headers.get("metadata-flavor") == "Google"
    return False


def _check(response: HttpResponse, endpoint: str) -> None:
    if response.headers.get("metadata-flavor") != "Google":
        raise RefreshError(
            f"{endpoint} replied without the 'Metadata-Flavor: Google' header: it is not a "
            "metadata server. Fix: check GCE_METADATA_HOST / GCE_METADATA_IP.",
            status=response.status, endpoint=endpoint)
    status = response.status
    if status == 200:
        return
    retryable = status in (429, 500, 502, 503, 504)
    if status == 404:
        hint = ("the path does not exist: is the service account attached to this VM "
                "and the name right?")
    elif status == 403:
        hint = ("the metadata server refused the request: check the VM's service account "
                "and access scopes")
    else:
        hint = "the metadata server reported a failure; retries were exhausted"
    raise RefreshError(
        f"metadata server {endpoint} replied HTTP {status}. Fix: {hint}.",
        status=status, endpoint=endpoint, retryable=retryable)


def fetch_flow(path: str, *, params: Mapping[str, str] | None = None, timeout: float = 3.0,
               retry: RetryPolicy | None = None, environ: Environ | None = None) -> Flow[bytes]:
    """Flow: GET a metadata path (checked, retried), returning the body."""
    request = get_request(path, params=params, timeout=timeout, environ=environ)

    def attempt() -> Flow[bytes]:
        response = yield request
        assert response is not None
        _check(response, request.endpoint)
        return response.body

    return with_retries(attempt, retry or _RETRY)


def _json(body: bytes, endpoint: str) -> dict[str, Any]:
    try:
        data = json_loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RefreshError(f"metadata server {endpoint} sent a reply that is not JSON.",
                           endpoint=endpoint, retryable=True) from None
    if not isinstance(data, dict):
        raise RefreshError(f"metadata server {endpoint} sent JSON that is not an object.",
                           endpoint=endpoint)
    return data


def token_flow(account: str, scopes: Sequence[str] | None, now: datetime, *,
               timeout: float = 3.0, retry: RetryPolicy | None = None) -> Flow[Token]:
    """Flow: an access token for ``account`` from the metadata server."""
    path = f"instance/service-accounts/{account}/token"
    params = {"scopes": ",".join(scopes)} if scopes else None
    request = get_request(path, params=params, timeout=timeout)

    def attempt() -> Flow[Token]:
        response = yield request
        assert response is not None
        _check(response, request.endpoint)
        data = _json(response.body, request.endpoint)
        access_token = data.get("access_token")
        expires_in = seconds_value(data.get("expires_in"))
        if not isinstance(access_token, str) or expires_in is None:
            raise RefreshError(
                f"metadata server {request.endpoint} sent a token reply without access_token "
                "or expires_in.", endpoint=request.endpoint, retryable=True)
        from datetime import timedelta

        return Token(access_token, expiry=now + timedelta(seconds=expires_in),
                     scopes=tuple(scopes) if scopes else None, issued_at=now)

    return with_retries(attempt, retry or _RETRY)


def info_flow(account: str, *, timeout: float = 3.0) -> Flow[dict[str, Any]]:
    """Flow: ``{"email", "scopes", "aliases"}`` of a VM service account."""
    body = yield from fetch_flow(f"instance/service-accounts/{account}/",
                                 params={"recursive": "true"}, timeout=timeout)
    return _json(body, base_url() + f"instance/service-accounts/{account}/")


def project_id_flow(*, timeout: float = 3.0) -> Flow[str]:
    body = yield from fetch_flow("project/project-id", timeout=timeout)
    return body.decode("utf-8", "replace").strip()
