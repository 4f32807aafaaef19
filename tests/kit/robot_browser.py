"""A stand-in for the user's browser, for ``BROWSER``: ``gcauth ... login`` launches it with
the sign-in URL, and it does what a user does on the emulator's consent page, over plain
HTTP on loopback: open the page, choose Allow (or Deny), follow the redirect back to the
CLI's loopback server, then (with ``ROBOT_SLEEP``) stay in the foreground like a browser
that has not been closed.

Settings come from the environment the CLI passes on: ``ROBOT_LOG`` (a JSON-lines file the
robot appends what it saw to), ``ROBOT_DECISION`` (``allow``, the default, or ``deny``),
``ROBOT_SLEEP`` (seconds to stay running afterwards). Use :func:`install` to get the
executable and the environment.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import stat
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[2]


def _get(url: str) -> tuple[int, str | None, str]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=15)
    try:
        conn.request("GET", f"{parts.path or '/'}?{parts.query}" if parts.query
                     else parts.path or "/")
        reply = conn.getresponse()
        return reply.status, reply.getheader("Location"), reply.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _listening(redirect_uri: str) -> bool:
    parts = urlsplit(redirect_uri)
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname or "127.0.0.1"
    try:
        with socket.create_connection((host, parts.port or 80), timeout=2):
            return True
    except OSError:
        return False


def main(url: str) -> int:
    log = os.environ.get("ROBOT_LOG")
    record: dict[str, object] = {"pid": os.getpid(), "url_host": urlsplit(url).netloc}
    redirect_uri = parse_qs(urlsplit(url).query).get("redirect_uri", [""])[0]
    record["server_listening_at_launch"] = _listening(redirect_uri) if redirect_uri else None
    status, _, page = _get(url)
    record["consent_status"] = status
    pending = re.search(r'name="pending" value="([^"]+)"', page)
    account = re.search(r'name="account" value="([^"]+)" checked', page)
    if status == 200 and pending and account:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=15)
        try:
            conn.request("POST", "/o/oauth2/approve", urlencode({
                "pending": pending.group(1), "account": account.group(1),
                "decision": os.environ.get("ROBOT_DECISION", "allow")}),
                {"Content-Type": "application/x-www-form-urlencoded"})
            reply = conn.getresponse()
            reply.read()
            location = reply.getheader("Location")
        finally:
            conn.close()
        if location:
            back, _, body = _get(location)
            record["redirect_status"] = back
            title = re.search(r"<h1[^>]*>([^<]*)</h1>", body)
            record["page_title"] = title.group(1) if title else None
            record["page"] = body
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    linger = float(os.environ.get("ROBOT_SLEEP", "0") or 0)
    if linger:
        # a browser that stays open: in the foreground, without the CLI's output pipes
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        time.sleep(linger)
    return 0


def install(directory: Path, *, log: Path, decision: str = "allow",
            linger: float = 0.0) -> dict[str, str]:
    """Write the ``BROWSER`` executable into ``directory``; the environment that selects it."""
    script = directory / "robot-browser"
    script.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m "
                      f"tests.kit.robot_browser \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"BROWSER": str(script), "ROBOT_LOG": str(log), "ROBOT_DECISION": decision,
            "ROBOT_SLEEP": str(linger)}


def records(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
