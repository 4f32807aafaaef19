"""One compliance suite, run against every transport adapter, sync and async.

Two layers are checked:

* *token transports* (``Request`` / ``AsyncRequest`` of each adapter): what the sans-IO flows
  need -- bodies and headers sent as given, statuses returned (never raised), redirects not
  followed, timeouts and refused connections turned into :class:`TransportError`;
* *authorized sessions* (urllib3 ``AuthorizedHttp``, requests ``AuthorizedSession`` and
  ``Auth``, httpx ``Auth`` on ``Client`` and ``AsyncClient``, aiohttp ``AuthorizedSession``):
  token and quota-project header attached, one refresh-and-retry on 401 (replayable bodies
  only), timeouts honoured, request and response bodies streamed untouched.

The emulator issues the tokens and serves the sample API; a small local server in this module
echoes uploads (checking the bearer token against the emulator), stalls, redirects and streams.
Async adapters are driven on a private event loop, so every test reads as straight-line code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, TypeVar

import aiohttp
import httpx
import pytest
import requests
import urllib3

from gcauth import service_account
from gcauth._http import HttpRequest
from gcauth.credentials import Credentials
from gcauth.exceptions import RefreshError, TransportError
from gcauth.transport import aiohttp as gaiohttp
from gcauth.transport import httpx as ghttpx
from gcauth.transport import requests as grequests
from gcauth.transport import urllib3 as gurllib3
from tests.kit.network import closed_loopback_port

T = TypeVar("T")
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


# -- a local server for what the sample API does not offer ----------------------------------
@dataclass
class Upload:
    authorization: str
    body: bytes
    chunked: bool


@dataclass
class ServerState:
    emulator: Any
    uploads: list[Upload] = field(default_factory=list)
    first_chunk_read: threading.Event = field(default_factory=threading.Event)
    streamed_before_release: list[bool] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _body(self) -> tuple[bytes, bool]:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts), True
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return (self.rfile.read(length) if length else b""), False

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}",
                 "Content-Type: application/json"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def do_GET(self) -> None:  # noqa: N802
        state = self.server.state
        if self.path == "/slow":
            state.stopping.wait(5)
            self._reply(200, b"{}")
        elif self.path == "/redirect":
            self._reply(302, b"", {"Location": "/ping"})
        elif self.path == "/ping":
            self._reply(200, b"ok")
        elif self.path == "/stream":
            # chunk one, then wait until the client has read it: an adapter that buffered the
            # whole body before handing back the response would never let the client get here
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"6\r\nfirst.\r\n")
            self.wfile.flush()
            state.streamed_before_release.append(state.first_chunk_read.wait(5))
            self.wfile.write(b"7\r\nsecond.\r\n0\r\n\r\n")
        else:
            self._reply(404, b"{}")

    def do_POST(self) -> None:  # noqa: N802
        state = self.server.state
        body, chunked = self._body()
        if self.path == "/echo":
            data = {"body": body.decode("latin-1"),
                    "headers": {k.lower(): v for k, v in self.headers.items()}}
            self._reply(200, json.dumps(data).encode())
            return
        authorization = self.headers.get("Authorization") or ""
        state.uploads.append(Upload(authorization, body, chunked))
        token = authorization.removeprefix("Bearer ")
        if not state.emulator.is_access_token_valid(token):
            self._reply(401, b'{"error": "invalid token"}')
            return
        digest = hashlib.sha256(body).hexdigest()
        self._reply(200, json.dumps({"sha256": digest, "length": len(body)}).encode())

    do_PUT = do_POST


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a herd of connects must not overflow the listen backlog

    def __init__(self, state: ServerState):
        self.state = state
        super().__init__(("127.0.0.1", 0), _Handler)


@pytest.fixture
def emu(fresh_emulator: Any) -> Any:
    return fresh_emulator


@pytest.fixture
def server(emu: Any) -> Iterator[tuple[str, ServerState]]:
    state = ServerState(emu)
    httpd = _Server(state)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        state.stopping.set()
        state.first_chunk_read.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def make_credentials(emu: Any, quota_project_id: str | None = None) -> Credentials:
    info = emu.create_service_account(project_id="compliance")
    creds = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    return creds.with_quota_project(quota_project_id) if quota_project_id else creds


def api_url(emu: Any) -> str:
    return f"{emu.api_url}/sql/v1beta4/projects/compliance/instances"


# -- token transports -----------------------------------------------------------------------
class Sender(Protocol):
    name: str

    def send(self, request: HttpRequest) -> Any: ...
    def token(self, creds: Credentials) -> str: ...
    def close(self) -> None: ...


class SyncSender:
    def __init__(self, name: str, make: Callable[[], Any]):
        self.name = name
        self._request = make()

    def send(self, request: HttpRequest) -> Any:
        return self._request.send(request)

    def token(self, creds: Credentials) -> str:
        return creds.get_token(self._request).access_token

    def close(self) -> None:
        close = getattr(self._request, "close", None)
        if close is not None:
            close()
        for attr in ("http", "session"):
            pool = getattr(self._request, attr, None)
            if pool is not None:
                pool.clear() if hasattr(pool, "clear") else pool.close()


class AsyncSender:
    """An async token transport, driven on a private loop (optionally with a session)."""

    def __init__(self, name: str, kind: str):
        self.name = name
        self._kind = kind
        self._loop = asyncio.new_event_loop()
        self._session: Any = None
        self._request: Any = self._run(self._open())

    async def _open(self) -> Any:
        if self._kind == "httpx":
            return ghttpx.AsyncRequest()
        if self._kind == "httpx-client":
            self._session = httpx.AsyncClient()
            return ghttpx.AsyncRequest(self._session)
        if self._kind == "aiohttp":
            return gaiohttp.AsyncRequest()
        self._session = aiohttp.ClientSession()
        return gaiohttp.AsyncRequest(self._session)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def send(self, request: HttpRequest) -> Any:
        return self._run(self._request.send(request))

    def token(self, creds: Credentials) -> str:
        return self._run(creds.aget_token(self._request)).access_token

    def close(self) -> None:
        if self._session is not None:
            self._run(self._session.aclose() if self._kind == "httpx-client"
                      else self._session.close())
        self._run(self._loop.shutdown_asyncgens())
        self._loop.close()


SENDERS: dict[str, Callable[[], Sender]] = {
    "urllib3": lambda: SyncSender("urllib3", gurllib3.Request),
    "requests": lambda: SyncSender("requests", grequests.Request),
    "httpx": lambda: SyncSender("httpx", ghttpx.Request),
    "httpx-async": lambda: AsyncSender("httpx-async", "httpx"),
    "httpx-async-client": lambda: AsyncSender("httpx-async-client", "httpx-client"),
    "aiohttp": lambda: AsyncSender("aiohttp", "aiohttp"),
    "aiohttp-session": lambda: AsyncSender("aiohttp-session", "aiohttp-session"),
}


@pytest.fixture(params=sorted(SENDERS))
def sender(request: pytest.FixtureRequest) -> Iterator[Sender]:
    made = SENDERS[request.param]()
    try:
        yield made
    finally:
        made.close()


def test_sender_sends_body_and_headers(sender: Sender, server: tuple[str, ServerState]) -> None:
    url, _ = server
    reply = sender.send(HttpRequest("POST", url + "/echo", {"X-Test": "yes",
                                                            "Content-Type": "text/plain"},
                                    b"grant_type=x&assertion=y"))
    assert reply.status == 200
    echoed = json.loads(reply.body)
    assert echoed["body"] == "grant_type=x&assertion=y"
    assert echoed["headers"]["x-test"] == "yes"
    assert reply.headers["content-type"] == "application/json"


def test_sender_returns_error_statuses(sender: Sender, server: tuple[str, ServerState]) -> None:
    url, _ = server
    assert sender.send(HttpRequest("GET", url + "/missing")).status == 404


def test_sender_does_not_follow_redirects(sender: Sender, server: tuple[str, ServerState]) -> None:
    url, _ = server
    reply = sender.send(HttpRequest("GET", url + "/redirect"))
    assert reply.status == 302
    assert reply.headers["location"] == "/ping"


def test_sender_timeout_is_a_transport_error(sender: Sender,
                                             server: tuple[str, ServerState]) -> None:
    url, _ = server
    with pytest.raises(TransportError) as info:
        sender.send(HttpRequest("GET", url + "/slow", timeout=0.2))
    assert info.value.timeout
    assert info.value.url == url + "/slow"


def test_sender_refused_connection_is_a_transport_error(sender: Sender) -> None:
    url = f"http://127.0.0.1:{closed_loopback_port()}/token"
    with pytest.raises(TransportError) as info:
        sender.send(HttpRequest("POST", url, {}, b"secret-assertion", timeout=2))
    assert not info.value.timeout
    assert "secret-assertion" not in str(info.value)


def test_sender_drives_the_token_flow(sender: Sender, emu: Any) -> None:
    creds = make_credentials(emu)
    token = sender.token(creds)
    assert emu.is_access_token_valid(token)
    assert sender.token(creds) == token
    assert emu.counts["token"] == 1


@pytest.mark.parametrize("name", ["urllib3", "requests", "httpx"])
def test_sync_requests_are_google_auth_callables(name: str,
                                                 server: tuple[str, ServerState]) -> None:
    url, _ = server
    made = SENDERS[name]()
    try:
        call = made._request  # type: ignore[attr-defined]
        reply = call(url=url + "/echo", method="POST", body="a=b", headers={"X-A": "1"})
        assert reply.status == 200
        assert json.loads(reply.data)["body"] == "a=b"
    finally:
        made.close()


# -- authorized sessions --------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    body: bytes


class Session(Protocol):
    timeout_errors: tuple[type[BaseException], ...]

    def get(self, url: str, *, timeout: float | None = None,
            headers: dict[str, str] | None = None) -> Reply: ...
    def post(self, url: str, body: bytes) -> Reply: ...
    def post_stream(self, url: str, chunks: list[bytes]) -> Reply: ...
    def read_stream(self, url: str, on_first: Callable[[], None]) -> bytes: ...
    def herd(self, url: str, n: int) -> list[int]: ...


def _thread_herd(get: Callable[[], int], n: int) -> list[int]:
    barrier = threading.Barrier(n)

    def one() -> int:
        barrier.wait()
        return get()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: one(), range(n)))


class Urllib3Session:
    timeout_errors = (urllib3.exceptions.TimeoutError,)

    def __init__(self, creds: Credentials):
        self.http = gurllib3.AuthorizedHttp(creds)

    def close(self) -> None:
        self.http.http.clear()

    def get(self, url: str, *, timeout: float | None = None,
            headers: dict[str, str] | None = None) -> Reply:
        kwargs: dict[str, Any] = {"retries": False}
        if timeout is not None:
            kwargs["timeout"] = timeout
        response = self.http.request("GET", url, headers=headers, **kwargs)
        return Reply(response.status, response.data)

    def post(self, url: str, body: bytes) -> Reply:
        response = self.http.request("POST", url, body=body)
        return Reply(response.status, response.data)

    def post_stream(self, url: str, chunks: list[bytes]) -> Reply:
        response = self.http.urlopen("POST", url, body=iter(chunks), chunked=True)
        return Reply(response.status, response.data)

    def read_stream(self, url: str, on_first: Callable[[], None]) -> bytes:
        response = self.http.urlopen("GET", url, preload_content=False)
        parts: list[bytes] = []
        for chunk in response.stream(None):
            if chunk and not parts:
                on_first()
            parts.append(chunk)
        response.release_conn()
        return b"".join(parts)

    def herd(self, url: str, n: int) -> list[int]:
        return _thread_herd(lambda: self.get(url).status, n)


class RequestsSession:
    timeout_errors = (requests.Timeout,)

    def __init__(self, creds: Credentials, *, hook: bool = False):
        if hook:
            self.session = requests.Session()
            self.session.auth = grequests.Auth(creds)
        else:
            self.session = grequests.AuthorizedSession(creds)

    def close(self) -> None:
        self.session.close()

    def get(self, url: str, *, timeout: float | None = None,
            headers: dict[str, str] | None = None) -> Reply:
        response = self.session.get(url, timeout=timeout, headers=headers)
        return Reply(response.status_code, response.content)

    def post(self, url: str, body: bytes) -> Reply:
        response = self.session.post(url, data=body)
        return Reply(response.status_code, response.content)

    def post_stream(self, url: str, chunks: list[bytes]) -> Reply:
        response = self.session.post(url, data=iter(chunks))
        return Reply(response.status_code, response.content)

    def read_stream(self, url: str, on_first: Callable[[], None]) -> bytes:
        parts: list[bytes] = []
        with self.session.get(url, stream=True) as response:
            for chunk in response.iter_content(chunk_size=None):
                if chunk and not parts:
                    on_first()
                parts.append(chunk)
        return b"".join(parts)

    def herd(self, url: str, n: int) -> list[int]:
        return _thread_herd(lambda: self.get(url).status, n)


class HttpxSession:
    timeout_errors = (httpx.TimeoutException,)

    def __init__(self, creds: Credentials):
        self.client = httpx.Client(auth=ghttpx.Auth(creds))

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, *, timeout: float | None = None,
            headers: dict[str, str] | None = None) -> Reply:
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        response = self.client.get(url, headers=headers, **kwargs)
        return Reply(response.status_code, response.content)

    def post(self, url: str, body: bytes) -> Reply:
        response = self.client.post(url, content=body)
        return Reply(response.status_code, response.content)

    def post_stream(self, url: str, chunks: list[bytes]) -> Reply:
        response = self.client.post(url, content=iter(chunks))
        return Reply(response.status_code, response.content)

    def read_stream(self, url: str, on_first: Callable[[], None]) -> bytes:
        parts: list[bytes] = []
        with self.client.stream("GET", url) as response:
            for chunk in response.iter_raw():
                if chunk and not parts:
                    on_first()
                parts.append(chunk)
        return b"".join(parts)

    def herd(self, url: str, n: int) -> list[int]:
        return _thread_herd(lambda: self.get(url).status, n)


class _AsyncSession:
    """Runs an async adapter's coroutines on a private event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def finish(self) -> None:
        self.run(self.loop.shutdown_asyncgens())
        self.loop.close()

    async def _get(self, url: str, timeout: float | None = None,
                   headers: dict[str, str] | None = None) -> Reply:
        raise NotImplementedError

    def herd(self, url: str, n: int) -> list[int]:
        """``n`` concurrent GETs on one event loop; their statuses."""
        async def go() -> list[int]:
            replies = await asyncio.gather(*(self._get(url) for _ in range(n)))
            return [r.status for r in replies]

        return self.run(go())


async def _agen(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


class HttpxAsyncSession(_AsyncSession):
    timeout_errors = (httpx.TimeoutException,)

    def __init__(self, creds: Credentials):
        super().__init__()

        async def make() -> httpx.AsyncClient:
            return httpx.AsyncClient(auth=ghttpx.Auth(creds))

        self.client = self.run(make())

    def close(self) -> None:
        self.run(self.client.aclose())
        self.finish()

    def get(self, url: str, *, timeout: float | None = None,
            headers: dict[str, str] | None = None) -> Reply:
        return self.run(self._get(url, timeout, headers))

    async def _get(self, url: str, timeout: float | None = None,
                   headers: dict[str, str] | None = None) -> Reply:
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        response = await self.client.get(url, headers=headers, **kwargs)
        return Reply(response.status_code, response.content)

    def post(self, url: str, body: bytes) -> Reply:
        async def go() -> Reply:
            response = await self.client.post(url, content=body)
            return Reply(response.status_code, response.content)

        return self.run(go())

    def post_stream(self, url: str, chunks: list[bytes]) -> Reply:
        async def go() -> Reply:
            response = await self.client.post(url, content=_agen(chunks))
            return Reply(response.status_code, response.content)

        return self.run(go())

    def read_stream(self, url: str, on_first: Callable[[], None]) -> bytes:
        async def go() -> bytes:
            parts: list[bytes] = []
            async with self.client.stream("GET", url) as response:
                async for chunk in response.aiter_raw():
                    if chunk and not parts:
                        on_first()
                    parts.append(chunk)
            return b"".join(parts)

        return self.run(go())


class AiohttpSession(_AsyncSession):
    timeout_errors = (asyncio.TimeoutError,)

    def __init__(self, creds: Credentials):
        super().__init__()

        async def make() -> gaiohttp.AuthorizedSession:
            return await gaiohttp.AuthorizedSession(creds).__aenter__()

        self.session = self.run(make())

    def close(self) -> None:
        self.run(self.session.close())
        self.finish()

    def get(self, url: str, *, timeout: float | None = None,
            headers: dict[str, str] | None = None) -> Reply:
        return self.run(self._get(url, timeout, headers))

    async def _get(self, url: str, timeout: float | None = None,
                   headers: dict[str, str] | None = None) -> Reply:
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        async with self.session.get(url, headers=headers, **kwargs) as response:
            return Reply(response.status, await response.read())

    def post(self, url: str, body: bytes) -> Reply:
        async def go() -> Reply:
            async with self.session.post(url, data=body) as response:
                return Reply(response.status, await response.read())

        return self.run(go())

    def post_stream(self, url: str, chunks: list[bytes]) -> Reply:
        async def go() -> Reply:
            response = await self.session.post(url, data=_agen(chunks))
            try:
                return Reply(response.status, await response.read())
            finally:
                response.release()

        return self.run(go())

    def read_stream(self, url: str, on_first: Callable[[], None]) -> bytes:
        async def go() -> bytes:
            parts: list[bytes] = []
            async with self.session.get(url) as response:
                async for chunk in response.content.iter_any():
                    if chunk and not parts:
                        on_first()
                    parts.append(chunk)
            return b"".join(parts)

        return self.run(go())


ADAPTERS: dict[str, Callable[[Credentials], Any]] = {
    "urllib3.AuthorizedHttp": Urllib3Session,
    "requests.AuthorizedSession": RequestsSession,
    "requests.Auth": lambda creds: RequestsSession(creds, hook=True),
    "httpx.Auth-Client": HttpxSession,
    "httpx.Auth-AsyncClient": HttpxAsyncSession,
    "aiohttp.AuthorizedSession": AiohttpSession,
}


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Callable[[Credentials], Any]:
    made: list[Any] = []

    def factory(creds: Credentials) -> Any:
        session = ADAPTERS[request.param](creds)
        made.append(session)
        return session

    request.addfinalizer(lambda: [s.close() for s in made])
    return factory


def test_attaches_token_and_quota_project(adapter: Callable[[Credentials], Session],
                                          emu: Any) -> None:
    session = adapter(make_credentials(emu, quota_project_id="billing-project"))
    for _ in range(3):
        reply = session.get(api_url(emu))
        assert reply.status == 200
        assert json.loads(reply.body)["items"][0]["project"] == "compliance"
    assert emu.counts["token"] == 1
    assert emu.quota_projects_seen == ["billing-project"] * 3


def test_no_quota_project_header_without_one(adapter: Callable[[Credentials], Session],
                                             emu: Any) -> None:
    session = adapter(make_credentials(emu))
    assert session.get(api_url(emu)).status == 200
    assert emu.quota_projects_seen == [None]


def test_caller_headers_are_kept(adapter: Callable[[Credentials], Session], emu: Any) -> None:
    session = adapter(make_credentials(emu))
    reply = session.get(emu.url + "/echo", headers={"X-Caller": "kept"})
    echoed = {k.lower(): v for k, v in json.loads(reply.body).items()}
    assert echoed["x-caller"] == "kept"


def test_refreshes_and_retries_once_on_401(adapter: Callable[[Credentials], Session],
                                           emu: Any) -> None:
    creds = make_credentials(emu)
    session = adapter(creds)
    assert session.get(api_url(emu)).status == 200
    old = creds.token
    assert old is not None
    emu.revoke(old)
    assert session.get(api_url(emu)).status == 200
    assert creds.token != old
    assert emu.counts["token"] == 2
    assert emu.counts["api"] == 3


def test_retries_only_once(adapter: Callable[[Credentials], Session], emu: Any) -> None:
    session = adapter(make_credentials(emu))
    emu.faults.add("api", kind="status", status=401, count=5)
    assert session.get(api_url(emu)).status == 401
    assert emu.counts["api"] == 2
    assert emu.counts["token"] == 2


def test_other_errors_are_not_retried(adapter: Callable[[Credentials], Session],
                                      emu: Any) -> None:
    session = adapter(make_credentials(emu))
    emu.faults.add("api", kind="status", status=503)
    assert session.get(api_url(emu)).status == 503
    assert emu.counts["api"] == 1
    assert emu.counts["token"] == 1


def test_replayable_body_is_resent_after_401(adapter: Callable[[Credentials], Session],
                                             emu: Any, server: tuple[str, ServerState]) -> None:
    url, state = server
    creds = make_credentials(emu)
    session = adapter(creds)
    body = bytes(range(256)) * 1024
    assert session.post(url + "/upload", body).status == 200
    emu.revoke(creds.token)
    reply = session.post(url + "/upload", body)
    assert reply.status == 200
    assert json.loads(reply.body) == {"sha256": hashlib.sha256(body).hexdigest(),
                                      "length": len(body)}
    assert [u.body == body for u in state.uploads] == [True, True, True]
    assert len({u.authorization for u in state.uploads}) == 2
    assert emu.counts["token"] == 2


def test_streamed_upload_is_sent_untouched(adapter: Callable[[Credentials], Session],
                                           emu: Any, server: tuple[str, ServerState]) -> None:
    url, state = server
    session = adapter(make_credentials(emu))
    chunks = [b"a" * 70_000, b"b" * 3, b"c" * 100_000]
    reply = session.post_stream(url + "/upload", chunks)
    assert reply.status == 200
    assert state.uploads[0].body == b"".join(chunks)
    assert state.uploads[0].chunked


def test_streamed_upload_is_not_replayed_after_401(adapter: Callable[[Credentials], Session],
                                                   emu: Any,
                                                   server: tuple[str, ServerState]) -> None:
    url, state = server
    creds = make_credentials(emu)
    session = adapter(creds)
    assert session.post(url + "/upload", b"warm-up").status == 200
    emu.revoke(creds.token)
    reply = session.post_stream(url + "/upload", [b"once", b"only"])
    assert reply.status == 401
    assert [u.body for u in state.uploads] == [b"warm-up", b"onceonly"]


def test_response_body_is_streamed(adapter: Callable[[Credentials], Session], emu: Any,
                                   server: tuple[str, ServerState]) -> None:
    url, state = server
    session = adapter(make_credentials(emu))
    body = session.read_stream(url + "/stream", state.first_chunk_read.set)
    assert body == b"first.second."
    assert state.streamed_before_release == [True]


def test_timeouts_are_honoured(adapter: Callable[[Credentials], Session], emu: Any,
                               server: tuple[str, ServerState]) -> None:
    url, _ = server
    session = adapter(make_credentials(emu))
    with pytest.raises(session.timeout_errors):
        session.get(url + "/slow", timeout=0.2)


def test_token_errors_surface_as_refresh_error(adapter: Callable[[Credentials], Session],
                                               emu: Any) -> None:
    session = adapter(make_credentials(emu))
    emu.faults.add("token", kind="invalid_grant")
    with pytest.raises(RefreshError) as info:
        session.get(api_url(emu))
    assert info.value.error == "invalid_grant"
    assert emu.counts["api"] == 0
    assert session.get(api_url(emu)).status == 200  # the failure was not cached


def test_concurrent_first_calls_share_one_token(adapter: Callable[[Credentials], Session],
                                                emu: Any) -> None:
    session = adapter(make_credentials(emu))
    assert session.herd(api_url(emu), 32) == [200] * 32
    assert emu.counts["token"] == 1
    assert emu.counts["api"] == 32


def test_401_burst_makes_one_refresh(adapter: Callable[[Credentials], Session],
                                     emu: Any) -> None:
    creds = make_credentials(emu)
    session = adapter(creds)
    assert session.get(api_url(emu)).status == 200
    emu.revoke(creds.token)
    assert session.herd(api_url(emu), 16) == [200] * 16
    assert emu.counts["token"] == 2


# -- adapter-specific behaviour --------------------------------------------------------------
def test_httpx_auth_is_one_object_for_sync_and_async(emu: Any) -> None:
    creds = make_credentials(emu)
    auth = ghttpx.Auth(creds)
    with httpx.Client(auth=auth) as client:
        assert client.get(api_url(emu)).status_code == 200

    async def main() -> int:
        async with httpx.AsyncClient(auth=auth) as client:
            return (await client.get(api_url(emu))).status_code

    assert asyncio.run(main()) == 200
    assert asyncio.run(main()) == 200  # a second event loop: nothing is bound to the first
    assert emu.counts["token"] == 1


def test_httpx_async_refresh_never_uses_the_sync_transport(emu: Any) -> None:
    class Forbidden:
        def send(self, request: HttpRequest) -> Any:
            raise AssertionError("the async flow must not do blocking I/O")

    creds = make_credentials(emu)
    auth = ghttpx.Auth(creds, request=Forbidden())

    async def main() -> int:
        async with httpx.AsyncClient(auth=auth) as client:
            return (await client.get(api_url(emu))).status_code

    assert asyncio.run(main()) == 200


def test_aiohttp_session_wraps_a_callers_session(emu: Any) -> None:
    creds = make_credentials(emu, quota_project_id="qp")

    async def main() -> tuple[int, bool]:
        async with aiohttp.ClientSession() as raw:
            session = gaiohttp.AuthorizedSession(creds, raw)
            response = await session.get(api_url(emu))
            response.release()
            await session.close()  # not ours: stays open
            return response.status, raw.closed

    assert asyncio.run(main()) == (200, False)
    assert emu.quota_projects_seen == ["qp"]


def test_aiohttp_retries_when_the_session_raises_for_status(emu: Any) -> None:
    creds = make_credentials(emu)

    async def main() -> int:
        async with gaiohttp.AuthorizedSession(creds, raise_for_status=True) as session:
            async with session.get(api_url(emu)) as response:
                await response.read()
            emu.revoke(creds.token)
            async with session.get(api_url(emu)) as response:
                return response.status

    assert asyncio.run(main()) == 200
    assert emu.counts["token"] == 2


def test_aiohttp_session_rejects_session_and_kwargs(emu: Any) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as raw:
            with pytest.raises(TypeError):
                gaiohttp.AuthorizedSession(make_credentials(emu), raw, raise_for_status=True)

    asyncio.run(main())


def test_httpx_request_closes_only_its_own_client() -> None:
    own = ghttpx.Request()
    client = own.client
    own.close()
    assert client.is_closed
    with httpx.Client() as mine:
        borrowed = ghttpx.Request(mine)
        borrowed.close()
        assert not mine.is_closed
