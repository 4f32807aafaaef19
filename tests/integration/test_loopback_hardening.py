"""The loopback redirect server of the installed-app flow under hostile or clumsy clients
(issue 5, part 6): bound to loopback only; a second request, a wrong ``state``, a missing
code, another path or a slow-loris connection neither break nor hang it; a code is
accepted once."""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from gcauth._loopback import Page, RedirectServer
from gcauth.emulator import Emulator
from gcauth.exceptions import FlowError, GCAuthError
from gcauth.flow import InstalledAppFlow
from gcauth.transport import urllib3 as gc_urllib3

CLOUD = "https://www.googleapis.com/auth/cloud-platform"


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        reply = conn.getresponse()
        return reply.status, reply.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.fixture
def server() -> Iterator[RedirectServer]:
    with RedirectServer(connection_timeout=1.0) as srv:
        yield srv


# -- where it listens ----------------------------------------------------------------------
@pytest.mark.parametrize("bind_addr", ["0.0.0.0", "::", "192.0.2.1", "localhost", "example.com",
                                       ""])
def test_refuses_to_bind_anything_but_a_loopback_literal(bind_addr: str) -> None:
    with pytest.raises(FlowError, match="loopback"):
        RedirectServer(bind_addr=bind_addr)


@pytest.mark.parametrize("host", ["example.com", "0.0.0.0", "10.0.0.1", "localhost.evil.com"])
def test_refuses_a_non_loopback_redirect_host(host: str) -> None:
    with pytest.raises(FlowError, match="loopback"):
        RedirectServer(host=host)


def test_listens_on_loopback_only(server: RedirectServer) -> None:
    listening = server._server.socket.getsockname()
    assert listening[0] == "127.0.0.1"
    assert server.redirect_uri == f"http://localhost:{server.port}/"


def test_ipv6_loopback() -> None:
    try:
        srv = RedirectServer(bind_addr="::1", host="::1")
    except FlowError:
        pytest.skip("no IPv6 loopback here")
    with srv:
        assert srv._server.socket.getsockname()[0] == "::1"
        assert srv.redirect_uri.startswith("http://[::1]:")


# -- what it does with odd requests --------------------------------------------------------
def test_other_paths_get_404_and_change_nothing(server: RedirectServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    for path in ("/favicon.ico", "/../etc/passwd", "//evil", "/callback", "/%2e%2e/"):
        status, _ = get(base + path)
        assert status in (404, 400), path
    assert server.next_redirect(0.2) is None


def test_malformed_request_lines_do_not_break_it(server: RedirectServer) -> None:
    for raw in (b"GET http://[::1 HTTP/1.0\r\n\r\n", b"\x00\xff garbage\r\n\r\n",
                b"GET / HTTP/9.9\r\n\r\n", b"POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\nabcde",
                b"GET /" + b"a" * 70000 + b" HTTP/1.0\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(raw)
            try:
                sock.recv(65536)
            except OSError:
                pass
    ok: list[Any] = []
    thread = threading.Thread(target=lambda: ok.append(get(
        f"http://127.0.0.1:{server.port}/?code=c&state=s")))
    thread.start()
    redirect = server.next_redirect(5)
    assert redirect is not None and "code=c" in redirect.query
    redirect.respond(Page(200, "Signed in", "ok", ok=True))
    thread.join(5)
    assert ok and ok[0][0] == 200


def test_slow_loris_does_not_block_the_real_redirect(server: RedirectServer) -> None:
    port = server.port
    slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    for sock in slow:
        sock.sendall(b"GET /?code=")  # never finishes the request line
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)  # sends nothing at all
    results: list[Any] = []
    started = time.monotonic()
    thread = threading.Thread(target=lambda: results.append(
        get(f"http://127.0.0.1:{port}/?code=real&state=s")))
    thread.start()
    redirect = server.next_redirect(5)
    assert redirect is not None and "code=real" in redirect.query
    assert time.monotonic() - started < 3  # not queued behind the slow clients
    redirect.respond(Page(200, "Signed in", "ok", ok=True))
    thread.join(5)
    assert results and results[0][0] == 200
    # the slow connections are dropped after connection_timeout (1 s here), not kept forever
    for sock in [*slow, idle]:
        sock.settimeout(5)
        try:
            data = sock.recv(1024)
        except OSError:
            data = b""
        assert data == b"" or data.startswith(b"HTTP/")
        sock.close()


# -- the whole flow, with the emulator's consent page as the browser ----------------------
class Browser:
    """Follows the authorization URL through the emulator's consent page to the redirect."""

    def __init__(self, emu: Emulator):
        self.emu = emu
        self.redirect: str | None = None
        self.before: list[str] = []  # URLs to hit on the loopback server first
        self.statuses: dict[str, int] = {}

    def __call__(self, url: str) -> bool:
        threading.Thread(target=self._run, args=(url,), daemon=True).start()
        return True

    def _run(self, url: str) -> None:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        conn.request("GET", f"{parts.path}?{parts.query}")
        page = conn.getresponse().read().decode()
        pending = re.search(r'name="pending" value="([^"]+)"', page)
        assert pending, page
        body = urlencode({"pending": pending.group(1), "decision": "allow",
                          "account": "alice@example.com"})
        conn.request("POST", "/o/oauth2/approve", body,
                     {"Content-Type": "application/x-www-form-urlencoded"})
        reply = conn.getresponse()
        reply.read()
        conn.close()
        self.redirect = reply.getheader("Location")
        assert self.redirect is not None
        loopback = self.redirect.replace("localhost", "127.0.0.1", 1)
        base = loopback.split("?", 1)[0]
        for extra in self.before:
            self.statuses[extra] = get(base + extra)[0]
        self.statuses["genuine"] = get(loopback)[0]
        try:  # after the login the server answers "ended", or is gone already
            self.statuses["replay"] = get(loopback, timeout=5)[0]
        except OSError:
            self.statuses["replay"] = 0


@pytest.fixture
def client(emulator: Emulator) -> dict[str, Any]:
    return emulator.create_oauth_client("installed")


def test_login_survives_junk_before_the_genuine_redirect(emulator: Emulator,
                                                         client: dict[str, Any]) -> None:
    flow = InstalledAppFlow(client, [CLOUD, "openid"], request=gc_urllib3.Request())
    browser = Browser(emulator)
    browser.before = ["?code=forged&state=wrong", "?code=forged", "?state=whatever",
                      "favicon.ico", "?error=access_denied&state=wrong", "?code=a&code=b"]
    creds = flow.run_local_server(browser=browser, open_browser=True,
                                  authorization_prompt_message=None, timeout_seconds=30)
    assert emulator.is_access_token_valid(creds.token or "")
    deadline = time.monotonic() + 5
    while "replay" not in browser.statuses and time.monotonic() < deadline:
        time.sleep(0.05)
    assert browser.statuses["genuine"] == 200
    # the junk was answered (refused), none of it ended the login or was exchanged
    for junk in browser.before:
        assert browser.statuses[junk] in (400, 404), junk
    # the code is accepted once: after success the server answers nothing but "ended"
    assert browser.statuses.get("replay") in (0, 410)
    assert emulator.counts["token"] >= 1


def test_wrong_state_never_reaches_the_token_endpoint(fresh_emulator: Emulator) -> None:
    client = fresh_emulator.create_oauth_client("installed")
    flow = InstalledAppFlow(client, [CLOUD], request=gc_urllib3.Request())
    calls: list[str] = []

    def browser(url: str) -> bool:
        state = parse_qs(urlsplit(url).query)["state"][0]
        redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        base = redirect.replace("localhost", "127.0.0.1", 1)

        def hit() -> None:
            calls.append(str(get(base + "?code=forged&state=" + state[::-1])[0]))
            calls.append(str(get(base + "?error=access_denied&state=" + state)[0]))

        threading.Thread(target=hit, daemon=True).start()
        return True

    with pytest.raises(FlowError, match="denied"):
        flow.run_local_server(browser=browser, authorization_prompt_message=None,
                              timeout_seconds=20)
    assert fresh_emulator.counts["token"] == 0  # the forged code was never exchanged
    assert calls and calls[0] == "400"


def test_times_out_instead_of_hanging(fresh_emulator: Emulator) -> None:
    client = fresh_emulator.create_oauth_client("installed")
    flow = InstalledAppFlow(client, [CLOUD])
    started = time.monotonic()
    with pytest.raises(FlowError, match="within"):
        flow.run_local_server(browser=lambda url: True, authorization_prompt_message=None,
                              timeout_seconds=1)
    assert time.monotonic() - started < 5


def test_a_code_is_exchanged_at_most_once(emulator: Emulator, client: dict[str, Any]) -> None:
    flow = InstalledAppFlow(client, [CLOUD], redirect_uri="http://127.0.0.1:9/",
                            request=gc_urllib3.Request())
    _, state = flow.authorization_url()
    with pytest.raises(GCAuthError):  # the emulator rejects the made-up code...
        flow.fetch_token(authorization_response=f"?code=made-up&state={state}")
    with pytest.raises(FlowError, match="no authorization is in progress"):
        flow.fetch_token(authorization_response=f"?code=made-up&state={state}")  # ...once
