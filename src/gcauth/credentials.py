"""The base every credential type shares.

A credential is *configuration* (who, which scopes, which endpoint: set at construction and
changed only through ``with_*`` methods, which return copies) plus a sans-IO
:meth:`Credentials.token_flow` that says how to get a token. The only mutable part is the
:class:`~gcauth.tokens.TokenCache`, which makes a credential safe to share between threads and
event loops.

For users of google-auth, the familiar members are here: ``token``, ``expiry``, ``valid``,
``expired``, ``refresh(request)``, ``apply(headers)``, ``before_request(...)``,
``quota_project_id``, ``with_scopes``, ``with_quota_project``.

Credentials survive :mod:`pickle` and :func:`copy.deepcopy` (multiprocessing, Dask, Beam and
Spark ship them to workers that way): the copy gets its own token cache and locks, and takes
the current token along when there is one. A pickle holds everything the credential holds
(a private key, a refresh token): never unpickle credentials from an untrusted source.
"""

from __future__ import annotations

import abc
import copy
import threading
import typing
from collections.abc import MutableMapping, Sequence
from datetime import datetime
from typing import Any

from . import _checks, _http, _info
from . import exceptions as _exceptions
from . import tokens as _tokens
from ._endpoints import DEFAULT_UNIVERSE_DOMAIN as _DEFAULT_UNIVERSE_DOMAIN
from ._sender import resolve_request as _resolve_request

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._http import AsyncRequest, Flow, HttpRequest, HttpResponse, Request
    from .tokens import Clock, Token

    #: what token requests may be sent with: a gcauth transport request, or a google-auth
    #: style ``request(url, method, body, headers, timeout)`` callable (wrapped by
    #: ``resolve_request``)
    AnyRequest = Request | typing.Callable[..., typing.Any]

__all__ = ["Credentials", "Scoped", "Signing"]

_C = typing.TypeVar("_C", bound="Credentials")

_QUOTA_PROJECT_HEADER = "x-goog-user-project"

#: The lock types a credential may hold; a copy (pickle, deepcopy) gets new ones.
_LOCK_TYPES: dict[type, typing.Callable[[], Any]] = {
    type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}
_LOCK_TYPES_RLOCK = type(threading.RLock())
_PICKLED = "_gcauth_pickled"


class Credentials(abc.ABC):
    """Base class: a source of access tokens plus the headers that go with them."""

    def __init__(self, *, quota_project_id: str | None = None, clock: Clock | None = None):
        self._quota_project_id = _checked_quota_project(quota_project_id)
        self._cache = _tokens.TokenCache(clock)

    # -- what subclasses provide ----------------------------------------------------------
    @abc.abstractmethod
    def token_flow(self, now: datetime) -> Flow[Token]:
        """The sans-IO flow that obtains a new token at ``now``."""

    # -- state ----------------------------------------------------------------------------
    @property
    def quota_project_id(self) -> str | None:
        """Project billed for quota; sent as ``X-Goog-User-Project`` (AIP-4113)."""
        return self._quota_project_id

    @property
    def token(self) -> str | None:
        """The current access token string, or ``None`` before the first refresh."""
        token = self._cache.token
        return None if token is None else token.access_token

    @property
    def current_token(self) -> Token | None:
        """The cached :class:`~gcauth.tokens.Token`, whatever its state."""
        return self._cache.token

    @property
    def expiry(self) -> datetime | None:
        """When the current token expires (timezone-aware UTC)."""
        token = self._cache.token
        return None if token is None else token.expiry

    @property
    def token_state(self) -> _tokens.TokenState:
        return self._cache.state()

    @property
    def valid(self) -> bool:
        """True when there is a token that is not about to expire."""
        return self._cache.state() is not _tokens.TokenState.INVALID

    @property
    def expired(self) -> bool:
        token = self._cache.token
        return token is not None and token.state(self._cache.clock()) is _tokens.TokenState.INVALID

    @property
    def requires_scopes(self) -> bool:
        return False

    @property
    def universe_domain(self) -> str:
        """The universe the credential belongs to (``googleapis.com`` for Google's public
        cloud)."""
        return self._universe_domain

    _universe_domain: str = _DEFAULT_UNIVERSE_DOMAIN
    #: The file this credential was read from, and what named it (``"GOOGLE_APPLICATION_
    #: CREDENTIALS"`` or ``"gcloud ADC file"``), so that error hints name the failing source.
    _source_file: str | None = None
    _source_via: str | None = None

    def describe(self) -> dict[str, Any]:
        """What this credential is, as JSON-ready data with no secret in it: ``type`` (the
        credential file type, e.g. ``"service_account"``), ``account``, ``scopes`` (``None``:
        whatever the credential was granted), ``token_uri``, ``quota_project_id`` and
        ``universe_domain``; subclasses add what they know. ``gcauth explain`` prints this."""
        scopes = getattr(self, "effective_scopes", None)
        chosen = scopes() if callable(scopes) else None
        return {"type": type(self).__module__.rsplit(".", 1)[-1], "account": None,
                "scopes": list(chosen) if chosen else None, "token_uri": None,
                "quota_project_id": self._quota_project_id,
                "universe_domain": self.universe_domain}

    # -- getting tokens -------------------------------------------------------------------
    def _fetch_sync(self, request: AnyRequest | None) -> Token:
        sender = _resolve_request(request)
        return _http.run_sync(self.token_flow(self._cache.clock()), sender.send)

    def get_token(self, request: AnyRequest | None = None, *, fresh: bool = False) -> Token:
        """A usable token: cached when fresh, refreshed (once, for all callers) when not.

        A *stale* token (in its refresh window, still valid) is returned at once while a
        background refresh runs; ``fresh=True`` waits for that refresh instead (used when
        resending after a 401).
        """
        token = self._cache._fresh()
        if token is not None:
            return token
        return self._cache.get(lambda: self._fetch_sync(request), fresh=fresh)

    async def aget_token(self, request: AsyncRequest, *, fresh: bool = False) -> Token:
        """Async :meth:`get_token`: the refresh is async I/O on the caller's event loop."""
        token = self._cache._fresh()
        if token is not None:
            return token

        async def fetch() -> Token:
            return await _http.run_async(self.token_flow(self._cache.clock()), request.send)

        return await self._cache.aget(fetch, fresh=fresh)

    def refresh(self, request: AnyRequest | None = None) -> None:
        """Fetch a new token now (google-auth's ``refresh``); joins a refresh in flight."""
        self._cache.refresh(lambda: self._fetch_sync(request))

    async def arefresh(self, request: AsyncRequest) -> None:
        async def fetch() -> Token:
            return await _http.run_async(self.token_flow(self._cache.clock()), request.send)

        await self._cache.arefresh(fetch)

    def token_step(self, *, fresh: bool = False) -> _http.Join:
        """A flow step that answers with this credential's token, from its own cache.

        A flow that needs another credential's token (impersonation needs the source's, IAM
        signing the caller's) yields this step: its driver gets the token with
        :meth:`get_token` (blocking drivers) or :meth:`aget_token` (async ones) through the
        driver's own sender, so every caller of this credential still shares one refresh.
        """
        def sync(send: Callable[[HttpRequest], HttpResponse]) -> Token:
            return self.get_token(_SendWith(send), fresh=fresh)

        async def async_(send: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> Token:
            return await self.aget_token(_AsyncSendWith(send), fresh=fresh)

        return _http.Join(sync, async_)

    def invalidate(self, token: Token | str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``, when given): after a 401."""
        self._cache.invalidate(token)

    # -- headers --------------------------------------------------------------------------
    def apply(self, headers: MutableMapping[str, str], token: str | None = None) -> None:
        """Set ``Authorization`` (and the quota-project header) on ``headers``."""
        value = token if token is not None else self.token
        if value is None:
            raise _exceptions.GCAuthError("these credentials have no token yet: call refresh() or "
                              "get_token() first, or use before_request()")
        headers["authorization"] = f"Bearer {value}"
        if self._quota_project_id:
            headers[_QUOTA_PROJECT_HEADER] = self._quota_project_id

    def headers_for(self, token: Token) -> dict[str, str]:
        """The request headers that carry ``token``."""
        result = {"authorization": f"{token.token_type} {token.access_token}"}
        if self._quota_project_id:
            result[_QUOTA_PROJECT_HEADER] = self._quota_project_id
        return result

    def before_request(
        self, request: AnyRequest | None, method: str, url: str,
        headers: MutableMapping[str, str],
    ) -> None:
        """google-auth's hook: make sure a token is valid, then apply it to ``headers``."""
        headers.update(self.headers_for(self.get_token(request)))

    # -- copies ---------------------------------------------------------------------------
    def __copy__(self: _C) -> _C:
        """A shallow copy that shares everything, the token cache included (``with_*``
        methods give the copy its own cache)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __deepcopy__(self: _C, memo: dict[int, Any]) -> _C:
        """A copy with its own token cache and locks, holding the current token. The
        configuration is immutable, so it is shared."""
        clone = self.__copy__()
        clone._rebuild_state(self._cache.token, self._cache.clock)
        return clone

    def __getstate__(self) -> dict[str, Any]:
        """What :mod:`pickle` stores: the configuration and the current token (if any);
        never a lock, a cache or an in-flight refresh."""
        state = dict(self.__dict__)
        cache: _tokens.TokenCache = state.pop("_cache")
        locks = []
        for name, value in list(state.items()):
            if type(value) in _LOCK_TYPES:
                locks.append((name, type(value) is _LOCK_TYPES_RLOCK))
                del state[name]
        for name in self._unpickled_attributes():
            state.pop(name, None)
        clock = cache.clock
        state[_PICKLED] = {"token": cache.token, "locks": locks,
                           "clock": None if clock is _tokens.utcnow else clock}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        saved = state.pop(_PICKLED, None) or {}
        self.__dict__.update(state)
        for name, reentrant in saved.get("locks", ()):
            self.__dict__[name] = threading.RLock() if reentrant else threading.Lock()
        self._rebuild_state(saved.get("token"), saved.get("clock") or _tokens.utcnow)

    def _unpickled_attributes(self) -> tuple[str, ...]:
        """Attributes a copy rebuilds instead of carrying (subclasses add their own)."""
        return ()

    def _rebuild_state(self, token: Token | None, clock: Clock) -> None:
        """Give a copy (deepcopy, unpickle) its own mutable state: a new token cache holding
        ``token``, new locks. Subclasses reset what else they keep."""
        self._cache = _tokens.TokenCache(clock)
        if token is not None:
            self._cache.set(token)
        for name, value in list(self.__dict__.items()):
            factory = _LOCK_TYPES.get(type(value))
            if factory is not None:
                self.__dict__[name] = factory()

    def _replace(self: _C, **attributes: Any) -> _C:
        clone = copy.copy(self)
        for name, value in attributes.items():
            setattr(clone, name, value)
        clone._rebuild_state(None, self._cache.clock)
        return clone

    def with_quota_project(self: _C, quota_project_id: str | None) -> _C:
        """A copy that bills ``quota_project_id`` (sent as ``X-Goog-User-Project``)."""
        return self._replace(_quota_project_id=_checked_quota_project(quota_project_id))

    def with_clock(self: _C, clock: Clock) -> _C:
        """A copy that reads time from ``clock`` (tests, simulations)."""
        clone = self._replace()
        clone._cache = _tokens.TokenCache(clock)
        return clone

    # -- what other libraries ask for -----------------------------------------------------
    def authorize(self, http: object) -> typing.NoReturn:
        """oauth2client's ``authorize(http)``, which googleapiclient calls on credentials
        that are not google-auth's: gcauth credentials do not wrap ``httplib2`` objects.
        Raises :class:`~gcauth.exceptions.UsageError` saying what to pass instead."""
        raise _exceptions.UsageError(
            f"{type(self).__module__}.{type(self).__qualname__} is a gcauth credential, and "
            "this library (googleapiclient?) asked it to authorize an httplib2 object, which "
            "only google-auth credentials do: pass "
            "gcauth.compat.google_auth.to_google_auth(credentials) instead "
            "(pip install 'gcauth[google]').")

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} {self._describe()}>"

    def _describe(self) -> str:
        return f"quota_project_id={self._quota_project_id!r}"


class Scoped(Credentials):
    """Credentials whose tokens are limited to OAuth 2.0 scopes."""

    _scopes: tuple[str, ...] | None = None
    _default_scopes: tuple[str, ...] | None = None

    @property
    def scopes(self) -> tuple[str, ...] | None:
        return self._scopes

    @property
    def default_scopes(self) -> tuple[str, ...] | None:
        return self._default_scopes

    def effective_scopes(self) -> tuple[str, ...] | None:
        """User scopes if any, else the library's default scopes."""
        return self._scopes or self._default_scopes

    @property
    def requires_scopes(self) -> bool:
        return not self.effective_scopes()

    def has_scopes(self, scopes: Sequence[str]) -> bool:
        mine = set(self.effective_scopes() or ())
        return set(scopes) <= mine

    def with_scopes(
        self: _C, scopes: Sequence[str] | None, default_scopes: Sequence[str] | None = None
    ) -> _C:
        """A copy limited to ``scopes`` (``default_scopes`` apply when ``scopes`` is empty)."""
        return self._replace(
            _scopes=_scope_tuple(scopes), _default_scopes=_scope_tuple(default_scopes))


class Signing(abc.ABC):
    """Credentials that can sign bytes as an identity (service accounts)."""

    @abc.abstractmethod
    def sign_bytes(self, message: bytes) -> bytes: ...

    @property
    @abc.abstractmethod
    def signer_email(self) -> str: ...


class _SendWith:
    """A ``Request`` made of a driver's send function (see :meth:`Credentials.token_step`)."""

    __slots__ = ("_send",)

    def __init__(self, send: Callable[[HttpRequest], HttpResponse]):
        self._send = send

    def send(self, request: HttpRequest) -> HttpResponse:
        return self._send(request)


class _AsyncSendWith:
    """An ``AsyncRequest`` made of an async driver's send function."""

    __slots__ = ("_send",)

    def __init__(self, send: Callable[[HttpRequest], Awaitable[HttpResponse]]):
        self._send = send

    async def send(self, request: HttpRequest) -> HttpResponse:
        return await self._send(request)


def _checked_quota_project(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not _checks.is_header_id(value):
        raise _exceptions.UsageError(
            f"quota_project_id must be a project id ({_info.ID_RULE}); got "
            f"{'a ' + type(value).__name__ if not isinstance(value, str) else 'another string'}"
            ". It is sent as the X-Goog-User-Project header.")
    assert isinstance(value, str)
    return value


def _scope_tuple(scopes: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if scopes is None:
        return None
    if isinstance(scopes, str):
        scopes = scopes.replace(",", " ").split()
    return tuple(scopes)
