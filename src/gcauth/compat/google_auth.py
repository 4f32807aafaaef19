"""gcauth credentials for Google's client libraries: a google-auth credential backed by gcauth.

::

    import gcauth
    from gcauth.compat.google_auth import to_google_auth     # pip install 'gcauth[google]'

    credentials, project = gcauth.default()
    g = to_google_auth(credentials)           # a google.auth.credentials.Credentials
    storage.Client(project=project, credentials=g)
    googleapiclient.discovery.build("sqladmin", "v1beta4", credentials=g)

google-cloud-core's clients (storage, BigQuery, Datastore...) accept only instances of
``google.auth.credentials.Credentials``, and googleapiclient hands anything else to
oauth2client's ``authorize(http)``. :func:`to_google_auth` returns such an instance that
*delegates* to the gcauth credential: every token comes from the gcauth credential's token
cache, so any number of threads, gRPC calls and clients built on it share one token, trigger
one token request, and keep gcauth's background refresh. It is:

* a ``google.auth.credentials.Scoped`` when the gcauth credential is (so a library's
  ``with_scopes_if_required`` applies its scopes to a service account that has none);
* a ``CredentialsWithQuotaProject`` (``client_options.quota_project_id`` reaches
  ``X-Goog-User-Project``; the copy shares the token cache);
* a ``Signing`` (storage's ``generate_signed_url``): a gcauth credential that can sign does,
  any other raises :class:`~gcauth.exceptions.SigningError` naming its type and what would work.

Token requests go through gcauth's own sender (bounded replies, one deadline per attempt, no
redirects), or through ``request=`` (a gcauth transport request, e.g.
``gcauth.transport.requests.Request(session)`` for a session with your proxy settings); the
google-auth ``Request`` a library passes to ``refresh``/``before_request`` is not used for
them. Errors are gcauth's, and also google-auth's where one exists (:class:`RefreshError` is
both a ``gcauth.RefreshError`` and a ``google.auth.exceptions.RefreshError``), so a library's
retry rules keep working. Only this module imports google-auth; gcauth's core never does.
"""

from __future__ import annotations

import threading
import typing
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import datetime, timezone
from typing import Any, overload

try:
    import google.auth.credentials as _ga
    import google.auth.crypt as _crypt
    import google.auth.exceptions as _ga_exc
except ImportError as _missing:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "gcauth.compat.google_auth needs google-auth: pip install 'gcauth[google]'"
    ) from _missing

from .. import credentials as _gc
from .. import exceptions as _gc_exc
from .._sender import resolve_request as _resolve_request
from ..credentials import _checked_quota_project

if typing.TYPE_CHECKING:
    from .._http import Request
    from ..tokens import Token

__all__ = ["Credentials", "RefreshError", "ScopedCredentials", "TransportError",
           "to_google_auth"]

_QUOTA_HEADER = "x-goog-user-project"
_UNSET: Any = object()  # "use the gcauth credential's own quota project"
_KEEP: Any = object()  # "the quota project of the adapter being copied"


class _Retryable(Exception):
    """``retryable`` as one field for both libraries' errors (google-auth defines it as a
    read-only property, gcauth assigns it)."""

    @property
    def retryable(self) -> bool:
        return bool(self.__dict__.get("_retryable", False))

    @retryable.setter
    def retryable(self, value: bool) -> None:
        self._retryable = value


class RefreshError(_Retryable, _gc_exc.RefreshError, _ga_exc.RefreshError):
    """A token request failed: a :class:`gcauth.RefreshError` that google-auth callers also
    catch as ``google.auth.exceptions.RefreshError`` (same fields, same message)."""

    @classmethod
    def from_gcauth(cls, error: _gc_exc.RefreshError) -> RefreshError:
        return cls(str(error), error=error.error, error_description=error.error_description,
                   error_uri=error.error_uri, status=error.status, endpoint=error.endpoint,
                   retryable=error.retryable, retry_after=error.retry_after)


class TransportError(_Retryable, _gc_exc.TransportError, _ga_exc.TransportError):
    """A token request got no reply: a :class:`gcauth.TransportError` that google-auth
    callers (and google-api-core's retry rules) also see as
    ``google.auth.exceptions.TransportError``."""

    @classmethod
    def from_gcauth(cls, error: _gc_exc.TransportError) -> TransportError:
        return cls(str(error), url=error.url, timeout=error.timeout)


@overload
def to_google_auth(credentials: _gc.Credentials, *,
                   request: Request | None = None) -> Credentials: ...


@overload
def to_google_auth(credentials: _ga.Credentials, *,
                   request: Request | None = None) -> _ga.Credentials: ...


@overload
def to_google_auth(credentials: object, *, request: Request | None = None) -> _ga.Credentials: ...


def to_google_auth(credentials: object, *, request: Request | None = None) -> _ga.Credentials:
    """A ``google.auth.credentials.Credentials`` whose tokens come from ``credentials``.

    ``credentials`` is any gcauth credential (from :func:`gcauth.default`,
    ``service_account``, ``authorized_user``, ``compute_engine``...). Harmless to repeat:
    adapters of one gcauth credential share its token; an adapter passed again is returned as
    it is (a copy using ``request`` when one is given), and so is a google-auth credential.
    ``request`` (a gcauth transport request) is what token requests are sent with; default:
    gcauth's own sender.
    """
    if isinstance(credentials, Credentials):
        return credentials if request is None else credentials._copy(request=request)
    if isinstance(credentials, _gc.Credentials):
        kind = ScopedCredentials if isinstance(credentials, _gc.Scoped) else Credentials
        return kind(credentials, request=request)
    if isinstance(credentials, _ga.Credentials):
        return credentials
    kind_name = f"{type(credentials).__module__}.{type(credentials).__qualname__}"
    raise _gc_exc.UsageError(
        f"to_google_auth() takes a gcauth credential (from gcauth.default(), "
        "gcauth.service_account, gcauth.authorized_user, gcauth.compute_engine...); got a "
        f"{kind_name}. Load the credential with gcauth first.")


class _Signer(_crypt.Signer):
    """``google.auth.crypt.Signer`` for a gcauth credential that signs."""

    def __init__(self, credentials: _gc.Signing):
        self._credentials = credentials

    @property
    def key_id(self) -> str | None:
        key_id = getattr(getattr(self._credentials, "signer", None), "key_id", None)
        return key_id if isinstance(key_id, str) else None

    def sign(self, message: bytes | str) -> bytes:
        data = message.encode("utf-8") if isinstance(message, str) else message
        return self._credentials.sign_bytes(data)


class Credentials(_ga.CredentialsWithQuotaProject, _ga.Signing):
    """A google-auth credential that delegates to a gcauth credential (build it with
    :func:`to_google_auth`, which picks :class:`ScopedCredentials` for scoped ones)."""

    def __init__(self, credentials: _gc.Credentials, *, request: Request | None = None,
                 quota_project_id: Any = _UNSET):
        if not isinstance(credentials, _gc.Credentials):
            raise _gc_exc.UsageError(
                "gcauth.compat.google_auth.Credentials wraps a gcauth credential; got a "
                f"{type(credentials).__module__}.{type(credentials).__qualname__}. Use "
                "to_google_auth(credentials), which also passes google-auth credentials "
                "through unchanged.")
        if request is not None:
            _resolve_request(request)  # a wrong kind of object fails here, saying what to pass
        self._ready = False
        self._gcauth = credentials
        self._request = request
        self._quota = quota_project_id
        self._local = threading.local()  # the token this thread last sent (see refresh)
        # google-auth's base __init__ assigns token = expiry = None: ignored (see below)
        super().__init__()  # type: ignore[no-untyped-call]
        self._ready = True

    # -- what it wraps ----------------------------------------------------------------------
    @property
    def gcauth(self) -> _gc.Credentials:
        """The gcauth credential every token comes from."""
        return self._gcauth

    def _copy(self, *, credentials: _gc.Credentials | None = None,
              request: Request | None = None, quota: Any = _KEEP) -> Credentials:
        gc = self._gcauth if credentials is None else credentials
        kind = ScopedCredentials if isinstance(gc, _gc.Scoped) else Credentials
        return kind(gc, request=self._request if request is None else request,
                    quota_project_id=self._quota if quota is _KEEP else quota)

    # -- google-auth's state ----------------------------------------------------------------
    @property
    def token(self) -> str | None:
        """The current access token (``None`` before the first request)."""
        token = self._gcauth.current_token
        return None if token is None else token.access_token

    @token.setter
    def token(self, value: object) -> None:
        self._refuse_assignment("token", value)

    @property
    def expiry(self) -> datetime | None:
        """When the current token expires: naive UTC, as google-auth has it."""
        token = self._gcauth.current_token
        if token is None or token.expiry is None:
            return None
        return token.expiry.astimezone(timezone.utc).replace(tzinfo=None)

    @expiry.setter
    def expiry(self, value: object) -> None:
        self._refuse_assignment("expiry", value)

    def _refuse_assignment(self, name: str, value: object) -> None:
        if not self.__dict__.get("_ready") and value is None:
            return  # google-auth's own __init__
        raise _gc_exc.UsageError(
            f"the {name} of an adapted gcauth credential comes from its token cache and cannot "
            "be set: call refresh(request) for a new token, or build a gcauth credential with "
            "the token you have (gcauth.authorized_user.Credentials(token=..., expiry=...)).")

    @property
    def valid(self) -> bool:
        """There is a token and it is not about to expire (gcauth's refresh windows: a token
        in its last quarter of life is still valid and is refreshed in the background)."""
        return self._gcauth.valid

    @property
    def expired(self) -> bool:
        return self._gcauth.expired

    @property
    def token_state(self) -> _ga.TokenState:
        return _ga.TokenState[self._gcauth.token_state.name]

    @property
    def quota_project_id(self) -> str | None:
        if self._quota is _UNSET:
            return self._gcauth.quota_project_id
        return self._quota  # type: ignore[no-any-return]

    @property
    def universe_domain(self) -> str:
        return self._gcauth.universe_domain

    @property
    def project_id(self) -> str | None:
        """The project of a service-account key (google-cloud-core reads it when a client is
        given no project), else ``None``."""
        project = getattr(self._gcauth, "project_id", None)
        return project if isinstance(project, str) else None

    def get_cred_info(self) -> Mapping[str, str] | None:
        """What google-api-core adds to 401/403/404 errors: the credential's type and account
        (never a secret)."""
        info = self._gcauth.describe()
        result = {"credential_source": "gcauth",
                  "credential_type": f"gcauth {info.get('type')} credentials"}
        if isinstance(info.get("account"), str) and info["account"]:
            result["principal"] = info["account"]
        return result

    # -- tokens -----------------------------------------------------------------------------
    def _get_token(self, fresh: bool) -> Token:
        try:
            return self._gcauth.get_token(self._request, fresh=fresh)
        except _gc_exc.RefreshError as exc:
            if isinstance(exc, RefreshError):
                raise
            raise RefreshError.from_gcauth(exc) from None
        except _gc_exc.TransportError as exc:
            if isinstance(exc, TransportError):
                raise
            raise TransportError.from_gcauth(exc) from None

    def _bridged(self, call: Any) -> None:
        try:
            call()
        except _gc_exc.RefreshError as exc:
            raise (exc if isinstance(exc, RefreshError) else RefreshError.from_gcauth(exc)) \
                from None
        except _gc_exc.TransportError as exc:
            raise (exc if isinstance(exc, TransportError) else TransportError.from_gcauth(exc)) \
                from None

    def _headers(self, headers: MutableMapping[str, str]) -> None:
        if self._quota is not _UNSET:
            for name in [n for n in headers if n.lower() == _QUOTA_HEADER]:
                del headers[name]
            if self._quota:
                headers[_QUOTA_HEADER] = self._quota

    def before_request(self, request: Any, method: str, url: str,
                       headers: MutableMapping[str, str]) -> None:
        """Put a usable token (and the quota project) on ``headers``: the cached token when
        fresh; a stale one while one background refresh runs; otherwise one refresh shared
        by every caller. ``request`` (google-auth's) is not used: see the module docstring."""
        gc = self._gcauth
        if gc.requires_scopes:
            # no scopes to ask a token for: the credential decides (a service account signs
            # a JWT for the API host, AIP-4111); libraries scope it with with_scopes first
            self._bridged(lambda: gc.before_request(self._request, method, url, headers))
            self._local.token = None
        else:
            token = self._get_token(fresh=False)
            self._local.token = token
            headers.update(gc.headers_for(token))
        self._headers(headers)

    def refresh(self, request: Any) -> None:
        """Get a new token (google-auth's ``refresh``; libraries call it after a 401). The
        token this thread last sent is dropped unless another caller already replaced it, so
        a burst of 401s on one token still makes one token request."""
        gc = self._gcauth
        if gc.requires_scopes:
            self._bridged(lambda: gc.refresh(self._request))
            return
        rejected = getattr(self._local, "token", None)
        self._local.token = None
        gc.invalidate(rejected if rejected is not None else gc.current_token)
        self._get_token(fresh=True)

    def apply(self, headers: MutableMapping[str, str], token: str | None = None) -> None:
        """Set ``Authorization`` (and the quota-project header) from ``token`` or the current
        token."""
        value = token if token is not None else self.token
        if value is None:
            raise _gc_exc.UsageError(
                "this credential has no token yet: call refresh(request) or "
                "before_request(...) first")
        headers["authorization"] = f"Bearer {value}"
        quota = self.quota_project_id
        if quota:
            headers[_QUOTA_HEADER] = quota

    # -- copies -----------------------------------------------------------------------------
    def with_quota_project(self, quota_project_id: str | None) -> Credentials:
        """A copy that bills ``quota_project_id`` and shares this one's token cache."""
        return self._copy(quota=_checked_quota_project(quota_project_id))

    def __copy__(self) -> Credentials:
        return self._copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> Credentials:
        """A copy with its own token cache and lock (the gcauth credential deep-copied)."""
        import copy

        return self._copy(credentials=copy.deepcopy(self._gcauth, memo))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled: the gcauth credential (with its current token) and the quota project;
        a custom ``request`` is not (the copy uses gcauth's default sender)."""
        return {"credentials": self._gcauth,
                "quota_project_id": None if self._quota is _UNSET else self._quota,
                "quota_set": self._quota is not _UNSET}

    def __setstate__(self, state: dict[str, Any]) -> None:
        quota = state["quota_project_id"] if state.get("quota_set") else _UNSET
        Credentials.__init__(self, state["credentials"], quota_project_id=quota)

    def __repr__(self) -> str:
        quota = "" if self._quota is _UNSET else f" quota_project_id={self._quota!r}"
        return f"<{type(self).__module__}.{type(self).__qualname__} of {self._gcauth!r}{quota}>"

    # -- signing ----------------------------------------------------------------------------
    def _signing(self) -> _gc.Signing:
        gc = self._gcauth
        if isinstance(gc, _gc.Signing):
            return gc
        kind = gc.describe().get("type")
        raise _gc_exc.SigningError(
            f"{kind} credentials ({type(gc).__module__}.{type(gc).__qualname__}) cannot sign. "
            "Signing (a storage signed URL, a signed JWT) needs a service-account key: load it "
            "with gcauth.service_account.Credentials.from_service_account_file(...). With only "
            "a token, have the library sign through IAM instead (storage: "
            "generate_signed_url(..., service_account_email=..., access_token=...)).")

    def sign_bytes(self, message: bytes) -> bytes:
        """RS256-sign ``message`` with the gcauth credential's key."""
        return self._signing().sign_bytes(message)

    @property
    def signer_email(self) -> str:
        return self._signing().signer_email

    @property
    def signer(self) -> _crypt.Signer:
        return _Signer(self._signing())


class ScopedCredentials(Credentials, _ga.Scoped):
    """:class:`Credentials` for a scoped gcauth credential: also a
    ``google.auth.credentials.Scoped``."""

    @property
    def scopes(self) -> Sequence[str] | None:
        gc = self._gcauth
        return gc.scopes if isinstance(gc, _gc.Scoped) else None

    @property
    def default_scopes(self) -> Sequence[str] | None:
        gc = self._gcauth
        return gc.default_scopes if isinstance(gc, _gc.Scoped) else None

    @property
    def requires_scopes(self) -> bool:
        return self._gcauth.requires_scopes

    def has_scopes(self, scopes: Sequence[str]) -> bool:
        gc = self._gcauth
        return isinstance(gc, _gc.Scoped) and gc.has_scopes(scopes)

    def with_scopes(self, scopes: Sequence[str] | None,
                    default_scopes: Sequence[str] | None = None) -> Credentials:
        """A copy for ``scopes`` (or the library's ``default_scopes``): a new token."""
        gc = self._gcauth
        assert isinstance(gc, _gc.Scoped)
        return self._copy(credentials=gc.with_scopes(scopes, default_scopes))
