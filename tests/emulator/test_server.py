"""Server mechanics: keep-alive, framing, lifecycle, loopback-only binding, CLI."""

from __future__ import annotations

import http.client
import io
import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from gcauth.emulator import Emulator, serve_forever
from tests.kit.emu import Kit


def test_keep_alive_many_requests_one_connection(emu: Emulator, sa: dict[str, str]) -> None:
    kit = Kit(emu)
    tok = kit.sa_token(sa)
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=5)
    try:
        conn.connect()
        sock = conn.sock
        t0 = time.monotonic()
        for i in range(60):
            if i % 2:
                conn.request("GET", "/sql/v1beta4/projects/p/instances",
                             headers={"Authorization": f"Bearer {tok}"})
            else:
                conn.request("POST", "/tokeninfo", body=urlencode({"access_token": tok}),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            r = conn.getresponse()
            assert r.status == 200
            assert r.getheader("Connection") is None
            r.read()
            assert conn.sock is sock  # never reconnected
        elapsed = time.monotonic() - t0
    finally:
        conn.close()
    # A Nagle/delayed-ACK stall costs ~40 ms per round trip; 60 of them would take > 2 s.
    assert elapsed < 1.2, elapsed


def test_reply_is_one_segment(emu: Emulator) -> None:
    """Status line, headers and body arrive together (a single write)."""
    with socket.create_connection((emu.host, emu.port)) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.05)
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\nok")
    assert b"Content-Length: 2\r\n" in data


def test_chunked_request_body(emu: Emulator) -> None:
    body = b"token=ya29.unknown"
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with socket.create_connection((emu.host, emu.port)) as sock:
        sock.sendall(b"POST /revoke HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n\r\n" + chunked)
        time.sleep(0.05)
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 400") and b"invalid_token" in data


def test_oversized_body_rejected(emu: Emulator) -> None:
    with socket.create_connection((emu.host, emu.port)) as sock:
        sock.sendall(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n\r\n")
        sock.settimeout(2)
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 413") and b"Connection: close" in data


def test_connection_close_honoured(emu: Emulator) -> None:
    with socket.create_connection((emu.host, emu.port)) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        sock.settimeout(2)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    assert b"Connection: close" in b"".join(chunks)


def test_urls_and_env(emu: Emulator) -> None:
    assert emu.url == f"http://127.0.0.1:{emu.port}"
    assert emu.token_uri == emu.url + "/token"
    assert emu.auth_uri == emu.url + "/o/oauth2/auth"
    assert emu.revoke_uri == emu.url + "/revoke"
    assert emu.device_authorization_uri == emu.url + "/device/code"
    assert emu.tokeninfo_uri == emu.url + "/tokeninfo"
    assert emu.metadata_host == f"127.0.0.1:{emu.port}"
    assert emu.env() == {"GCE_METADATA_HOST": emu.metadata_host,
                         "GCE_METADATA_IP": emu.metadata_host}


def test_client_secrets_shape(emu: Emulator) -> None:
    inst = emu.create_oauth_client()
    assert list(inst) == ["installed"]
    c = inst["installed"]
    assert {"client_id", "client_secret", "auth_uri", "token_uri", "redirect_uris", "project_id",
            "auth_provider_x509_cert_url"} <= set(c)
    assert c["redirect_uris"] == ["http://localhost"] and c["token_uri"] == emu.token_uri
    assert list(emu.create_oauth_client("web")) == ["web"]
    with pytest.raises(ValueError):
        emu.create_oauth_client("tv")
    # "TVs and Limited Input devices": an installed section without redirect URIs, as the
    # Cloud console downloads it
    tv = emu.create_oauth_client("limited-input")
    assert list(tv) == ["installed"]
    assert {"client_id", "client_secret", "auth_uri", "token_uri", "project_id",
            "auth_provider_x509_cert_url"} == set(tv["installed"])


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com", "::"])
def test_refuses_non_loopback(host: str) -> None:
    with pytest.raises(ValueError):
        Emulator(host=host)


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        emu = Emulator(host="::1").start()
    except OSError:
        pytest.skip("::1 not available")
    try:
        assert emu.url == f"http://[::1]:{emu.port}"
        assert Kit(emu).get("/ping").text == "ok"
    finally:
        emu.stop()


def test_stop_closes_idle_keepalive_and_port() -> None:
    emu = Emulator().start()
    port = emu.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/ping")
        conn.getresponse().read()
        emu.stop()
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            conn.request("GET", "/ping")
            conn.getresponse().read()
    finally:
        conn.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    emu.stop()  # idempotent


def test_no_secrets_in_repr(emu: Emulator, sa: dict[str, str]) -> None:
    user = emu.create_authorized_user()
    kit = Kit(emu)
    kit.sa_token(sa)
    text = repr(emu) + repr(emu.issued_access_tokens()) + repr(emu.issued_refresh_tokens())
    text += repr(emu._state.clients) + repr(emu._state.service_accounts)
    assert user["refresh_token"] not in text and user["client_secret"] not in text
    assert "ya29." not in text and "PRIVATE KEY" not in text
    assert all(t.token not in text for t in emu.issued_access_tokens())


def test_quiet_by_default_and_verbose_redacts(capfd: pytest.CaptureFixture[str]) -> None:
    with Emulator() as quiet:
        Kit(quiet).get("/tokeninfo?access_token=ya29.SECRET")
    assert capfd.readouterr().err == ""
    with Emulator(verbose=True) as loud:
        Kit(loud).get("/tokeninfo?access_token=ya29.SECRET")
    err = capfd.readouterr().err
    assert "GET /tokeninfo 400" in err and "SECRET" not in err


def test_serve_forever_with_state_dir(tmp_path: Path) -> None:
    out = io.StringIO()
    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(
        serve_forever("127.0.0.1", 0, out, state_dir=tmp_path / "st", stop_event=stop)))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while "client secrets" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        text = out.getvalue()
        host = next(line.split("=", 1)[1] for line in text.splitlines()
                    if line.startswith("export GCE_METADATA_HOST="))
        assert f"export GCE_METADATA_IP={host}" in text
        assert f"# token URI: http://{host}/token" in text
        # an offline login in that shell writes beside the demo files, never to ~/.config
        gcloud = shlex.quote(str((tmp_path / "st").resolve() / "gcloud"))
        assert f"export CLOUDSDK_CONFIG={gcloud}" in text.splitlines()
        key = tmp_path / "st" / "service-account.json"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert json.loads(key.read_text())["type"] == "service_account"
        secrets_file = json.loads((tmp_path / "st" / "client_secrets.json").read_text())
        assert secrets_file["installed"]["token_uri"] == f"http://{host}/token"
        assert [p.name for p in (tmp_path / "st").iterdir() if p.name.startswith(".")] == []
        h, p = host.rsplit(":", 1)
        conn = http.client.HTTPConnection(h, int(p), timeout=5)
        conn.request("GET", "/ping")
        assert conn.getresponse().read() == b"ok"
        conn.close()
    finally:
        stop.set()
        t.join(5)
    assert result == [0]


def test_module_cli_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gcauth.emulator", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        assert lines[0].startswith("# gcauth emulator listening on http://127.0.0.1:")
        assert lines[2].startswith("export GCE_METADATA_HOST=127.0.0.1:")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
