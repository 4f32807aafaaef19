"""The Compute Engine metadata server protocol: paths, requests and replies (pure).

Every function takes the server's ``host`` (``host[:port]``); nothing here reads the
environment, a file or a clock. *Where* the server is and *whether* to probe it is decided in
:mod:`gcauth.compute_engine` (``detect_metadata_server``), the one place that reads
``GCE_METADATA_HOST``, ``GCE_METADATA_IP``, ``NO_GCE_CHECK``, ``GCE_METADATA_TIMEOUT`` and the
machine's DMI product name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from .._checks import is_b64token, is_header_id
from .._http import Flow, HttpRequest, HttpResponse
from .._json import loads as json_loads
from .._retry import RetryPolicy, with_retries
from ..exceptions import RefreshError, TransportError
from .rfc6749 import TokenResponse, seconds_value

__all__ = [
    "DEFAULT_IP",
    "FLAVOR_HEADER",
    "Residency",
    "fetch_flow",
    "identity_flow",
    "info_flow",
    "ping_flow",
    "project_id_flow",
    "residency_from_product_name",
    "token_flow",
]

#: The link-local address: never the ``metadata.google.internal`` name, so no DNS wait.
DEFAULT_IP = "169.254.169.254"
FLAVOR_HEADER = {"Metadata-Flavor": "Google"}
#: Probe timeout when nothing says we are on Google Cloud (seconds).
PROBE_TIMEOUT = 0.5
#: Probe timeout when the machine says it is a Google VM.
ON_GCE_PROBE_TIMEOUT = 3.0
#: Probe attempts when the machine says it is a Google VM (one otherwise).
ON_GCE_PROBE_ATTEMPTS = 3

_RETRY = RetryPolicy(max_attempts=3, initial=0.1, cap=1.0, deadline=3.0)


class Residency:
    """What local evidence says about running on Google Cloud."""

    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


def residency_from_product_name(product: str) -> tuple[str, str]:
    """Decide from a Linux DMI product name: ``(residency, why)``.

    A Compute Engine VM (and every GKE node) has a product name starting with "Google"; any
    other product name means there is no metadata server, so no network probe is needed.
    """
    product = product.strip()
    if product.startswith("Google"):
        return Residency.ON, f"DMI product name is {product!r}"
    return Residency.OFF, f"DMI product name is {product!r}, not a Google VM"


def base_url(host: str) -> str:
    return f"http://{host}/computeMetadata/v1/"


def get_request(host: str, path: str, *, params: Mapping[str, str] | None = None,
                timeout: float = ON_GCE_PROBE_TIMEOUT) -> HttpRequest:
    url = base_url(host) + path.lstrip("/")
    if params:
        url += "?" + urlencode(params)
    return HttpRequest("GET", url, FLAVOR_HEADER, None, timeout)


def ping_flow(host: str, timeout: float, attempts: int = 1) -> Flow[bool]:
    """Flow: is a metadata server answering at ``host``? Never raises."""
    request = HttpRequest("GET", f"http://{host}/", FLAVOR_HEADER, None, timeout)
    for _ in range(max(1, attempts)):
        try:
            response = yield request
        except TransportError:
            continue
        assert response is not None
        return response.headers.get("metadata-flavor") == "Google"
    return False


def check(response: HttpResponse, endpoint: str) -> None:
    """Raise a :class:`RefreshError` unless ``response`` is a metadata server's 200."""
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


def fetch_flow(host: str, path: str, *, params: Mapping[str, str] | None = None,
               timeout: float = 3.0, retry: RetryPolicy | None = None) -> Flow[bytes]:
    """Flow: GET a metadata path (checked, retried), returning the body."""
    request = get_request(host, path, params=params, timeout=timeout)

    def attempt() -> Flow[bytes]:
        response = yield request
        assert response is not None
        check(response, request.endpoint)
        return response.body

    return with_retries(attempt, retry or _RETRY)


def parse_json(body: bytes, endpoint: str) -> dict[str, Any]:
    try:
        data = json_loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RefreshError(f"metadata server {endpoint} sent a reply that is not JSON.",
                           endpoint=endpoint, retryable=True) from None
    if not isinstance(data, dict):
        raise RefreshError(f"metadata server {endpoint} sent JSON that is not an object.",
                           endpoint=endpoint)
    return data


def token_flow(host: str, account: str, scopes: Sequence[str] | None, *,
               timeout: float = 3.0, retry: RetryPolicy | None = None) -> Flow[TokenResponse]:
    """Flow: an access token for ``account`` from the metadata server."""
    path = f"instance/service-accounts/{account}/token"
    params = {"scopes": ",".join(scopes)} if scopes else None
    request = get_request(host, path, params=params, timeout=timeout)

    def attempt() -> Flow[TokenResponse]:
        response = yield request
        assert response is not None
        check(response, request.endpoint)
        data = parse_json(response.body, request.endpoint)
        access_token = data.get("access_token")
        expires_in = seconds_value(data.get("expires_in"))
        if not isinstance(access_token, str) or expires_in is None:
            raise RefreshError(
                f"metadata server {request.endpoint} sent a token reply without access_token "
                "or expires_in.", endpoint=request.endpoint, retryable=True)
        if not is_b64token(access_token):
            raise RefreshError(
                f"metadata server {request.endpoint} sent an access_token that is not a valid "
                "bearer token (RFC 6750 syntax); it was not used. Fix: check GCE_METADATA_HOST "
                "points at a metadata server.", endpoint=request.endpoint)
        return TokenResponse(
            access_token=access_token, expires_in=expires_in, token_type="Bearer",
            refresh_token=None, scope=tuple(scopes) if scopes else None, id_token=None,
            raw=data)

    return with_retries(attempt, retry or _RETRY)


def identity_flow(host: str, account: str, audience: str, *, full: bool = True,
                  timeout: float = 3.0, retry: RetryPolicy | None = None) -> Flow[str]:
    """Flow: an ID token for ``audience`` from the metadata server's identity endpoint
    (``format=full`` adds the instance's details), checked as a bearer token."""
    path = f"instance/service-accounts/{account}/identity"
    params = {"audience": audience, "format": "full" if full else "standard"}
    request = get_request(host, path, params=params, timeout=timeout)

    def attempt() -> Flow[str]:
        response = yield request
        assert response is not None
        check(response, request.endpoint)
        token = response.body.decode("ascii", "replace").strip()
        if not is_b64token(token) or token.count(".") != 2:
            raise RefreshError(
                f"metadata server {request.endpoint} sent an identity token that is not a JWT "
                "in bearer-token syntax; it was not used. Fix: check GCE_METADATA_HOST points "
                "at a metadata server.", endpoint=request.endpoint)
        return token

    return with_retries(attempt, retry or _RETRY)


def info_flow(host: str, account: str, *, timeout: float = 3.0) -> Flow[dict[str, Any]]:
    """Flow: ``{"email", "scopes", "aliases"}`` of a VM service account."""
    path = f"instance/service-accounts/{account}/"
    body = yield from fetch_flow(host, path, params={"recursive": "true"}, timeout=timeout)
    return parse_json(body, base_url(host) + path)


def project_id_flow(host: str, *, timeout: float = 3.0) -> Flow[str]:
    body = yield from fetch_flow(host, "project/project-id", timeout=timeout)
    project = body.decode("utf-8", "replace").strip()
    if not is_header_id(project):
        raise RefreshError(
            f"metadata server {base_url(host)}project/project-id sent a project id that is not "
            "one (letters, digits and -._: only, at most 128 characters); it was not used.",
            endpoint=base_url(host) + "project/project-id")
    return project
