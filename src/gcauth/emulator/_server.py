"""HTTP mechanics: sockets, framing, limits and logging.  What a request *means* is
decided by :class:`~._routing.App`; this module only turns bytes into a
:class:`~._wire.Request` and a :class:`~._wire.Reply` back into bytes.

Every connection is bounded (see :class:`~._config.Config`):

* **time**: all reads go through :class:`_DeadlineReader`, so a request head must arrive
  within ``header_timeout`` of its first byte (of the accept, for a new connection), a
  body within ``body_timeout``, and an idle keep-alive connection is closed after
  ``idle_timeout``; a slow-loris client cannot hold a thread for longer than that;
* **size**: a body (``Content-Length`` or chunked) larger than ``max_body`` is refused
  with 413 *before* it is read; a malformed ``Content-Length``, chunk size or chunk
  framing is answered with 400 at once; request line and headers are bounded by
  :mod:`http.server` (414/431);
* **count**: at most ``max_connections`` connections are served at once.

Logging (``verbose=True``) writes ``METHOD /path STATUS`` only: never a query string, a
body or a header, and never raw client bytes (a malformed request line is logged as
``<malformed>``).
"""

from __future__ import annotations

import io
import re
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._config import Config
from ._routing import App, Drop, phrase
from ._wire import Reply, Request, api_error

__all__ = ["Server"]

_MAX_LINE = 65536  # request line, header line (as http.server), chunk-size line
_MAX_TRAILERS = 16384
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"})
_LOG_UNSAFE = re.compile(r"[^\x21-\x7e]")
#: After an error reply that leaves unread input, keep reading (and discarding) for this
#: long so that the client sees the reply rather than a reset.
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 8 << 20


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _DeadlineReader(io.RawIOBase):
    """Socket reads that raise :class:`TimeoutError` once ``deadline`` (a
    :func:`time.monotonic` value, None for none) has passed, however the bytes trickle in."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("read deadline passed")
            self._sock.settimeout(remaining)
        else:
            self._sock.settimeout(None)
        return self._sock.recv_into(buffer)


class Server(ThreadingHTTPServer):
    """A threading HTTP server that tracks its connections so ``stop`` can close them and
    serves at most ``config.max_connections`` at once."""

    daemon_threads = True
    allow_reuse_address = True
    #: socketserver's default backlog (5) overflows under a herd of concurrent connects, which
    #: then wait out SYN retransmits (1 s, 3 s, ...)
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], family: int, app: App, config: Config,
                 stopping: threading.Event) -> None:
        self.address_family = family
        self.app, self.config, self.stopping = app, config, stopping
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._slots = threading.BoundedSemaphore(max(1, int(config.max_connections)))
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Back-pressure: beyond max_connections, wait (new connections queue in the backlog).
        while not self._slots.acquire(timeout=0.1):
            if self.stopping.is_set():
                self.shutdown_request(request)
                return
        thread = threading.Thread(
            target=self._serve, args=(request, client_address), daemon=True,
            name="gcauth-emulator-conn",
        )
        with self._conn_lock:
            self._conns[request] = thread
        try:
            thread.start()
        except RuntimeError:  # no more threads: drop this connection, keep serving
            self._slots.release()
            self.shutdown_request(request)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._conns.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.stopping.is_set():
            return  # client went away
        super().handle_error(request, client_address)

    def close_connections(self, timeout: float = 2.0) -> None:
        """Shut every open connection down and wait for its thread."""
        with self._conn_lock:
            items = list(self._conns.items())
        for sock, _ in items:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for _, thread in items:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


#: Kept for code that patched the server class by its old name.
_Server = Server


class _Handler(BaseHTTPRequestHandler):
    """Parses requests within their deadlines and writes each reply in one ``send``."""

    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = _DeadlineReader(self.connection)
        self.rfile.close()
        self._buffered = io.BufferedReader(self._reader, 65536)
        self.rfile = self._buffered
        self._served = 0
        self._logged_path = "<malformed>"

    # ------------------------------------------------------------------ logging
    def _log(self, text: str) -> None:
        if self.server.config.verbose:
            sys.stderr.write(f"gcauth-emulator: {text}\n")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        method = getattr(self, "command", None) or "-"
        if method not in _METHODS:
            method = "-"
        self._log(f"{method} {self._logged_path} {code}")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # http.server passes client bytes (request lines, header values) to this; never
        # log them.  Only the fixed format text is kept.
        self._log(_LOG_UNSAFE.sub("?", format.split("%", 1)[0]).strip("?: ") or "error")

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        self.log_message(format, *args)

    def version_string(self) -> str:
        return "gcauth-emulator"

    # ------------------------------------------------------------------ one request
    def handle_one_request(self) -> None:
        cfg = self.server.config
        reader = self._reader
        wait = cfg.idle_timeout if self._served else cfg.header_timeout
        reader.deadline = time.monotonic() + wait
        self._logged_path = "<malformed>"
        self.command = ""
        try:
            if not self._buffered.peek(1):
                self.close_connection = True  # the client closed the connection
                return
        except (TimeoutError, OSError, ValueError):
            self.close_connection = True  # idle too long (or gone): close without a reply
            return
        if self._served:  # keep-alive: the head's time starts with its first byte
            reader.deadline = time.monotonic() + cfg.header_timeout
        try:
            self.raw_requestline = self.rfile.readline(_MAX_LINE + 1)
            if len(self.raw_requestline) > _MAX_LINE:
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
        except TimeoutError:
            self._fail(408, "The request headers did not arrive in time.")
            return
        self._served += 1
        self._logged_path = _log_path(self.path)
        if self.command not in _METHODS:
            self.send_error(501)
            return
        self._handle()

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Errors found by :mod:`http.server` while parsing (400, 414, 431, 505...): one
        generic reply; the client's bytes are neither echoed nor logged."""
        self._fail(code, phrase(code) + ".")

    def _fail(self, status: int, message: str) -> None:
        """An error that ends the connection (framing errors, timeouts)."""
        self.close_connection = True
        self._write(api_error(status, message))
        self._linger()

    def _handle(self) -> None:
        cfg = self.server.config
        self._reader.deadline = time.monotonic() + cfg.body_timeout
        try:
            body = self._read_body(int(cfg.max_body))
        except _BodyError as exc:
            self._fail(exc.status, exc.message)
            return
        except TimeoutError:
            self._fail(408, "The request body did not arrive in time.")
            return
        parts = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=parts.path or "/",
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        outcome = self.server.app.handle(req)
        if isinstance(outcome, Drop):
            self.close_connection = True
            if outcome.reset:
                self._reset()
            return
        if outcome.close:
            self.close_connection = True
        if self.command == "HEAD":
            outcome = Reply(outcome.status, b"", outcome.content_type, [
                *outcome.headers, ("Content-Length", str(len(outcome.body)))], outcome.close)
        self._write(outcome)

    # ------------------------------------------------------------------ body
    def _framing(self, limit: int) -> int | None:
        """Check the body framing headers: the ``Content-Length`` (None: chunked).

        :class:`_BodyError` for both or conflicting headers, a malformed length, a
        transfer coding other than ``chunked``, or a declared length over ``limit``.
        """
        codings = [c.strip().lower() for v in self.headers.get_all("Transfer-Encoding") or []
                   for c in v.split(",") if c.strip()]
        lengths = {v.strip() for h in self.headers.get_all("Content-Length") or []
                   for v in h.split(",")}
        if codings:
            if lengths:
                raise _BodyError(400, "A request may not carry both Transfer-Encoding and "
                                      "Content-Length.")
            if codings != ["chunked"]:
                raise _BodyError(501, "Only the chunked transfer coding is supported.")
            return None
        if not lengths:
            return 0
        if len(lengths) != 1:
            raise _BodyError(400, "Conflicting Content-Length values.")
        text = lengths.pop()
        if not _CONTENT_LENGTH.fullmatch(text):
            raise _BodyError(400, "Content-Length must be a decimal number of bytes.")
        n = int(text)
        if n > limit:
            raise _BodyError(413, f"Request body too large (limit {limit} bytes).")
        return n

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue``: invite the body only if its framing is acceptable."""
        self._logged_path = _log_path(self.path)
        try:
            self._framing(int(self.server.config.max_body))
        except _BodyError as exc:
            self._fail(exc.status, exc.message)
            return False
        return super().handle_expect_100()

    def _read_body(self, limit: int) -> bytes:
        """The request body; :class:`_BodyError` for bad framing or a body over ``limit``."""
        n = self._framing(limit)
        if n is None:
            return self._read_chunked(limit)
        data = self.rfile.read(n) if n else b""
        if len(data) < n:
            raise _BodyError(400, "The request body ended before Content-Length bytes.")
        return data

    def _read_chunked(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(_MAX_LINE + 1)
            if not line.endswith(b"\n"):
                raise _BodyError(400, "Malformed chunked body: bad chunk-size line.")
            size_text = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise _BodyError(400, "Malformed chunked body: chunk size must be hexadecimal.")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > limit:
                raise _BodyError(413, f"Request body too large (limit {limit} bytes).")
            data = self.rfile.read(size)
            if len(data) < size:
                raise _BodyError(400, "Malformed chunked body: a chunk ended early.")
            chunks.append(data)
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _BodyError(400, "Malformed chunked body: chunk data not followed by CRLF.")
        trailers = 0
        while True:
            line = self.rfile.readline(_MAX_LINE + 1)
            if not line.endswith(b"\n"):
                raise _BodyError(400, "Malformed chunked body: bad trailer line.")
            if line in (b"\r\n", b"\n"):
                return b"".join(chunks)
            trailers += len(line)
            if trailers > _MAX_TRAILERS:
                raise _BodyError(431, "Request trailer fields too large.")

    # ------------------------------------------------------------------ writing
    def _write(self, reply: Reply) -> None:
        """Status line, headers and body in a single write."""
        lines = [
            f"HTTP/1.1 {reply.status} {phrase(reply.status)}",
            f"Date: {self.date_time_string()}",
        ]
        names = {name.lower() for name, _ in reply.headers}
        if "server" not in names:
            lines.append("Server: gcauth-emulator")
        if reply.body or reply.status not in (204, 304):
            lines.append(f"Content-Type: {reply.content_type}")
        if "content-length" not in names:
            lines.append(f"Content-Length: {len(reply.body)}")
        lines += [f"{name}: {value}" for name, value in reply.headers]
        if self.close_connection:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body
        try:
            self.connection.settimeout(self.server.config.write_timeout)
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
        self.log_request(reply.status)

    def _linger(self) -> None:
        """Half-close, then read and discard what the client still sends (bounded in time
        and bytes), so that it reads the error reply instead of a reset."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_SECONDS
            drained = 0
            while drained < _LINGER_BYTES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.connection.settimeout(remaining)
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass

    def _reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0), no reply."""
        conn = self.connection
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        self.rfile.close()


def _log_path(target: str) -> str:
    """The path of a request target for the log: no query string or fragment (they can
    carry tokens and codes), no control or non-ASCII characters, at most 200 characters."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    path = _LOG_UNSAFE.sub("?", path)
    return path[:200] + ("..." if len(path) > 200 else "")
