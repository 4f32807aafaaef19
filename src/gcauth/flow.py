"""User login: the installed-app flow (RFC 6749 §4.1 + RFC 7636 PKCE + RFC 8252 loopback
redirect) and the device flow (RFC 8628).

Both read an OAuth client's ``client_secrets.json`` (its ``installed`` or ``web`` section) and
produce :class:`gcauth.authorized_user.Credentials` holding the user's refresh token, the
granted scopes and, when the server sends one, the ID token::

    from gcauth.flow import InstalledAppFlow

    flow = InstalledAppFlow.from_client_secrets_file(
        "client_secrets.json", scopes=["https://www.googleapis.com/auth/cloud-platform"])
    credentials = flow.run_local_server()   # or flow.run_console() over SSH

    from gcauth.flow import DeviceFlow
    credentials = DeviceFlow.from_client_secrets_file("client_secrets.json", scopes=[...]).run()

Security properties:

* every authorization request uses PKCE with ``S256`` (RFC 7636 §4.2) and a fresh ``state``
  from the CSPRNG (RFC 6749 §10.12); a redirect whose ``state`` does not match is refused;
* an authorization (its ``state`` and PKCE verifier) yields at most one set of credentials:
  :meth:`InstalledAppFlow.fetch_token` consumes it whatever the answer, and
  :meth:`InstalledAppFlow.run_local_server` keeps it only while the codes it receives are
  refused as ``invalid_grant`` (each such code is sent once), until one is accepted;
* the loopback server binds to a loopback address only (RFC 8252 §8.3) and stops when the
  flow ends;
* the client's ``auth_uri``/``token_uri`` (and derived device/revoke endpoints) must be
  Google's or loopback (:func:`gcauth._endpoints.check_endpoint`), checked before any
  connection;
* codes, verifiers, tokens and the client secret never appear in ``repr``, logs or errors.

**A redirect with a wrong or missing state** (a forged or stale link, or an injected login)
gets a failure page in the browser and a warning on the ``gcauth.flow`` logger, and is
otherwise ignored: :meth:`InstalledAppFlow.run_local_server` keeps waiting for the genuine
redirect until ``timeout_seconds``, so a local process cannot cancel a sign-in by sending a
bogus request, and never turns a forged code into credentials. The ``state`` itself is no
secret from local processes (it is on the browser's command line), so **a redirect with the
right state whose code the token endpoint refuses** (``invalid_grant``: a made-up or replayed
code) is treated the same way: refused, and the wait goes on. Only an ``error=`` redirect
with the right state (the user denied access) ends the wait early.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from . import _files
from ._endpoints import check_endpoint
from ._http import Flow, checked_timeout, run_sync
from ._info import LIMITED_INPUT
from ._loopback import Page, RedirectServer
from ._protocol import rfc6749, rfc8628
from ._protocol.jwt import JWTError
from ._protocol.jwt import decode as _jwt_decode
from ._protocol.rfc6749 import GOOGLE_TOKEN_URI, TokenResponse, token_exchange
from ._protocol.rfc7636 import Pkce, new_pkce
from ._protocol.rfc8628 import DeviceAuthorization
from .authorized_user import Credentials
from .exceptions import FlowError, GCAuthError, MalformedCredentialsError, RefreshError
from .tokens import Clock, utcnow

__all__ = [
    "ClientConfig",
    "DeviceAuthorization",
    "DeviceFlow",
    "InstalledAppFlow",
    "device_instructions",
]

_log = logging.getLogger("gcauth.flow")
F = TypeVar("F", bound="_UserFlow")

GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
#: Paths of the device-authorization and revocation endpoints beside the token endpoint.
DEVICE_PATH = "/device/code"
REVOKE_PATH = "/revoke"
DEFAULT_TIMEOUT_SECONDS = 300.0
DEFAULT_SUCCESS_MESSAGE = ("You are signed in. You can close this tab and return to the "
                           "terminal.")
DEFAULT_PROMPT = "Please visit this URL to authorize this application:\n{url}"
DEFAULT_CODE_PROMPT = "Paste the full address of the page you were sent to (or just the code): "
_FIX_CLIENT = ("download the JSON of an OAuth client of type 'Desktop app' (section "
               "'installed') or 'Web application' (section 'web')")


# -- the client ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClientConfig:
    """An OAuth client, as a ``client_secrets.json`` describes it. Endpoints are checked."""

    kind: str
    client_id: str
    client_secret: str | None = field(repr=False)
    auth_uri: str
    token_uri: str
    redirect_uris: tuple[str, ...] = ()
    device_authorization_uri: str | None = None
    revoke_uri: str | None = None
    source: str = "<client config>"

    @classmethod
    def from_info(
        cls,
        info: Mapping[str, Any],
        *,
        source: str = "<client config>",
        allowed_hosts: Collection[str] = (),
    ) -> ClientConfig:
        """Parse ``{"installed": {...}}`` or ``{"web": {...}}`` (``installed`` wins if both)."""
        if not isinstance(info, Mapping):
            raise MalformedCredentialsError(
                f"{source}: client secrets must be a JSON object; {_FIX_CLIENT}.", source=source)
        kind = "installed" if "installed" in info else "web" if "web" in info else None
        if kind is None:
            found = info.get("type")
            what = (f"a {found!r} credential, not an OAuth client file" if isinstance(found, str)
                    else "not an OAuth client file (no 'installed' or 'web' section)")
            raise MalformedCredentialsError(f"{source} is {what}; {_FIX_CLIENT}.",
                                            source=source, field="installed")
        section = info[kind]
        if not isinstance(section, Mapping):
            raise MalformedCredentialsError(
                f"{source}: section {kind!r} must be a JSON object; {_FIX_CLIENT}.",
                source=source, field=kind)

        def text(name: str, *, required: bool) -> str | None:
            value = section.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not value:
                raise MalformedCredentialsError(
                    f"{source}: field {kind}.{name} is missing or not a string; "
                    f"{_FIX_CLIENT}.", source=source, field=f"{kind}.{name}")
            return value

        client_id = text("client_id", required=True)
        client_secret = text("client_secret", required=True)
        auth_uri = text("auth_uri", required=False) or GOOGLE_AUTH_URI
        token_uri = text("token_uri", required=False) or GOOGLE_TOKEN_URI
        assert client_id is not None
        for name, url in (("auth_uri", auth_uri), ("token_uri", token_uri)):
            check_endpoint(url, field=f"{kind}.{name}", source=source,
                           allowed_hosts=allowed_hosts)
        device_uri = (text("device_authorization_uri", required=False)
                      or cls.derived_endpoint(token_uri, DEVICE_PATH))
        revoke_uri = (text("revoke_uri", required=False)
                      or cls.derived_endpoint(token_uri, REVOKE_PATH))
        for name, url in (("device_authorization_uri", device_uri), ("revoke_uri", revoke_uri)):
            check_endpoint(url, field=f"{kind}.{name}", source=source,
                           allowed_hosts=allowed_hosts)
        raw_redirects = section.get("redirect_uris", [])
        if not isinstance(raw_redirects, list) or not all(
                isinstance(uri, str) for uri in raw_redirects):
            raise MalformedCredentialsError(
                f"{source}: field {kind}.redirect_uris must be a list of strings.",
                source=source, field=f"{kind}.redirect_uris")
        return cls(kind=kind, client_id=client_id, client_secret=client_secret,
                   auth_uri=auth_uri, token_uri=token_uri, redirect_uris=tuple(raw_redirects),
                   device_authorization_uri=device_uri, revoke_uri=revoke_uri, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *,
                  allowed_hosts: Collection[str] = ()) -> ClientConfig:
        name = os.fspath(path)
        info = _files.read_json_file(name, what="OAuth client file", fix=_FIX_CLIENT)
        return cls.from_info(info, source=name, allowed_hosts=allowed_hosts)

    @staticmethod
    def derived_endpoint(token_uri: str, path: str) -> str:
        """The endpoint at ``path`` on the token endpoint's host: Google serves ``/token``,
        ``/device/code`` (:data:`DEVICE_PATH`) and ``/revoke`` (:data:`REVOKE_PATH`) from
        ``oauth2.googleapis.com``, and the emulator does the same. Used when a client file
        (or an authorized-user file) names only its ``token_uri``; the result still has to
        pass :func:`gcauth._endpoints.check_endpoint`."""
        parts = urlsplit(token_uri)
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def account_from_id_token(id_token: str | None) -> str | None:
    """The ``email`` claim, for display and the ADC file's ``account`` field only.

    The ID token came straight from the token endpoint over the channel we chose, so OpenID
    Connect Core §3.1.3.7 (6) lets us use it without checking its signature; it grants
    nothing.
    """
    if not id_token:
        return None
    try:
        _, payload, _, _ = _jwt_decode(id_token)
    except JWTError:
        return None
    email = payload.get("email")
    return email if isinstance(email, str) and email else None


class _UserFlow:
    """What both flows share: the client, the scopes, the transport and the clock."""

    def __init__(
        self,
        client_config: ClientConfig | Mapping[str, Any],
        scopes: Sequence[str],
        *,
        request: Any = None,
        allowed_hosts: Collection[str] = (),
        clock: Clock | None = None,
    ):
        if isinstance(client_config, ClientConfig):
            self._client = client_config
        else:
            self._client = ClientConfig.from_info(client_config, allowed_hosts=allowed_hosts)
        if isinstance(scopes, str):
            scopes = scopes.replace(",", " ").split()
        self._scopes = tuple(scopes)
        if not self._scopes:
            raise ValueError("at least one OAuth scope is needed")
        self._request = request
        self._clock = clock or utcnow
        self._credentials: Credentials | None = None

    @classmethod
    def from_client_config(cls: type[F], client_config: Mapping[str, Any],
                           scopes: Sequence[str], **kwargs: Any) -> F:
        """Build from the parsed content of a ``client_secrets.json``."""
        allowed = kwargs.pop("allowed_hosts", ())
        config = ClientConfig.from_info(client_config, allowed_hosts=allowed)
        return cls(config, scopes, allowed_hosts=allowed, **kwargs)

    @classmethod
    def from_client_secrets_file(cls: type[F], client_secrets_file: str | os.PathLike[str],
                                 scopes: Sequence[str], **kwargs: Any) -> F:
        """Build from a ``client_secrets.json`` file (``installed`` or ``web`` section)."""
        allowed = kwargs.pop("allowed_hosts", ())
        config = ClientConfig.from_file(client_secrets_file, allowed_hosts=allowed)
        return cls(config, scopes, allowed_hosts=allowed, **kwargs)

    @property
    def client_config(self) -> ClientConfig:
        return self._client

    @property
    def client_id(self) -> str:
        return self._client.client_id

    @property
    def scopes(self) -> tuple[str, ...]:
        return self._scopes

    @property
    def credentials(self) -> Credentials:
        """The credentials the flow obtained (after ``fetch_token``/``run_*``)."""
        if self._credentials is None:
            raise FlowError("the login has not finished yet: there are no credentials. Call "
                            "fetch_token() or one of the run_*() methods first.")
        return self._credentials

    def _run(self, flow: Flow[Any]) -> Any:
        from ._sender import resolve_request

        return run_sync(flow, resolve_request(self._request).send)

    def _make_credentials(self, reply: TokenResponse, now: datetime) -> Credentials:
        granted = reply.scope
        assert reply.access_token is not None
        credentials = Credentials(
            reply.access_token,
            refresh_token=reply.refresh_token,
            id_token=reply.id_token,
            token_uri=self._client.token_uri,
            client_id=self._client.client_id,
            client_secret=self._client.client_secret,
            scopes=granted or self._scopes,
            expiry=reply.expiry(now),
            granted_scopes=granted,
            account=account_from_id_token(reply.id_token),
            clock=self._clock,
        )
        self._credentials = credentials
        return credentials

    def __repr__(self) -> str:
        return (f"<{type(self).__module__}.{type(self).__qualname__} "
                f"client_id={self._client.client_id!r} scopes={self._scopes!r}>")


@dataclass(slots=True)
class _Pending:
    """One authorization request in progress: its state, PKCE pair and redirect URI."""

    state: str = field(repr=False)
    pkce: Pkce = field(repr=False)
    redirect_uri: str


# -- installed-app flow -------------------------------------------------------------------
class InstalledAppFlow(_UserFlow):
    """The authorization-code flow for apps on the user's machine (RFC 8252).

    :meth:`run_local_server` does it all with a browser on this machine;
    :meth:`run_console` when the browser is on another one (SSH). The lower-level
    :meth:`authorization_url` + :meth:`fetch_token` let an application drive the steps.
    """

    def __init__(
        self,
        client_config: ClientConfig | Mapping[str, Any],
        scopes: Sequence[str],
        *,
        redirect_uri: str | None = None,
        request: Any = None,
        allowed_hosts: Collection[str] = (),
        clock: Clock | None = None,
    ):
        super().__init__(client_config, scopes, request=request, allowed_hosts=allowed_hosts,
                         clock=clock)
        self.redirect_uri = redirect_uri
        self._pending: _Pending | None = None

    # -- the two protocol steps -----------------------------------------------------------
    def authorization_url(self, **extra: str) -> tuple[str, str]:
        """The URL to send the user to, and its ``state`` (RFC 6749 §4.1.1, RFC 7636 §4.3).

        Always PKCE ``S256``, ``access_type=offline`` (so a refresh token is issued) and a
        fresh 256-bit ``state``. ``extra`` adds parameters such as ``prompt="consent"`` or
        ``login_hint=...``. Each call starts a new authorization and forgets the previous one.
        """
        if not self.redirect_uri:
            raise FlowError("no redirect_uri: set flow.redirect_uri first (run_local_server "
                            "and run_console set it for you).")
        clash = sorted(rfc6749.RESERVED_AUTHORIZATION_PARAMS & set(extra))
        if clash:
            raise ValueError(f"authorization_url() sets {', '.join(clash)} itself")
        pending = _Pending(state=rfc6749.new_state(), pkce=new_pkce(),
                           redirect_uri=self.redirect_uri)
        params = rfc6749.authorization_params(
            client_id=self._client.client_id, redirect_uri=pending.redirect_uri,
            scopes=self._scopes, state=pending.state)
        params.update(pending.pkce.authorization_params())
        params["access_type"] = "offline"
        params.update(extra)
        self._pending = pending
        return rfc6749.authorization_url(self._client.auth_uri, params), pending.state

    def code_from_response(self, authorization_response: str) -> str:
        """Check a redirect (a full URL, or just its query) and return its code
        (RFC 6749 §4.1.2, §4.1.2.1; the ``state`` check of §10.12).

        Raises :class:`FlowError` for an error response (``error=access_denied``...), a
        ``state`` that is missing or not this flow's, or a response without a code.
        """
        pending = self._require_pending()
        return rfc6749.authorization_code_from(rfc6749.parse_redirect(authorization_response),
                                               pending.state)

    def token_flow(self, code: str) -> Flow[Credentials]:
        """The sans-IO code-for-token exchange (RFC 6749 §4.1.3, RFC 7636 §4.5).

        Consumes the pending authorization: a code is exchanged at most once.
        """
        pending = self._require_pending()
        self._pending = None
        return self._exchange_code(pending, code)

    def _exchange_code(self, pending: _Pending, code: str) -> Flow[Credentials]:
        return self._exchange(rfc6749.authorization_code_params(
            code, redirect_uri=pending.redirect_uri, client_id=self._client.client_id,
            client_secret=self._client.client_secret, extra=pending.pkce.token_params()))

    def _exchange(self, params: dict[str, str]) -> Flow[Credentials]:
        now = self._clock()
        reply = yield from token_exchange(self._client.token_uri, params)
        return self._make_credentials(reply, now)

    def fetch_token(self, *, code: str | None = None,
                    authorization_response: str | None = None) -> Credentials:
        """Exchange the code for tokens; give ``code`` or the whole ``authorization_response``
        (whose ``state`` is checked). Returns (and keeps) the credentials."""
        if (code is None) == (authorization_response is None):
            raise ValueError("give exactly one of code= or authorization_response=")
        if authorization_response is not None:
            code = self.code_from_response(authorization_response)
        assert code is not None
        result: Credentials = self._run(self.token_flow(code))
        return result

    def _require_pending(self) -> _Pending:
        if self._pending is None:
            raise FlowError("no authorization is in progress (it was never started, or its code "
                            "was already used). Fix: call authorization_url() and sign in again.",
                            error="no_authorization")
        return self._pending

    # -- the browser on this machine ------------------------------------------------------
    def run_local_server(
        self,
        host: str = "localhost",
        bind_addr: str = "127.0.0.1",
        port: int = 0,
        *,
        open_browser: bool = True,
        timeout_seconds: float | None = DEFAULT_TIMEOUT_SECONDS,
        success_message: str = DEFAULT_SUCCESS_MESSAGE,
        authorization_prompt_message: str | None = DEFAULT_PROMPT,
        browser: Callable[[str], object] | None = None,
        out: TextIO | None = None,
        success_page: Callable[[Credentials], Page | str] | None = None,
        waiting_message: str | None = None,
        **extra: str,
    ) -> Credentials:
        """Sign in with a browser and a loopback redirect (RFC 8252 §7.3).

        Listens on ``bind_addr`` (a loopback address) at ``port`` (0: ephemeral), sends the
        browser to the authorization URL (``browser(url)`` if given, else the system browser
        when ``open_browser``) and waits up to ``timeout_seconds`` (``None``: forever) for the
        redirect. ``authorization_prompt_message`` (``{url}`` is replaced) is written to
        ``out`` (stdout); it is also shown when the system browser cannot be opened, and
        ``waiting_message`` (if any) once the browser has been sent on its way.

        The server listens before the browser is launched, and the launch runs beside the
        wait: a browser command that stays in the foreground until the browser exits (a
        ``BROWSER`` of your own, a text browser) does not hold up the sign-in.

        A web client (``web`` section) is sent back only to a registered redirect URI, so
        with ``port=0`` the server listens on the port and path of the client's first
        registered ``http://localhost:PORT/...`` (or 127.0.0.1) redirect URI, if it has one.

        The browser gets a success page once the tokens are in hand (``success_message``,
        or what ``success_page(credentials)`` returns: it runs first, so it can save the
        credentials and say where; if it raises, the browser gets a failure page and the
        error propagates), a failure page otherwise. Raises :class:`FlowError` on denial, an
        error redirect or the timeout. Redirects with a wrong ``state``, and those whose code
        the token endpoint does not accept, are refused and the wait goes on (see the module
        docstring). ``timeout_seconds`` must be a positive, finite number or ``None``
        (:class:`ValueError` otherwise).
        """
        timeout_seconds = check_timeout(timeout_seconds, "timeout_seconds")
        stream = out if out is not None else sys.stdout
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        refused: set[bytes] = set()  # digests of codes the token endpoint did not accept
        path = "/"
        if self._client.kind == "web" and port == 0:
            registered = _registered_loopback(self._client.redirect_uris)
            if registered is not None:
                host, port, path = registered
                if host == "::1":
                    bind_addr = "::1"
        with RedirectServer(bind_addr=bind_addr, port=port, host=host, path=path) as server:
            self.redirect_uri = server.redirect_uri
            url, _ = self.authorization_url(**extra)
            shown = False
            if authorization_prompt_message:
                _say(stream, authorization_prompt_message.format(url=url))
                shown = True
            if open_browser:
                opened = _launch(browser if browser is not None else _open_system_browser, url)
                if opened is False and not shown:
                    _say(stream, DEFAULT_PROMPT.format(url=url))
            if waiting_message:
                _say(stream, waiting_message)
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise _timed_out(timeout_seconds, len(refused))
                redirect = server.next_redirect(1.0 if remaining is None
                                                else min(remaining, 1.0))
                if redirect is None:
                    continue
                credentials = self._answer(redirect, success_message, refused, success_page)
                if credentials is not None:
                    server.finish()
                    return credentials

    def _answer(self, redirect: Any, success_message: str, refused: set[bytes],
                success_page: Callable[[Credentials], Page | str] | None = None,
                ) -> Credentials | None:
        """Decide what one loopback request means; respond to the browser accordingly.

        ``None`` means "not the sign-in: keep waiting". That is the answer for a redirect
        with a wrong or missing ``state`` or without a code, and for one with the right
        ``state`` whose code the token endpoint refuses as ``invalid_grant``: the ``state``
        is visible to other local processes (it is on the browser's command line), so such a
        code may come from one of them and must not end the sign-in. The authorization (its
        state and PKCE verifier) stays pending until a code is accepted; each code is sent
        to the token endpoint at most once. An ``error=`` redirect with the right state, or
        any other failure of the exchange, ends the sign-in.
        """
        try:
            code = self.code_from_response(redirect.query)
        except FlowError as exc:
            if exc.error in ("state_mismatch", "invalid_request"):
                _log.warning("ignored a redirect to the login server: %s", exc)
                redirect.respond(Page(400, "Sign-in failed",
                                      "This sign-in response was refused because it does not "
                                      "belong to the sign-in in progress (wrong or missing "
                                      "state). Start the sign-in again from the terminal."))
                return None
            redirect.respond(Page(403, "Sign-in failed",
                                  f"{exc} You can close this tab."))
            self._pending = None
            raise
        digest = hashlib.sha256(code.encode()).digest()
        if digest in refused:
            redirect.respond(_CODE_REFUSED)
            return None
        pending = self._require_pending()
        try:
            credentials: Credentials = self._run(self._exchange_code(pending, code))
        except RefreshError as exc:
            if exc.error == "invalid_grant":
                refused.add(digest)
                _log.warning("ignored a redirect to the login server: the token endpoint did "
                             "not accept its authorization code (invalid_grant); still "
                             "waiting for the sign-in")
                redirect.respond(_CODE_REFUSED)
                return None
            self._pending = None
            redirect.respond(_EXCHANGE_FAILED)
            raise FlowError(f"exchanging the authorization code failed: {exc}",
                            error=exc.error) from exc
        except GCAuthError as exc:
            self._pending = None
            redirect.respond(_EXCHANGE_FAILED)
            raise FlowError(f"exchanging the authorization code failed: {exc}",
                            error=getattr(exc, "error", None)) from exc
        self._pending = None
        if success_page is None:
            redirect.respond(Page(200, "Signed in", success_message, ok=True))
            return credentials
        try:
            page = success_page(credentials)
        except BaseException as exc:
            redirect.respond(Page(500, "Sign-in failed",
                                  f"You signed in, but the sign-in could not be finished: "
                                  f"{exc if isinstance(exc, GCAuthError) else type(exc).__name__}"
                                  " See the terminal for details."))
            raise
        redirect.respond(page if isinstance(page, Page)
                         else Page(200, "Signed in", page, ok=True))
        return credentials

    # -- a browser elsewhere --------------------------------------------------------------
    def run_console(
        self,
        *,
        authorization_prompt_message: str = DEFAULT_PROMPT,
        authorization_code_message: str = DEFAULT_CODE_PROMPT,
        redirect_uri: str | None = None,
        input: Callable[[str], str] | None = None,  # noqa: A002 - mirrors builtins.input
        out: TextIO | None = None,
        attempts: int = 3,
        **extra: str,
    ) -> Credentials:
        """Sign in with a browser on another machine (SSH, containers).

        Prints the authorization URL; the user opens it anywhere, approves, and is sent to a
        ``http://localhost:PORT/`` page that does not load. They paste that page's address
        (or only its ``code``) back.

        Each paste is checked here before anything is sent: an address must carry a
        ``code`` (or an ``error``) and this sign-in's ``state``; a bare code must look like
        one of Google's (``4/...``). A paste that fails is asked for again, ``attempts``
        pastes in all (3): the last bad one ends the sign-in with a :class:`FlowError`; so do
        an ``error=`` address of this sign-in (access denied) and the end of input. Only a
        paste that passed goes to the token endpoint, once: the server's answer ends the
        sign-in either way.
        """
        stream = out if out is not None else sys.stdout
        ask = input if input is not None else _read_line
        if redirect_uri is None and self._client.kind == "web" and self._client.redirect_uris:
            redirect_uri = self._client.redirect_uris[0]  # web clients: a registered URI only
        # Otherwise a port chosen at random: nothing on the user's machine is expected to
        # listen there, and PKCE makes a code caught by anything that does useless.
        port = 49152 + secrets.randbelow(16383)
        self.redirect_uri = redirect_uri or f"http://localhost:{port}/"
        url, _ = self.authorization_url(**extra)
        _say(stream, authorization_prompt_message.format(url=url))
        _say(stream, "After approving, your browser is sent to a page on localhost that will "
                     "not load; copy its full address from the address bar.")
        pending = self._require_pending()
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                pasted = ask(authorization_code_message).strip()
            except EOFError:
                raise FlowError("no authorization code was entered (end of input). Fix: run "
                                "the login in an interactive terminal.",
                                error="no_input") from None
            try:
                code = self._code_from_paste(pasted)
            except FlowError as exc:
                if exc.error not in ("state_mismatch", "invalid_request"):
                    self._pending = None
                    raise
                if last:
                    self._pending = None
                    raise FlowError(f"{exc} That was the last of {attempts} tries, so the "
                                    "sign-in has ended. Fix: run the login again.",
                                    error=exc.error) from None
                _say(stream, f"That did not work: {exc} Try again ({attempts - attempt} "
                             f"{'try' if attempts - attempt == 1 else 'tries'} left).")
                continue
            # a paste that passed: the one exchange of this authorization, whatever the answer
            self._pending = None
            result: Credentials = self._run(self._exchange_code(pending, code))
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _code_from_paste(self, pasted: str) -> str:
        """The code in a paste, checked without contacting anyone (see :meth:`run_console`)."""
        if not pasted:
            raise FlowError("nothing was pasted.", error="invalid_request")
        lowered = pasted.lower()
        if lowered.startswith(("localhost", "127.0.0.1", "[::1]")):
            pasted, lowered = "http://" + pasted, "http://" + lowered  # copied without scheme
        if "=" in pasted or lowered.startswith(("http://", "https://")):
            params = rfc6749.parse_redirect(pasted)
            if "code" not in params and "error" not in params:
                if "client_id" in params or "response_type" in params:
                    raise FlowError(
                        "that is the sign-in address itself: open it in a browser, approve, "
                        "then paste the address of the page the browser is sent to.",
                        error="invalid_request")
                raise FlowError("that address has no code; paste the whole address from the "
                                "browser's address bar.", error="invalid_request")
            return rfc6749.authorization_code_from(params, self._require_pending().state)
        code = unquote(pasted)  # a code copied out of the address bar is percent-encoded
        if not _GOOGLE_CODE.fullmatch(code):
            raise FlowError("that is neither an authorization code (Google's start with 4/) "
                            "nor the address of the page you were sent to; paste the whole "
                            "address from the browser's address bar.", error="invalid_request")
        return code


#: What a bare authorization code from Google looks like: ``4/`` and URL-safe characters.
_GOOGLE_CODE = re.compile(r"4/[A-Za-z0-9\-._~+/]{1,2048}")


def _registered_loopback(uris: Sequence[str]) -> tuple[str, int, str] | None:
    """``(host, port, path)`` of the first registered ``http://localhost:PORT/...`` (or
    127.0.0.1 / [::1]) redirect URI with an explicit port, or ``None``."""
    for uri in uris:
        try:
            parts = urlsplit(uri)
            port = parts.port
        except ValueError:
            continue
        if (parts.scheme == "http" and port and parts.hostname in ("localhost", "127.0.0.1", "::1")
                and not parts.query and not parts.fragment):
            return parts.hostname, port, parts.path or "/"
    return None


#: How long the sign-in waits for a browser launcher to report failure before it moves on
#: (a launcher that is still running after this is taken to have opened a browser).
LAUNCH_WAIT = 2.0


def _launch(opener: Callable[[str], object], url: str) -> object:
    """Run ``opener(url)`` beside the caller: its result if it returns within
    :data:`LAUNCH_WAIT` seconds (``False``: no browser could be opened), else ``None``. A
    launcher that blocks until the browser exits (``webbrowser`` waits for a ``BROWSER``
    command) keeps running on a daemon thread and never holds up the sign-in."""
    result: list[object] = []
    done = threading.Event()

    def launch() -> None:
        try:
            result.append(opener(url))
        except Exception:  # noqa: BLE001 - a broken launcher means "no browser"
            result.append(False)
        finally:
            done.set()

    threading.Thread(target=launch, name="gcauth-browser-launch", daemon=True).start()
    done.wait(LAUNCH_WAIT)
    return result[0] if result else None


_CODE_REFUSED = Page(
    400, "Sign-in failed",
    "This sign-in response was refused: the authorization server did not accept its code, "
    "so it does not belong to the sign-in in progress. If you are signing in, the terminal "
    "is still waiting for you; otherwise start the sign-in again from the terminal.")
_EXCHANGE_FAILED = Page(
    502, "Sign-in failed",
    "The sign-in could not be completed: the authorization code was not accepted. See the "
    "terminal for details.")


def _timed_out(timeout_seconds: float | None, refused: int) -> FlowError:
    why = ""
    if refused:
        why = (f" ({refused} sign-in response{'s' if refused != 1 else ''} with this "
               "login's state came back, but the authorization server did not accept "
               f"{'their codes' if refused != 1 else 'its code'})")
    return FlowError(f"no sign-in arrived within {timeout_seconds:g} s{why}. Fix: run the "
                     "login again and finish it in the browser sooner.", error="timeout")


def check_timeout(value: float | None, name: str = "timeout") -> float | None:
    """``value`` if it is ``None`` (wait for ever) or a finite, positive number of seconds;
    ``nan``, ``inf``, zero, negative numbers and non-numbers raise
    :class:`~gcauth.exceptions.UsageError`, a ``ValueError`` (``nan`` would otherwise make a
    wait loop spin for ever)."""
    return None if value is None else checked_timeout(value, name)


def _say(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()


def _read_line(prompt: str) -> str:
    return input(prompt)


def _open_system_browser(url: str) -> bool:
    try:
        return webbrowser.open(url, new=1, autoraise=True)
    except webbrowser.Error:
        return False


# -- device flow --------------------------------------------------------------------------
class DeviceFlow(_UserFlow):
    """The OAuth 2.0 device authorization grant (RFC 8628) for machines without a browser.

    :meth:`run` shows the verification URL and user code, then polls until the user decides
    elsewhere. :meth:`authorization_flow` and :meth:`token_flow` are the sans-IO steps (an
    async driver can run them; polling waits by yielding :class:`~gcauth._http.Sleep`).
    """

    def __init__(
        self,
        client_config: ClientConfig | Mapping[str, Any],
        scopes: Sequence[str],
        *,
        request: Any = None,
        allowed_hosts: Collection[str] = (),
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ):
        super().__init__(client_config, scopes, request=request, allowed_hosts=allowed_hosts,
                         clock=clock)
        self._monotonic = monotonic
        self._sleep = sleep

    @property
    def device_authorization_uri(self) -> str:
        uri = self._client.device_authorization_uri
        assert uri is not None
        return uri

    def authorization_flow(self) -> Flow[DeviceAuthorization]:
        """Sans-IO: ask for a device code and user code (RFC 8628 §3.1)."""
        return rfc8628.device_authorization_flow(self.device_authorization_uri,
                                                 self._client.client_id, self._scopes)

    def token_flow(self, authorization: DeviceAuthorization) -> Flow[Credentials]:
        """Sans-IO: poll until the user approves or denies, or the code expires (§3.4, §3.5)."""
        now = self._clock()
        reply = yield from rfc8628.device_token_flow(
            self._client.token_uri, authorization, self._client.client_id,
            self._client.client_secret, monotonic=self._monotonic)
        return self._make_credentials(reply, now)

    def start(self) -> DeviceAuthorization:
        """Ask for a user code; show ``verification_uri`` and ``user_code`` to the user.

        Google serves the device flow only to OAuth clients of type "TVs and Limited Input
        devices": a Desktop-app or web client gets ``invalid_client`` ("Invalid client
        type."), raised here as a :class:`FlowError` that says which client is needed."""
        try:
            result: DeviceAuthorization = self._run(self.authorization_flow())
        except RefreshError as exc:
            if exc.error not in ("invalid_client", "unauthorized_client"):
                raise
            said = f" ({exc.error}: {exc.error_description})" if exc.error_description else ""
            raise FlowError(
                f"the authorization server refused to start the device flow for the OAuth "
                f"client in {self._client.source}{said}. Google serves the device flow only "
                f"to clients of type {LIMITED_INPUT!r}; a 'Desktop app' or 'Web application' "
                f"client gets this error. Fix: create an OAuth client ID of type "
                f"{LIMITED_INPUT!r} (Cloud console: APIs & Services > Credentials) and use "
                "its JSON, or sign in with a browser instead of the device flow.",
                error=exc.error) from None
        return result

    def poll(self, authorization: DeviceAuthorization) -> Credentials:
        """Block until the user decides; returns (and keeps) the credentials."""
        from ._sender import resolve_request

        return run_sync(self.token_flow(authorization), resolve_request(self._request).send,
                        self._sleep)

    def run(
        self,
        *,
        prompt: Callable[[DeviceAuthorization], object] | None = None,
        out: TextIO | None = None,
    ) -> Credentials:
        """:meth:`start`, tell the user where to go (``prompt(authorization)``, or a message on
        ``out``), then :meth:`poll`."""
        authorization = self.start()
        if prompt is not None:
            prompt(authorization)
        else:
            _say(out if out is not None else sys.stdout, device_instructions(authorization))
        return self.poll(authorization)


def device_instructions(authorization: DeviceAuthorization) -> str:
    """What to tell the user: where to go and which code to enter (RFC 8628 §3.3)."""
    minutes = max(1, round(authorization.expires_in / 60))
    complete = authorization.verification_uri_complete
    shortcut = f"(or open {complete} , which fills the code in)\n" if complete else ""
    return (f"On any device with a browser, go to:\n{authorization.verification_uri}\n"
            f"and enter the code:\n{authorization.user_code}\n{shortcut}"
            f"(the code expires in about {minutes} minute{'s' if minutes != 1 else ''}). "
            "Waiting for approval...")
