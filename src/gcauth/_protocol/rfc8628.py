"""OAuth 2.0 Device Authorization Grant (RFC 8628) as sans-IO flows.

:func:`device_authorization_flow` asks for a device code and user code (§3.1, §3.2);
:func:`device_token_flow` polls the token endpoint (§3.4, §3.5) by yielding
:class:`~gcauth._http.Sleep` between polls, so a sync or an async driver can run it and
tests run it with no clock at all. Polling honours ``interval``, adds 5 seconds on
``slow_down``, keeps going on ``authorization_pending``, stops on ``access_denied`` and
``expired_token`` (or when ``expires_in`` has passed), and backs off exponentially on
connection failures (§3.5).

Google's endpoint sends ``verification_url`` where RFC 8628 says ``verification_uri``; both
are accepted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .._http import DEFAULT_TIMEOUT, Flow, HttpRequest, HttpResponse, Sleep
from .._json import loads as json_loads
from .._retry import NO_RETRY, RetryPolicy, with_retries
from ..exceptions import FlowError, RefreshError, TransportError
from .rfc6749 import TokenResponse, parse_error, token_exchange, token_request

__all__ = [
    "DEVICE_CODE_GRANT",
    "DeviceAuthorization",
    "device_authorization_flow",
    "device_authorization_request",
    "device_token_flow",
    "parse_device_authorization",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."
DEFAULT_INTERVAL = 5.0
#: RFC 8628 §3.5: on ``slow_down`` "the interval MUST be increased by 5 seconds".
SLOW_DOWN_STEP = 5.0
#: A device code lives minutes (Google: 30); longer values are capped, not trusted.
MAX_EXPIRES_IN = 24 * 3600.0
MAX_INTERVAL = 600.0
#: Consecutive connection failures tolerated while polling before giving up.
MAX_TRANSIENT_FAILURES = 5


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """The device authorization response (RFC 8628 §3.2). ``device_code`` is secret."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    expires_in: float
    interval: float = DEFAULT_INTERVAL
    verification_uri_complete: str | None = None


def device_authorization_request(
    uri: str,
    client_id: str,
    scopes: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> HttpRequest:
    """The POST that starts a device authorization (RFC 8628 §3.1)."""
    return token_request(uri, {"client_id": client_id, "scope": " ".join(scopes)},
                         timeout=timeout)


def parse_device_authorization(response: HttpResponse, endpoint: str) -> DeviceAuthorization:
    """Read the §3.2 response; an error reply (§3.2 refers to RFC 6749 §5.2) raises
    :class:`~gcauth.exceptions.RefreshError`, a malformed one :class:`FlowError`."""
    if not 200 <= response.status < 300:
        raise parse_error(response, endpoint, what="device authorization")
    try:
        data = json_loads(response.body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise FlowError(f"device authorization endpoint {endpoint} did not reply with a JSON "
                        "object. Fix: check the client's token_uri.")
    device_code = data.get("device_code")
    user_code = data.get("user_code")
    verification = data.get("verification_uri", data.get("verification_url"))
    missing = [name for name, value in (("device_code", device_code), ("user_code", user_code),
                                        ("verification_uri", verification))
               if not isinstance(value, str) or not value]
    if missing:
        raise FlowError(f"device authorization endpoint {endpoint} replied without "
                        f"{', '.join(missing)}.")
    assert isinstance(device_code, str) and isinstance(user_code, str)
    assert isinstance(verification, str)
    try:
        scheme = urlsplit(verification).scheme
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https"):
        raise FlowError(f"device authorization endpoint {endpoint} sent a verification URI that "
                        "is not an http(s) URL.")
    complete = data.get("verification_uri_complete", data.get("verification_url_complete"))
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=verification,
        expires_in=_bounded(_number(data.get("expires_in"), 1800.0), 1800.0, MAX_EXPIRES_IN),
        interval=_bounded(_number(data.get("interval"), DEFAULT_INTERVAL), DEFAULT_INTERVAL,
                          MAX_INTERVAL),
        verification_uri_complete=complete if isinstance(complete, str) else None,
    )


def _bounded(value: float, default: float, ceiling: float) -> float:
    """``value`` if it is a finite positive number (at most ``ceiling``), else ``default``."""
    if not math.isfinite(value) or value <= 0:
        return default
    return min(value, ceiling)


def _number(value: object, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return default
    try:
        return float(value)
    except (ValueError, OverflowError):
        return default


def device_authorization_flow(
    uri: str,
    client_id: str,
    scopes: Sequence[str],
    *,
    retry: RetryPolicy | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Flow[DeviceAuthorization]:
    """Flow: request a device code and user code (RFC 8628 §3.1), retrying transient errors."""
    request = device_authorization_request(uri, client_id, scopes, timeout=timeout)

    def attempt() -> Flow[DeviceAuthorization]:
        response = yield request
        assert response is not None
        return parse_device_authorization(response, request.endpoint)

    return with_retries(attempt, retry)


def device_token_flow(
    token_uri: str,
    authorization: DeviceAuthorization,
    client_id: str,
    client_secret: str | None,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    extra_params: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Flow[TokenResponse]:
    """Flow: poll the token endpoint until the user decides (RFC 8628 §3.4, §3.5).

    ``monotonic`` is the clock used to stop at ``expires_in``; the flow also counts the time
    it asked to sleep, so it stops even with a clock that never moves (unit tests).
    """
    params = {"grant_type": DEVICE_CODE_GRANT, "device_code": authorization.device_code,
              "client_id": client_id}
    if client_secret:
        params["client_secret"] = client_secret
    if extra_params:
        params.update(extra_params)
    started = monotonic()
    slept = 0.0
    interval = authorization.interval
    failures = 0

    def expired() -> FlowError:
        return FlowError(
            f"the device code expired after {authorization.expires_in:g} s before anyone "
            f"approved it at {authorization.verification_uri}. Fix: run the command again and "
            "enter the new code sooner.", error="expired_token")

    while True:
        wait = interval * (2 ** failures if failures else 1)
        elapsed = max(monotonic() - started, slept)
        if elapsed + wait > authorization.expires_in:
            raise expired()
        yield Sleep(wait)
        slept += wait
        try:
            return (yield from token_exchange(token_uri, params, retry=NO_RETRY,
                                              timeout=timeout))
        except TransportError as exc:
            failures += 1
            if failures > MAX_TRANSIENT_FAILURES:
                raise TransportError(
                    f"polling {exc.url or token_uri} failed {failures} times in a row: {exc}",
                    url=exc.url, timeout=exc.timeout) from None
            continue
        except RefreshError as exc:
            if exc.error == "authorization_pending":
                failures = 0
                continue
            if exc.error == "slow_down":
                failures = 0
                interval += SLOW_DOWN_STEP
                continue
            if exc.error == "expired_token":
                raise expired() from None
            if exc.error == "access_denied":
                raise FlowError(
                    "access was denied: the user (or an administrator) refused this device's "
                    "request. Fix: run the command again and choose Allow.",
                    error="access_denied") from None
            if exc.retryable:
                failures += 1
                if failures <= MAX_TRANSIENT_FAILURES:
                    continue
            raise
