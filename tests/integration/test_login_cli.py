"""``gcauth auth application-default ...`` and ``gcauth explain`` as subprocesses against the
emulator, with the consent page answered over plain HTTP (the browser tests are in tests/e2e)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import gcauth
from gcauth.authorized_user import Credentials
from gcauth.exceptions import RefreshError
from gcauth.transport.urllib3 import AuthorizedHttp
from tests.kit.cli import Cli, adc_path, cli_env, consent, device_code_from, http_get, run_cli


def secrets_of(emu: Any) -> set[str]:
    state = emu._state
    with state.lock:
        found = set(state.access_tokens) | set(state.refresh_tokens) | set(state.codes)
        found |= set(state.devices) | {c.client_secret for c in state.clients.values()}
    return found


def assert_no_secret(emu: Any, *texts: str) -> None:
    for secret in secrets_of(emu):
        for text in texts:
            assert secret not in text


def check_adc_file(env: dict[str, str], emu: Any, quota: str | None) -> dict[str, Any]:
    path = adc_path(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info: dict[str, Any] = json.loads(path.read_text())
    assert info["type"] == "authorized_user"
    assert info["token_uri"] == emu.token_uri
    assert {"client_id", "client_secret", "refresh_token"} <= set(info)
    assert info.get("quota_project_id") == quota
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    return info


def test_login_with_the_console_flow(emulator: Any, client_file: Path,
                                     env: dict[str, str]) -> None:
    cli = Cli(["auth", "application-default", "login", "--no-browser",
               f"--client-id-file={client_file}", "--quota-project=billing-1"], env)
    url = cli.url_line()
    cli.send(consent(url) + "\n")
    code, out, err = cli.finish()
    assert code == 0, err
    assert f"Credentials saved to file: [{adc_path(env)}]" in out
    assert 'Quota project "billing-1"' in out
    check_adc_file(env, emulator, "billing-1")
    assert_no_secret(emulator, out, err)


def test_login_with_no_launch_browser_waits_on_loopback(emulator: Any, client_file: Path,
                                                        env: dict[str, str]) -> None:
    cli = Cli(["auth", "application-default", "login", "--no-launch-browser",
               f"--client-id-file={client_file}"], env)
    url = cli.url_line()
    assert url.startswith(emulator.auth_uri + "?")
    status, _, page = http_get(consent(url))
    assert status == 200 and "Signed in" in page
    code, out, err = cli.finish()
    assert code == 0, err
    info = check_adc_file(env, emulator, None)
    assert info["account"] == "alice@example.com"
    assert_no_secret(emulator, out, err)


def test_login_default_mode_without_a_display_falls_back_to_printing(
        emulator: Any, client_file: Path, env: dict[str, str]) -> None:
    cli = Cli(["auth", "application-default", "login", f"--client-id-file={client_file}"], env)
    url = cli.url_line()
    http_get(consent(url))
    code, _, err = cli.finish()
    assert code == 0
    assert "no browser can be opened here" in err


def test_login_with_the_device_flow_and_env_client_file(
        fresh_emulator: Any, tmp_path: Path) -> None:
    fresh_emulator.device_interval = 0.1
    path = tmp_path / "client.json"
    path.write_text(json.dumps(fresh_emulator.create_oauth_client("limited-input")))
    env = cli_env(tmp_path, GCAUTH_CLIENT_ID_FILE=str(path))
    cli = Cli(["auth", "application-default", "login", "--device"], env)
    user_code = device_code_from(cli)
    fresh_emulator.approve_device(user_code)
    code, out, err = cli.finish()
    assert code == 0, err
    assert fresh_emulator.url + "/device" in out
    check_adc_file(env, fresh_emulator, None)


def test_login_device_denied_writes_nothing(fresh_emulator: Any, tmp_path: Path) -> None:
    fresh_emulator.device_interval = 0.1
    path = tmp_path / "client.json"
    path.write_text(json.dumps(fresh_emulator.create_oauth_client("limited-input")))
    env = cli_env(tmp_path)
    cli = Cli(["auth", "application-default", "login", "--device",
               f"--client-id-file={path}"], env)
    fresh_emulator.deny_device(device_code_from(cli))
    code, _, err = cli.finish()
    assert code == 1
    assert err.startswith("gcauth: error: access was denied")
    assert not adc_path(env).exists()


def test_login_without_a_client_file_says_how_to_fix_it(env: dict[str, str]) -> None:
    code, out, err = run_cli(["auth", "application-default", "login"], env)
    assert code == 1 and out == ""
    assert "--client-id-file" in err and "GCAUTH_CLIENT_ID_FILE" in err
    assert err.count("\n") == 1


def test_login_with_a_bad_client_file(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "sa.json"
    bad.write_text(json.dumps({"type": "service_account", "client_email": "x"}))
    code, _, err = run_cli(["auth", "application-default", "login",
                            f"--client-id-file={bad}"], env)
    assert code == 1 and "not an OAuth client file" in err
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps({"installed": {"client_id": "a", "client_secret": "b",
                                              "token_uri": "https://evil.example/token"}}))
    code, _, err = run_cli(["auth", "application-default", "login",
                            f"--client-id-file={evil}", "--device"], env)
    assert code == 1 and "evil.example" in err and "neither a Google endpoint" in err


def test_login_options_are_validated(client_file: Path, env: dict[str, str]) -> None:
    code, _, err = run_cli(["auth", "application-default", "login", "--device",
                            "--no-browser"], env)
    assert code == 2 and "not allowed with" in err
    code, _, err = run_cli(["auth", "application-default", "login", "--quota-project=a b",
                            f"--client-id-file={client_file}"], env)
    # an option value gcauth refuses before doing anything is bad usage (README's table)
    assert code == 2 and "not a project id" in err


@pytest.fixture
def logged_in(emulator: Any, client_file: Path, env: dict[str, str]) -> dict[str, str]:
    cli = Cli(["auth", "application-default", "login", "--no-browser",
               f"--client-id-file={client_file}", "--quota-project=billing-1"], env)
    cli.send(consent(cli.url_line()) + "\n")
    assert cli.finish()[0] == 0
    return env


def test_print_access_token_is_accepted_by_the_sample_api(emulator: Any,
                                                          logged_in: dict[str, str]) -> None:
    code, out, err = run_cli(["auth", "application-default", "print-access-token"], logged_in)
    assert code == 0, err
    token = out.strip()
    assert out == token + "\n" and emulator.is_access_token_valid(token)
    status, _, _ = http_get_with_token(emulator, token)
    assert status == 200


def http_get_with_token(emu: Any, token: str) -> tuple[int, str, str]:
    import http.client

    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=5)
    try:
        conn.request("GET", "/sql/v1beta4/projects/p/instances",
                     headers={"Authorization": f"Bearer {token}"})
        reply = conn.getresponse()
        return reply.status, "", reply.read().decode()
    finally:
        conn.close()


def test_python_default_finds_the_login_with_its_quota_project(
        emulator: Any, logged_in: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDSDK_CONFIG", logged_in["CLOUDSDK_CONFIG"])
    credentials, _ = gcauth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    assert isinstance(credentials, Credentials)
    assert credentials.quota_project_id == "billing-1"
    with AuthorizedHttp(credentials) as http:
        reply = http.request("GET", f"{emulator.api_url}/sql/v1beta4/projects/p/instances")
    assert reply.status == 200
    assert emulator.quota_projects_seen[-1] == "billing-1"


def test_set_quota_project(emulator: Any, logged_in: dict[str, str]) -> None:
    code, out, _ = run_cli(["auth", "application-default", "set-quota-project", "other-2"],
                           logged_in)
    assert code == 0 and 'Quota project "other-2"' in out
    check_adc_file(logged_in, emulator, "other-2")


def test_explain_text_and_json(emulator: Any, logged_in: dict[str, str]) -> None:
    env = {**logged_in, "GOOGLE_CLOUD_PROJECT": "my-proj"}
    code, out, err = run_cli(["explain"], env)
    assert code == 0, err
    assert "gcloud ADC file" in out and "alice@example.com" in out
    assert "my-proj (from GOOGLE_CLOUD_PROJECT)" in out
    assert "billing-1" in out and "expires" in out
    assert "metadata server" in out and "not consulted" in out
    code, raw, err = run_cli(["explain", "--json"], env)
    assert code == 0, err
    report = json.loads(raw)
    assert report["ok"] and report["source"] == "gcloud ADC file"
    assert report["location"] == str(adc_path(env))
    assert report["account"] == "alice@example.com"
    assert report["project_id"] == "my-proj"
    assert report["quota_project_id"] == "billing-1"
    assert "https://www.googleapis.com/auth/cloud-platform" in report["scopes"]
    assert report["token"]["expires_in_seconds"] > 0
    assert [s["source"] for s in report["sources"]] == [
        "GOOGLE_APPLICATION_CREDENTIALS", "gcloud ADC file", "metadata server"]
    assert_no_secret(emulator, out, raw, err)


def test_explain_without_credentials(env: dict[str, str]) -> None:
    env = {**env, "NO_GCE_CHECK": "true"}
    code, out, err = run_cli(["explain"], env)
    assert code == 1
    assert "No credentials found" in out and "login" in out
    assert "NO_GCE_CHECK" in out
    code, raw, _ = run_cli(["explain", "--json", "--no-token"], env)
    assert code == 1 and json.loads(raw)["ok"] is False


def test_explain_reports_a_refresh_failure(emulator: Any, env: dict[str, str]) -> None:
    info = emulator.create_authorized_user()
    emulator.revoke(info["refresh_token"])
    path = adc_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(info))
    code, out, err = run_cli(["explain"], env)
    assert code == 1
    assert "could not be fetched" in out and "gcauth: error:" in err
    code, _, _ = run_cli(["explain", "--no-token"], env)
    assert code == 0
    assert_no_secret(emulator, out, err)


def test_revoke_revokes_at_the_server_and_removes_the_file(
        emulator: Any, logged_in: dict[str, str]) -> None:
    info = json.loads(adc_path(logged_in).read_text())
    code, out, err = run_cli(["auth", "application-default", "revoke"], logged_in)
    assert code == 0, err
    assert "revoked" in out
    assert not adc_path(logged_in).exists()
    creds = Credentials.from_authorized_user_info(info)
    with pytest.raises(RefreshError):
        creds.refresh(None)
    code, _, err = run_cli(["auth", "application-default", "revoke"], logged_in)
    assert code == 1 and "nothing to revoke" in err


def test_revoke_and_set_quota_refuse_service_account_files(emulator: Any,
                                                           env: dict[str, str]) -> None:
    path = adc_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(emulator.create_service_account()))
    for args in (["revoke"], ["set-quota-project", "p"]):
        code, _, err = run_cli(["auth", "application-default", *args], env)
        assert code == 1 and "'service_account' credentials" in err
    assert path.exists()


@pytest.mark.parametrize("args", [
    [], ["auth"], ["auth", "application-default"], ["explain"],
    ["auth", "application-default", "login"], ["auth", "application-default", "revoke"],
    ["auth", "application-default", "print-access-token"],
    ["auth", "application-default", "set-quota-project"],
])
def test_help_everywhere(args: list[str], env: dict[str, str]) -> None:
    code, out, _ = run_cli([*args, "--help"], env)
    assert code == 0 and "usage: gcauth" in out


def test_login_help_documents_every_option_and_exit_codes(env: dict[str, str]) -> None:
    _, out, _ = run_cli(["auth", "application-default", "login", "--help"], env)
    for option in ("--client-id-file", "--scopes", "--no-launch-browser", "--no-browser",
                   "--device", "--quota-project", "--timeout", "exit codes", "130"):
        assert option in out


def test_cli_in_process_never_prints_secrets(emulator: Any, logged_in: dict[str, str],
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from gcauth.cli import main

    for name, value in logged_in.items():
        if name in ("CLOUDSDK_CONFIG", "HOME"):
            monkeypatch.setenv(name, value)
    assert main(["explain"]) == 0
    assert main(["explain", "--json"]) == 0
    assert main(["auth", "application-default", "set-quota-project", "q-3"]) == 0
    out, err = capsys.readouterr()
    assert_no_secret(emulator, out, err)
    assert os.path.exists(logged_in["CLOUDSDK_CONFIG"])
