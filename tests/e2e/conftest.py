"""Browser fixtures: Debian's headless Chromium driven by Playwright's Python package.

No browser is downloaded: Playwright launches ``/usr/bin/chromium`` (``apt-get install
chromium``). Without it the tests skip with the reason, except in CI (``CI=true``), where a
missing browser fails the run instead of hiding the tests.

**Nothing leaves the machine, the browser included.** Chromium phones home on its own
(component updates at update.googleapis.com, account checks at accounts.google.com), so it
is started so that it can resolve and reach nothing but loopback:

* ``--host-resolver-rules`` maps every host name except loopback ones to "not found":
  Chromium never asks the machine's DNS server anything;
* ``--proxy-server`` points at a loopback port where connections are refused (the suite's
  closed port), with loopback bypassing it: any request for another host goes there and
  fails on this machine;
* background networking, component updates, sync, QUIC and the like are switched off.

Two checks prove it, and fail the module's last test if not: every request a page makes is
seen by Playwright (non-loopback ones are aborted and reported), and Chromium's own network
log (``--log-net-log``, read when the browser closes) must show no DNS query, no system name
lookup and no connection to anything but loopback. The one exception is Chromium's IPv6
reachability probe, a UDP ``connect()`` to 2001:4860:4860::8888 that sends no packet (no
bytes sent on that socket, which the check verifies).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.kit.network import closed_loopback_port

CHROMIUM = "/usr/bin/chromium"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--disable-default-apps", "--disable-extensions", "--no-pings", "--dns-prefetch-disable",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--host-resolver-rules=MAP * ~NOTFOUND, " + ", ".join(f"EXCLUDE {name}"
                                                          for name in LOOPBACK_NAMES),
    f"--proxy-server=http://127.0.0.1:{closed_loopback_port()}",
    "--proxy-bypass-list=" + ";".join(LOOPBACK_NAMES),
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: end-to-end tests must run in CI)", pytrace=False)
    pytest.skip(reason)


def is_loopback_url(url: str) -> bool:
    """Whether a page request stays on this machine (``data:``/``about:`` never leave it)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "about", "blob", "chrome", "chrome-error"):
        return True
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_loopback_address(address: str) -> bool:
    """``127.0.0.1:9`` / ``[::1]:80`` as netlog writes socket addresses."""
    host = address.rpartition(":")[0].strip("[]") if ":" in address else address
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_netlog(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8", errors="replace").rstrip()
    try:
        data: dict[str, Any] = json.loads(text)
    except ValueError:  # a browser that did not close cleanly leaves the list open
        data = json.loads(text.rstrip(",") + "]}")
    return data


def netlog_findings(path: Path) -> list[str]:
    """Everything in Chromium's network log that reached past loopback (see the module
    docstring): DNS queries, system name lookups, and connections to other addresses, except
    a UDP socket that was connected but never sent a byte (the IPv6 reachability probe)."""
    data = _load_netlog(path)
    event_names = {number: name for name, number in data["constants"]["logEventTypes"].items()}
    source_names = {number: name for name, number in data["constants"]["logSourceType"].items()}
    udp_sent: set[int] = set()
    connects: list[tuple[int, str, str]] = []
    findings: list[str] = []
    for event in data.get("events", []):
        name = event_names.get(event.get("type"), "?")
        source = event.get("source", {})
        params = event.get("params") or {}
        if name in ("DNS_TRANSACTION", "DNS_TRANSACTION_QUERY", "HOST_RESOLVER_SYSTEM_TASK",
                    "HOST_RESOLVER_DNS_TASK") and params:
            findings.append(f"{name} {json.dumps(params)[:120]}")
        elif name == "UDP_BYTES_SENT":
            udp_sent.add(source.get("id", -1))
        elif name in ("SOCKET_CONNECT", "TCP_CONNECT") and "address" in params:
            connects.append((source.get("id", -1), source_names.get(source.get("type"), "?"),
                             str(params["address"])))
        elif name == "TCP_CONNECT" and "address_list" in params:
            connects += [(source.get("id", -1), "TCP", str(a)) for a in params["address_list"]]
    for source_id, kind, address in connects:
        if _is_loopback_address(address):
            continue
        if kind.startswith("UDP") and source_id not in udp_sent:
            continue  # connected, never used: Chromium's IPv6 reachability probe
        findings.append(f"connect to {address} ({kind})")
    return findings


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium per test module (module scope keeps Playwright's event loop
    from outliving the browser tests), checked afterwards for traffic past loopback."""
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed (pip install -e .[dev])")
    netlog = tmp_path_factory.mktemp("netlog") / "netlog.json"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*ARGS, f"--log-net-log={netlog}"], headless=True)
        try:
            yield browser
        finally:
            browser.close()
    findings = netlog_findings(netlog)
    assert not findings, "the browser reached past loopback:\n" + "\n".join(findings[:20])


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A page in a fresh context. Every request it makes is checked: one for a host that is
    not loopback is aborted and fails the test."""
    context = chromium.new_context()
    context.set_default_timeout(15_000)
    outside: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if is_loopback_url(url):
            route.continue_()
        else:
            outside.append(url)
            route.abort("addressunreachable")

    context.route("**/*", guard)
    try:
        yield context.new_page()
    finally:
        context.close()
    assert not outside, f"the page asked for hosts that are not loopback: {outside[:5]}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``test-artifacts/`` at the repository root (git-ignored): screenshots for humans."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
