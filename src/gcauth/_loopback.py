"""The loopback redirect server of the installed-app flow (RFC 8252 §7.3, §8.3).

The authorization server sends the browser back to ``http://localhost:PORT/?code=...&state=...``.
:class:`RedirectServer` listens for that on an ephemeral port bound to a loopback address only
(RFC 8252 §8.3: never on all interfaces), and hands each request to the redirect path to its
owner through :meth:`RedirectServer.next_redirect`. The owner (``InstalledAppFlow``) decides
what the request means and which page the browser gets, so all protocol checks live in one
place and this module is only plumbing:

* each connection is served on its own daemon thread with a socket timeout, so a slow or idle
  client (browsers pre-open connections) never blocks the genuine redirect;
* requests to other paths (``/favicon.ico``...) get a 404 page and change nothing;
* the request line, which carries the authorization code, is never logged;
* once :meth:`RedirectServer.finish` is called every later request gets the final page, and
  :meth:`RedirectServer.close` stops listening.
"""

from __future__ import annotations

import html
import ipaddress
import math
import queue
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from ._endpoints import is_loopback_host
from ._http import checked_timeout
from .exceptions import FlowError

__all__ = ["Page", "Redirect", "RedirectServer", "check_bind_addr", "check_redirect_host"]

#: Seconds one connection may take to send its request before it is dropped.
CONNECTION_TIMEOUT = 10.0
#: Seconds a browser request waits for its page while the owner decides (token exchange).
REPLY_TIMEOUT = 60.0
#: How long closing the server waits for pages still being written to browsers.
SEND_GRACE = 3.0


#: The look of every browser page gcauth shows: these sign-in pages and the emulator's
#: consent and device pages (``gcauth.emulator._pages`` uses it too): one card on a grey page.
PAGE_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f1f3f4;
margin:0;color:#202124;line-height:1.5}
main{max-width:34rem;margin:3rem auto;background:#fff;border:1px solid #dadce0;
border-radius:8px;padding:2rem 2.5rem}
h1{font-size:1.4rem;font-weight:500;margin:0 0 1rem}
h1#success{color:#137333}h1#failure{color:#b3261e}
.brand{font-size:.75rem;color:#5f6368;letter-spacing:.05rem;margin-bottom:1rem}
.badge{display:inline-block;font-size:.75rem;background:#fce8b2;border-radius:4px;
padding:.1rem .4rem;margin-bottom:1rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:1rem 0}
dl.facts dt{color:#5f6368}dl.facts dd{margin:0;overflow-wrap:anywhere}
ul.scopes{padding-left:1.2rem}ul.scopes li{margin:.4rem 0}
code{font-size:.85rem;overflow-wrap:anywhere}
details.client{font-size:.8rem;color:#5f6368;margin:-.5rem 0 1rem}
fieldset{border:1px solid #dadce0;border-radius:4px;margin:1rem 0}
label{display:block;margin:.3rem 0}
.buttons{display:flex;justify-content:flex-end;gap:.75rem;margin-top:1.5rem}
button{font-size:.95rem;border-radius:4px;padding:.5rem 1.5rem;cursor:pointer;
border:1px solid #dadce0;background:#fff;color:#1a73e8}
button#allow{background:#1a73e8;color:#fff;border-color:#1a73e8}
input[type=text]{font-size:1.2rem;padding:.4rem;letter-spacing:.1rem;text-transform:uppercase}
.error{color:#d93025}
"""


@dataclass(frozen=True, slots=True)
class Page:
    """What the browser is shown: an HTTP status, a title, one paragraph and, optionally,
    labelled facts (``(("Account", "alice@example.com"), ...)``, each with an ``id`` made
    from its label)."""

    status: int
    title: str
    message: str
    ok: bool = False
    facts: tuple[tuple[str, str], ...] = ()

    def render(self) -> bytes:
        element = "success" if self.ok else "failure"
        facts = ""
        if self.facts:
            rows = "".join(
                f"<dt>{html.escape(label)}</dt><dd id=\"{_fact_id(label)}\">"
                f"{html.escape(value)}</dd>" for label, value in self.facts)
            facts = f"<dl class=\"facts\">{rows}</dl>"
        return (
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title>"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<style>{PAGE_STYLE}</style></head><body><main>"
            "<div class=\"brand\">gcauth sign-in</div>"
            f"<h1 id=\"{element}\">{html.escape(self.title)}</h1>"
            f"<p id=\"message\">{html.escape(self.message)}</p>{facts}"
            "</main></body></html>"
        ).encode()


def _fact_id(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-") or "fact"


NOT_FOUND = Page(404, "Not found", "This address is only used to finish a gcauth sign-in.")
ENDED = Page(410, "This sign-in has ended",
             "This sign-in attempt is over. You can close this tab; start a new sign-in from "
             "the terminal if needed.")


class Redirect:
    """One browser request to the redirect path, waiting for the page to show."""

    def __init__(self, query: str):
        self.query = query
        self._page: Page | None = None
        self._ready = threading.Event()
        self.sent = threading.Event()  # the page has been written to the browser (or failed)

    def respond(self, page: Page) -> None:
        """Choose the page this request gets (the first choice wins)."""
        if not self._ready.is_set():
            self._page = page
            self._ready.set()

    def wait(self, timeout: float) -> Page:
        self._ready.wait(timeout)
        return self._page or ENDED

    def __repr__(self) -> str:  # the query holds the authorization code
        return "<Redirect query=<redacted>>"


def check_bind_addr(bind_addr: str) -> tuple[str, socket.AddressFamily]:
    """``bind_addr`` must be a loopback IP literal (RFC 8252 §8.3); returns it and its family."""
    try:
        address = ipaddress.ip_address(bind_addr.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise FlowError(
            f"refusing to listen for the login redirect on {bind_addr!r}: the redirect carries "
            "an authorization code, so the server binds to a loopback address only. Fix: use "
            "bind_addr='127.0.0.1' or '::1'.")
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return str(address), family


def check_redirect_host(host: str) -> str:
    """The host put in the redirect URI: ``localhost`` or a loopback IP literal, bracketed
    when IPv6 (RFC 8252 §7.3)."""
    bare = host.strip("[]")
    if not is_loopback_host(bare):
        raise FlowError(
            f"the redirect URI host must be loopback ('localhost', '127.0.0.1' or '::1'), not "
            f"{host!r} (RFC 8252 §7.3).")
    return f"[{bare}]" if ":" in bare else bare


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, path: str,
                 connection_timeout: float):
        self.address_family = family
        self.path = path
        self.connection_timeout = connection_timeout
        self.lock = threading.Lock()
        self.redirects: queue.Queue[Redirect] = queue.Queue()
        self.delivered: list[Redirect] = []  # every redirect handed to the flow
        self.final_page: Page | None = None
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the address's FQDN (a DNS lookup); not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A broken connection is the browser's business; never print a traceback (the
        request may hold the code)."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "gcauth"
    sys_version = ""
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.connection_timeout)  # per-connection timeout

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silent: the request line carries the authorization code."""

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        if parts.path != self.server.path:
            self._send(NOT_FOUND)
            return
        redirect = Redirect(parts.query)
        with self.server.lock:
            final = self.server.final_page
            if final is None:
                self.server.redirects.put(redirect)
                self.server.delivered.append(redirect)
        try:
            self._send(final or redirect.wait(REPLY_TIMEOUT))
        finally:
            redirect.sent.set()

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(NOT_FOUND, body=False)

    def do_POST(self) -> None:  # noqa: N802
        self._send(Page(405, "Method not allowed", NOT_FOUND.message))

    def _send(self, page: Page, *, body: bool = True) -> None:
        data = page.render()
        try:
            self.send_response(page.status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy",
                             "default-src 'none'; style-src 'unsafe-inline'")
            self.send_header("Connection", "close")
            self.end_headers()
            if body:
                self.wfile.write(data)
        except OSError:
            pass


class RedirectServer:
    """A loopback HTTP server that collects requests to the redirect path.

    ``bind_addr`` is where it listens (a loopback IP literal), ``host`` what the redirect URI
    names (``localhost`` by default, as Google's desktop-app instructions use), ``port`` 0 for
    an ephemeral port.
    """

    def __init__(
        self,
        *,
        bind_addr: str = "127.0.0.1",
        port: int = 0,
        host: str = "localhost",
        path: str = "/",
        connection_timeout: float = CONNECTION_TIMEOUT,
    ):
        connection_timeout = checked_timeout(connection_timeout, "connection_timeout")
        address, family = check_bind_addr(bind_addr)
        self._host = check_redirect_host(host)
        if not path.startswith("/"):
            raise ValueError("the redirect path must start with '/'")
        try:
            self._server = _Server((address, port), family, path, connection_timeout)
        except OSError as exc:
            raise FlowError(
                f"cannot listen on {address} port {port} for the login redirect "
                f"({exc.strerror or exc}). Fix: choose another port, or use port=0 for a free "
                "one.") from None
        self._path = path
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="gcauth-loopback-redirect", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        return f"http://{self._host}:{self.port}{self._path}"

    def next_redirect(self, timeout: float) -> Redirect | None:
        """The next request to the redirect path, or ``None`` after ``timeout`` seconds."""
        if math.isnan(timeout):  # it would never block, so a wait loop would spin
            raise ValueError("next_redirect() needs a number of seconds, not NaN")
        try:
            return self._server.redirects.get(
                timeout=min(max(0.0, timeout), threading.TIMEOUT_MAX))
        except queue.Empty:
            return None

    def finish(self, page: Page = ENDED) -> None:
        """Answer every waiting and future request with ``page``."""
        with self._server.lock:
            if self._server.final_page is None:
                self._server.final_page = page
            final = self._server.final_page
            while True:
                try:
                    self._server.redirects.get_nowait().respond(final)
                except queue.Empty:
                    break

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.finish()
        # Let the browser get its page before the process (often a CLI about to exit) goes:
        # handler threads are daemons, and a page still being written would be lost.
        deadline = time.monotonic() + SEND_GRACE
        for redirect in list(self._server.delivered):
            redirect.sent.wait(max(0.0, deadline - time.monotonic()))
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RedirectServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
