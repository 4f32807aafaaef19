"""The emulator is a program users run, so it is hardened (issue 9, item 7): bounded
request bodies, read deadlines per connection, a connection cap, a Host check on the
control API and the browser pages, and logs that never carry secrets or client bytes.

Every test talks to loopback only and is bounded in time (socket timeouts of a few
seconds); the memory test runs the emulator in a child process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gcauth.emulator import Emulator
from gcauth.emulator._routing import is_local_host
from tests.kit.emu import Kit

FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"


def exchange(emu: Emulator, data: bytes, *, half_close: bool = False,
             timeout: float = 3.0) -> tuple[bytes, float]:
    """Send ``data`` on a new connection, then read until the server closes it (or
    ``timeout``); return what was read and how long until the close."""
    with socket.create_connection((emu.host, emu.port)) as sock:
        sock.settimeout(timeout)
        t0 = time.monotonic()
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            chunks.append(b"<still open>")
        except ConnectionResetError:
            chunks.append(b"<reset>")
        return b"".join(chunks), time.monotonic() - t0


def first_reply(emu: Emulator, data: bytes, timeout: float = 3.0) -> bytes:
    """Send ``data`` (the connection stays open) and return the first bytes answered."""
    with socket.create_connection((emu.host, emu.port)) as sock:
        sock.settimeout(timeout)
        sock.sendall(data)
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b"<no reply>"


def chunked_head(path: str = "/revoke") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n".encode()
            + FORM + b"\r\n")


def status_of(data: bytes) -> int:
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    assert m, data[:80]
    return int(m.group(1))


@pytest.fixture
def tight() -> Iterator[Emulator]:
    """An emulator with half-second deadlines."""
    emu = Emulator(control=True)
    emu.config.header_timeout = emu.config.body_timeout = emu.config.idle_timeout = 0.5
    with emu:
        yield emu


def conn_threads() -> int:
    return sum(t.name == "gcauth-emulator-conn" for t in threading.enumerate())


# -- bounded request bodies ----------------------------------------------------------------
@pytest.mark.parametrize("size", [b"-1", b"-0", b"0x10", b"1_0", b"+5", b" -5", b"zz", b"",
                                  b"1" * 17, b"5\x00"])
def test_malformed_chunk_size_is_400_at_once(emu: Emulator, size: bytes) -> None:
    """Answered while the client still holds the connection open: nothing is read to EOF
    (a negative size used to read the whole stream into memory)."""
    reply = first_reply(emu, chunked_head() + size + b"\r\n")
    assert status_of(reply) == 400 and b"Connection: close" in reply
    assert b"chunk" in reply


def test_chunk_over_the_cap_is_413_before_its_data(emu: Emulator) -> None:
    assert status_of(first_reply(emu, chunked_head() + b"100001\r\n")) == 413  # 1 MiB + 1
    half = b"80000\r\n" + b"a" * 0x80000 + b"\r\n"
    assert status_of(first_reply(emu, chunked_head() + half + b"80001\r\n")) == 413


@pytest.mark.parametrize("body, status", [
    (b"3\r\nabcXY", 400),                     # chunk data not followed by CRLF
    (b"10\r\nabc", 400),                      # chunk ended early (client closed)
    (b"3\r\nabc\r\n", 400),                   # no last chunk
    (b"0\r\n" + b"X-T: " + b"a" * 2000 + b"\r\n" * 1, 400),  # unterminated trailers
])
def test_broken_chunked_framing(emu: Emulator, body: bytes, status: int) -> None:
    data, _ = exchange(emu, chunked_head() + body, half_close=True)
    assert status_of(data) == status


def test_trailers_are_bounded(emu: Emulator) -> None:
    trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"a" * 1000) for i in range(20))
    assert status_of(first_reply(emu, chunked_head() + b"0\r\n" + trailers)) == 431


def test_chunked_with_extensions_and_trailers_still_works(emu: Emulator) -> None:
    body = b"token=ya29.unknown"
    data = b"%x;name=value\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(body), body)
    reply = first_reply(emu, chunked_head() + data)
    assert status_of(reply) == 400 and b"invalid_token" in reply  # reached the handler


@pytest.mark.parametrize("value", [b"-1", b"+5", b"5_0", b"0x5", b"5 5", b"",
                                   "\u0665".encode(), b"5, 6", b"1" * 20])
def test_malformed_content_length_is_400(emu: Emulator, value: bytes) -> None:
    head = b"POST /revoke HTTP/1.1\r\nHost: x\r\n" + FORM + b"Content-Length: " + value
    reply = first_reply(emu, head + b"\r\n\r\nabcde")
    assert status_of(reply) == 400 and b"Connection: close" in reply


def test_conflicting_framing_headers(emu: Emulator) -> None:
    base = b"POST /revoke HTTP/1.1\r\nHost: x\r\n" + FORM
    two = first_reply(emu, base + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef")
    both = first_reply(emu, base + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
    gzip = first_reply(emu, base + b"Transfer-Encoding: gzip, chunked\r\n\r\n")
    same = first_reply(emu, base + b"Content-Length: 7\r\nContent-Length: 7\r\n\r\ntoken=x")
    assert (status_of(two), status_of(both), status_of(gzip)) == (400, 400, 501)
    assert status_of(same) == 400 and b"invalid_token" in same  # identical values are fine


def test_body_shorter_than_content_length_is_400(emu: Emulator) -> None:
    head = b"POST /revoke HTTP/1.1\r\nHost: x\r\n" + FORM + b"Content-Length: 50\r\n\r\n"
    data, _ = exchange(emu, head + b"token=abc", half_close=True)
    assert status_of(data) == 400


def test_body_cap_is_configurable(emu: Emulator) -> None:
    emu.config.max_body = 10
    try:
        head = b"POST /revoke HTTP/1.1\r\nHost: x\r\n" + FORM
        over = first_reply(emu, head + b"Content-Length: 11\r\n\r\ntoken=abcde")
        at = first_reply(emu, head + b"Content-Length: 10\r\n\r\ntoken=abcd")
        chunk = first_reply(emu, chunked_head() + b"6\r\ntoken=\r\n5\r\nabcde\r\n0\r\n\r\n")
    finally:
        emu.config.max_body = 1 << 20
    assert (status_of(over), status_of(at), status_of(chunk)) == (413, 400, 413)
    assert b"invalid_token" in at


def test_expect_continue_is_refused_before_the_body(emu: Emulator) -> None:
    head = (b"POST /token HTTP/1.1\r\nHost: x\r\n" + FORM
            + b"Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n")
    reply = first_reply(emu, head)
    assert status_of(reply) == 413 and b"100 Continue" not in reply
    ok = first_reply(emu, b"POST /revoke HTTP/1.1\r\nHost: x\r\n" + FORM
                     + b"Content-Length: 7\r\nExpect: 100-continue\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 100 Continue")


def test_a_framing_error_ends_the_connection(emu: Emulator) -> None:
    """Nothing after a broken body is parsed as another request (no smuggling)."""
    data, _ = exchange(emu, chunked_head() + b"-1\r\nGET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(data) == 400 and data.count(b"HTTP/1.1 ") == 1 and not data.endswith(b"ok")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_streaming_after_a_bad_chunk_size_costs_no_memory(tmp_path: Path) -> None:
    """A child-process emulator; the client streams up to 64 MiB after a ``-1`` chunk size.
    The server answers, stops reading, and its peak memory does not grow with the stream."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gcauth.emulator", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        port = int(re.search(r":(\d+) ", proc.stdout.readline()).group(1))  # type: ignore[union-attr]

        def peak_kib() -> int:
            text = Path(f"/proc/{proc.pid}/status").read_text()
            return int(re.search(r"VmHWM:\s+(\d+)", text).group(1))  # type: ignore[union-attr]

        with socket.create_connection(("127.0.0.1", port)) as warm:  # load the code paths
            warm.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            warm.recv(1024)
        before = peak_kib()
        sent, reply = 0, b""
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(5)
            sock.sendall(b"POST /revoke HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                         b"\r\n\r\n-1\r\n")
            blob = b"a" * (1 << 20)
            try:
                while sent < 64 << 20:
                    sock.sendall(blob)
                    sent += len(blob)
            except OSError:
                pass  # the server stopped reading and closed: expected
            try:
                reply = sock.recv(1024)
            except OSError:
                pass
        grown = peak_kib() - before
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert sent < 64 << 20, "the server read the whole stream"
    assert grown < 16 * 1024, f"peak memory grew by {grown} KiB"
    assert reply == b"" or status_of(reply) == 400


# -- read deadlines ------------------------------------------------------------------------
def test_slow_loris_headers_get_408_and_the_connection_closed(tight: Emulator) -> None:
    with socket.create_connection((tight.host, tight.port)) as sock:
        sock.settimeout(0.1)
        head = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200
        t0, got = time.monotonic(), b""
        for i in range(len(head)):  # one byte every 0.1 s: never "idle", never done
            try:
                sock.sendall(head[i:i + 1])
                got = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if got:
                break
            if time.monotonic() - t0 > 5:
                break
        elapsed = time.monotonic() - t0
    assert status_of(got) == 408
    assert 0.4 <= elapsed < 3, elapsed


def test_silent_connection_is_closed_without_a_reply(tight: Emulator) -> None:
    data, elapsed = exchange(tight, b"")
    assert data == b"" and 0.4 <= elapsed < 3


def test_idle_keep_alive_connection_is_closed(tight: Emulator) -> None:
    data, elapsed = exchange(tight, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok")  # then closed
    assert 0.4 <= elapsed < 3


def test_slow_body_gets_408(tight: Emulator) -> None:
    head = b"POST /revoke HTTP/1.1\r\nHost: x\r\n" + FORM + b"Content-Length: 20\r\n\r\n"
    data, elapsed = exchange(tight, head + b"token=")
    assert status_of(data) == 408 and 0.4 <= elapsed < 3


def test_a_client_within_the_deadlines_is_served(tight: Emulator) -> None:
    with socket.create_connection((tight.host, tight.port)) as sock:
        sock.settimeout(3)
        for part in (b"GET /pi", b"ng HTTP/1.1\r\nHo", b"st: x\r\n\r\n"):
            sock.sendall(part)
            time.sleep(0.1)
        assert sock.recv(65536).endswith(b"\r\n\r\nok")
        time.sleep(0.3)  # keep-alive: a second request within idle_timeout
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).endswith(b"\r\n\r\nok")


def test_silent_connections_do_not_hold_threads(tight: Emulator) -> None:
    before = conn_threads()
    socks = [socket.create_connection((tight.host, tight.port)) for _ in range(30)]
    try:
        deadline = time.monotonic() + 2
        while conn_threads() < before + 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert conn_threads() >= before + 30
        deadline = time.monotonic() + 5
        while conn_threads() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert conn_threads() <= before
    finally:
        for s in socks:
            s.close()


def test_connection_cap_queues_new_connections() -> None:
    emu = Emulator()
    emu.config.max_connections = 2
    emu.start()
    try:
        hogs = [socket.create_connection((emu.host, emu.port)) for _ in range(2)]
        with socket.create_connection((emu.host, emu.port)) as third:
            third.settimeout(0.5)
            third.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            with pytest.raises(TimeoutError):
                third.recv(1024)  # both slots are held
            hogs.pop().close()  # frees a slot
            third.settimeout(3)
            assert third.recv(1024).endswith(b"\r\n\r\nok")
        t0 = time.monotonic()
        extra = socket.create_connection((emu.host, emu.port))  # waits for a slot
        emu.stop()  # ... which must not block stop()
        assert time.monotonic() - t0 < 5
        extra.close()
        for s in hogs:
            s.close()
    finally:
        emu.stop()


# -- Host check ------------------------------------------------------------------------------
@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8085", True), ("localhost:8085", True), ("LOCALHOST:8085", True),
    ("[::1]:8085", True), ("127.0.0.2:8085", True),
    ("127.0.0.1:8086", False), ("127.0.0.1", False), ("evil.example:8085", False),
    ("localhost.evil.example:8085", False), ("[::1]", False), ("::1:8085", False),
    ("[127.0.0.1]:8085", False), ("[localhost]:8085", False), ("10.0.0.1:8085", False),
    ("0.0.0.0:8085", False), ("127.0.0.1:8085:1", False), ("", False), (None, False),
    ("127.0.0.1:+8085", False), ("[::ffff:127.0.0.1]:8085", False), ("127.1:8085", False),
])
def test_is_local_host(host: str | None, ok: bool) -> None:
    assert is_local_host(host, 8085) is ok


def test_default_port_may_be_omitted() -> None:
    assert is_local_host("localhost", 80) and not is_local_host("localhost:8080", 80)


def raw_get(emu: Emulator, path: str, host: str | None) -> bytes:
    head = f"GET {path} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "")
    data, _ = exchange(emu, (head + "Connection: close\r\n\r\n").encode())
    return data


def test_control_api_refuses_a_rebound_host(emu: Emulator) -> None:
    port = emu.port
    for host in (f"evil.example:{port}", f"127.0.0.1:{port + 1}", None):
        data = raw_get(emu, "/_emulator/faults", host)
        assert status_of(data) == 403 and b"DNS rebinding" in data, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert status_of(raw_get(emu, "/_emulator/faults", host)) == 200
    cmd = (b'POST /_emulator/faults HTTP/1.1\r\nHost: evil.example:%d\r\nContent-Type: '
           b'application/json\r\nConnection: close\r\nContent-Length: 19\r\n\r\n'
           b'{"action": "clear"}' % port)
    emu.faults.add("token", kind="status")
    assert status_of(exchange(emu, cmd)[0]) == 403
    assert emu.faults.pending() != {}  # the command was not run


def test_browser_pages_refuse_a_rebound_host(emu: Emulator, installed: dict[str, str]) -> None:
    evil = f"evil.example:{emu.port}"
    for path in ("/o/oauth2/auth?client_id=" + installed["client_id"], "/device",
                 "/o/oauth2/approve"):
        data = raw_get(emu, path, evil)
        assert status_of(data) == 403 and b"text/html" in data, path
    assert status_of(raw_get(emu, "/device", f"localhost:{emu.port}")) == 200


def test_machine_endpoints_accept_any_host(emu: Emulator) -> None:
    """Metadata clients address the server by name (metadata.google.internal)."""
    data, _ = exchange(emu, b"GET /computeMetadata/v1/project/project-id HTTP/1.1\r\n"
                            b"Host: metadata.google.internal\r\nMetadata-Flavor: Google\r\n"
                            b"Connection: close\r\n\r\n")
    assert status_of(data) == 200 and data.endswith(b"emu-project")


# -- logs --------------------------------------------------------------------------------------
SECRET = "ya29." + "LOGSECRET"  # built, so a traceback's source line would not contain it


def test_verbose_log_carries_no_secrets_and_survives_garbage(
        capfd: pytest.CaptureFixture[str]) -> None:
    lines = [
        f"GET /tokeninfo?access_token={SECRET} HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET /tokeninfo?access_token={SECRET} HTTP/1.1 extra\r\n\r\n",    # bad syntax
        f"GET /tokeninfo?access_token={SECRET} HTTP/9.9\r\n\r\n",          # bad version
        f"GET /x#{SECRET} HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET /a\x1b[31m\x7f?{SECRET} HTTP/1.1\r\nHost: x\r\n\r\n",         # control chars
        f"\x16\x03\x01{SECRET} garbage\r\n\r\n",                            # TLS on plain HTTP
        f"BREW /x?{SECRET} HTTP/1.1\r\nHost: x\r\n\r\n",                     # unknown method
        f"GET /ping HTTP/1.1\r\nX-Token: {SECRET}\r\nBroken header\r\n\r\n",
        "GET /" + "a" * 70000 + " HTTP/1.1\r\n\r\n",                         # 414
        f"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
        f"\r\nContent-Length: {len(SECRET) + 5}\r\n\r\ncode={SECRET}",
        f"POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-{SECRET}\r\n",
    ]
    with Emulator(verbose=True) as emu:
        emu.config.idle_timeout = emu.config.header_timeout = 0.3
        replies = [exchange(emu, line.encode("latin-1"))[0] for line in lines]
        assert Kit(emu).get("/ping").text == "ok"
    err = capfd.readouterr().err
    assert "LOGSECRET" not in err and "Traceback" not in err
    assert all(b"LOGSECRET" not in r for r in replies)  # nor echoed back
    for line in err.splitlines():
        assert re.fullmatch(r"gcauth-emulator: [A-Z-]+ \S{1,203} \d{3}", line), line
    assert "GET /tokeninfo 400" in err and "- <malformed> 400" in err
    assert "- <malformed> 505" in err and "- <malformed> 414" in err
    assert "GET /a?[31m? 404" in err  # control characters are not written raw
    assert "- /x 501" in err
    assert all(status_of(r) >= 400 or r.endswith(b"ok") for r in replies)
