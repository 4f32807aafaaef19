"""Helpers for driving the ``gcauth`` CLI as a subprocess and approving sign-ins over HTTP.

Shared by ``tests/integration/test_login_*.py`` (HTTP approval, no browser) and the
browser tests in this directory.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

CLOUD = "https://www.googleapis.com/auth/cloud-platform"


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: the test's isolated env (HOME, no GOOGLE_*),
    gcloud's directory inside ``tmp``, and no display (so no browser is ever launched)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    env["CLOUDSDK_CONFIG"] = str(tmp / "gcloud")
    env["HOME"] = str(tmp / "home")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def adc_path(env: Mapping[str, str]) -> Path:
    return Path(env["CLOUDSDK_CONFIG"]) / "application_default_credentials.json"


class Cli:
    """A running ``gcauth`` subprocess whose output is read line by line.

    Every instance is tracked so that a test failing before :meth:`finish` still has its
    process killed and pipes closed at teardown (see :func:`finish_all`).
    """

    running: list[Cli] = []

    def __init__(self, args: list[str], env: Mapping[str, str]):
        Cli.running.append(self)
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gcauth.cli", *args], env=dict(env), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out, True),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err, False),
                             daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: object, sink: list[str], forward: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink.append(line)
            if forward:
                self._lines.put(line.rstrip("\n"))
        if forward:
            self._lines.put(None)

    def wait_for_line(self, match: Callable[[str], bool], timeout: float = 20.0) -> str:
        """The first stdout line (not yet consumed) for which ``match`` is true."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching line in time; stdout={''.join(self.out)!r} "
                                     f"stderr={''.join(self.err)!r}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"process ended first; stdout={''.join(self.out)!r} "
                                     f"stderr={''.join(self.err)!r}")
            if match(line):
                return line

    def url_line(self, timeout: float = 20.0) -> str:
        return self.wait_for_line(lambda line: line.startswith(("http://", "https://")),
                                  timeout)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def finish(self, timeout: float = 30.0) -> tuple[int, str, str]:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for reader in self._readers:
                reader.join(5)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
            if self in Cli.running:
                Cli.running.remove(self)
        return code, "".join(self.out), "".join(self.err)


def finish_all() -> None:
    """Kill and reap every Cli a test left running (it failed before calling finish)."""
    for cli in list(Cli.running):
        try:
            cli.finish(timeout=0.1)
        except subprocess.TimeoutExpired:
            pass


def run_cli(args: list[str], env: Mapping[str, str], timeout: float = 60.0,
            ) -> tuple[int, str, str]:
    """Run ``gcauth ARGS`` to completion; returns (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "gcauth.cli", *args], env=dict(env),
                          text=True, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout, done.stderr


def http_get(url: str, timeout: float = 10.0) -> tuple[int, dict[str, str], str]:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        conn.request("GET", f"{path}?{parts.query}" if parts.query else path)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, \
            reply.read().decode("utf-8", "replace")
    finally:
        conn.close()


def consent(auth_url: str, decision: str = "allow", account: str | None = None) -> str:
    """Do what a user does on the emulator's consent page, over plain HTTP: returns the
    ``Location`` the browser would be redirected to (it is not followed)."""
    status, _, page = http_get(auth_url)
    assert status == 200, page
    pending = re.search(r'name="pending" value="([^"]+)"', page)
    assert pending, page
    if account is None:
        found = re.search(r'name="account" value="([^"]+)" checked', page)
        assert found, page
        account = found.group(1)
    parts = urlsplit(auth_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        body = urlencode({"pending": pending.group(1), "decision": decision,
                          "account": account})
        conn.request("POST", "/o/oauth2/approve", body,
                     {"Content-Type": "application/x-www-form-urlencoded"})
        reply = conn.getresponse()
        reply.read()
        location = reply.getheader("Location")
    finally:
        conn.close()
    assert reply.status == 302 and location, reply.status
    return location


def device_code_from(cli: Cli) -> str:
    """The user code the CLI shows in the device flow (the line after 'enter the code')."""
    cli.wait_for_line(lambda line: "enter the code" in line)
    return cli.wait_for_line(lambda line: bool(re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}",
                                                            line.strip()))).strip()


# -- fixtures shared by the CLI tests (imported into their modules) -------------------------
@pytest.fixture
def client_file(emulator: Any, tmp_path: Path) -> Path:
    """An installed-app client_secrets.json registered with the session emulator."""
    path = tmp_path / "client_secrets.json"
    path.write_text(json.dumps(emulator.create_oauth_client("installed")))
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment for a CLI subprocess, with HOME and CLOUDSDK_CONFIG in ``tmp_path``."""
    return cli_env(tmp_path)
