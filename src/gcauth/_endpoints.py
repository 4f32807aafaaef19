"""Which endpoints a credential may send secrets to.

A credential file decides where its refresh token or signed assertion goes, so its
``token_uri`` (and ``auth_uri``, ``revoke_uri``...) must be Google's own (``https`` on
``*.googleapis.com`` or ``accounts.google.com``) or loopback ``http``/``https`` (the gcauth
emulator). Anything else is refused before any connection unless the caller names the host
in ``allowed_hosts``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from urllib.parse import urlsplit

from .exceptions import UnsafeEndpointError

__all__ = ["DEFAULT_UNIVERSE_DOMAIN", "check_endpoint", "is_loopback_host"]

#: Google's public universe: the domain under which its API hosts live.
DEFAULT_UNIVERSE_DOMAIN = "googleapis.com"

_AUTHORITY = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?")
_SAFE_URL = re.compile(r"[\x21-\x7e]+")
_GOOGLE_HOSTS = ("accounts.google.com", "oauth2.googleapis.com", "www.googleapis.com")


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_google(host: str) -> bool:
    return host in _GOOGLE_HOSTS or host.endswith("." + DEFAULT_UNIVERSE_DOMAIN)


def check_endpoint(
    url: object,
    *,
    field: str,
    source: str,
    allowed_hosts: Collection[str] = (),
) -> str:
    """Return ``url`` if gcauth may send credentials there, else raise UnsafeEndpointError."""
    if not isinstance(url, str) or not url:
        raise UnsafeEndpointError(
            f"{source}: field {field!r} must be a URL string.", source=source, field=field)
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UnsafeEndpointError(
            f"{source}: field {field!r} is not a valid URL.", source=source, field=field) from None
    # Only a plain ASCII host[:port] authority: HTTP clients disagree about backslashes,
    # percent-escapes, user info and Unicode dots, and a disagreement is a way to smuggle a host.
    if not _AUTHORITY.fullmatch(parts.netloc) or not _SAFE_URL.fullmatch(url):
        raise UnsafeEndpointError(
            f"{source}: field {field!r} must be a plain http(s) URL with an ASCII host name "
            "(no user info, backslashes, escapes or spaces in the host).",
            source=source, field=field)
    if host in {h.lower() for h in allowed_hosts} and parts.scheme in ("https", "http"):
        return url
    if parts.scheme == "https" and _is_google(host):
        return url
    if parts.scheme in ("http", "https") and is_loopback_host(host):
        return url
    raise UnsafeEndpointError(
        f"{source}: field {field!r} points at {parts.scheme}://{host or '?'}, which is neither a "
        "Google endpoint (https://*.googleapis.com, https://accounts.google.com) nor loopback. "
        "gcauth will not send credentials there. If you trust this host, pass "
        f"allowed_hosts=[{host!r}] explicitly.", source=source, field=field)
