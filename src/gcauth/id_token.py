"""ID tokens: fetch one for any audience from Application Default Credentials, and verify them.

::

    from gcauth import id_token
    token = id_token.fetch_id_token(request, "https://my-service.run.app")
    claims = id_token.verify_oauth2_token(token, request, audience="https://my-service.run.app")

:func:`fetch_id_token` follows ADC (:func:`gcauth.default`'s order): a service-account key
mints its own (JWT with ``target_audience``), an ``impersonated_service_account`` file uses
IAM ``generateIdToken``, the metadata server its identity endpoint. A user login cannot mint
an ID token for an arbitrary audience (Google issues a user's ID token only to the OAuth client
the user signed in to); the error says so and what to use instead (impersonation).

The verifiers check the RS256 signature against the issuer's certificates, then ``iss``,
``aud`` (exact match), ``exp`` and ``iat`` with ``clock_skew_in_seconds``. Certificates are
kept in a :class:`CertCache` for as long as their ``Cache-Control: max-age`` allows (google-auth
fetches them on every call), JWK Sets and ``{kid: PEM}`` documents alike; ``certs_url=`` points
at any issuer's (the emulator's ``/oauth2/v1/certs`` or ``/oauth2/v3/certs``).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from ._endpoints import is_loopback_host
from ._http import run_async, run_sync
from ._protocol import idtoken as _idt
from ._sender import resolve_request
from .credentials import Credentials
from .exceptions import DefaultCredentialsError, RefreshError, UsageError

if TYPE_CHECKING:
    from ._http import AsyncRequest, Flow
    from ._protocol.idtoken import KeySet
    from .authorized_user import Credentials as UserCredentials
    from .tokens import Token

__all__ = [
    "CertCache",
    "afetch_id_token",
    "averify_oauth2_token",
    "averify_token",
    "fetch_id_token",
    "fetch_id_token_credentials",
    "verify_firebase_token",
    "verify_oauth2_token",
    "verify_token",
]

GOOGLE_OAUTH2_CERTS_URL = _idt.GOOGLE_OAUTH2_CERTS_URL
GOOGLE_JWKS_URL = _idt.GOOGLE_JWKS_URL
GOOGLE_APIS_CERTS_URL = _idt.GOOGLE_APIS_CERTS_URL
GOOGLE_ISSUERS = _idt.GOOGLE_ISSUERS


# -- the certificate cache --------------------------------------------------------------------
def _checked_certs_url(url: object) -> str:
    """Certificates decide which tokens are believed: ``https``, or ``http`` on loopback only
    (the emulator), so that no one on the network path can substitute keys."""
    if not isinstance(url, str) or not url.isascii() or any(c.isspace() for c in url):
        raise UsageError("certs_url must be an http(s) URL string.")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and is_loopback_host(host):
        return url
    raise UsageError(f"certs_url must be https (or http on loopback), not {parts.scheme}://"
                     f"{host or '?'}: certificates fetched in the clear could be replaced.")


class CertCache:
    """Certificate documents by URL, each kept for its ``Cache-Control: max-age``.

    Any number of concurrent callers (threads, tasks on any loop) with no usable entry share
    one fetch; a failed fetch is not cached. ``clock`` is monotonic seconds (injectable).
    ``fetches`` counts the documents actually fetched.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, timeout: float = 10.0):
        self._clock = clock
        self._timeout = timeout
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[KeySet, float]] = {}
        self._inflight: dict[str, concurrent.futures.Future[KeySet]] = {}
        self.fetches = 0

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _cached(self, url: str) -> KeySet | None:
        entry = self._entries.get(url)
        if entry is not None and self._clock() < entry[1]:
            return entry[0]
        return None

    def _claim(self, url: str) -> tuple[concurrent.futures.Future[KeySet], bool]:
        with self._lock:
            future = self._inflight.get(url)
            if future is not None:
                return future, False
            future = concurrent.futures.Future()
            keys = self._cached(url)  # a fetch may have finished since the caller looked
            if keys is not None:
                future.set_result(keys)
                return future, False
            self._inflight[url] = future
            return future, True

    def _finish(self, url: str, future: concurrent.futures.Future[KeySet],
                result: tuple[KeySet, float] | None, error: BaseException | None) -> None:
        with self._lock:
            if result is not None:
                self.fetches += 1
                if result[1] > 0:
                    self._entries[url] = (result[0], self._clock() + min(result[1], 86400.0))
            if self._inflight.get(url) is future:
                del self._inflight[url]
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result[0])

    def _flow(self, url: str) -> Flow[tuple[KeySet, float]]:
        return _idt.certs_flow(url, timeout=self._timeout)

    def get(self, url: str, request: object | None = None) -> KeySet:
        """The keys at ``url``: cached while ``max-age`` allows, else fetched (once for all
        concurrent callers) with ``request`` (``None``: gcauth's default sender)."""
        keys = self._cached(url)
        if keys is not None:
            return keys
        _checked_certs_url(url)
        future, owner = self._claim(url)
        if owner:
            try:
                result = run_sync(self._flow(url), resolve_request(request).send)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                self._finish(url, future, None, exc)
                raise
            self._finish(url, future, result, None)
        return future.result()

    async def aget(self, url: str, request: AsyncRequest) -> KeySet:
        """Async :meth:`get`: the fetch is async I/O on the caller's loop."""
        import asyncio

        keys = self._cached(url)
        if keys is not None:
            return keys
        _checked_certs_url(url)
        future, owner = self._claim(url)
        if owner:
            try:
                result = await run_async(self._flow(url), request.send)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                self._finish(url, future, None, exc)
                raise
            self._finish(url, future, result, None)
        return await asyncio.wrap_future(future)


#: The cache every verifier uses unless given another (``cache=``).
DEFAULT_CACHE = CertCache()


# -- verifying --------------------------------------------------------------------------------
def verify_token(
    id_token: str | bytes,
    request: object | None = None,
    audience: str | Collection[str] | None = None,
    certs_url: str = GOOGLE_OAUTH2_CERTS_URL,
    clock_skew_in_seconds: float = 0,
    *,
    issuers: Collection[str] | None = None,
    cache: CertCache | None = None,
) -> dict[str, Any]:
    """Verify ``id_token`` against the certificates at ``certs_url`` and return its claims.

    Checks the RS256 signature by the key its ``kid`` names, ``aud`` (exact match with
    ``audience``, or one of them; ``None`` leaves it unchecked, as google-auth does),
    ``issuers`` when given, ``exp`` and ``iat`` with ``clock_skew_in_seconds``. Raises
    :class:`~gcauth.exceptions.InvalidTokenError` (a ``ValueError``) saying why not.
    """
    keys = (cache or DEFAULT_CACHE).get(certs_url, request)
    return keys.verify(id_token, now=time.time(), audience=audience, issuers=issuers,
                       clock_skew=clock_skew_in_seconds)


async def averify_token(
    id_token: str | bytes,
    request: AsyncRequest,
    audience: str | Collection[str] | None = None,
    certs_url: str = GOOGLE_OAUTH2_CERTS_URL,
    clock_skew_in_seconds: float = 0,
    *,
    issuers: Collection[str] | None = None,
    cache: CertCache | None = None,
) -> dict[str, Any]:
    """Async :func:`verify_token` (a certificate fetch, when needed, is sent with
    ``request``)."""
    keys = await (cache or DEFAULT_CACHE).aget(certs_url, request)
    return keys.verify(id_token, now=time.time(), audience=audience, issuers=issuers,
                       clock_skew=clock_skew_in_seconds)


def verify_oauth2_token(
    id_token: str | bytes,
    request: object | None = None,
    audience: str | Collection[str] | None = None,
    clock_skew_in_seconds: float = 0,
    *,
    certs_url: str = GOOGLE_OAUTH2_CERTS_URL,
    cache: CertCache | None = None,
) -> dict[str, Any]:
    """:func:`verify_token` for ID tokens issued by Google (``iss`` is
    ``accounts.google.com`` or ``https://accounts.google.com``)."""
    return verify_token(id_token, request, audience, certs_url, clock_skew_in_seconds,
                        issuers=GOOGLE_ISSUERS, cache=cache)


async def averify_oauth2_token(
    id_token: str | bytes,
    request: AsyncRequest,
    audience: str | Collection[str] | None = None,
    clock_skew_in_seconds: float = 0,
    *,
    certs_url: str = GOOGLE_OAUTH2_CERTS_URL,
    cache: CertCache | None = None,
) -> dict[str, Any]:
    """Async :func:`verify_oauth2_token`."""
    return await averify_token(id_token, request, audience, certs_url, clock_skew_in_seconds,
                               issuers=GOOGLE_ISSUERS, cache=cache)


def verify_firebase_token(
    id_token: str | bytes,
    request: object | None = None,
    audience: str | None = None,
    clock_skew_in_seconds: float = 0,
    *,
    certs_url: str = GOOGLE_APIS_CERTS_URL,
    cache: CertCache | None = None,
) -> dict[str, Any]:
    """Verify a Firebase Authentication ID token: ``audience`` (the Firebase project id) is
    required, ``iss`` must be ``https://securetoken.google.com/<audience>`` and ``sub`` a
    non-empty string."""
    from .exceptions import InvalidTokenError

    if not audience or not isinstance(audience, str):
        raise UsageError("verify_firebase_token needs audience= (your Firebase project id): "
                         "without it any Firebase project's tokens would be accepted.")
    claims = verify_token(id_token, request, audience, certs_url, clock_skew_in_seconds,
                          issuers=(_idt.FIREBASE_ISSUER_PREFIX + audience,), cache=cache)
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidTokenError("the Firebase ID token has no 'sub' (user id).",
                                reason="malformed")
    return claims


# -- fetching -----------------------------------------------------------------------------------
class _UserIDTokens(Credentials):
    """The ID token a user's refresh grant returns (``aud`` = the OAuth client's id)."""

    def __init__(self, user: UserCredentials):
        super().__init__(quota_project_id=user.quota_project_id)
        self._user = user

    def token_flow(self, now: datetime) -> Flow[Token]:
        from ._protocol.idtoken import token_times
        from .tokens import Token

        token = cast("Token", (yield self._user.token_step()))
        for attempt in range(2):
            value = token.id_token
            if not value:
                raise RefreshError(
                    "this user login carries no ID token (it was made without the openid "
                    "scope). Fix: run `gcauth auth application-default login` again.",
                    endpoint=self._user.token_uri)
            expiry, issued = token_times(value, self._user.token_uri)
            if expiry > now or attempt:
                return Token(value, expiry=expiry, id_token=value, issued_at=issued or now)
            self._user.invalidate(token)
            token = cast("Token", (yield self._user.token_step(fresh=True)))
        raise AssertionError("unreachable")  # pragma: no cover

    def describe(self) -> dict[str, Any]:
        info = self._user.describe()
        info.update(type="authorized_user_id_token")
        return info


def _user_cannot(user: UserCredentials, audience: str, where: str | None) -> str:
    account = f" ({user.account})" if user.account else ""
    return (f"ADC holds user credentials{account}{f' from {where}' if where else ''}, and a user "
            f"account cannot mint an ID token for an arbitrary audience ({audience!r}): Google "
            "issues a user's ID token only to the OAuth client the user signed in to, so its "
            f"audience is that client's id ({user.client_id}). Fix: impersonate a service "
            "account that may call the service (you need the Service Account Token Creator "
            "role on it): `gcauth auth application-default login "
            "--impersonate-service-account=SA@PROJECT.iam.gserviceaccount.com`, or "
            f"`gcauth auth print-identity-token --audiences={audience} "
            "--impersonate-service-account=SA@PROJECT.iam.gserviceaccount.com`; in Python, "
            "impersonated_credentials.IDTokenCredentials.")


def id_token_credentials_for(credentials: Credentials, audience: str, *,
                             include_email: bool = True, where: str | None = None
                             ) -> Credentials:
    """The ID-token credentials that match ``credentials`` (what ADC found)."""
    from . import compute_engine, external_account, impersonated_credentials, service_account
    from .authorized_user import Credentials as UserCredentials

    if isinstance(credentials, service_account.Credentials):
        return service_account.IDTokenCredentials(
            credentials.signer, credentials.service_account_email, credentials.token_uri,
            audience, quota_project_id=credentials.quota_project_id,
            universe_domain=credentials.universe_domain)
    if isinstance(credentials, impersonated_credentials.Credentials):
        return impersonated_credentials.IDTokenCredentials(
            credentials, audience, include_email=include_email,
            quota_project_id=credentials.quota_project_id)
    if isinstance(credentials, compute_engine.Credentials):
        return compute_engine.IDTokenCredentials(None, audience,
                                                 use_metadata_identity_endpoint=True,
                                                 quota_project_id=credentials.quota_project_id)
    if isinstance(credentials, external_account.Credentials):
        impersonated = credentials.impersonated_credentials
        if impersonated is None:
            raise DefaultCredentialsError(
                "a federated identity (external_account credentials"
                f"{' in ' + where if where else ''}) cannot mint ID tokens itself: Google "
                "mints them for a service account it impersonates. Fix: add "
                "service_account_impersonation_url to the configuration (gcloud iam "
                "workload-identity-pools create-cred-config --service-account=EMAIL), and give "
                "the pool's principals roles/iam.workloadIdentityUser on that account.")
        return impersonated_credentials.IDTokenCredentials(
            impersonated, audience, include_email=include_email,
            quota_project_id=credentials.quota_project_id)
    if isinstance(credentials, UserCredentials):
        if audience == credentials.client_id:
            return _UserIDTokens(credentials)
        raise DefaultCredentialsError(_user_cannot(credentials, audience, where))
    raise DefaultCredentialsError(
        f"{type(credentials).__name__} credentials cannot mint ID tokens. Fix: use a service "
        "account (a key, impersonation, or the metadata server).")


def fetch_id_token_credentials(audience: str, request: object | None = None, *,
                               include_email: bool = True) -> Credentials:
    """ID-token credentials for ``audience`` from Application Default Credentials, in ADC's
    order: ``GOOGLE_APPLICATION_CREDENTIALS``, the gcloud ADC file, the metadata server."""
    from ._default import find_default, not_found_message

    if not isinstance(audience, str) or not audience:
        raise UsageError("an ID token needs an audience: the URL of the Cloud Run service, or "
                         "the IAP OAuth client id.")
    res = find_default(request=request)
    if res.credentials is None:
        raise DefaultCredentialsError(not_found_message(res))
    return id_token_credentials_for(res.credentials, audience, include_email=include_email,
                                    where=res.source_location)


def fetch_id_token(request: object | None, audience: str) -> str:
    """One ID token for ``audience`` from ADC (google-auth's ``fetch_id_token``)."""
    credentials = fetch_id_token_credentials(audience, request)
    return credentials.get_token(resolve_request(request)).access_token


async def afetch_id_token(request: AsyncRequest, audience: str) -> str:
    """Async :func:`fetch_id_token`: ADC discovery (file reads, at most one bounded metadata
    probe) runs in a worker thread, the token request on the caller's loop."""
    import asyncio

    credentials = await asyncio.to_thread(fetch_id_token_credentials, audience)
    return (await credentials.aget_token(request)).access_token
