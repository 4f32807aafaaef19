"""The login flows against the emulator, with the consent page answered over plain HTTP."""

from __future__ import annotations

import http.client
import io
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

from gcauth.exceptions import FlowError
from gcauth.flow import DeviceAuthorization, DeviceFlow, InstalledAppFlow
from gcauth.transport.urllib3 import AuthorizedHttp
from tests.kit.cli import consent, http_get

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
SCOPES = ["openid", "https://www.googleapis.com/auth/userinfo.email", CLOUD]


def with_state(url: str, state: str) -> str:
    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    params["state"] = state
    return urlunsplit(parts._replace(query=urlencode(params)))


class Browser:
    """Stands in for the browser: ``script(url)`` runs on a thread, pages are kept."""

    def __init__(self, script: Callable[[str], object]):
        self.script = script
        self.pages: list[tuple[int, str]] = []
        self.errors: list[BaseException] = []
        self.thread: threading.Thread | None = None

    def visit(self, url: str) -> tuple[int, str]:
        status, _, body = http_get(url)
        self.pages.append((status, body))
        return status, body

    def __call__(self, url: str) -> bool:
        def run() -> None:
            try:
                self.script(url)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return True

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(10)
        assert not self.errors, self.errors


def installed(emu: Any, kind: str = "installed") -> InstalledAppFlow:
    return InstalledAppFlow.from_client_config(emu.create_oauth_client(kind), SCOPES)


def run(flow: InstalledAppFlow, browser: Browser, **kwargs: Any) -> Any:
    kwargs.setdefault("timeout_seconds", 20)
    return flow.run_local_server(browser=browser, out=io.StringIO(), **kwargs)


def test_browser_login_gives_working_user_credentials(emulator: Any) -> None:
    browser = Browser(lambda url: browser.visit(consent(url)))
    flow = installed(emulator)
    creds = run(flow, browser)
    browser.join()
    status, page = browser.pages[0]
    assert status == 200 and "Signed in" in page
    assert creds.refresh_token and creds.account == "alice@example.com"
    assert set(creds.granted_scopes) == set(SCOPES)
    assert creds.token_uri == emulator.token_uri
    assert emulator.is_access_token_valid(creds.token)
    creds.refresh(None)  # the refresh token works at the emulator
    with AuthorizedHttp(creds.with_quota_project("billing-x")) as http:
        reply = http.request("GET", f"{emulator.api_url}/sql/v1beta4/projects/p/instances")
    assert reply.status == 200
    assert emulator.quota_projects_seen[-1] == "billing-x"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_web_client_works_too(emulator: Any) -> None:
    """A web client is sent back only to a registered redirect URI (Google's rule, which the
    emulator enforces): the loopback server listens on the registered port and path."""
    port = _free_port()
    client = emulator.create_oauth_client("web",
                                          redirect_uris=[f"http://localhost:{port}/callback"])
    seen: list[str] = []

    def script(url: str) -> None:
        seen.append(url)
        browser.visit(consent(url))

    browser = Browser(script)
    creds = run(InstalledAppFlow.from_client_config(client, SCOPES), browser)
    browser.join()
    assert creds.refresh_token
    assert parse_qs(urlsplit(seen[0]).query)["redirect_uri"] == [
        f"http://localhost:{port}/callback"]


def test_web_client_without_a_loopback_redirect_is_refused_by_the_emulator(
        emulator: Any) -> None:
    client = emulator.create_oauth_client("web", redirect_uris=["https://app.example.com/cb"])
    pages: list[tuple[int, str]] = []

    def visit(url: str) -> None:
        status, _, body = http_get(url)
        pages.append((status, body))

    browser = Browser(visit)
    with pytest.raises(FlowError) as info:
        run(InstalledAppFlow.from_client_config(client, SCOPES), browser, timeout_seconds=1)
    browser.join()
    assert info.value.error == "timeout"
    assert pages[0][0] == 400 and "redirect_uri_mismatch" in pages[0][1]


def test_redirect_uri_is_loopback_on_an_ephemeral_port(emulator: Any) -> None:
    seen: list[str] = []
    def script(url: str) -> None:
        seen.append(url)
        browser.visit(consent(url))

    browser = Browser(script)
    run(installed(emulator), browser)
    browser.join()
    redirect = parse_qs(urlsplit(seen[0]).query)["redirect_uri"][0]
    parts = urlsplit(redirect)
    assert parts.scheme == "http" and parts.hostname == "localhost" and parts.port
    assert parts.port > 1024 and parts.path == "/"


def test_deny_shows_a_failure_page_and_raises(emulator: Any) -> None:
    browser = Browser(lambda url: browser.visit(consent(url, "deny")))
    with pytest.raises(FlowError) as info:
        run(installed(emulator), browser)
    browser.join()
    assert info.value.error == "access_denied"
    status, page = browser.pages[0]
    assert status == 403 and "Sign-in failed" in page and "denied" in page


def test_tampered_state_is_refused_and_the_genuine_redirect_still_works(emulator: Any) -> None:
    def script(url: str) -> None:
        location = consent(url)
        browser.visit(with_state(location, "forged-state"))
        browser.visit(location)

    browser = Browser(script)
    before = emulator.counts["token"]
    creds = run(installed(emulator), browser)
    browser.join()
    (bad_status, bad_page), (good_status, good_page) = browser.pages
    assert bad_status == 400 and "refused" in bad_page
    assert good_status == 200 and "Signed in" in good_page
    assert emulator.counts["token"] == before + 1  # the forged redirect was never exchanged
    assert creds.refresh_token


def test_only_a_tampered_redirect_ends_in_a_timeout(emulator: Any,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    browser = Browser(lambda url: browser.visit(with_state(consent(url), "forged")))
    before = emulator.counts["token"]
    started = time.monotonic()
    with pytest.raises(FlowError) as info:
        run(installed(emulator), browser, timeout_seconds=1.5)
    browser.join()
    assert info.value.error == "timeout"
    assert time.monotonic() - started < 5
    assert browser.pages[0][0] == 400
    assert emulator.counts["token"] == before
    assert any("ignored a redirect" in r.getMessage() for r in caplog.records)


def test_missing_state_and_other_paths_do_not_end_the_wait(emulator: Any) -> None:
    def script(url: str) -> None:
        location = consent(url)
        base = location.split("?")[0]
        browser.visit(base + "favicon.ico")
        browser.visit(base + "?code=stolen")
        browser.visit(base)
        browser.visit(location)

    browser = Browser(script)
    run(installed(emulator), browser)
    browser.join()
    assert [status for status, _ in browser.pages] == [404, 400, 400, 200]


def test_an_idle_connection_does_not_block_the_redirect(emulator: Any) -> None:
    idle: list[socket.socket] = []

    def script(url: str) -> None:
        location = consent(url)
        port = urlsplit(location).port
        assert port is not None
        idle.append(socket.create_connection(("127.0.0.1", port)))  # sends nothing
        idle[-1].sendall(b"GET / HTTP/1.1\r\n")  # ... and never finishes its request
        started = time.monotonic()
        browser.visit(location)
        assert time.monotonic() - started < 3

    browser = Browser(script)
    try:
        run(installed(emulator), browser)
        browser.join()
    finally:
        for sock in idle:
            sock.close()
    assert browser.pages[0][0] == 200


def test_the_server_stops_after_success(emulator: Any) -> None:
    locations: list[str] = []
    def script(url: str) -> None:
        locations.append(consent(url))
        browser.visit(locations[0])

    browser = Browser(script)
    run(installed(emulator), browser)
    browser.join()
    with pytest.raises(OSError):
        http_get(locations[0], timeout=2)


def test_a_code_the_server_refuses_gives_a_failure_page(emulator: Any) -> None:
    def script(url: str) -> None:
        location = consent(url)
        browser.visit(location.replace("code=", "code=x"))

    # Issue 9, item 6: a code the token endpoint refuses (invalid_grant) no longer ends the
    # sign-in, since any local process can send one with the right state; it gets a failure
    # page and the wait goes on until the timeout (tests/integration/test_login_local_attacker.py).
    browser = Browser(script)
    with pytest.raises(FlowError, match="did not accept its code") as info:
        run(installed(emulator), browser, timeout_seconds=2)
    assert info.value.error == "timeout"
    browser.join()
    assert browser.pages[0][0] == 400 and "Sign-in failed" in browser.pages[0][1]


def test_timeout_is_an_error_not_a_hang(emulator: Any) -> None:
    started = time.monotonic()
    with pytest.raises(FlowError) as info:
        run(installed(emulator), Browser(lambda url: None), timeout_seconds=0.3)
    assert info.value.error == "timeout"
    assert time.monotonic() - started < 3


def test_prompt_is_printed_with_the_url_on_its_own_line(emulator: Any) -> None:
    out = io.StringIO()
    flow = installed(emulator)
    with pytest.raises(FlowError):
        flow.run_local_server(open_browser=False, timeout_seconds=0.2, out=out)
    lines = out.getvalue().splitlines()
    assert any(line.startswith(emulator.auth_uri + "?") for line in lines)


def test_ipv6_loopback(emulator: Any) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    browser = Browser(lambda url: browser.visit(consent(url)))
    creds = run(installed(emulator), browser, host="::1", bind_addr="::1")
    browser.join()
    assert creds.refresh_token


def test_console_flow_with_the_pasted_redirect(emulator: Any) -> None:
    out = io.StringIO()

    def paste(prompt: str) -> str:
        url = next(line for line in out.getvalue().splitlines() if line.startswith("http"))
        return consent(url)

    flow = installed(emulator)
    creds = flow.run_console(input=paste, out=out)
    assert creds.refresh_token and emulator.is_access_token_valid(creds.token)


# -- device flow --------------------------------------------------------------------------
@pytest.fixture
def device_emulator(fresh_emulator: Any) -> Any:
    fresh_emulator.device_interval = 0.05
    return fresh_emulator


def device_flow(emu: Any) -> DeviceFlow:
    return DeviceFlow.from_client_config(emu.create_oauth_client("limited-input"), SCOPES)


@pytest.mark.parametrize("kind", ["installed", "web"])
def test_device_flow_with_a_desktop_or_web_client_says_which_client_it_needs(
        device_emulator: Any, kind: str) -> None:
    flow = DeviceFlow.from_client_config(device_emulator.create_oauth_client(kind), SCOPES)
    with pytest.raises(FlowError) as info:
        flow.run(prompt=lambda auth: None)
    assert info.value.error == "invalid_client"
    text = str(info.value)
    assert "TVs and Limited Input devices" in text and "Invalid client type." in text
    assert device_emulator.counts["device_code"] == 1 and device_emulator.counts["token"] == 0


def test_device_flow_approved(device_emulator: Any) -> None:
    shown: list[DeviceAuthorization] = []

    def prompt(auth: DeviceAuthorization) -> None:
        shown.append(auth)
        threading.Timer(0.3, device_emulator.approve_device, (auth.user_code,)).start()

    flow = device_flow(device_emulator)
    creds = flow.run(prompt=prompt)
    assert shown[0].verification_uri == device_emulator.url + "/device"
    assert creds.refresh_token and creds.account == "alice@example.com"
    assert flow.credentials is creds
    assert device_emulator.counts["token"] >= 2  # it polled while pending


def test_device_flow_through_the_device_page(device_emulator: Any) -> None:
    def approve(auth: DeviceAuthorization) -> None:
        conn = http.client.HTTPConnection(device_emulator.host, device_emulator.port, timeout=5)
        conn.request("POST", "/device", urlencode({"user_code": auth.user_code.lower()}),
                     {"Content-Type": "application/x-www-form-urlencoded"})
        page = conn.getresponse().read().decode()
        conn.close()
        pending = re.search(r'name="pending" value="([^"]+)"', page)
        assert pending
        conn = http.client.HTTPConnection(device_emulator.host, device_emulator.port, timeout=5)
        conn.request("POST", "/o/oauth2/approve",
                     urlencode({"pending": pending.group(1), "decision": "allow",
                                "account": "alice@example.com"}),
                     {"Content-Type": "application/x-www-form-urlencoded"})
        assert conn.getresponse().status == 200
        conn.close()

    flow = device_flow(device_emulator)
    auth = flow.start()
    approve(auth)
    creds = flow.poll(auth)
    assert creds.refresh_token


def test_device_flow_denied(device_emulator: Any) -> None:
    def prompt(auth: DeviceAuthorization) -> None:
        threading.Timer(0.2, device_emulator.deny_device, (auth.user_code,)).start()

    with pytest.raises(FlowError) as info:
        device_flow(device_emulator).run(prompt=prompt)
    assert info.value.error == "access_denied"


def test_device_flow_expires(device_emulator: Any) -> None:
    device_emulator.device_expires_in = 0.5
    started = time.monotonic()
    with pytest.raises(FlowError) as info:
        device_flow(device_emulator).run(prompt=lambda auth: None)
    assert info.value.error == "expired_token"
    assert time.monotonic() - started < 5


def test_device_flow_default_prompt(device_emulator: Any) -> None:
    out = io.StringIO()
    flow = device_flow(device_emulator)
    original = flow.poll

    def poll(auth: DeviceAuthorization) -> Any:
        device_emulator.approve_device(auth.user_code)
        return original(auth)

    flow.poll = poll  # type: ignore[method-assign,assignment]
    flow.run(out=out)
    text = out.getvalue()
    assert device_emulator.url + "/device" in text.splitlines()
    assert "enter the code" in text
