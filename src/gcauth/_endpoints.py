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

__all__ = ["AWS_METADATA_HOSTS", "DEFAULT_UNIVERSE_DOMAIN", "check_aws_endpoint", "check_endpoint",
           "check_google_service", "is_loopback_host"]

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


def _host_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower()


def check_google_service(
    url: object,
    service: str,
    *,
    field: str,
    source: str,
    universe_domain: str = DEFAULT_UNIVERSE_DOMAIN,
    allowed_hosts: Collection[str] = (),
) -> str:
    """Like :func:`check_endpoint`, but the host must be Google's ``service`` itself
    (``https://sts.googleapis.com``, a regional ``sts.<region>.rep.googleapis.com``, the same
    in another universe domain), loopback, or named in ``allowed_hosts``: what an
    ``external_account`` file's ``token_url`` (``sts``) and ``service_account_impersonation_url``
    (``iamcredentials``) may be. A file naming another Google API host there is refused too."""
    checked = check_endpoint(url, field=field, source=source,
                             allowed_hosts=(*allowed_hosts, *_universe_hosts(url, service,
                                                                             universe_domain)))
    scheme, host = _host_of(checked)
    if host in {h.lower() for h in allowed_hosts} or is_loopback_host(host):
        return checked
    if _is_service_host(host, service, DEFAULT_UNIVERSE_DOMAIN) or _is_service_host(
            host, service, universe_domain):
        return checked
    raise UnsafeEndpointError(
        f"{source}: field {field!r} points at {scheme}://{host}, which is not Google's "
        f"{service} endpoint (https://{service}.{universe_domain} or a regional "
        f"{service}.REGION.rep.{universe_domain}) nor loopback. A credential configuration "
        f"decides where gcauth sends tokens, so only those are accepted; if you trust this host, "
        f"pass allowed_hosts=[{host!r}] explicitly.", source=source, field=field)


def _is_service_host(host: str, service: str, domain: str) -> bool:
    if host == f"{service}.{domain}":
        return True
    suffix = f".rep.{domain}"
    if host.startswith(service + ".") and host.endswith(suffix):
        region = host[len(service) + 1:-len(suffix)]
        return bool(re.fullmatch(r"[a-z0-9-]{1,63}", region))
    return False


def _universe_hosts(url: object, service: str, universe_domain: str) -> tuple[str, ...]:
    """A non-default universe's own service host is as trusted as Google's public one."""
    if universe_domain == DEFAULT_UNIVERSE_DOMAIN or not isinstance(url, str):
        return ()
    try:
        scheme, host = _host_of(url)
    except ValueError:
        return ()
    return (host,) if scheme == "https" and _is_service_host(host, service,
                                                             universe_domain) else ()


#: AWS's instance metadata service, IPv4 and IPv6 (link-local, never routed).
AWS_METADATA_HOSTS = ("169.254.169.254", "fd00:ec2::254")


def check_aws_endpoint(
    url: object,
    *,
    field: str,
    source: str,
    allowed_hosts: Collection[str] = (),
) -> str:
    """An AWS URL of an ``external_account`` file (``region_url``, ``url``,
    ``imdsv2_session_token_url``, ``regional_cred_verification_url``): AWS's metadata
    service (``http://169.254.169.254``, ``http://[fd00:ec2::254]``), an ``https`` AWS host
    (``*.amazonaws.com``, ``*.amazonaws.com.cn``), loopback (the gcauth emulator, a local
    sidecar) or a host named in ``allowed_hosts``. ``{region}`` placeholders are allowed."""
    if not isinstance(url, str) or not url:
        raise UnsafeEndpointError(
            f"{source}: field {field!r} must be a URL string.", source=source, field=field)
    probe = url.replace("{region}", "region")
    try:
        parts = urlsplit(probe)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UnsafeEndpointError(
            f"{source}: field {field!r} is not a valid URL.", source=source, field=field) from None
    if not _AUTHORITY.fullmatch(parts.netloc) or not _SAFE_URL.fullmatch(probe) or \
            parts.scheme not in ("http", "https"):
        raise UnsafeEndpointError(
            f"{source}: field {field!r} must be a plain http(s) URL with an ASCII host name.",
            source=source, field=field)
    if host in {h.lower() for h in allowed_hosts} or is_loopback_host(host):
        return url
    if host in AWS_METADATA_HOSTS:
        return url
    if parts.scheme == "https" and host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return url
    raise UnsafeEndpointError(
        f"{source}: field {field!r} points at {parts.scheme}://{host}, which is neither AWS's "
        "instance metadata service (169.254.169.254, [fd00:ec2::254]), an AWS host "
        "(https://*.amazonaws.com) nor loopback. If you trust this host, pass "
        f"allowed_hosts=[{host!r}] explicitly.", source=source, field=field)
