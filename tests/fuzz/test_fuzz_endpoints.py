"""Endpoint URLs fuzzed: ``check_endpoint`` raises only UnsafeEndpointError, and every URL it
accepts is parsed to a Google or loopback host by *each* HTTP client gcauth sends with (a
parser differential here would send secrets to a stranger)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
import urllib3.util
import yarl
from hypothesis import example, given
from hypothesis import strategies as st

from gcauth._endpoints import _is_google, check_endpoint, is_loopback_host
from gcauth.exceptions import UnsafeEndpointError
from gcauth.transport import urllib3 as gc_urllib3
from tests.kit.creds import user_info

from .strategies import FUZZ

GOOD = ["oauth2.googleapis.com", "accounts.google.com", "x.googleapis.com", "127.0.0.1",
        "localhost", "[::1]", "www.googleapis.com"]
BAD = ["evil.example", "evil.com", "10.0.0.1", "[fe80::1]", "googleapis.com", "google.com"]
SPECIAL = ["\\", "@", "#", "?", "/", ":", ";", ".", "%2f", "%40", "%5c", "%00", "\t", "\n",
           " ", "\u3002", "\uff0e", "\uff0f", "\u2044", "\ufe6b", "\u0130", "\x00", "[", "]",
           "*", "&", "=", "..", "%", "\u200b"]


@st.composite
def endpoint_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["https", "http", "HTTPS", "ftp", ""]))
    pieces = draw(st.lists(st.sampled_from(GOOD + BAD + SPECIAL) | st.text(max_size=4),
                           min_size=1, max_size=5))
    port = draw(st.sampled_from(["", ":443", ":8080", ":0", ":x", ":99999"]))
    path = draw(st.sampled_from(["/token", "", "/", "/revoke?x=1", "#frag"]))
    sep = draw(st.sampled_from(["://", ":/", ":\\\\", "://"]))
    return f"{scheme}{sep}{''.join(pieces)}{port}{path}"


def _safe(host: str | None) -> bool:
    if not host:
        return True  # no host: no connection anywhere
    host = host.lower().strip("[]")
    return _is_google(host) or is_loopback_host(host)


PARSERS: dict[str, Callable[[str], str | None]] = {
    "urllib3 (urllib3 and requests transports)": lambda url: urllib3.util.parse_url(url).host,
    "httpx": lambda url: httpx.URL(url).host,
    "yarl (aiohttp transport)": lambda url: yarl.URL(url).host,
}


@FUZZ
@given(endpoint_urls() | st.text(max_size=60))
@example("https://evil.example\\.googleapis.com/token")
@example("https://evil.example\\@oauth2.googleapis.com/token")
@example("https://evil.example%2f.googleapis.com/token")
@example("https://evil.example\u3002googleapis.com/token")
def test_accepted_endpoints_reach_only_google_or_loopback(url: str) -> None:
    try:
        check_endpoint(url, field="token_uri", source="fuzz")
    except UnsafeEndpointError:
        return
    assert _safe(urlsplit(url).hostname)
    for name, parse in PARSERS.items():
        try:
            host = parse(url)
        except Exception:  # noqa: BLE001 - a client that cannot parse it connects nowhere
            continue
        assert _safe(host), f"{name} would connect to {host!r} for accepted {url!r}"


@FUZZ
@given(st.text(max_size=40), st.lists(st.text(max_size=10), max_size=2))
def test_allowed_hosts_accepts_only_the_named_hosts(url: str, allowed: list[str]) -> None:
    try:
        check_endpoint(url, field="token_uri", source="fuzz", allowed_hosts=allowed)
    except UnsafeEndpointError:
        return
    host = (urlsplit(url).hostname or "").lower()
    assert _safe(host) or host in {h.lower() for h in allowed}


class _RecordingPool(urllib3.PoolManager):
    """Records the host urllib3 would open a connection to, and opens none."""

    def __init__(self) -> None:
        super().__init__()
        self.hosts: list[str | None] = []

    def connection_from_host(self, host, port=None, scheme="http", pool_kwargs=None):  # type: ignore[no-untyped-def]
        self.hosts.append(host)
        raise urllib3.exceptions.NewConnectionError(None, "recorded, not connected")  # type: ignore[arg-type]


@pytest.mark.parametrize("token_uri", [
    "https://evil.example\\.googleapis.com/token",
    "https://evil.example\\oauth2.googleapis.com",
])
def test_refresh_token_is_never_sent_to_a_disguised_host(token_uri: str) -> None:
    """End to end with the default transport: a token_uri that *looks* like Google's but that
    urllib3 resolves to another host must be refused at load, before any connection."""
    from gcauth import authorized_user
    from gcauth.exceptions import GCAuthError

    pool = _RecordingPool()
    try:
        creds = authorized_user.Credentials.from_authorized_user_info(
            user_info(token_uri=token_uri))
        creds.get_token(gc_urllib3.Request(pool))
    except GCAuthError:
        pass
    assert all(_safe(host) for host in pool.hosts), f"refresh token sent to {pool.hosts}"
