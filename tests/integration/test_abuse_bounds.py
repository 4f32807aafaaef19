"""Reliability under abuse (issue 9, classes 1 and 2): every reply an auth endpoint sends is
bounded in size and time on every transport, sync and async, and a value that would end up in
an HTTP header is checked where it is read.

The servers here are raw loopback sockets that misbehave on purpose: they drip bytes, send
huge or compressed-bomb bodies, and put CR/LF, NUL or non-ASCII characters in tokens and ids.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import gcauth
from gcauth import authorized_user, compute_engine
from gcauth._http import HttpRequest, run_async, run_sync
from gcauth._protocol.rfc6749 import token_exchange
from gcauth.exceptions import (
    GCAuthError,
    MalformedCredentialsError,
    RefreshError,
    TransportError,
    UsageError,
)
from gcauth.transport import aiohttp as gc_aiohttp
from gcauth.transport import httpx as gc_httpx
from gcauth.transport import requests as gc_requests
from gcauth.transport import urllib3 as gc_urllib3
from tests.kit.creds import user_info

Behaviour = Callable[[socket.socket], None]


class HostileServer:
    """A loopback server that answers every connection with ``behaviour(conn)``."""

    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.heads: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            self.heads.append(_read_request(conn))
            self.behaviour(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head


def reply_bytes(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_reply(data: Any, headers: dict[str, str] | None = None) -> Behaviour:
    payload = reply_bytes(json.dumps(data).encode(), headers={
        "Content-Type": "application/json", **(headers or {})})
    return lambda conn: conn.sendall(payload)


def drip(payload: bytes, every: float = 0.2) -> Behaviour:
    def behaviour(conn: socket.socket) -> None:
        for byte in payload:
            conn.sendall(bytes([byte]))
            time.sleep(every)
    return behaviour


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], HostileServer]]:
    servers: list[HostileServer] = []

    def start(behaviour: Behaviour) -> HostileServer:
        server = HostileServer(behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# -- every transport, sync and async ------------------------------------------------------
def _sync(make: Callable[[], Any]) -> Callable[[Any], Any]:
    def run(flow: Any) -> Any:
        return run_sync(flow, make().send)
    return run


def _async(make: Callable[[], Any]) -> Callable[[Any], Any]:
    def run(flow: Any) -> Any:
        async def main() -> Any:
            return await run_async(flow, make().send)
        return asyncio.run(main())
    return run


TRANSPORTS = {
    "urllib3": _sync(gc_urllib3.Request),
    "requests": _sync(gc_requests.Request),
    "httpx": _sync(gc_httpx.Request),
    "httpx-async": _async(gc_httpx.AsyncRequest),
    "aiohttp-async": _async(gc_aiohttp.AsyncRequest),
}


def one_shot(url: str, timeout: float = 1.0) -> Any:
    """A token request with no retries (so each test measures a single attempt)."""
    from gcauth._retry import RetryPolicy

    return token_exchange(url + "/token", {"grant_type": "x"}, timeout=timeout,
                          retry=RetryPolicy(max_attempts=1))


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize("phase", ["status line and headers", "body"])
def test_a_dripping_server_costs_one_deadline(transport: str, phase: str,
                                              serve: Callable[[Behaviour], HostileServer]) -> None:
    body = json.dumps({"access_token": "a", "expires_in": 3600}).encode()
    payload = reply_bytes(body, headers={"Content-Type": "application/json"})
    behaviour: Behaviour = drip(payload)
    if phase == "body":
        head, _, rest = payload.partition(b"\r\n\r\n")

        def body_drip(conn: socket.socket) -> None:
            conn.sendall(head + b"\r\n\r\n")
            drip(rest)(conn)

        behaviour = body_drip
    server = serve(behaviour)
    started = time.monotonic()
    with pytest.raises(TransportError) as err:
        TRANSPORTS[transport](one_shot(server.url, timeout=1.0))
    elapsed = time.monotonic() - started
    assert err.value.timeout, err.value
    assert "timed out after 1 s" in str(err.value)
    # the drip would take len(payload) * 0.2 s (about 30 s); one deadline is 1 s
    assert elapsed < 2.5, f"{transport}: {elapsed:.1f} s"


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_an_oversized_reply_is_refused(transport: str,
                                       serve: Callable[[Behaviour], HostileServer]) -> None:
    huge = json.dumps({"access_token": "a", "expires_in": 3600, "pad": "x" * (3 << 20)})
    server = serve(lambda conn: conn.sendall(reply_bytes(huge.encode())))
    with pytest.raises(TransportError, match="larger than 1048576 bytes") as err:
        TRANSPORTS[transport](one_shot(server.url, timeout=5.0))
    assert not err.value.retryable


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """About 1 MiB of gzip that inflates to 1 GiB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(1024)]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_gzip_bomb_is_refused_at_the_cap(transport: str, gzip_bomb: bytes,
                                           serve: Callable[[Behaviour], HostileServer]) -> None:
    payload = reply_bytes(gzip_bomb, headers={"Content-Encoding": "gzip"})
    server = serve(lambda conn: conn.sendall(payload))
    with pytest.raises(TransportError, match="larger than"):
        TRANSPORTS[transport](one_shot(server.url, timeout=10.0))


def test_a_gzip_bomb_costs_bounded_memory(tmp_path: Path) -> None:
    """Peak memory, measured in a child process, stays far below what the bomb inflates to."""
    script = textwrap.dedent('''
        import asyncio, json, resource, socket, sys, threading, zlib
        sys.path.insert(0, sys.argv[1])
        from tests.integration.test_abuse_bounds import HostileServer, TRANSPORTS, one_shot
        from tests.integration.test_abuse_bounds import reply_bytes
        c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        bomb = b"".join([c.compress(bytes(1 << 20)) for _ in range(1024)] + [c.flush()])
        payload = reply_bytes(bomb, headers={"Content-Encoding": "gzip"})
        server = HostileServer(lambda conn: conn.sendall(payload))
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for name, run in sorted(TRANSPORTS.items()):
            try:
                run(one_shot(server.url, timeout=10.0))
            except Exception as exc:
                assert "larger than" in str(exc), (name, exc)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"growth_kib": peak - base}))
    ''')
    root = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items()}
    done = subprocess.run([sys.executable, "-c", script, root], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    growth = json.loads(done.stdout.strip().splitlines()[-1])["growth_kib"]
    # 1 GiB inflated would be 1,048,576 KiB; the cap is 1 MiB plus one chunk's expansion
    assert growth < 96 * 1024, f"peak memory grew by {growth} KiB"


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_compressed_reply_within_the_cap_is_decoded(
        transport: str, serve: Callable[[Behaviour], HostileServer]) -> None:
    body = json.dumps({"access_token": "ya29.gz", "expires_in": 3600}).encode()
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    gz = compressor.compress(body) + compressor.flush()
    server = serve(lambda conn: conn.sendall(reply_bytes(gz, headers={
        "Content-Encoding": "gzip", "Content-Type": "application/json"})))
    reply = TRANSPORTS[transport](one_shot(server.url))
    assert reply.access_token == "ya29.gz"


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_senders_ask_for_an_uncompressed_reply(
        transport: str, serve: Callable[[Behaviour], HostileServer]) -> None:
    server = serve(json_reply({"access_token": "ya29.plain", "expires_in": 3600}))
    TRANSPORTS[transport](one_shot(server.url))
    head = server.heads[-1].lower()
    assert b"\r\naccept-encoding: identity\r\n" in head + b"\r\n", head


# -- metadata detection: a total bound, whatever the server does ----------------------------
def test_a_dripping_metadata_server_cannot_stretch_default(
        serve: Callable[[Behaviour], HostileServer], monkeypatch: pytest.MonkeyPatch) -> None:
    payload = reply_bytes(b"ok", headers={"Metadata-Flavor": "Google"})
    server = serve(drip(payload))
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{server.port}")
    monkeypatch.setenv("GCE_METADATA_IP", f"127.0.0.1:{server.port}")
    started = time.monotonic()
    detection = compute_engine.detect_metadata_server()
    assert not detection.available and "0.5 s" in detection.detail
    with pytest.raises(gcauth.DefaultCredentialsError):
        gcauth.default()
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"{elapsed:.1f} s for two bounded probes of 0.5 s"


def test_metadata_probe_timeout_from_the_environment_is_bounded(
        monkeypatch: pytest.MonkeyPatch, serve: Callable[[Behaviour], HostileServer]) -> None:
    server = serve(drip(b"HTTP/1.1 200 OK\r\n", every=0.3))
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{server.port}")
    for value, shown in (("nan", "0.5 s"), ("-3", "0.01 s"), ("junk", "0.5 s")):
        monkeypatch.setenv("GCE_METADATA_TIMEOUT", value)
        assert shown in compute_engine.detect_metadata_server().detail, value
    monkeypatch.setenv("GCE_METADATA_TIMEOUT", "inf")
    assert "60 s" in compute_engine.detect_metadata_server(timeout=None, environ={
        "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_TIMEOUT": "inf"}).detail


# -- header values are checked where they are read ---------------------------------------
BAD_TOKENS = {
    "CRLF": "ya29.a\r\nX-Injected: 1",
    "LF": "ya29.a\nb",
    "NUL": "ya29.a\x00b",
    "non-Latin-1": "ya29.\u2603",
    "Latin-1 but not ASCII": "ya29.caf\xe9",
    "space": "ya29.a b",
    "empty": "",
    "20 KiB": "y" * 20480,
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_a_bad_access_token_from_the_token_endpoint_is_refused(
        case: str, serve: Callable[[Behaviour], HostileServer]) -> None:
    token = BAD_TOKENS[case]
    server = serve(json_reply({"access_token": token, "expires_in": 3600}))
    with pytest.raises(RefreshError, match="not a valid bearer token") as err:
        TRANSPORTS["urllib3"](one_shot(server.url))
    assert server.url in str(err.value)
    if token:
        assert token not in str(err.value)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_crlf_token_is_refused_on_every_transport(
        transport: str, serve: Callable[[Behaviour], HostileServer]) -> None:
    server = serve(json_reply({"access_token": "a\r\nb", "expires_in": 3600}))
    with pytest.raises(RefreshError, match="not a valid bearer token"):
        TRANSPORTS[transport](one_shot(server.url))


def test_a_hostile_token_type_and_id_token_are_refused(
        serve: Callable[[Behaviour], HostileServer]) -> None:
    server = serve(json_reply({"access_token": "ya29.ok", "expires_in": 3600,
                               "token_type": "Bearer\r\nX-Injected: 1"}))
    with pytest.raises(RefreshError, match="token_type"):
        TRANSPORTS["urllib3"](one_shot(server.url))
    server = serve(json_reply({"access_token": "ya29.ok", "expires_in": 3600,
                               "token_type": "bearer", "id_token": "a.b\x00.c"}))
    with pytest.raises(RefreshError, match="id_token"):
        TRANSPORTS["urllib3"](one_shot(server.url))
    server = serve(json_reply({"access_token": "ya29.ok", "expires_in": 3600,
                               "token_type": "bearer"}))
    assert TRANSPORTS["urllib3"](one_shot(server.url)).token_type == "Bearer"


@pytest.mark.parametrize("case", ["CRLF", "NUL", "non-Latin-1", "empty"])
def test_a_bad_token_from_the_metadata_server_is_refused(
        case: str, serve: Callable[[Behaviour], HostileServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(json_reply({"access_token": BAD_TOKENS[case], "expires_in": 3600},
                              headers={"Metadata-Flavor": "Google"}))
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{server.port}")
    creds = compute_engine.Credentials()
    with pytest.raises(RefreshError) as err:
        creds.get_token()
    assert "metadata server" in str(err.value)


BAD_IDS = {"CRLF": "proj\r\nX-Injected: 1", "NUL": "p\x00q", "space": "my project",
           "non-ASCII": "proj\u00e9t", "129 chars": "p" * 129, "tab": "p\tq"}


@pytest.mark.parametrize("case", sorted(BAD_IDS))
def test_a_bad_project_id_from_the_metadata_server_is_refused(
        case: str, serve: Callable[[Behaviour], HostileServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    body = BAD_IDS[case].encode("utf-8")
    server = serve(lambda conn: conn.sendall(reply_bytes(body, headers={
        "Metadata-Flavor": "Google"})))
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{server.port}")
    with pytest.raises(RefreshError, match="not one") as err:
        compute_engine.get_project_id()
    assert BAD_IDS[case] not in str(err.value)


def test_a_50_mib_project_id_is_refused_without_reading_it(
        serve: Callable[[Behaviour], HostileServer], monkeypatch: pytest.MonkeyPatch) -> None:
    head = (b"HTTP/1.1 200 OK\r\nMetadata-Flavor: Google\r\nContent-Length: "
            + str(50 << 20).encode() + b"\r\n\r\n")

    def behaviour(conn: socket.socket) -> None:
        conn.sendall(head)
        block = b"p" * 65536
        for _ in range(800):
            conn.sendall(block)

    server = serve(behaviour)
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{server.port}")
    with pytest.raises(TransportError, match="larger than"):
        compute_engine.get_project_id()


@pytest.mark.parametrize("case", sorted(BAD_IDS))
def test_a_bad_quota_project_in_a_file_is_refused_at_load(case: str, tmp_path: Path) -> None:
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(user_info(quota_project_id=BAD_IDS[case])))
    with pytest.raises(MalformedCredentialsError) as err:
        gcauth.load_credentials_from_file(path)
    assert err.value.field == "quota_project_id" and err.value.source == str(path)
    assert BAD_IDS[case] not in str(err.value)


def test_a_bad_quota_project_from_the_environment_or_an_argument_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(user_info()))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "q\r\nX-Injected: 1")
    with pytest.raises(MalformedCredentialsError, match="GOOGLE_CLOUD_QUOTA_PROJECT") as err:
        gcauth.default()
    assert "X-Injected" not in str(err.value)
    monkeypatch.delenv("GOOGLE_CLOUD_QUOTA_PROJECT")
    creds, _ = gcauth.default()
    with pytest.raises(UsageError, match="quota_project_id"):
        creds.with_quota_project("q\r\nX-Injected: 1")
    with pytest.raises(UsageError):
        authorized_user.Credentials(refresh_token="r", quota_project_id="a b")
    with pytest.raises(GCAuthError):
        gcauth.default(quota_project_id="a\x00b")
    assert creds.with_quota_project("example.com:my-project").quota_project_id == \
        "example.com:my-project"
    assert creds.with_quota_project("123456789012").quota_project_id == "123456789012"


# -- timeouts that cannot be waited for ------------------------------------------------
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, 0, "3", True])
def test_an_impossible_timeout_is_a_usage_error(value: Any) -> None:
    from gcauth import service_account
    from tests.kit.creds import sa_info

    makers: list[Callable[[], object]] = [
        lambda: HttpRequest("GET", "http://127.0.0.1:9/", timeout=value),
        lambda: authorized_user.Credentials(refresh_token="r", timeout=value),
        lambda: compute_engine.Credentials(timeout=value),
        lambda: service_account.Credentials.from_service_account_info(sa_info(),
                                                                      timeout=value),
        lambda: compute_engine.detect_metadata_server(timeout=value),
    ]
    for make in makers:
        with pytest.raises(UsageError, match="timeout"):
            make()
        with pytest.raises(ValueError):  # also the builtin a Python API would raise
            make()


def test_a_client_object_where_a_request_belongs_says_what_to_pass() -> None:
    import httpx
    import requests

    creds = authorized_user.Credentials(refresh_token="r", client_id="c", client_secret="s")
    for client, instead in ((requests.Session(), "gcauth.transport.requests.Request(session)"),
                            (httpx.Client(), "gcauth.transport.httpx.Request(client)")):
        with pytest.raises(UsageError) as err:
            creds.get_token(client)  # type: ignore[arg-type]  # the mistake under test
        assert instead in str(err.value)
        assert isinstance(err.value, TypeError)


def test_server_error_text_reaches_messages_as_one_clean_line(
        serve: Callable[[Behaviour], HostileServer]) -> None:
    hostile = {"error": "invalid_grant\r\nX", "error_description": "\x1b[2J\rforged\nline\u202e"}
    payload = reply_bytes(json.dumps(hostile).encode(), status=400,
                          headers={"Content-Type": "application/json"})
    server = serve(lambda conn: conn.sendall(payload))
    with pytest.raises(RefreshError) as err:
        TRANSPORTS["urllib3"](one_shot(server.url))
    message = str(err.value)
    assert "forged line" in message
    for bad in ("\x1b", "\r", "\n", "\u202e"):
        assert bad not in message
