"""``gcauth auth application-default login`` end to end: the CLI as a subprocess, the
emulator's consent page in headless Chromium, then the token at the sample API."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest

import gcauth
from gcauth.transport.urllib3 import AuthorizedHttp
from tests.kit.cli import Cli, adc_path, cli_env, device_code_from, run_cli

pytestmark = pytest.mark.e2e

LOGIN = ["auth", "application-default", "login"]


def call_api(emu: Any, token: str) -> int:
    import http.client

    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=5)
    try:
        conn.request("GET", "/sql/v1beta4/projects/p/instances",
                     headers={"Authorization": f"Bearer {token}"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_browser_login_then_print_access_token(emulator: Any, tmp_path: Path,
                                               env: dict[str, str], page: Any,
                                               artifacts: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    client_file = tmp_path / "named-client.json"
    client_file.write_text(json.dumps(emulator.create_oauth_client(name="Acme Reports")))
    cli = Cli([*LOGIN, "--no-launch-browser", f"--client-id-file={client_file}",
               "--quota-project=e2e-billing"], env)
    page.goto(cli.url_line())
    page.wait_for_selector("#allow")
    assert page.locator("input[name=account]").count() >= 1
    assert "cloud-platform" in page.content()
    # the consent page names the application; the long client id stays folded away
    assert page.inner_text("#app-name") == "Acme Reports"
    assert page.title() == "Sign in - Acme Reports"
    assert not page.is_visible("#client-id")
    heading = page.locator("h1").bounding_box()
    assert heading is not None and heading["height"] < 80  # one or two lines, no wrapped id
    page.screenshot(path=str(artifacts / "consent.png"), full_page=True)
    page.click("#allow")
    page.wait_for_selector("#success")
    assert "Signed in" in page.title()
    # the success page names the account and where the credentials were saved
    assert page.inner_text("#account") == "alice@example.com"
    assert page.inner_text("#saved-to") == str(adc_path(env))
    assert page.inner_text("#quota-project") == "e2e-billing"
    assert page.eval_on_selector("main", "e => getComputedStyle(e).borderRadius") == "8px"
    page.screenshot(path=str(artifacts / "login-success.png"), full_page=True)
    code, out, err = cli.finish()
    assert code == 0, err
    assert f"Credentials saved to file: [{adc_path(env)}]" in out
    assert stat.S_IMODE(adc_path(env).stat().st_mode) == 0o600

    code, token, err = run_cli(["auth", "application-default", "print-access-token"], env)
    assert code == 0, err
    assert call_api(emulator, token.strip()) == 200

    monkeypatch.setenv("CLOUDSDK_CONFIG", env["CLOUDSDK_CONFIG"])
    credentials, _ = gcauth.default()
    with AuthorizedHttp(credentials) as http:
        reply = http.request("GET", f"{emulator.api_url}/sql/v1beta4/projects/p/instances")
    assert reply.status == 200
    assert emulator.quota_projects_seen[-1] == "e2e-billing"


def test_deny_shows_failure_and_writes_nothing(client_file: Path, env: dict[str, str],
                                               page: Any) -> None:
    cli = Cli([*LOGIN, "--no-launch-browser", f"--client-id-file={client_file}"], env)
    page.goto(cli.url_line())
    page.click("#deny")
    page.wait_for_selector("#failure")
    assert "denied" in page.inner_text("#message")
    code, _, err = cli.finish()
    assert code == 1
    assert err.startswith("gcauth: error: sign-in failed with error 'access_denied'")
    assert not adc_path(env).exists()


def test_tampered_state_is_refused(client_file: Path, env: dict[str, str], page: Any,
                                   artifacts: Path) -> None:
    cli = Cli([*LOGIN, "--no-launch-browser", f"--client-id-file={client_file}",
               "--timeout=4"], env)
    parts = urlsplit(cli.url_line())
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    params["state"] = "tampered-" + params["state"][:8]
    page.goto(urlunsplit(parts._replace(query=urlencode(params))))
    page.click("#allow")
    page.wait_for_selector("#failure")
    assert "wrong or missing state" in page.inner_text("#message")
    page.screenshot(path=str(artifacts / "login-tampered-state.png"))
    assert not adc_path(env).exists()
    code, _, err = cli.finish()
    assert code == 1 and "no sign-in arrived" in err
    assert not adc_path(env).exists()


def test_device_flow_in_the_browser(fresh_emulator: Any, tmp_path: Path, page: Any) -> None:
    fresh_emulator.device_interval = 0.2
    path = tmp_path / "client.json"
    path.write_text(json.dumps(fresh_emulator.create_oauth_client("limited-input")))
    env = cli_env(tmp_path)
    cli = Cli([*LOGIN, "--device", f"--client-id-file={path}"], env)
    verification = cli.wait_for_line(lambda line: line.startswith("http"))
    user_code = device_code_from(cli)
    page.goto(verification)
    page.fill("#user_code", user_code)
    page.click("#next")
    page.click("#allow")
    page.wait_for_selector("#success")
    code, _, err = cli.finish()
    assert code == 0, err
    assert json.loads(adc_path(env).read_text())["type"] == "authorized_user"


def test_console_flow_with_a_browser_elsewhere(emulator: Any, client_file: Path,
                                               env: dict[str, str], page: Any) -> None:
    cli = Cli([*LOGIN, "--no-browser", f"--client-id-file={client_file}"], env)
    page.goto(cli.url_line())
    page.check("input[name=account][value='bob@example.com']")
    with page.expect_request(re.compile(r"^http://localhost:\d+/\?")) as request:
        page.click("#allow")
    # nothing listens there: the user copies the address bar's URL back to the terminal
    cli.send(request.value.url + "\n")
    code, out, err = cli.finish()
    assert code == 0, err
    assert "Credentials saved to file" in out and "bob@example.com" in out
    assert json.loads(adc_path(env).read_text())["account"] == "bob@example.com"
