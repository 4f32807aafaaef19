"""Running a credential configuration's executable: real child processes (small Python scripts),
every way one can misbehave, and the output-file cache around a run.

Every run has a tight timeout of its own, and every test a pytest timeout, so nothing here can
wedge the suite.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from gcauth import _executable as ex
from gcauth.exceptions import RefreshError, UsageError

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")]

ORIGIN = "the executable `tok` configured in /etc/wif.json"
TOKEN = "SECRET-SUBJECT-TOKEN-abc.def.ghi"
#: Generous: a Python child starts in well under a second even on a loaded machine.
SLOW_START = 20.0


def script(tmp_path: Path, body: str, name: str = "tok.py") -> str:
    path = tmp_path / name
    path.write_text("import json, os, signal, subprocess, sys, time\n" + body)
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"


def response(expires_in: int = 3600) -> str:
    return json.dumps({"version": 1, "success": True,
                       "token_type": "urn:ietf:params:oauth:token-type:id_token",
                       "id_token": TOKEN, "expiration_time": int(time.time()) + expires_in})


def env(**extra: str) -> dict[str, str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    base.update(extra)
    return base


def run(command: str, timeout: float = SLOW_START, **extra: str) -> bytes:
    return ex.run(command, timeout=timeout, env=env(**extra), origin=ORIGIN)


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether process ``pid`` disappears (it is not our child: init reaps it)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie still answers kill(0); its state says it is dead
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def read_pid(path: Path, within: float = SLOW_START) -> int:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError("the child never wrote its pid")


# --- it works -------------------------------------------------------------------------------

def test_stdout_is_returned_and_parses(tmp_path: Path) -> None:
    out = run(script(tmp_path, f"print({response()!r})"))
    parsed = ex.parse_response(out, origin=ORIGIN, now=time.time(), require_expiration=False)
    assert parsed.subject_token == TOKEN


def test_exactly_the_given_environment(tmp_path: Path) -> None:
    out = run(script(tmp_path, "print(json.dumps(dict(os.environ)))"), GIVEN="1")
    seen = json.loads(out)
    assert seen["GIVEN"] == "1"
    assert "HOME" not in seen and "GCE_METADATA_HOST" not in seen


def test_child_environment_reaches_the_child(tmp_path: Path) -> None:
    parent = dict(os.environ, GOOGLE_APPLICATION_CREDENTIALS="/etc/wif.json",
                  GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES="1",
                  ACTIONS_ID_TOKEN_REQUEST_TOKEN="gh")
    child_env = ex.child_environment(parent, audience="aud", token_type="tt",
                                     impersonated_email=None, output_file="/tmp/o.json")
    out = ex.run(script(tmp_path, "print(json.dumps(dict(os.environ)))"), timeout=SLOW_START,
                 env=child_env, origin=ORIGIN)
    seen = json.loads(out)
    assert seen["GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE"] == "aud"
    assert seen["GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE"] == "/tmp/o.json"
    assert seen["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] == "gh"
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in seen
    assert "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES" not in seen


def test_arguments_are_split_without_a_shell(tmp_path: Path) -> None:
    command = script(tmp_path, "print(json.dumps(sys.argv[1:]))") + " 'a b' '$HOME' ';' '|x'"
    assert json.loads(run(command)) == ["a b", "$HOME", ";", "|x"]


def test_stdin_is_empty_and_the_child_has_its_own_session(tmp_path: Path) -> None:
    out = run(script(tmp_path, "data = sys.stdin.read()\n"
                               "print(json.dumps([data, os.getsid(0) == os.getpid(), "
                               "os.getpgrp() == os.getpid()]))"))
    assert json.loads(out) == ["", True, True]


def test_empty_stdout_is_returned_as_is(tmp_path: Path) -> None:
    assert run(script(tmp_path, "pass")) == b""


def test_large_stderr_does_not_block(tmp_path: Path) -> None:
    # 8 MiB on stderr (far past a pipe buffer) before the response
    out = run(script(tmp_path, "sys.stderr.write('e' * (8 << 20)); sys.stderr.flush()\n"
                               f"print({response()!r})"))
    assert TOKEN.encode() in out


# --- it fails -------------------------------------------------------------------------------

def test_non_zero_exit_shows_code_and_stderr_tail_never_stdout(tmp_path: Path) -> None:
    command = script(tmp_path, f"print({response()!r})\n"
                               "sys.stderr.write('x' * 5000 + 'boom \\x1b[31mred\\nline2')\n"
                               "sys.exit(3)")
    with pytest.raises(RefreshError) as info:
        run(command)
    text = str(info.value)
    assert ORIGIN in text and "exited with code 3" in text
    assert "boom" in text and "line2" in text
    assert "\x1b" not in text and "\n" not in text
    assert len(text) < 1000
    assert TOKEN not in text


def test_killed_by_a_signal(tmp_path: Path) -> None:
    with pytest.raises(RefreshError, match="killed by SIGKILL"):
        run(script(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)"))


def test_program_not_found(tmp_path: Path) -> None:
    with pytest.raises(RefreshError, match="not found") as info:
        run(f"{tmp_path}/no-such-program --flag")
    assert "no-such-program" in str(info.value)


def test_program_not_executable(tmp_path: Path) -> None:
    path = tmp_path / "tok.sh"
    path.write_text("#!/bin/sh\necho hi\n")
    path.chmod(0o644)
    with pytest.raises(RefreshError, match="permission denied"):
        run(str(path))


def test_not_a_program(tmp_path: Path) -> None:
    path = tmp_path / "garbage"
    path.write_bytes(b"\x7fELF\x00garbage")
    path.chmod(0o755)
    with pytest.raises(RefreshError, match="cannot be run"):
        run(str(path))


@pytest.mark.parametrize(("command", "problem"), [
    ("'unbalanced", "cannot be split"), ("", "is empty"), ("   ", "is empty"),
])
def test_bad_commands(command: str, problem: str) -> None:
    with pytest.raises(RefreshError, match=problem):
        run(command)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True])
def test_bad_timeouts(timeout: float) -> None:
    with pytest.raises(UsageError):
        ex.run("true", timeout=timeout, env=env(), origin=ORIGIN)


def test_nul_in_the_environment(tmp_path: Path) -> None:
    with pytest.raises(RefreshError, match="environment"):
        run(script(tmp_path, "pass"), BAD="a\0b")


def test_too_much_stdout_kills_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = script(tmp_path, f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                               "while True:\n    sys.stdout.write('x' * 65536)\n")
    with pytest.raises(RefreshError, match=f"more than {ex.MAX_OUTPUT_BYTES} bytes"):
        run(command)
    assert gone(read_pid(pid_file))


# --- it never hangs -------------------------------------------------------------------------

def test_timeout_kills_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = script(tmp_path, f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                               "sys.stderr.write('working...'); sys.stderr.flush()\n"
                               "time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(RefreshError) as info:
        run(command, timeout=1.5)
    assert time.monotonic() - started < 15
    text = str(info.value)
    assert "timed out after 1.5 s" in text and "timeout_millis" in text
    assert "working..." in text
    assert gone(read_pid(pid_file))


def test_a_child_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = script(tmp_path, "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                               f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                               "while True:\n    time.sleep(0.1)\n")
    started = time.monotonic()
    with pytest.raises(RefreshError, match="timed out"):
        run(command, timeout=1.5)
    assert time.monotonic() - started < 15
    assert gone(read_pid(pid_file))


def test_a_child_that_closes_stdout_but_keeps_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = script(tmp_path, f"print({response()!r}, flush=True)\n"
                               "os.close(1); os.close(2)\n"
                               f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                               "time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(RefreshError, match="timed out"):
        run(command, timeout=1.5)
    assert time.monotonic() - started < 15
    assert gone(read_pid(pid_file))


def test_a_grandchild_holding_the_pipe(tmp_path: Path) -> None:
    """The executable exits, leaving a process that keeps its stdout and stderr open: its
    output is returned once the drain grace is over, and the leftover is killed."""
    pid_file = tmp_path / "pid"
    command = script(tmp_path,
                     "child = subprocess.Popen([sys.executable, '-c', "
                     "'import time; time.sleep(60)'])\n"
                     f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
                     f"print({response()!r}, flush=True)\n")
    started = time.monotonic()
    out = run(command, timeout=30)
    assert time.monotonic() - started < 15      # far less than the 30 s timeout
    assert TOKEN.encode() in out
    assert gone(read_pid(pid_file))


def test_a_background_process_not_holding_the_pipes_is_left_alone(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = script(tmp_path,
                     "child = subprocess.Popen([sys.executable, '-c', "
                     "'import time; time.sleep(30)'], stdout=subprocess.DEVNULL, "
                     "stderr=subprocess.DEVNULL)\n"
                     f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
                     f"print({response()!r}, flush=True)\n")
    assert TOKEN.encode() in run(command)
    pid = read_pid(pid_file)
    try:
        assert not gone(pid, within=0.5)
    finally:
        os.kill(pid, 9)


def test_a_grandchild_ignoring_sigterm_after_a_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    grandchild = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                  "time.sleep(60)")
    command = script(tmp_path,
                     f"child = subprocess.Popen([sys.executable, '-c', {grandchild!r}])\n"
                     f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
                     "time.sleep(60)")
    with pytest.raises(RefreshError, match="timed out"):
        run(command, timeout=2)
    assert gone(read_pid(pid_file))


# --- the output-file cache around a run ----------------------------------------------------

def test_output_file_cache_sequence(tmp_path: Path) -> None:
    """What the credential does: check permission, try the output file, run, parse; the
    second time, the file answers and the executable is not run."""
    output = tmp_path / "cache" / "out.json"
    output.parent.mkdir()
    runs = tmp_path / "runs"
    command = script(tmp_path,
                     f"open({str(runs)!r}, 'a').write('x')\n"
                     f"body = {response()!r}\n"
                     "open(os.environ['GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE'], 'w').write(body)\n"
                     "print(body)")
    environ = dict(os.environ, GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES="1")

    def subject_token() -> str:
        ex.check_allowed(environ, origin=ORIGIN)
        cached = ex.load_output_file(str(output), origin=ORIGIN, now=time.time())
        if cached is not None:
            return cached.subject_token
        child_env = ex.child_environment(environ, audience="aud",
                                         token_type=ex.TOKEN_TYPE_ID_TOKEN,
                                         impersonated_email=None, output_file=str(output))
        out = ex.run(command, timeout=SLOW_START, env=child_env, origin=ORIGIN)
        return ex.parse_response(out, origin=ORIGIN, now=time.time(),
                                 require_expiration=True).subject_token

    assert ex.load_output_file(str(output), origin=ORIGIN, now=time.time()) is None
    assert subject_token() == TOKEN
    assert subject_token() == TOKEN
    assert runs.read_text() == "x"                    # the second answer came from the file
    # an expired file means a new run
    output.write_text(response(expires_in=-10))
    assert subject_token() == TOKEN
    assert runs.read_text() == "xx"
