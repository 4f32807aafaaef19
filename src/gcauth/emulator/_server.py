"""HTTP mechanics and the public :class:`Emulator` object."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import struct
import sys
import threading
import time
import traceback
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from ._endpoints import App, Config, group_for
from ._faults import Fault, FaultInjector
from ._http import Ctx, Reply, Request, api_error, json_reply, oauth_error, text_reply
from ._state import (
    CLOUD_PLATFORM,
    USERINFO_EMAIL,
    AccessToken,
    RefreshToken,
    State,
    normalize_scopes,
)

__all__ = ["Emulator"]

MAX_BODY = 1 << 20
_OAUTH_GROUPS = frozenset({"token", "revoke", "tokeninfo", "device_code"})


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that tracks its connections so ``stop`` can close them."""

    daemon_threads = True
    allow_reuse_address = True
    #: socketserver's default backlog (5) overflows under a herd of concurrent connects, which
    #: then wait out SYN retransmits (1 s, 3 s, ...)
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], emulator: Emulator, family: int) -> None:
        self.address_family = family
        self.emulator = emulator
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True,
            name="gcauth-emulator-conn",
        )
        with self._conn_lock:
            self._conns[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._conns.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.emulator._stopping.is_set():
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


class _Handler(BaseHTTPRequestHandler):
    """Parses requests, applies faults and writes each reply in one ``send``."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # quiet logging: never log query strings (they can carry tokens)
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.server.emulator.verbose:
            path = urlsplit(self.path).path
            self.log_message("%s %s %s", self.command, path, str(code))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.emulator.verbose:
            sys.stderr.write(f"gcauth-emulator: {format % args}\n")

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.emulator.verbose:
            self.log_message(format, *args)

    def version_string(self) -> str:
        return "gcauth-emulator"

    def do_GET(self) -> None:  # noqa: N802
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    # ------------------------------------------------------------------ body
    def _read_body(self) -> bytes | None:
        """Read the request body (Content-Length or chunked); None when too large/bad."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            return None
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n) if n else b""

    # ------------------------------------------------------------------ main
    def _handle(self) -> None:
        emu = self.server.emulator
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._write(api_error(413, "Request body too large or malformed."))
            return
        parts = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=parts.path or "/",
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        emu._app.count(req)
        group = group_for(req.path)
        fault = emu.faults.take(group) if group is not None else None
        ctx = Ctx(now=emu._state.now())
        if fault is not None:
            if fault.kind == "stall":
                if emu._stopping.wait(fault.seconds):
                    self.close_connection = True
                    return
                ctx.now = emu._state.now()
            elif fault.kind == "skew":
                ctx.now += fault.seconds
            elif fault.kind == "expired":
                ctx.expired = True
            elif fault.replaces_reply:
                self._serve_fault(fault, group or "")
                return
        try:
            reply = emu._app.dispatch(req, ctx)
        except Exception as exc:  # pragma: no cover - defensive
            # Log the type and frames only: messages could carry secrets.
            sys.stderr.write(
                f"gcauth-emulator: internal error {type(exc).__name__}\n"
                + "".join(traceback.format_tb(exc.__traceback__))
            )
            reply = api_error(500, "Internal error in the gcauth emulator.")
        if self.command == "HEAD":
            reply = dataclasses.replace(reply, body=b"", headers=[
                *reply.headers, ("Content-Length", str(len(reply.body)))])
        self._write(reply)

    def _serve_fault(self, fault: Fault, group: str) -> None:
        if fault.kind == "reset":
            self.close_connection = True
            conn = self.connection
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            self.rfile.close()  # drops the last reference: the kernel sends RST
            return
        if fault.kind == "truncate":
            self.close_connection = True
            partial = b'{"access_token": "ya29.emu-trunc'
            self._write(Reply(200, partial, headers=[("Content-Length", str(len(partial) + 512))]))
            return
        if fault.kind == "non_json":
            html = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
                    b"<body><h1>Bad Gateway</h1><p>The proxy got an invalid reply.</p>"
                    b"</body></html>\n")
            self._write(Reply(200, html, "text/html; charset=utf-8"))
            return
        if fault.kind == "invalid_grant":
            self._write(oauth_error(400, "invalid_grant", "Token has been expired or revoked."))
            return
        # kind == "status"
        headers: list[tuple[str, str]] = []
        if fault.retry_after is not None:
            ra = fault.retry_after
            headers.append(("Retry-After", str(int(ra)) if float(ra).is_integer() else str(ra)))
        phrase = _phrase(fault.status)
        if group == "metadata":
            reply = text_reply(fault.status, phrase + "\n")
            headers += [("Metadata-Flavor", "Google"), ("Server", "Metadata Server for VM")]
        elif group in _OAUTH_GROUPS:
            error = "temporarily_unavailable" if fault.status in (429, 503) else "server_error"
            reply = json_reply(fault.status, {"error": error, "error_description": phrase})
        else:
            reply = api_error(fault.status, phrase)
        reply.headers += headers
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        """Status line, headers and body in a single write."""
        lines = [
            f"HTTP/1.1 {reply.status} {_phrase(reply.status)}",
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
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
        self.log_request(reply.status)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def _check_loopback(host: str) -> int:
    """Return the address family for ``host``; refuse anything but loopback."""
    if host == "localhost":
        return socket.AF_INET
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError as exc:
        raise ValueError(f"emulator host must be a loopback IP address, got {host!r}") from exc
    if not addr.is_loopback:
        raise ValueError(f"emulator refuses to bind non-loopback address {host!r}")
    return socket.AF_INET6 if addr.version == 6 else socket.AF_INET


class Emulator:
    """A local, offline stand-in for Google's OAuth 2.0 server, the GCE metadata
    server and a sample API (Cloud SQL Admin ``instances.list``), on one loopback port.

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = False,
        control: bool = False,
        metadata_project_id: str = "emu-project",
        metadata_numeric_project_id: str = "123456789012",
        metadata_service_account_email: str | None = None,
        metadata_scopes: tuple[str, ...] = (CLOUD_PLATFORM, USERINFO_EMAIL),
        device_interval: float = 5,
        device_expires_in: float = 1800,
        token_lifetime: float = 3599,
        accounts: tuple[str, ...] = ("alice@example.com", "bob@example.com"),
    ) -> None:
        self._family = _check_loopback(host)
        self.host = "127.0.0.1" if host == "localhost" else host.strip("[]")
        self._requested_port = port
        self.verbose = verbose
        self.faults = FaultInjector()
        self._state = State()
        self._state.token_lifetime = float(token_lifetime)
        email = metadata_service_account_email or (
            f"{metadata_numeric_project_id}-compute@developer.gserviceaccount.com"
        )
        self._config = Config(
            metadata_project_id=metadata_project_id,
            metadata_numeric_project_id=metadata_numeric_project_id,
            metadata_service_account_email=email,
            metadata_scopes=tuple(metadata_scopes),
            device_interval=device_interval,
            device_expires_in=device_expires_in,
            accounts=tuple(accounts),
            control=control,
        )
        self._app = App(self._state, self.faults, self._config)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.port = 0

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<Emulator {where}>"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Emulator:
        """Bind and serve in a daemon thread.  Returns self."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._stopping.clear()
        server = _Server((self.host, self._requested_port), self, self._family)
        self._server = server
        self.port = int(server.server_address[1])
        self._config.url = self.url
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1},
            name="gcauth-emulator", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses
    @property
    def metadata_host(self) -> str:
        """``host:port`` for ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP``."""
        host = f"[{self.host}]" if self._family == socket.AF_INET6 else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.metadata_host}"

    @property
    def token_uri(self) -> str:
        """OAuth token endpoint."""
        return self.url + "/token"

    @property
    def auth_uri(self) -> str:
        """Browser authorization (consent) endpoint."""
        return self.url + "/o/oauth2/auth"

    @property
    def revoke_uri(self) -> str:
        """Token revocation endpoint."""
        return self.url + "/revoke"

    @property
    def device_authorization_uri(self) -> str:
        """RFC 8628 device authorization endpoint."""
        return self.url + "/device/code"

    @property
    def device_verification_url(self) -> str:
        """The page where a user enters a device ``user_code``."""
        return self.url + "/device"

    @property
    def tokeninfo_uri(self) -> str:
        """Token introspection endpoint."""
        return self.url + "/tokeninfo"

    @property
    def certs_uri(self) -> str:
        """JWKS of the key that signs the emulator's ID tokens."""
        return self.url + "/oauth2/v3/certs"

    @property
    def api_url(self) -> str:
        """Base URL of the sample API (``{api_url}/sql/v1beta4/projects/P/instances``)."""
        return self.url

    def env(self) -> dict[str, str]:
        """Environment variables that point a process's metadata lookups here."""
        return {"GCE_METADATA_HOST": self.metadata_host, "GCE_METADATA_IP": self.metadata_host}

    # ------------------------------------------------------------------ settings
    @property
    def metadata_project_id(self) -> str:
        """Project id reported by the metadata server."""
        return self._config.metadata_project_id

    @metadata_project_id.setter
    def metadata_project_id(self, value: str) -> None:
        self._config.metadata_project_id = value

    @property
    def metadata_numeric_project_id(self) -> str:
        """Numeric project id reported by the metadata server."""
        return self._config.metadata_numeric_project_id

    @metadata_numeric_project_id.setter
    def metadata_numeric_project_id(self, value: str) -> None:
        self._config.metadata_numeric_project_id = value

    @property
    def metadata_service_account_email(self) -> str:
        """Email of the instance's default service account."""
        return self._config.metadata_service_account_email

    @metadata_service_account_email.setter
    def metadata_service_account_email(self, value: str) -> None:
        self._config.metadata_service_account_email = value

    @property
    def metadata_scopes(self) -> tuple[str, ...]:
        """Scopes of the default compute account (and of its tokens)."""
        return self._config.metadata_scopes

    @metadata_scopes.setter
    def metadata_scopes(self, value: tuple[str, ...]) -> None:
        self._config.metadata_scopes = tuple(value)

    @property
    def device_interval(self) -> float:
        """Polling ``interval`` announced for new device codes (seconds)."""
        return self._config.device_interval

    @device_interval.setter
    def device_interval(self, value: float) -> None:
        self._config.device_interval = value

    @property
    def device_expires_in(self) -> float:
        """Lifetime of new device codes (seconds)."""
        return self._config.device_expires_in

    @device_expires_in.setter
    def device_expires_in(self, value: float) -> None:
        self._config.device_expires_in = value

    def set_token_lifetime(self, seconds: float) -> None:
        """Lifetime of access tokens (``expires_in``) and ID tokens issued from now on."""
        if seconds < 0:
            raise ValueError("lifetime must be >= 0")
        with self._state.lock:
            self._state.token_lifetime = float(seconds)

    def set_clock_skew(self, seconds: float) -> None:
        """Shift the server clock (JWT iat/exp checks, issued expiries) by ``seconds``."""
        with self._state.lock:
            self._state.clock_skew = float(seconds)

    # ------------------------------------------------------------------ factories
    def create_service_account(
        self,
        project_id: str = "emu-project",
        domain_wide_delegation: bool = False,
        name: str | None = None,
    ) -> dict[str, str]:
        """Create a service account (or a new key for an existing ``name``) and return a
        dict shaped exactly like a Google service-account JSON key file."""
        sa, key = self._state.new_service_account(project_id, name, domain_wide_delegation)
        return {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": key.kid,
            "private_key": key.private_pem(),
            "client_email": sa.email,
            "client_id": sa.unique_id,
            "auth_uri": self.auth_uri,
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": self.url + "/oauth2/v1/certs",
            "client_x509_cert_url": self.url + "/robot/v1/metadata/x509/" + quote(sa.email),
            "universe_domain": "googleapis.com",
        }

    def create_oauth_client(
        self,
        kind: str = "installed",
        *,
        redirect_uris: list[str] | None = None,
        project_id: str = "emu-project",
    ) -> dict[str, dict[str, Any]]:
        """Register an OAuth client and return its ``client_secrets.json`` content.

        ``kind`` is ``"installed"`` (desktop app; loopback redirects) or ``"web"``
        (``redirect_uris`` are the registered redirect URIs).
        """
        if kind not in ("installed", "web"):
            raise ValueError("kind must be 'installed' or 'web'")
        if redirect_uris is None:
            redirect_uris = ["http://localhost"] if kind == "installed" else [
                "http://localhost:8080/oauth2callback"]
        client = self._state.new_client(kind, project_id, tuple(redirect_uris))
        return {kind: {
            "client_id": client.client_id,
            "project_id": project_id,
            "auth_uri": self.auth_uri,
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": self.url + "/oauth2/v1/certs",
            "client_secret": client.client_secret,
            "redirect_uris": list(redirect_uris),
        }}

    def create_refresh_token(
        self, client_id: str, account: str = "alice@example.com",
        scopes: tuple[str, ...] = (CLOUD_PLATFORM, "openid", USERINFO_EMAIL),
    ) -> str:
        """Record a user grant for an existing client and return its refresh token."""
        if client_id not in self._state.clients:
            raise KeyError("unknown client_id")
        return self._state.new_refresh_token(client_id, account,
                                             tuple(normalize_scopes(list(scopes))))

    def create_authorized_user(
        self,
        account: str = "alice@example.com",
        scopes: tuple[str, ...] = (CLOUD_PLATFORM, "openid", USERINFO_EMAIL),
        quota_project_id: str | None = None,
    ) -> dict[str, str]:
        """Create an OAuth client plus a refresh token for ``account`` and return the
        content of an ADC ``authorized_user`` file.

        The dict also carries ``token_uri`` (the emulator's), which Google's file omits
        but which google-auth-compatible loaders honour: without it a client would
        send the refresh token to Google instead of the emulator.
        """
        secrets_ = self.create_oauth_client("installed")["installed"]
        refresh = self.create_refresh_token(secrets_["client_id"], account, scopes)
        info = {
            "type": "authorized_user",
            "client_id": secrets_["client_id"],
            "client_secret": secrets_["client_secret"],
            "refresh_token": refresh,
            "token_uri": self.token_uri,
        }
        if quota_project_id is not None:
            info["quota_project_id"] = quota_project_id
        return info

    # ------------------------------------------------------------------ inspection
    @property
    def counts(self) -> Counter[str]:
        """Per-endpoint request counters (a snapshot; missing keys read as 0)."""
        with self._state.lock:
            return Counter(self._state.counts)

    def reset_counts(self) -> None:
        """Zero all counters and forget :attr:`quota_projects_seen`."""
        with self._state.lock:
            self._state.counts.clear()
            self._state.quota_projects_seen.clear()

    @property
    def quota_projects_seen(self) -> list[str | None]:
        """``X-Goog-User-Project`` of every sample-API request, None when absent."""
        with self._state.lock:
            return list(self._state.quota_projects_seen)

    def issued_access_tokens(self) -> list[AccessToken]:
        """Copies of every access token issued so far (oldest first)."""
        with self._state.lock:
            return [dataclasses.replace(t) for t in self._state.access_tokens.values()]

    def issued_refresh_tokens(self) -> list[RefreshToken]:
        """Copies of every refresh token (user grant) so far (oldest first)."""
        with self._state.lock:
            return [dataclasses.replace(t) for t in self._state.refresh_tokens.values()]

    def access_token_info(self, token: str) -> AccessToken | None:
        """A copy of the record of access token ``token``, or None if unknown."""
        with self._state.lock:
            rec = self._state.access_tokens.get(token)
            return None if rec is None else dataclasses.replace(rec)

    def is_access_token_valid(self, token: str) -> bool:
        """Whether ``token`` is a known, unexpired, unrevoked access token."""
        return self._state.live_access_token(token) is not None

    def expire_access_token(self, token: str) -> None:
        """Make access token ``token`` expired now.  KeyError if unknown."""
        with self._state.lock:
            self._state.access_tokens[token].expiry = self._state.now() - 1

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token like ``POST /revoke`` does."""
        return self._state.revoke(token)

    def approve_device(self, user_code: str, account: str = "alice@example.com") -> None:
        """Approve a pending device authorization, as the user would in the browser."""
        self._decide_device(user_code, account)

    def deny_device(self, user_code: str) -> None:
        """Deny a pending device authorization."""
        self._decide_device(user_code, None)

    def _decide_device(self, user_code: str, account: str | None) -> None:
        with self._state.lock:
            grant = self._app.find_device(user_code)
            if grant is None:
                raise KeyError("unknown user code")
            if grant.status != "pending" or self._state.now() >= grant.expiry:
                raise ValueError(f"device authorization is not pending (status {grant.status})")
            grant.status = "denied" if account is None else "approved"
            grant.account = account
