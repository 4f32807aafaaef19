"""A local process cannot cancel a sign-in (issue 9, item 6).

The ``state`` of a browser sign-in is visible to every local process (it is on the browser's
command line), so a redirect with the right state and a made-up code must not end the flow:
it is refused and the wait goes on for the genuine redirect. A redirect carrying ``error=``
with the right state still ends the flow at once (the user denied access).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from gcauth.emulator import Emulator
from gcauth.exceptions import FlowError
from gcauth.flow import InstalledAppFlow
from tests.kit.cli import Cli, adc_path, consent, http_get, run_cli

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"


def loopback(url: str, **params: str) -> str:
    """The loopback redirect address of authorization URL ``url`` with ``params``."""
    redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
    return redirect.replace("localhost", "127.0.0.1", 1) + "?" + urlencode(params)


def state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


class Script:
    """Plays the browser and a hostile local process; records every page it was shown."""

    def __init__(self, steps: Callable[[Script, str], None]):
        self.steps = steps
        self.pages: list[tuple[str, int, str]] = []
        self.errors: list[BaseException] = []
        self.thread: threading.Thread | None = None

    def visit(self, who: str, url: str) -> int:
        status, _, body = http_get(url.replace("localhost", "127.0.0.1", 1))
        self.pages.append((who, status, body))
        return status

    def __call__(self, url: str) -> bool:
        def run() -> None:
            try:
                self.steps(self, url)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return True

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(15)
        assert not self.errors, self.errors


def flow_for(emu: Emulator) -> InstalledAppFlow:
    return InstalledAppFlow(emu.create_oauth_client("installed"), ["openid", EMAIL, CLOUD])


def test_a_junk_code_with_the_right_state_does_not_end_the_sign_in(
        fresh_emulator: Emulator) -> None:
    def steps(script: Script, url: str) -> None:
        state = state_of(url)
        script.visit("attacker", loopback(url, code="4/made-up", state=state))
        script.visit("attacker", loopback(url, code="4/made-up", state=state))  # again
        script.visit("attacker", loopback(url, code="4/other-junk", state=state))
        script.visit("browser", consent(url))

    script = Script(steps)
    creds = flow_for(fresh_emulator).run_local_server(
        browser=script, authorization_prompt_message=None, timeout_seconds=20)
    script.join()
    assert creds.refresh_token is not None
    assert creds.account == "alice@example.com"
    assert fresh_emulator.is_access_token_valid(creds.token or "")
    attacker = [(status, body) for who, status, body in script.pages if who == "attacker"]
    assert [status for status, _ in attacker] == [400, 400, 400]
    assert all("did not accept its code" in body for _, body in attacker)
    assert [status for who, status, _ in script.pages if who == "browser"] == [200]
    # each junk code went to the token endpoint once (the repeat was answered from memory),
    # then the genuine code: three exchanges in all
    assert fresh_emulator.counts["token"] == 3


def test_a_junk_code_alone_ends_in_the_timeout_and_says_so(fresh_emulator: Emulator) -> None:
    def steps(script: Script, url: str) -> None:
        script.visit("attacker", loopback(url, code="4/made-up", state=state_of(url)))

    script = Script(steps)
    with pytest.raises(FlowError) as info:
        flow_for(fresh_emulator).run_local_server(
            browser=script, authorization_prompt_message=None, timeout_seconds=2)
    script.join()
    assert info.value.error == "timeout"
    assert "1 sign-in response" in str(info.value) and "did not accept" in str(info.value)
    assert "made-up" not in str(info.value)


def test_an_error_redirect_with_the_right_state_ends_the_sign_in_at_once(
        fresh_emulator: Emulator) -> None:
    def steps(script: Script, url: str) -> None:
        script.visit("browser", loopback(url, error="access_denied", state=state_of(url)))

    script = Script(steps)
    with pytest.raises(FlowError, match="denied") as info:
        flow_for(fresh_emulator).run_local_server(
            browser=script, authorization_prompt_message=None, timeout_seconds=20)
    script.join()
    assert info.value.error == "access_denied"
    assert script.pages[0][1] == 403 and "Sign-in failed" in script.pages[0][2]
    assert fresh_emulator.counts["token"] == 0


def test_other_token_endpoint_failures_still_end_the_sign_in(fresh_emulator: Emulator) -> None:
    """Only invalid_grant means "not this sign-in's code"; any other refusal (here the
    client's secret is wrong: invalid_client) ends the flow with the reason, as before."""
    client = fresh_emulator.create_oauth_client("installed")
    client["installed"]["client_secret"] = "not-the-secret"
    flow = InstalledAppFlow(client, ["openid", CLOUD])

    def steps(script: Script, url: str) -> None:
        script.visit("browser", consent(url))

    script = Script(steps)
    with pytest.raises(FlowError, match="exchanging the authorization code failed") as info:
        flow.run_local_server(browser=script, authorization_prompt_message=None,
                              timeout_seconds=20)
    script.join()
    assert info.value.error == "invalid_client"
    assert script.pages[0][1] == 502


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, 0, -0.0, True, "30"])
def test_nonsense_timeouts_are_refused_before_listening(value: Any) -> None:
    flow = InstalledAppFlow({"installed": {"client_id": "c", "client_secret": "s"}},
                            ["openid"])
    with pytest.raises(ValueError, match="timeout_seconds"):
        flow.run_local_server(open_browser=False, timeout_seconds=value, out=io.StringIO())
    assert flow.redirect_uri is None  # nothing was started


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "0", "soon"])
def test_cli_timeout_must_be_a_positive_finite_number(value: str, client_file: Any,
                                                      env: dict[str, str]) -> None:
    code, out, err = run_cli(["auth", "application-default", "login", "--no-launch-browser",
                              f"--client-id-file={client_file}", f"--timeout={value}"], env,
                             timeout=30)
    assert code == 2, err
    assert "--timeout" in err and out == ""


def test_cli_login_survives_a_local_process_sending_the_right_state(
        emulator: Emulator, client_file: Any, env: dict[str, str]) -> None:
    cli = Cli(["auth", "application-default", "login", "--no-launch-browser",
               f"--client-id-file={client_file}", "--timeout=60"], env)
    url = cli.url_line()
    status, _, page = http_get(loopback(url, code="4/junk", state=state_of(url)))
    assert status == 400 and "still waiting" in page
    assert cli.proc.poll() is None  # the login goes on
    status, _, page = http_get(consent(url).replace("localhost", "127.0.0.1", 1))
    assert status == 200 and "Signed in" in page
    code, out, err = cli.finish()
    assert code == 0, err
    assert adc_path(env).exists() and "Credentials saved" in out


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1, True])
def test_the_redirect_server_refuses_nonsense_connection_timeouts(value: Any) -> None:
    from gcauth._loopback import RedirectServer

    with pytest.raises(ValueError, match="connection_timeout"):
        RedirectServer(connection_timeout=value)


def test_waiting_for_a_redirect_with_nan_is_refused_not_a_busy_loop() -> None:
    from gcauth._loopback import RedirectServer

    with RedirectServer() as server:
        with pytest.raises(ValueError, match="NaN"):
            server.next_redirect(float("nan"))
        assert server.next_redirect(0.01) is None
        assert server.next_redirect(-5) is None  # already past: no wait
