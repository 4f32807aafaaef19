"""The test browser reaches nothing but loopback (issue 13, item 15): the launch flags make
other hosts unresolvable and unreachable, and the harness's two checks (page requests, the
network log) catch anything that gets past them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import is_loopback_url, netlog_findings

pytestmark = pytest.mark.e2e


def test_the_browser_cannot_resolve_or_reach_other_hosts(chromium: Any,
                                                         emulator: Any) -> None:
    """Without the page guard, straight at the launch flags: a page for a Google host fails
    inside Chromium, and the emulator on loopback still works. The module's network-log
    check then proves no DNS query or outside connection happened meanwhile."""
    from playwright.sync_api import Error

    context = chromium.new_context()
    try:
        for url in (f"{emulator.url}/ping", f"http://localhost:{emulator.port}/ping"):
            reply = context.new_page().goto(url)
            assert reply is not None and reply.status == 200
        for url in ("https://accounts.google.com/", "http://update.googleapis.com/x",
                    "http://93.184.215.14/"):
            with pytest.raises(Error) as info:
                context.new_page().goto(url, timeout=10_000)
            assert "ERR_" in str(info.value)
    finally:
        context.close()


def test_the_page_guard_aborts_and_reports_outside_requests(page: Any, emulator: Any) -> None:
    page.goto(f"{emulator.url}/ping")
    assert page.evaluate("() => fetch('/ping').then(r => r.status)") == 200
    assert is_loopback_url(f"{emulator.url}/ping") and is_loopback_url("http://[::1]:5/")
    assert is_loopback_url("http://localhost:9/") and is_loopback_url("data:text/plain,x")
    assert not is_loopback_url("https://accounts.google.com/")
    assert not is_loopback_url("http://127.0.0.1.evil.example/")


def _netlog(tmp_path: Path, events: list[dict[str, Any]]) -> Path:
    path = tmp_path / "netlog.json"
    types = {"DNS_TRANSACTION": 1, "TCP_CONNECT": 2, "SOCKET_CONNECT": 3, "UDP_BYTES_SENT": 4,
             "HOST_RESOLVER_SYSTEM_TASK": 5, "URL_REQUEST_START_JOB": 6}
    sources = {"UDP_CLIENT_SOCKET": 1, "SOCKET": 2, "DNS_TRANSACTION": 3}
    body = {"constants": {"logEventTypes": types, "logSourceType": sources}, "events": [
        {"type": types[e["type"]], "source": {"id": e.get("id", 0),
                                              "type": sources[e.get("source", "SOCKET")]},
         "params": e.get("params", {})} for e in events]}
    # written the way a browser that was killed leaves it: the event list not closed
    path.write_text(json.dumps(body)[:-2] + ",")
    return path


def test_the_network_log_check_finds_what_got_out(tmp_path: Path) -> None:
    clean = _netlog(tmp_path, [
        {"type": "TCP_CONNECT", "params": {"address_list": ["127.0.0.1:8080", "[::1]:8080"]}},
        {"type": "SOCKET_CONNECT", "id": 7, "source": "UDP_CLIENT_SOCKET",
         "params": {"address": "[2001:4860:4860::8888]:443"}},  # the probe: never sends
        {"type": "URL_REQUEST_START_JOB", "params": {"url": "https://update.googleapis.com/"}},
    ])
    assert netlog_findings(clean) == []
    dirty = _netlog(tmp_path, [
        {"type": "DNS_TRANSACTION", "source": "DNS_TRANSACTION",
         "params": {"hostname": "accounts.google.com"}},
        {"type": "TCP_CONNECT", "params": {"address_list": ["142.250.1.1:443"]}},
        {"type": "SOCKET_CONNECT", "id": 8, "source": "UDP_CLIENT_SOCKET",
         "params": {"address": "10.0.0.53:53"}},
        {"type": "UDP_BYTES_SENT", "id": 8, "source": "UDP_CLIENT_SOCKET",
         "params": {"byte_count": 40}},
        {"type": "HOST_RESOLVER_SYSTEM_TASK", "params": {"os_error": -2}},
    ])
    findings = netlog_findings(dirty)
    assert len(findings) == 4, findings
    assert any("accounts.google.com" in f for f in findings)
    assert "connect to 142.250.1.1:443 (TCP)" in findings
    assert "connect to 10.0.0.53:53 (UDP_CLIENT_SOCKET)" in findings
