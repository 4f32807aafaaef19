"""Loopback stand-ins for Google APIs that Google's own client libraries talk to.

* :class:`FakeRestApi` -- an HTTP server answering JSON by (method, path pattern), recording
  every request's headers (storage, BigQuery, anything REST);
* :class:`FakeGrpcApi` -- a gRPC server (grpcio) on ``127.0.0.1`` with local-TCP server
  credentials, so clients send their call credentials, answering serialized protobuf replies
  by method and recording each call's metadata;
* :func:`bearer_tokens` -- the tokens seen in recorded ``Authorization`` headers;
* :func:`block_google_auth_lookups` -- points google-auth's own background lookups (the
  regional-access-boundary endpoints) at a closed loopback port.

Nothing here opens a connection anywhere but loopback.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.kit.network import closed_loopback_port

__all__ = ["Call", "FakeGrpcApi", "FakeRestApi", "Seen", "bearer_tokens",
           "block_google_auth_lookups"]


@dataclass
class Seen:
    """One request a fake API received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


Reply = Callable[[Seen, "re.Match[str]"], tuple[int, Any]]


class FakeRestApi:
    """A threaded HTTP/1.1 server on 127.0.0.1 answering ``routes``: ``(method, regex)`` to a
    function of the request and the path match returning ``(status, json body)``. Anything
    else is 404 (and recorded, so a test sees what a library asked for)."""

    def __init__(self, routes: Mapping[tuple[str, str], Reply]):
        self.routes = [(m, re.compile(p), reply) for (m, p), reply in routes.items()]
        self.seen: list[Seen] = []
        self.unmatched: list[str] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                seen = Seen(self.command, self.path,
                            {k.lower(): v for k, v in self.headers.items()}, body)
                with api._lock:
                    api.seen.append(seen)
                status, reply = 404, {"error": {"code": 404, "message": "not found"}}
                for method, pattern, answer in api.routes:
                    match = pattern.fullmatch(path)
                    if method == self.command and match:
                        status, reply = answer(seen, match)
                        break
                else:
                    with api._lock:
                        api.unmatched.append(f"{self.command} {self.path}")
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> FakeRestApi:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def requests(self, path_prefix: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if urlsplit(s.path).path.startswith(path_prefix)]


@dataclass
class Call:
    """One gRPC call a :class:`FakeGrpcApi` received."""

    method: str
    metadata: dict[str, str]
    request: bytes


@dataclass
class _Replies:
    by_method: dict[str, Callable[[bytes], bytes]] = field(default_factory=dict)


class FakeGrpcApi:
    """A gRPC server on ``127.0.0.1`` with local-TCP credentials (call credentials are sent
    over it, unlike an insecure port). ``replies`` maps full method names
    (``/google.datastore.v1.Datastore/Lookup``) to functions of the serialized request
    returning the serialized reply; other methods get ``UNIMPLEMENTED``."""

    def __init__(self, replies: Mapping[str, Callable[[bytes], bytes]]):
        import grpc

        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._replies = dict(replies)
        api = self

        class Handler(grpc.GenericRpcHandler):  # type: ignore[misc]
            def service(self, details: Any) -> Any:
                answer = api._replies.get(details.method)
                if answer is None:
                    return None

                def unary(request: bytes, context: Any) -> bytes:
                    metadata = {k: v for k, v in context.invocation_metadata()
                                if isinstance(v, str)}
                    with api._lock:
                        api.calls.append(Call(details.method, metadata, request))
                    return answer(request)

                return grpc.unary_unary_rpc_method_handler(unary)

        self._server = grpc.server(ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers((Handler(),))
        self.port = self._server.add_secure_port(
            "127.0.0.1:0", grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP))
        self.target = f"127.0.0.1:{self.port}"

    @staticmethod
    def channel_credentials() -> Any:
        """The client side: local-TCP channel credentials (what the tests pass where a
        library would use TLS)."""
        import grpc

        return grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)

    def __enter__(self) -> FakeGrpcApi:
        self._server.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.stop(None).wait(5)


def bearer_tokens(headers: list[dict[str, str]]) -> list[str]:
    """The bearer tokens of recorded headers (``authorization: Bearer X``), in order."""
    found = []
    for h in headers:
        value = h.get("authorization", "")
        if value.lower().startswith("bearer "):
            found.append(value[7:])
    return found


@pytest.fixture
def block_google_auth_lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """google-auth's regional-access-boundary lookups (service accounts, workforce and
    workload pools; off unless its experimental variable is set, on in some releases) go to
    a closed loopback port instead of iamcredentials.googleapis.com."""
    try:
        from google.auth import _regional_access_boundary_utils as rab
    except ImportError:  # a google-auth without the feature
        yield
        return
    base = f"http://127.0.0.1:{closed_loopback_port()}"
    for name in ("get_service_account_rab_endpoint", "get_workforce_pool_rab_endpoint",
                 "get_workload_identity_pool_rab_endpoint"):
        if hasattr(rab, name):
            monkeypatch.setattr(rab, name, lambda *args, _n=name: f"{base}/{_n}")
    yield
