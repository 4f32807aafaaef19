"""Errors as a new user meets them (issue 13, items 2, 5, 6 and 7): one line plus a hint, the
exit codes of the README's table, ``explain`` that still shows its table when a source is
broken, hints that name the source that failed, and what to do when an endpoint is gone.
Every test runs the CLI (or ``python -m gcauth.emulator``) as a subprocess."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gcauth.emulator import Emulator
from tests.kit.cli import adc_path, run_cli

PRINT = ["auth", "application-default", "print-access-token"]


def two_lines(err: str) -> tuple[str, str]:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 2, err
    return lines[0], lines[1]


# -- item 2: gcauth emulator start-up errors -----------------------------------------------
@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [["-m", "gcauth.cli", "emulator"],
                                     ["-m", "gcauth.emulator"]])
@pytest.mark.parametrize(("args", "expected", "fix"), [
    (["--host", "0.0.0.0"], "--host 0.0.0.0 is not a loopback address", "--host 127.0.0.1"),
    (["--host", "192.168.1.10"], "not a loopback address", "--host 127.0.0.1"),
    (["--port", "80000"], "--port 80000 is not a port number (0 to 65535)", "--port 0"),
    (["--port", "-1"], "--port -1 is not a port number", "--port 0"),
])
def test_emulator_usage_errors_exit_2(command: list[str], args: list[str], expected: str,
                                      fix: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, *command, *args], env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert done.stdout == ""
    first, second = two_lines(done.stderr)
    assert expected in first and "error: " in first
    assert second.startswith("Fix: ") and fix in second


@pytest.mark.parametrize("command", [["-m", "gcauth.cli", "emulator"],
                                     ["-m", "gcauth.emulator"]])
def test_emulator_port_in_use_exits_1(command: list[str], busy_port: int,
                                      env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, *command, "--port", str(busy_port)], env=env,
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    first, second = two_lines(done.stderr)
    assert f"127.0.0.1 port {busy_port} is already in use" in first
    assert second.startswith("Fix: ") and "--port 0" in second


# -- item 5: explain shows its table when a source is broken --------------------------------
@pytest.mark.parametrize("content", ['{"type": "authorized_user", "client_id": ',
                                     '{"type": "frobnicated_account"}'])
def test_explain_marks_a_broken_adc_file_in_its_table(env: dict[str, str],
                                                      content: str) -> None:
    path = adc_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    code, out, err = run_cli(["explain"], env)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "Application Default Credentials"
    assert f"gcloud ADC file ({path}) was found but cannot be used (BROKEN below)" in out
    assert "Sources, in ADC order:" in lines
    table = lines[lines.index("Sources, in ADC order:") + 1:]
    assert table[0].startswith("  1. GOOGLE_APPLICATION_CREDENTIALS: not found")
    assert table[1].startswith(f"  2. gcloud ADC file ({path}): BROKEN, ")
    reason = "not valid JSON" if content.endswith(": ") else "frobnicated_account"
    assert reason in table[1]
    assert table[2].startswith("  3. metadata server: not consulted, ADC stops at a source "
                               "it cannot use")
    assert err.startswith("gcauth: error: The gcloud ADC file") and reason in err
    report = json.loads(run_cli(["explain", "--format", "json"], env)[1])
    assert report["ok"] is False and reason in report["error"]
    assert [s["outcome"] for s in report["sources"]] == ["not found", "broken", "not consulted"]


def test_explain_marks_a_broken_google_application_credentials_file(
        env: dict[str, str], tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": "service_account", "client_email": "x@y"}))
    code, out, err = run_cli(["explain"], {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(key)})
    assert code == 1
    assert f"  1. GOOGLE_APPLICATION_CREDENTIALS ({key}): BROKEN, " in out
    assert "private_key" in out  # the reason: the missing field
    assert f"Fix: fix or replace {key}, or unset GOOGLE_APPLICATION_CREDENTIALS" in out
    assert "  2. gcloud ADC file: not consulted, ADC stops at a source it cannot use" in out


# -- item 6: the hint names the source that failed ------------------------------------------
def test_a_revoked_login_named_by_the_variable_says_to_fix_the_variable(
        emulator: Any, env: dict[str, str], tmp_path: Path) -> None:
    info = emulator.create_authorized_user()
    emulator.revoke(info["refresh_token"])
    named = tmp_path / "my-login.json"
    named.write_text(json.dumps(info))
    code, _, err = run_cli(PRINT, {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(named)})
    assert code == 1 and "invalid_grant" in err
    assert f"(from {named}, named by GOOGLE_APPLICATION_CREDENTIALS)" in err
    assert f"GOOGLE_APPLICATION_CREDENTIALS names {named}, so ADC keeps using that file" in err
    assert "or unset it and run `gcauth auth application-default login`" in err


def test_a_revoked_login_in_the_adc_file_says_to_log_in_again(emulator: Any,
                                                               env: dict[str, str]) -> None:
    info = emulator.create_authorized_user()
    emulator.revoke(info["refresh_token"])
    path = adc_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(info))
    code, _, err = run_cli(PRINT, env)
    assert code == 1
    assert f"(from the gcloud ADC file {path}) has expired or was revoked: run `gcauth auth " \
           "application-default login` to log in again." in err
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in err


# -- item 7: an endpoint that is gone --------------------------------------------------------
@pytest.fixture
def stopped_emulator_files(env: dict[str, str], tmp_path: Path) -> tuple[Path, Path, str]:
    """An ADC user file and a service-account key written by an emulator that then stopped."""
    with Emulator() as gone:
        user, key = gone.create_authorized_user(), gone.create_service_account()
        where = gone.metadata_host
    path = adc_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(user))
    key_path = tmp_path / "key.json"
    key_path.write_text(json.dumps(key))
    return path, key_path, where


def test_a_stopped_emulator_is_named_with_the_file_and_what_to_do(
        env: dict[str, str], stopped_emulator_files: tuple[Path, Path, str]) -> None:
    path, key_path, where = stopped_emulator_files
    code, out, err = run_cli(PRINT, env)
    assert code == 1 and out == ""
    assert err.startswith(f"gcauth: error: request to http://{where}/token failed")
    assert f"This is the token endpoint of the credential (from the gcloud ADC file {path})" \
           in err
    assert f"nothing answers at {where}, an address on this machine" in err
    assert "it is not running there any more" in err and "Start `gcauth emulator` again" in err
    code, _, err = run_cli(PRINT, {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)})
    assert code == 1
    assert f"(from {key_path}, named by GOOGLE_APPLICATION_CREDENTIALS)" in err
    assert "it is not running there any more" in err


def test_revoke_of_a_login_whose_server_is_gone_offers_local_only(
        env: dict[str, str], stopped_emulator_files: tuple[Path, Path, str]) -> None:
    path, _, where = stopped_emulator_files
    code, out, err = run_cli(["auth", "application-default", "revoke"], env)
    assert code == 1 and out == ""
    assert f"request to http://{where}/revoke failed" in err
    assert "could not be revoked, and the file was left in place" in err
    assert "`gcauth auth application-default revoke --local-only`" in err
    assert path.exists()
    code, out, err = run_cli(["auth", "application-default", "revoke", "--local-only"], env)
    assert code == 0, err
    assert out.startswith(f"Not revoked (--local-only): nothing was contacted; {path} deleted.")
    assert not path.exists()
