"""Routing: the route type, error dialects, the per-request :class:`Call` and :class:`App`.

One table (:mod:`._table`) lists every endpoint as a :class:`Route`: path pattern, methods,
handler, the ``counts`` keys it bumps, its fault group and its :class:`Api` (how the API
speaks errors).  :meth:`App.handle` does, for every request and in this order:

1. match the path (first pattern that matches) and the method (first route of that
   pattern that allows it; none → 405 in the API's error shape);
2. bump the route's counters (faulted requests count too);
3. refuse a non-loopback ``Host`` on ``local`` routes (DNS rebinding);
4. take a fault for the route's group and apply it;
5. under the state lock: the API's ``guard``, then the handler;
6. turn an :class:`~._errors.HttpError` (or an unexpected exception, as 500) into its reply
   and add the API's headers.

A handler is ``def handler(call: Call) -> Reply``; it raises an ``HttpError`` to fail.
"""

from __future__ import annotations

import ipaddress
import re
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import unquote

from . import _pages
from ._errors import HttpError
from ._wire import Reply, Request, api_error, html_reply, json_reply, oauth_error, text_reply

if TYPE_CHECKING:
    from ._config import Config
    from ._faults import Fault, FaultInjector
    from ._state import State

__all__ = [
    "GOOGLE",
    "OAUTH",
    "PAGES",
    "Api",
    "App",
    "Call",
    "Drop",
    "Errors",
    "Handler",
    "Route",
    "Router",
    "is_local_host",
]


def phrase(status: int) -> str:
    """The reason phrase of ``status`` ("Status" for unknown codes)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


# ---------------------------------------------------------------------------- error dialects
class Errors:
    """How an API shapes the errors the router itself produces (404, 405, 403 for a bad
    ``Host``, 500, and ``status`` faults).  Handlers raise :mod:`._errors` exceptions."""

    def error(self, status: int, message: str) -> Reply:
        raise NotImplementedError

    def method_not_allowed(self, method: str, allowed: Sequence[str]) -> Reply:
        return self.error(405, f"Method {method} is not allowed.")

    def fault(self, status: int) -> Reply:
        """The reply of a ``status`` fault."""
        return self.error(status, phrase(status))


class GoogleErrors(Errors):
    """``{"error": {"code", "message", "status"}}`` (Google APIs, IAM, STS, the control API)."""

    def error(self, status: int, message: str) -> Reply:
        return api_error(status, message)

    def method_not_allowed(self, method: str, allowed: Sequence[str]) -> Reply:
        return api_error(405, f"Method {method} is not allowed.", [("Allow", ", ".join(allowed))])


class OAuthErrors(Errors):
    """RFC 6749 ``{"error", "error_description"}`` (the OAuth 2.0 server)."""

    def error(self, status: int, message: str) -> Reply:
        return oauth_error(status, "server_error" if status >= 500 else "invalid_request",
                           message)

    def method_not_allowed(self, method: str, allowed: Sequence[str]) -> Reply:
        return oauth_error(405, "invalid_request", f"Invalid request method: {method}",
                           [("Allow", ", ".join(allowed))])

    def fault(self, status: int) -> Reply:
        error = "temporarily_unavailable" if status in (429, 503) else "server_error"
        return json_reply(status, {"error": error, "error_description": phrase(status)})


class TextErrors(Errors):
    """Plain text (the metadata server)."""

    def error(self, status: int, message: str) -> Reply:
        return text_reply(status, message + "\n")

    def method_not_allowed(self, method: str, allowed: Sequence[str]) -> Reply:
        return text_reply(405, "Method Not Allowed\n")


class HtmlErrors(Errors):
    """Google's authorization error page (browser-facing endpoints)."""

    def error(self, status: int, message: str) -> Reply:
        return html_reply(status, _pages.error_page("invalid_request", message))

    def method_not_allowed(self, method: str, allowed: Sequence[str]) -> Reply:
        return self.error(405, f"Use {' or '.join(allowed)}.")


@dataclass(frozen=True)
class Api:
    """One emulated API: its error dialect, headers added to every reply of its routes
    (not to fault replies), and an optional ``guard`` run before the method check and the
    handler (under the state lock; it raises an ``HttpError`` to refuse)."""

    name: str
    errors: Errors
    headers: tuple[tuple[str, str], ...] = ()
    guard: Callable[[Call], None] | None = field(default=None, compare=False)


GOOGLE = Api("google", GoogleErrors())
OAUTH = Api("oauth", OAuthErrors())
PAGES = Api("pages", HtmlErrors())


# ---------------------------------------------------------------------------- routes
Handler = Callable[["Call"], Reply]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    """``{name}`` matches one non-empty segment, ``{name...}`` the rest of the path (possibly
    empty, slashes included); a trailing ``/?`` accepts any number of trailing slashes."""
    if not pattern.startswith("/"):
        raise ValueError(f"route path must start with '/': {pattern!r}")
    base, suffix = (pattern[:-2], "/*") if pattern.endswith("/?") else (pattern, "")
    regex, pos = "", 0
    for m in _PARAM.finditer(base):
        regex += re.escape(base[pos:m.start()])
        regex += f"(?P<{m.group(1)}>.*)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)"
        pos = m.end()
    return re.compile(regex + re.escape(base[pos:]) + suffix)


class Route:
    """One table entry.

    ``path``: the pattern (see :func:`_compile`), matched against the raw (still
    percent-encoded) path; captured segments reach the handler decoded, in ``call.args``.
    ``methods``: allowed methods, or None for any (the handler decides).  ``counts``: the
    ``Emulator.counts`` keys bumped by every request to the route.  ``group``: the fault
    group (None: never faulted).  ``local``: only a loopback ``Host`` with the emulator's
    port is served (browser pages, the control API).  ``control``: the route exists only
    when the emulator runs with ``control=True``.
    """

    __slots__ = ("api", "control", "counts", "group", "handler", "local", "methods", "path")

    def __init__(self, path: str, handler: Handler, *, api: Api = GOOGLE,
                 methods: str | Sequence[str] | None = None,
                 counts: str | Sequence[str] = (), group: str | None = None,
                 local: bool = False, control: bool = False) -> None:
        self.path, self.handler, self.api, self.group = path, handler, api, group
        self.methods: tuple[str, ...] | None = (
            None if methods is None else (methods,) if isinstance(methods, str)
            else tuple(methods))
        self.counts: tuple[str, ...] = (counts,) if isinstance(counts, str) else tuple(counts)
        self.local, self.control = local, control

    def __repr__(self) -> str:
        return f"<Route {self.path} {'|'.join(self.methods or ('*',))}>"


@dataclass(frozen=True)
class Match:
    """A matched route; ``allowed`` is set (the pattern's methods) when the method is not."""

    route: Route
    args: Mapping[str, str]
    allowed: tuple[str, ...] | None = None


class _Endpoint:
    def __init__(self, route: Route) -> None:
        self.path = route.path
        self.regex = _compile(route.path)
        self.routes = [route]

    def add(self, route: Route) -> None:
        first = self.routes[0]
        if (route.api is not first.api or route.local != first.local
                or route.control != first.control):
            raise ValueError(f"routes for {route.path!r} disagree on api/local/control")
        self.routes.append(route)


class Router:
    """The route table compiled: patterns in table order, routes per pattern by method."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        endpoints: dict[str, _Endpoint] = {}
        for route in self.routes:
            if route.path in endpoints:
                endpoints[route.path].add(route)
            else:
                endpoints[route.path] = _Endpoint(route)
        self._endpoints = list(endpoints.values())

    @property
    def fault_groups(self) -> frozenset[str]:
        """Every fault group some route belongs to."""
        return frozenset(r.group for r in self.routes if r.group is not None)

    @property
    def counter_names(self) -> frozenset[str]:
        """Every ``counts`` key some route bumps (handlers add ``*_issued`` keys)."""
        return frozenset(key for r in self.routes for key in r.counts)

    def match(self, method: str, path: str, *, control: bool) -> Match | None:
        for endpoint in self._endpoints:
            m = endpoint.regex.fullmatch(path)
            if m is None or (endpoint.routes[0].control and not control):
                continue
            args = {k: unquote(v) for k, v in m.groupdict().items()}
            for route in endpoint.routes:
                if route.methods is None or method in route.methods:
                    return Match(route, args)
            allowed = tuple(dict.fromkeys(x for r in endpoint.routes for x in r.methods or ()))
            return Match(endpoint.routes[0], args, allowed)
        return None


# ---------------------------------------------------------------------------- one request
class Call:
    """What a handler gets: the request, the captured path ``args``, the request's clock
    reading ``now`` (skew faults included), whether an ``expired`` fault applies, and the
    emulator's ``state``, ``config`` and ``faults``."""

    __slots__ = ("args", "config", "expired", "faults", "now", "req", "route", "state")

    def __init__(self, req: Request, args: Mapping[str, str], route: Route, now: float,
                 state: State, config: Config, faults: FaultInjector, *,
                 expired: bool = False) -> None:
        self.req, self.args, self.route, self.now = req, args, route, now
        self.state, self.config, self.faults, self.expired = state, config, faults, expired

    def __repr__(self) -> str:
        return f"<Call {self.req.method} {self.route.path}>"


@dataclass(frozen=True)
class Drop:
    """No reply: close the connection (``reset``: with a TCP RST)."""

    reset: bool = False


_NOT_FOUND = "The requested URL was not found on this server."
_BAD_HOST = ("This endpoint only answers requests whose Host header names a loopback "
             "address and the emulator's port (DNS rebinding protection).")


_HOST = re.compile(r"(?:\[(?P<v6>[^\]]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>[0-9]{1,5}))?")


def is_local_host(host: str | None, port: int) -> bool:
    """Whether a ``Host`` header names ``localhost`` or a loopback IP literal (``127.0.0.1``,
    ``[::1]``) with ``port`` (no port: 80).  Any other name could be a DNS-rebinding
    domain pointed at 127.0.0.1 by a web page."""
    m = _HOST.fullmatch((host or "").strip())
    if m is None or (int(m.group("port")) if m.group("port") else 80) != port:
        return False
    name = m.group("v6") if m.group("v6") is not None else m.group("name").lower()
    if m.group("name") is not None and name == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False
    return addr.is_loopback and (addr.version == 6) == (m.group("v6") is not None)


class App:
    """Applies the route table to requests (see the module docstring for the order)."""

    def __init__(self, router: Router, state: State, config: Config, faults: FaultInjector,
                 stopping: threading.Event) -> None:
        self.router, self.state, self.config = router, state, config
        self.faults, self.stopping = faults, stopping

    def handle(self, req: Request) -> Reply | Drop:
        match = self.router.match(req.method, req.path, control=self.config.control)
        if match is None:
            return api_error(404, _NOT_FOUND)
        route = match.route
        api = route.api
        if route.counts:
            with self.state.lock:
                for key in route.counts:
                    self.state.counts[key] += 1
        if route.local and not is_local_host(req.header("host"), self.config.port):
            return api.errors.error(403, _BAD_HOST)
        fault = self.faults.take(route.group) if route.group is not None else None
        call = Call(req, match.args, route, self.state.now(), self.state, self.config,
                    self.faults)
        if fault is not None:
            early = self._apply(fault, call)
            if early is not None:
                return early
        try:
            with self.state.lock:
                if api.guard is not None:
                    api.guard(call)
                if match.allowed is not None:
                    reply = api.errors.method_not_allowed(req.method, match.allowed)
                else:
                    reply = route.handler(call)
        except HttpError as exc:
            reply = exc.reply()
        except Exception as exc:
            # Log the type and frames only: messages could carry secrets.
            sys.stderr.write(
                f"gcauth-emulator: internal error {type(exc).__name__}\n"
                + "".join(traceback.format_tb(exc.__traceback__))
            )
            reply = api.errors.error(500, "Internal error in the gcauth emulator.")
        if api.headers:
            reply.headers += api.headers
        return reply

    def _apply(self, fault: Fault, call: Call) -> Reply | Drop | None:
        """Apply ``fault`` to ``call``; return the reply that replaces the normal one."""
        if fault.kind == "stall":
            if self.stopping.wait(fault.seconds):
                return Drop()
            call.now = self.state.now()
        elif fault.kind == "skew":
            call.now += fault.seconds
        elif fault.kind == "expired":
            call.expired = True
        elif fault.kind == "reset":
            return Drop(reset=True)
        elif fault.kind == "truncate":
            partial = b'{"access_token": "ya29.emu-trunc'
            return Reply(200, partial, headers=[("Content-Length", str(len(partial) + 512))],
                         close=True)
        elif fault.kind == "non_json":
            html = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
                    b"<body><h1>Bad Gateway</h1><p>The proxy got an invalid reply.</p>"
                    b"</body></html>\n")
            return Reply(200, html, "text/html; charset=utf-8")
        elif fault.kind == "invalid_grant":
            return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        elif fault.kind == "status":
            api = call.route.api
            reply = api.errors.fault(fault.status)
            if fault.retry_after is not None:
                ra = fault.retry_after
                reply.headers.append(
                    ("Retry-After", str(int(ra)) if float(ra).is_integer() else str(ra)))
            reply.headers += api.headers
            return reply
        return None
