"""Run code that could wedge the test process (``fork``, signals, exhausted resources) in a
child Python with a timeout, so a regression fails the test instead of hanging the suite.

The child gets :data:`PRELUDE` (imports, :func:`report`, :func:`hour_token`,
:func:`fork_and_wait`) and reports one JSON object with ``report(...)``. Any process it forks
has an alarm, and the whole process group is killed when the timeout passes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = '''
import asyncio, json, os, select, signal, sys, threading, time
from datetime import datetime, timedelta, timezone
from gcauth.tokens import Token, TokenCache, TokenState
from gcauth.exceptions import GCAuthError, RefreshAbandonedError, RefreshDeadlockError

def report(**values):
    print("RESULT " + json.dumps(values), flush=True)

def hour_token(value, lifetime=3600.0, age=0.0):
    issued = datetime.now(timezone.utc) - timedelta(seconds=age)
    return Token(value, expiry=issued + timedelta(seconds=lifetime), issued_at=issued)

def fork_and_wait(child, timeout=15.0):
    """Fork; the child runs ``child()`` (a JSON-able result) under an alarm. Returns
    ("exited", result) or ("hung", None) / ("died", status)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        signal.alarm(int(timeout) + 5)
        try:
            out = {"ok": child()}
        except BaseException as exc:
            out = {"error": type(exc).__name__, "message": str(exc)[:300]}
        os.write(write_end, json.dumps(out).encode())
        os._exit(0)
    os.close(write_end)
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            return "hung", None
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        data += chunk
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if not data:
        return "died", status
    return "exited", json.loads(data)
'''


def run_child(code: str, *, timeout: float = 60, stdin: str | None = None,
              setup: str = "") -> dict[str, Any]:
    """Run ``PRELUDE + setup + code`` (``code`` dedented) in a fresh interpreter; return what
    it ``report``-ed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(setup) + textwrap.dedent(code)],
        cwd=ROOT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the child process hung (killed after {timeout:g} s); stderr:\n{err[-2000:]}")
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT "):])
            return result
    pytest.fail(f"the child reported nothing (exit {proc.returncode}); stderr:\n{err[-3000:]}")
