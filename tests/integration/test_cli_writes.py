"""CLI writes lose nothing and never leave secrets behind (issue 9, item 5), driven as a user
meets them: ``gcauth`` subprocesses against the emulator, or against a tiny hostile OAuth
server on loopback for replies the emulator never sends."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gcauth import _files
from gcauth.emulator import Emulator
from tests.kit.cli import Cli, adc_path, cli_env, consent, run_cli

CONTROL = ("\x1b", "\x07", "\r", "\x08", "\x9b", "\u202e")


def login_console(env: dict[str, str], client_file: Path, *extra: str) -> Cli:
    """Start ``login --no-browser`` and approve it on the emulator's consent page."""
    cli = Cli(["auth", "application-default", "login", "--no-browser",
               f"--client-id-file={client_file}", *extra], env)
    cli.send(consent(cli.url_line()) + "\n")
    return cli


def issued(emu: Emulator) -> list[Any]:
    return emu.issued_refresh_tokens()


def no_temps(directory: Path) -> bool:
    return not directory.exists() or not [p for p in directory.iterdir()
                                          if p.name.endswith(".tmp")]


# -- a login whose file cannot be saved ----------------------------------------------------
def assert_revoked_and_said_so(emu: Emulator, code: int, out: str, err: str,
                               path: Path) -> None:
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gcauth: error: the credentials could not "
                                                   f"be saved to {path}")
    assert "revoked at the server" in err and "CLOUDSDK_CONFIG" in err
    assert "Credentials saved" not in out
    (grant,) = issued(emu)
    assert grant.revoked  # the new login is not left live at the server
    assert grant.token not in out + err


def test_login_under_a_file_revokes_and_says_so(fresh_emulator: Emulator,
                                                tmp_path: Path) -> None:
    client = tmp_path / "client.json"
    client.write_text(json.dumps(fresh_emulator.create_oauth_client("installed")))
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = cli_env(tmp_path, CLOUDSDK_CONFIG=str(blocker / "gcloud"))
    code, out, err = login_console(env, client).finish()
    assert_revoked_and_said_so(fresh_emulator, code, out, err, adc_path(env))
    assert "part of that path is a file" in err
    assert blocker.read_text() == ""


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root writes to read-only directories")
def test_login_into_a_read_only_directory_revokes_and_says_so(fresh_emulator: Emulator,
                                                              tmp_path: Path) -> None:
    client = tmp_path / "client.json"
    client.write_text(json.dumps(fresh_emulator.create_oauth_client("installed")))
    env = cli_env(tmp_path)
    config = Path(env["CLOUDSDK_CONFIG"])
    config.mkdir(mode=0o500)
    try:
        code, out, err = login_console(env, client).finish()
    finally:
        config.chmod(0o700)
    assert_revoked_and_said_so(fresh_emulator, code, out, err, adc_path(env))
    assert "writable" in err and no_temps(config)


def test_login_on_a_full_disk_revokes_and_leaves_no_temporary_file(
        fresh_emulator: Emulator, tmp_path: Path) -> None:
    """A disk that fills up mid-write, simulated with a file-size limit on the CLI process
    (the write fails with EFBIG after the temporary file was created)."""
    client = tmp_path / "client.json"
    client.write_text(json.dumps(fresh_emulator.create_oauth_client("installed")))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, resource\n"
        "limit = int(os.environ['TEST_FSIZE_LIMIT'])\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n")
    env = cli_env(tmp_path, TEST_FSIZE_LIMIT="64", PYTHONDONTWRITEBYTECODE="1",
                  PYTHONPATH=os.pathsep.join([str(hook), *sys.path]))
    code, out, err = login_console(env, client).finish()
    assert_revoked_and_said_so(fresh_emulator, code, out, err, adc_path(env))
    assert "free some space" in err
    config = Path(env["CLOUDSDK_CONFIG"])
    assert config.is_dir() and list(config.iterdir()) == []  # no half file, no .tmp


def test_login_creates_the_config_directory_0700(emulator: Emulator, client_file: Path,
                                                 env: dict[str, str]) -> None:
    code, _, err = login_console(env, client_file).finish()
    assert code == 0, err
    assert stat.S_IMODE(adc_path(env).parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(adc_path(env).stat().st_mode) == 0o600


# -- kill -9 during a write ----------------------------------------------------------------
KILLED_WRITER = r"""
import os, sys
from gcauth import _files
real = os.fsync
def fsync(fd):
    real(fd)
    print("writing", flush=True)
    sys.stdin.readline()   # killed here, with the temporary file complete on disk
os.fsync = fsync
_files.write_private_json(sys.argv[1], {"type": "authorized_user", "client_id": "c",
                                        "client_secret": "s", "refresh_token": sys.argv[2]})
"""


def kill_mid_write(path: Path, token: str) -> Path:
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), token],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        for stream in (writer.stdin, writer.stdout):
            if stream is not None:
                stream.close()
    (left,) = [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert token in left.read_text()  # what a killed write leaves: a secret in a .tmp
    return left


def test_the_next_cli_write_removes_what_a_killed_write_left(emulator: Emulator,
                                                             env: dict[str, str]) -> None:
    path = adc_path(env)
    _files.write_private_json(path, emulator.create_authorized_user())
    left = kill_mid_write(path, "1//secret-of-the-killed-write")
    time.sleep(_files.STALE_TEMP_SECONDS + 0.2)  # the grace period of writes in progress
    code, _, err = run_cli(["auth", "application-default", "set-quota-project", "q-1"], env)
    assert code == 0, err
    assert not left.exists() and no_temps(path.parent)
    assert json.loads(path.read_text())["quota_project_id"] == "q-1"


def test_revoke_also_cleans_up(fresh_emulator: Emulator, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    path = adc_path(env)
    _files.write_private_json(path, fresh_emulator.create_authorized_user())
    left = kill_mid_write(path, "1//secret-of-the-killed-write")
    time.sleep(_files.STALE_TEMP_SECONDS + 0.2)
    code, _, err = run_cli(["auth", "application-default", "revoke"], env)
    assert code == 0, err
    assert not left.exists() and list(path.parent.iterdir()) == []


def test_a_login_also_cleans_up(emulator: Emulator, client_file: Path,
                                env: dict[str, str]) -> None:
    path = adc_path(env)
    left = kill_mid_write(path, "1//secret-of-the-killed-write")
    time.sleep(_files.STALE_TEMP_SECONDS + 0.2)
    code, _, err = login_console(env, client_file).finish()
    assert code == 0, err
    assert not left.exists() and no_temps(path.parent)


# -- revoke racing a new login -------------------------------------------------------------
def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_revoke_leaves_a_newer_login_in_place(fresh_emulator: Emulator,
                                              tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    path = adc_path(env)
    old = fresh_emulator.create_authorized_user()
    _files.write_private_json(path, old)
    fresh_emulator.faults.add("revoke", kind="stall", seconds=2)
    cli = Cli(["auth", "application-default", "revoke"], env)
    wait_for(lambda: fresh_emulator.counts["revoke"] >= 1)  # revoke has read the old file...
    new = fresh_emulator.create_authorized_user()
    _files.write_private_json(path, new)  # ...and a new login lands before it deletes it
    code, out, err = cli.finish()
    assert code == 0, err
    assert "Credentials revoked" in out and "newer login" in out and "left in place" in out
    assert json.loads(path.read_text())["refresh_token"] == new["refresh_token"]
    state = {t.token: t.revoked for t in fresh_emulator.issued_refresh_tokens()}
    assert state[old["refresh_token"]] is True and state[new["refresh_token"]] is False
    assert no_temps(path.parent)


def test_revoke_still_deletes_the_file_it_revoked(fresh_emulator: Emulator,
                                                  tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    path = adc_path(env)
    _files.write_private_json(path, fresh_emulator.create_authorized_user())
    code, out, err = run_cli(["auth", "application-default", "revoke"], env)
    assert code == 0, err
    assert "deleted" in out and not path.exists() and list(path.parent.iterdir()) == []


# -- symbolic links out of the config directory -------------------------------------------
@pytest.fixture
def linked_out(emulator: Emulator, env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    """The ADC path is a link to another user file outside the gcloud directory."""
    other = tmp_path / "elsewhere" / "someone-else.json"
    _files.write_private_json(other, emulator.create_authorized_user())
    path = adc_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(other)
    yield other


@pytest.mark.parametrize("args", [["revoke"], ["set-quota-project", "q-2"]])
def test_revoke_and_set_quota_project_refuse_a_link_out_of_the_config_dir(
        emulator: Emulator, env: dict[str, str], linked_out: Path, args: list[str]) -> None:
    before = linked_out.read_bytes()
    revokes = emulator.counts["revoke"]
    code, out, err = run_cli(["auth", "application-default", *args], env)
    assert code == 1 and out == ""
    assert "symbolic link" in err and "outside" in err and err.count("\n") == 1
    assert linked_out.read_bytes() == before  # its token was neither revoked nor copied
    assert emulator.counts["revoke"] == revokes
    assert adc_path(env).is_symlink()
    token = json.loads(before)["refresh_token"]
    assert token not in err
    assert not [p for p in adc_path(env).parent.iterdir() if p.name.endswith(".tmp")]


def test_a_link_inside_the_config_dir_is_still_followed(emulator: Emulator,
                                                        env: dict[str, str]) -> None:
    path = adc_path(env)
    real = path.parent / "legacy" / "adc.json"
    _files.write_private_json(real, emulator.create_authorized_user())
    path.symlink_to(real)
    code, _, err = run_cli(["auth", "application-default", "set-quota-project", "q-3"], env)
    assert code == 0, err
    assert json.loads(path.read_text())["quota_project_id"] == "q-3"


# -- text from servers and files is printed without terminal control characters -----------
HOSTILE = "\x1b]0;owned\x07\x1b[2K\rCredentials saved to file: [/etc/passwd]\x9b\u202e"


def unsigned_jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


class HostileOAuth:
    """A loopback OAuth server whose replies carry terminal escape sequences."""

    def __init__(self) -> None:
        self.token_reply: tuple[int, dict[str, Any]] = (200, {})
        self.device_reply: dict[str, Any] = {}
        self.revoked: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                path = urlsplit(self.path).path
                if path == "/token" and form.get("grant_type", "").endswith("device_code"):
                    status, body = 403, {"error": "access_denied",
                                         "error_description": HOSTILE}
                elif path == "/token":
                    status, body = owner.token_reply
                elif path == "/device/code":
                    status, body = 200, owner.device_reply
                elif path == "/revoke":
                    owner.revoked.append(form.get("token", ""))
                    status, body = 200, {}
                else:
                    status, body = 404, {}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def client_file(self, directory: Path) -> Path:
        path = directory / "hostile-client.json"
        path.write_text(json.dumps({"installed": {
            "client_id": "cid", "client_secret": "csecret", "auth_uri": f"{self.url}/auth",
            "token_uri": f"{self.url}/token", "redirect_uris": ["http://localhost"]}}))
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def hostile() -> Iterator[HostileOAuth]:
    server = HostileOAuth()
    yield server
    server.close()


def paste_code(cli: Cli) -> None:
    url = cli.url_line()
    state = parse_qs(urlsplit(url).query)["state"][0]
    cli.send(f"http://localhost:1/?code=4%2Fcode&state={state}\n")


def assert_clean(*texts: str) -> None:
    for text in texts:
        for char in CONTROL:
            assert char not in text, (char, text)


def test_an_account_from_the_server_is_printed_without_control_characters(
        hostile: HostileOAuth, tmp_path: Path, env: dict[str, str]) -> None:
    hostile.token_reply = (200, {
        "access_token": "ya29.x", "expires_in": 3600, "refresh_token": "1//hostile",
        "scope": "openid", "id_token": unsigned_jwt({"email": HOSTILE + "eve@example.com"})})
    cli = Cli(["auth", "application-default", "login", "--no-browser", "--scopes=openid",
               f"--client-id-file={hostile.client_file(tmp_path)}"], env)
    paste_code(cli)
    code, out, err = cli.finish()
    assert code == 0, err
    assert_clean(out, err)
    (saved,) = [line for line in out.splitlines() if line.startswith("Credentials saved")]
    assert saved.endswith("eve@example.com") and str(adc_path(env)) in saved
    # explain shows the account from the file, cleaned the same way
    code, out, err = run_cli(["explain", "--no-token"], env)
    assert code == 0, err
    assert_clean(out, err)
    assert "eve@example.com" in out


def test_an_error_description_is_printed_without_control_characters(
        hostile: HostileOAuth, tmp_path: Path, env: dict[str, str]) -> None:
    hostile.token_reply = (400, {"error": "invalid_grant", "error_description": HOSTILE})
    cli = Cli(["auth", "application-default", "login", "--no-browser", "--scopes=openid",
               f"--client-id-file={hostile.client_file(tmp_path)}"], env)
    paste_code(cli)
    code, out, err = cli.finish()
    assert code == 1
    assert_clean(out, err)
    assert err.startswith("gcauth: error:") and "invalid_grant" in err
    assert "owned" in err  # the printable part of the description is still shown
    assert not adc_path(env).exists()


def test_device_flow_text_from_the_server_is_printed_without_control_characters(
        hostile: HostileOAuth, tmp_path: Path, env: dict[str, str]) -> None:
    hostile.device_reply = {"device_code": "dc", "user_code": "AB\x1b[8mCD-EFGH",
                            "verification_uri": f"{hostile.url}/device\x1b]8;;evil\x07",
                            "expires_in": 30, "interval": 0.1}
    code, out, err = run_cli(["auth", "application-default", "login", "--device",
                              "--scopes=openid",
                              f"--client-id-file={hostile.client_file(tmp_path)}"], env)
    assert code == 1 and "access was denied" in err
    assert_clean(out, err)
    assert "ABCD-EFGH" in out.replace("[8m", "") and f"{hostile.url}/device" in out


def test_a_login_that_cannot_be_saved_is_revoked_at_its_clients_endpoint(
        hostile: HostileOAuth, tmp_path: Path) -> None:
    hostile.token_reply = (200, {"access_token": "ya29.x", "expires_in": 3600,
                                 "refresh_token": "1//to-revoke", "scope": "openid"})
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = cli_env(tmp_path, CLOUDSDK_CONFIG=str(blocker / "gcloud"))
    cli = Cli(["auth", "application-default", "login", "--no-browser", "--scopes=openid",
               f"--client-id-file={hostile.client_file(tmp_path)}"], env)
    paste_code(cli)
    code, _, err = cli.finish()
    assert code == 1 and "revoked at the server" in err
    assert hostile.revoked == ["1//to-revoke"]
    assert "1//to-revoke" not in err
