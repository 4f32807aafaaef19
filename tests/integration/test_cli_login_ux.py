"""``gcauth auth application-default login`` as a gcloud user types it (issue 13): short scope
names, an error redirect that ends the wait, a ``BROWSER`` that stays in the foreground,
the waiting line and ``--quiet``, the quota project from gcloud's configuration, and help
that says how gcauth differs. Each test runs the CLI as a subprocess against the emulator."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.kit import robot_browser
from tests.kit.cli import (
    CLOUD,
    Cli,
    adc_path,
    cli_env,
    consent,
    device_code_from,
    http_get,
    run_cli,
)

LOGIN = ["auth", "application-default", "login"]
EMAIL = "https://www.googleapis.com/auth/userinfo.email"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- item 4: short scope names, unknown names, an error redirect ---------------------------
def test_gclouds_short_scope_names_are_expanded(emulator: Any, client_file: Path,
                                                env: dict[str, str]) -> None:
    cli = Cli([*LOGIN, "--no-browser", f"--client-id-file={client_file}",
               "--scopes=openid,userinfo.email,cloud-platform,storage-ro"], env)
    url = cli.url_line()
    assert query(url)["scope"].split() == [
        "openid", EMAIL, CLOUD, "https://www.googleapis.com/auth/devstorage.read_only"]
    cli.send(consent(url) + "\n")
    code, out, err = cli.finish()
    assert code == 0, err
    assert "Credentials saved to file" in out


@pytest.mark.parametrize("command", [
    [*LOGIN, "--no-browser"],
    ["auth", "application-default", "print-access-token"],
    ["explain"],
])
def test_an_unknown_scope_name_is_refused_before_anything_starts(
        fresh_emulator: Any, tmp_path: Path, command: list[str]) -> None:
    client = tmp_path / "client.json"
    client.write_text(json.dumps(fresh_emulator.create_oauth_client()))
    env = cli_env(tmp_path, GCAUTH_CLIENT_ID_FILE=str(client))
    code, out, err = run_cli([*command, "--scopes=cloud-platfrm"], env)
    assert code == 2, err
    assert out == ""
    first, second = err.splitlines()
    assert first.startswith("gcauth: error: --scopes: unknown scope name 'cloud-platfrm'")
    assert second.startswith("Fix: ") and "https://www.googleapis.com/auth/" in second
    assert fresh_emulator.counts["auth"] == 0 and fresh_emulator.counts["token"] == 0


def test_an_error_redirect_ends_the_login_at_once(client_file: Path,
                                                  env: dict[str, str]) -> None:
    """An authorization server that sends the browser back with error= (here
    invalid_scope) ends the login with that error, long before --timeout."""
    cli = Cli([*LOGIN, "--no-launch-browser", f"--client-id-file={client_file}",
               "--timeout=120"], env)
    params = query(cli.url_line())
    started = time.monotonic()
    back = f"{params['redirect_uri']}?" + urlencode({
        "error": "invalid_scope", "error_description": "Some requested scopes were invalid.",
        "state": params["state"]})
    status, _, page = http_get(back)
    assert status == 403 and "invalid_scope" in page
    code, _, err = cli.finish(timeout=30)
    assert time.monotonic() - started < 60  # ended by the redirect, not by the 120 s timeout
    assert code == 1
    assert err.startswith("gcauth: error: sign-in failed with error 'invalid_scope' "
                          "(Some requested scopes were invalid.)")
    assert not adc_path(env).exists()


# -- item 8: BROWSER, launched after the server listens, never waited for ---------------------
def test_a_foreground_browser_command_does_not_block_the_login(
        emulator: Any, client_file: Path, tmp_path: Path) -> None:
    log = tmp_path / "robot.jsonl"
    env = cli_env(tmp_path, **robot_browser.install(tmp_path, log=log, linger=300))
    cli = Cli([*LOGIN, f"--client-id-file={client_file}", "--timeout=60"], env)
    try:
        code, out, err = cli.finish(timeout=45)
    finally:
        for record in robot_browser.records(log):
            pid = record["pid"]
            assert isinstance(pid, int)
            still_running = alive(pid)
            kill(pid)
    assert code == 0, err
    [record] = robot_browser.records(log)
    assert record["server_listening_at_launch"] is True
    assert record["redirect_status"] == 200 and record["page_title"] == "Signed in"
    assert still_running  # the login finished while the browser command was still running
    assert "Waiting for the browser... (Ctrl-C to cancel)" in out
    assert json.loads(adc_path(env).read_text())["account"] == "alice@example.com"


# -- items 12 and 14: the success page, the waiting line, --quiet ---------------------------
def test_the_success_page_names_the_account_and_the_file(emulator: Any, client_file: Path,
                                                          tmp_path: Path) -> None:
    log = tmp_path / "robot.jsonl"
    env = cli_env(tmp_path, **robot_browser.install(tmp_path, log=log))
    code, out, err = run_cli([*LOGIN, f"--client-id-file={client_file}",
                              "--quota-project=billing-7"], env)
    assert code == 0, err
    [record] = robot_browser.records(log)
    page = str(record["page"])
    assert '<dd id="account">alice@example.com</dd>' in page
    assert f'<dd id="saved-to">{adc_path(env)}</dd>' in page
    assert '<dd id="quota-project">billing-7</dd>' in page
    assert "<main>" in page and "background:#f1f3f4" in page  # the emulator pages' look
    # the file was saved before the page said so
    assert json.loads(adc_path(env).read_text())["quota_project_id"] == "billing-7"


def test_quiet_prints_only_what_the_user_must_act_on(emulator: Any, client_file: Path,
                                                     tmp_path: Path) -> None:
    # a browser that opens: nothing at all
    log = tmp_path / "robot.jsonl"
    env = cli_env(tmp_path, **robot_browser.install(tmp_path, log=log))
    code, out, err = run_cli([*LOGIN, "--quiet", f"--client-id-file={client_file}"], env)
    assert (code, out, err) == (0, "", "")
    assert adc_path(env).exists()
    # no browser here: the URL, and nothing else
    env = cli_env(tmp_path / "second")
    cli = Cli([*LOGIN, "-q", "--no-launch-browser", f"--client-id-file={client_file}"], env)
    http_get(consent(cli.url_line()))
    code, out, err = cli.finish()
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[1].startswith(emulator.auth_uri + "?"), out
    assert "Waiting" not in out and "Credentials saved" not in out


def test_without_quiet_the_loopback_wait_says_how_to_cancel(emulator: Any, client_file: Path,
                                                            env: dict[str, str]) -> None:
    cli = Cli([*LOGIN, "--no-launch-browser", f"--client-id-file={client_file}"], env)
    url = cli.url_line()
    cli.wait_for_line(lambda line: line == "Waiting for the browser... (Ctrl-C to cancel)")
    http_get(consent(url))
    code, out, _ = cli.finish()
    assert code == 0 and "Credentials saved to file" in out


def test_quiet_device_flow_still_shows_the_code(fresh_emulator: Any, tmp_path: Path) -> None:
    fresh_emulator.device_interval = 0.1
    path = tmp_path / "device.json"
    path.write_text(json.dumps(fresh_emulator.create_oauth_client("limited-input")))
    env = cli_env(tmp_path)
    cli = Cli([*LOGIN, "--device", "--quiet", f"--client-id-file={path}"], env)
    fresh_emulator.approve_device(device_code_from(cli))
    code, out, err = cli.finish()
    assert code == 0, err
    assert fresh_emulator.url + "/device" in out and "Credentials saved" not in out


# -- item 9: the quota project from gcloud's configuration ----------------------------------
def test_the_quota_project_comes_from_gclouds_core_project(emulator: Any, client_file: Path,
                                                           tmp_path: Path) -> None:
    log = tmp_path / "robot.jsonl"
    env = cli_env(tmp_path, **robot_browser.install(tmp_path, log=log))
    assert run_cli(["config", "set", "project", "cfg-project-1"], env)[0] == 0
    code, out, err = run_cli([*LOGIN, f"--client-id-file={client_file}"], env)
    assert code == 0, err
    assert json.loads(adc_path(env).read_text())["quota_project_id"] == "cfg-project-1"
    assert 'Quota project "cfg-project-1" (from gcloud\'s core/project in ' in out
    # --quota-project overrides it...
    code, out, err = run_cli([*LOGIN, f"--client-id-file={client_file}",
                              "--quota-project=other-2"], env)
    assert code == 0, err
    assert json.loads(adc_path(env).read_text())["quota_project_id"] == "other-2"
    # ...and --disable-quota-project leaves it out
    code, out, err = run_cli([*LOGIN, f"--client-id-file={client_file}",
                              "--disable-quota-project"], env)
    assert code == 0, err
    assert "quota_project_id" not in json.loads(adc_path(env).read_text())
    assert "Quota project" not in out
    code, _, err = run_cli([*LOGIN, f"--client-id-file={client_file}", "--quota-project=x",
                            "--disable-quota-project"], env)
    assert code == 2 and "not allowed with" in err


# -- items 9 and 11: what --help says -------------------------------------------------------
def test_login_help_says_how_gcauth_differs_from_gcloud(env: dict[str, str]) -> None:
    code, out, _ = run_cli([*LOGIN, "--help"], env)
    assert code == 0
    text = " ".join(out.split())
    for option in ("--quiet", "--scopes", "--client-id-file", "--no-launch-browser",
                   "--launch-browser", "--no-browser", "--device", "--quota-project",
                   "--disable-quota-project", "BROWSER"):
        assert option in text
    assert "--remote-bootstrap" in text  # gcloud's --no-browser, and why gcauth's differs
    assert "TVs and Limited Input devices" in text
    assert "core/project" in text and "cloud-platform" in text and "storage-ro" in text


def test_the_device_flow_with_a_desktop_client_names_the_client_it_needs(
        fresh_emulator: Any, tmp_path: Path) -> None:
    path = tmp_path / "desktop.json"
    path.write_text(json.dumps(fresh_emulator.create_oauth_client("installed")))
    code, out, err = run_cli([*LOGIN, "--device", f"--client-id-file={path}"],
                             cli_env(tmp_path))
    assert code == 1 and out == ""
    assert err.startswith("gcauth: error: the authorization server refused to start the "
                          "device flow")
    assert "Invalid client type." in err and "'TVs and Limited Input devices'" in err
    assert "--client-id-file" in err and "drop --device" in err
    assert err.count("\n") == 1
