"""Metadata detection against real loopback sockets: refused, blackholed, answering."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import gcauth
from gcauth import _default, compute_engine
from gcauth.exceptions import DefaultCredentialsError


@pytest.fixture
def blackhole(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setenv("GCE_METADATA_HOST", address)
    monkeypatch.setenv("GCE_METADATA_IP", address)
    yield address
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_refused_port_means_not_on_gce() -> None:
    assert compute_engine.is_on_gce() is False
    with pytest.raises(DefaultCredentialsError, match="no metadata server answered"):
        gcauth.default()


def test_blackhole_is_bounded_by_the_probe_timeout(blackhole: str) -> None:
    started = time.monotonic()
    res = _default.find_default(metadata_timeout=0.2)
    elapsed = time.monotonic() - started
    assert res.credentials is None
    assert "within 0.2 s" in res.tried[-1].detail
    assert elapsed < 2.0  # bounded, not a speed claim: the benchmarks measure speed


def test_gce_metadata_timeout_env_is_honoured(blackhole: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCE_METADATA_TIMEOUT", "0.1")
    res = _default.find_default()
    assert "within 0.1 s" in res.tried[-1].detail


def test_a_server_without_the_flavor_header_is_not_a_metadata_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Plain(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("GCE_METADATA_HOST", address)
        monkeypatch.setenv("GCE_METADATA_IP", address)
        assert compute_engine.is_on_gce() is False
    finally:
        server.shutdown()
        server.server_close()
