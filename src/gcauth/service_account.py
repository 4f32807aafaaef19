"""Service-account credentials: RS256 JWT bearer grant, domain-wide delegation, self-signed JWTs.

The Google samples read the same::

    from gcauth import service_account
    credentials = service_account.Credentials.from_service_account_file(
        "key.json", scopes=["https://www.googleapis.com/auth/cloud-platform"])
    delegated = credentials.with_subject("user@example.com")

Token requests follow RFC 7523 §2.1: a JWT signed with the key's private key (``kid`` =
``private_key_id``) with ``iss`` = the account, ``aud`` = the token URI, ``scope``, ``iat`` and
``exp`` at most one hour later, plus ``sub`` for domain-wide delegation. With an ``audience``
and no scopes (or ``always_use_jwt_access=True``) no token request is made at all: the
credential signs a JWT the API accepts directly (AIP-4111).

Google's generated (gapic) clients duck-type credentials: they call :meth:`before_request`
with each request's URL, and never tell a credential that is not google-auth's their default
scopes. A service account with neither scopes nor an audience therefore answers
``before_request`` with a self-signed JWT whose audience is the API host (``https://HOST/``,
AIP-4111), one per host, instead of failing for want of scopes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Mapping, MutableMapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import _files
from ._endpoints import DEFAULT_UNIVERSE_DOMAIN, check_endpoint
from ._http import DEFAULT_TIMEOUT, Flow, checked_timeout
from ._info import optional_id, optional_str, require_str, require_type, unreachable
from ._protocol import jwt as _jwt
from ._protocol.rfc6749 import GOOGLE_TOKEN_URI, token_exchange
from ._protocol.rfc7523 import JWT_BEARER_GRANT, MAX_LIFETIME, bearer_assertion, self_signed_jwt
from ._retry import RetryPolicy
from .credentials import Credentials as _Base
from .credentials import Scoped, Signing, _scope_tuple
from .exceptions import MalformedCredentialsError, RefreshError, TransportError
from .tokens import Clock, Token

if TYPE_CHECKING:
    from .credentials import AnyRequest

__all__ = ["Credentials", "IDTokenCredentials"]

#: At most this many API hosts keep a cached self-signed JWT (see ``before_request``).
_MAX_AUDIENCES = 16

_FIX = ("Download a JSON key for the service account (Cloud console: IAM & Admin > Service "
        "accounts > Keys > Add key > Create new key > JSON).")


class Credentials(Scoped, Signing):
    """Credentials of a Google service account, from its JSON key."""

    def __init__(
        self,
        signer: _jwt.RSASigner,
        service_account_email: str,
        token_uri: str = GOOGLE_TOKEN_URI,
        *,
        scopes: Sequence[str] | None = None,
        default_scopes: Sequence[str] | None = None,
        subject: str | None = None,
        project_id: str | None = None,
        quota_project_id: str | None = None,
        audience: str | None = None,
        always_use_jwt_access: bool = False,
        universe_domain: str = DEFAULT_UNIVERSE_DOMAIN,
        client_id: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock | None = None,
    ):
        super().__init__(quota_project_id=quota_project_id, clock=clock)
        self._signer = signer
        self._email = service_account_email
        self._token_uri = token_uri
        self._scopes = _scope_tuple(scopes)
        self._default_scopes = _scope_tuple(default_scopes)
        self._subject = subject
        self._project_id = project_id
        self._audience = audience
        self._always_use_jwt_access = always_use_jwt_access
        self._universe_domain = universe_domain
        self._client_id = client_id
        self._retry = retry
        self._timeout = checked_timeout(timeout)
        self._jwt_header = _jwt.encode_header(signer.key_id)
        self._audience_jwts: dict[str, Credentials] = {}
        self._audience_lock = threading.Lock()

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def from_service_account_info(
        cls,
        info: Mapping[str, Any],
        *,
        allowed_hosts: Collection[str] = (),
        source: str = "<service account info>",
        **kwargs: Any,
    ) -> Credentials:
        """Build from the parsed JSON key (``type: service_account``).

        ``token_uri`` must be Google's or loopback unless its host is in ``allowed_hosts``.
        Keyword arguments (``scopes``, ``subject``, ``quota_project_id``...) go to the
        constructor.
        """
        if not isinstance(info, Mapping):
            raise MalformedCredentialsError(
                f"{source}: service account info must be a JSON object (a dict), not "
                f"{type(info).__name__}. {_FIX}", source=source)
        require_type(info, "service_account", source, _FIX)
        email = require_str(info, "client_email", source, _FIX)
        pem = require_str(info, "private_key", source, _FIX)
        key_id = optional_str(info, "private_key_id", source)
        signer = _jwt.RSASigner.from_pem(pem, key_id, source=source)
        token_uri = optional_str(info, "token_uri", source) or GOOGLE_TOKEN_URI
        check_endpoint(token_uri, field="token_uri", source=source, allowed_hosts=allowed_hosts)
        kwargs.setdefault("project_id", optional_id(info, "project_id", source))
        kwargs.setdefault("quota_project_id", optional_id(info, "quota_project_id", source))
        kwargs.setdefault("universe_domain",
                          optional_str(info, "universe_domain", source) or DEFAULT_UNIVERSE_DOMAIN)
        kwargs.setdefault("client_id", optional_str(info, "client_id", source))
        credentials = cls(signer, email, token_uri, **kwargs)
        if not source.startswith("<"):
            credentials._source_file = source
        return credentials

    @classmethod
    def from_service_account_file(
        cls, filename: str | os.PathLike[str], **kwargs: Any
    ) -> Credentials:
        """Build from a JSON key file; every problem names the file and how to fix it."""
        name = os.fspath(filename)
        info = _files.read_json_file(name, what="service account key file",
                                     fix="point at a JSON key file of the service account")
        return cls.from_service_account_info(info, source=name, **kwargs)

    # -- configuration --------------------------------------------------------------------
    @property
    def service_account_email(self) -> str:
        return self._email

    @property
    def signer_email(self) -> str:
        return self._email

    @property
    def signer(self) -> _jwt.RSASigner:
        return self._signer

    @property
    def project_id(self) -> str | None:
        return self._project_id

    @property
    def token_uri(self) -> str:
        return self._token_uri

    @property
    def subject(self) -> str | None:
        return self._subject

    @property
    def audience(self) -> str | None:
        return self._audience

    @property
    def requires_scopes(self) -> bool:
        return not self.effective_scopes() and self._audience is None

    def with_subject(self, subject: str | None) -> Credentials:
        """A copy that impersonates ``subject`` through domain-wide delegation."""
        return self._replace(_subject=subject)

    def with_audience(self, audience: str | None) -> Credentials:
        """A copy that, without scopes, uses self-signed JWTs for ``audience`` (AIP-4111)."""
        return self._replace(_audience=audience)

    def with_always_use_jwt_access(self, always_use_jwt_access: bool) -> Credentials:
        """A copy that signs JWTs with a ``scope`` claim instead of calling the token endpoint."""
        return self._replace(_always_use_jwt_access=always_use_jwt_access)

    def with_token_uri(self, token_uri: str, *, allowed_hosts: Collection[str] = ()) -> Credentials:
        check_endpoint(token_uri, field="token_uri", source="with_token_uri",
                       allowed_hosts=allowed_hosts)
        return self._replace(_token_uri=token_uri)

    # -- signing --------------------------------------------------------------------------
    def sign_bytes(self, message: bytes) -> bytes:
        """RS256 signature of ``message`` with the account's private key."""
        return self._signer.sign(message)

    # -- tokens ---------------------------------------------------------------------------
    def uses_self_signed_jwt(self) -> bool:
        """Whether tokens are self-signed JWTs (no token request) rather than OAuth tokens."""
        if self._subject:
            return False
        if self._always_use_jwt_access and (self._scopes or self._default_scopes or self._audience):
            return True
        return self._audience is not None and not self._scopes

    def token_flow(self, now: datetime) -> Flow[Token]:
        if self.uses_self_signed_jwt():
            scopes = self._scopes or (None if self._audience else self._default_scopes)
            assertion = self_signed_jwt(
                self._signer, email=self._email, now=now, audience=self._audience,
                scopes=scopes, header=self._jwt_header)
            issued = now.replace(microsecond=0)
            return _done(Token(assertion, expiry=issued + timedelta(seconds=MAX_LIFETIME),
                               scopes=scopes, issued_at=issued))
        return self._grant_flow(now)

    def _grant_flow(self, now: datetime) -> Flow[Token]:
        scopes = self.effective_scopes()
        if not scopes:
            raise RefreshError(
                f"service account {self._email} needs scopes for an access token: pass "
                "scopes=[...] (for example https://www.googleapis.com/auth/cloud-platform), or "
                "audience=... for a self-signed JWT.", error="invalid_scope",
                endpoint=self._token_uri)
        assertion = bearer_assertion(
            self._signer, issuer=self._email, audience=self._token_uri, now=now, scopes=scopes,
            subject=self._subject, header=self._jwt_header)
        try:
            reply = yield from token_exchange(
                self._token_uri, {"grant_type": JWT_BEARER_GRANT, "assertion": assertion},
                retry=self._retry, timeout=self._timeout)
        except TransportError as exc:
            raise unreachable(exc, "the token endpoint", self._source_file,
                              self._source_via) from None
        assert reply.access_token is not None
        return Token(reply.access_token, expiry=reply.expiry(now),
                     scopes=reply.scope or scopes, issued_at=now)

    # -- libraries that duck-type credentials (gapic clients) -----------------------------
    def before_request(
        self, request: AnyRequest | None, method: str, url: str,
        headers: MutableMapping[str, str],
    ) -> None:
        """google-auth's hook. Without scopes or an audience, sign a JWT for the API host of
        ``url`` (AIP-4111) rather than fail: the library has no other way to say which API
        it calls (see the module docstring)."""
        if self.requires_scopes:
            audience = _api_audience(url)
            if audience is not None:
                signed = self._for_audience(audience)
                headers.update(signed.headers_for(signed.get_token(request)))
                return
        super().before_request(request, method, url, headers)

    def refresh(self, request: AnyRequest | None = None) -> None:
        """Fetch a new token now; for a service account that signs per-host JWTs (see
        :meth:`before_request`), sign those again."""
        signed = self._audience_jwts
        if self.requires_scopes and signed:
            for credentials in signed.values():
                credentials.refresh(request)
            return
        super().refresh(request)

    def _for_audience(self, audience: str) -> Credentials:
        found = self._audience_jwts.get(audience)
        if found is None:
            with self._audience_lock:
                found = self._audience_jwts.get(audience)
                if found is None:
                    found = self.with_audience(audience)
                    kept = {} if len(self._audience_jwts) >= _MAX_AUDIENCES else \
                        self._audience_jwts
                    # copy on write: readers above take no lock
                    self._audience_jwts = {**kept, audience: found}
        return found

    def _rebuild_state(self, token: Token | None, clock: Clock) -> None:
        super()._rebuild_state(token, clock)
        self._audience_jwts = {}

    def _unpickled_attributes(self) -> tuple[str, ...]:
        return ("_audience_jwts",)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(type="service_account", account=self._email, token_uri=self._token_uri,
                    subject=self._subject)
        return info

    def _describe(self) -> str:
        return (f"email={self._email!r} scopes={self.effective_scopes()!r} "
                f"subject={self._subject!r} project_id={self._project_id!r}")


class IDTokenCredentials(_Base, Signing):
    """ID tokens for ``target_audience`` (a Cloud Run URL, an IAP client id) from a
    service-account key: a JWT with a ``target_audience`` claim exchanged at the token URI
    (google-auth's ``google.oauth2.service_account.IDTokenCredentials``).

    They are credentials: ``Authorization: Bearer <ID token>`` on every gcauth transport,
    refreshed through the same cache before they expire::

        creds = service_account.IDTokenCredentials.from_service_account_file(
            "key.json", target_audience="https://my-service.run.app")
    """

    def __init__(
        self,
        signer: _jwt.RSASigner,
        service_account_email: str,
        token_uri: str = GOOGLE_TOKEN_URI,
        target_audience: str | None = None,
        additional_claims: Mapping[str, Any] | None = None,
        quota_project_id: str | None = None,
        universe_domain: str = DEFAULT_UNIVERSE_DOMAIN,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock | None = None,
    ):
        super().__init__(quota_project_id=quota_project_id, clock=clock)
        self._signer = signer
        self._email = service_account_email
        self._token_uri = token_uri
        self._audience = target_audience
        self._claims = dict(additional_claims or {})
        self._universe_domain = universe_domain
        self._retry = retry
        self._timeout = checked_timeout(timeout)
        self._jwt_header = _jwt.encode_header(signer.key_id)

    @classmethod
    def from_service_account_info(
        cls, info: Mapping[str, Any], *, allowed_hosts: Collection[str] = (),
        source: str = "<service account info>", **kwargs: Any,
    ) -> IDTokenCredentials:
        """Build from the parsed JSON key; ``target_audience=`` and the other constructor
        arguments as keywords."""
        sa = Credentials.from_service_account_info(info, allowed_hosts=allowed_hosts,
                                                   source=source)
        kwargs.setdefault("quota_project_id", sa.quota_project_id)
        kwargs.setdefault("universe_domain", sa.universe_domain)
        return cls(sa.signer, sa.service_account_email, sa.token_uri, **kwargs)

    @classmethod
    def from_service_account_file(
        cls, filename: str | os.PathLike[str], **kwargs: Any
    ) -> IDTokenCredentials:
        name = os.fspath(filename)
        info = _files.read_json_file(name, what="service account key file",
                                     fix="point at a JSON key file of the service account")
        return cls.from_service_account_info(info, source=name, **kwargs)

    @property
    def service_account_email(self) -> str:
        return self._email

    @property
    def signer_email(self) -> str:
        return self._email

    @property
    def signer(self) -> _jwt.RSASigner:
        return self._signer

    @property
    def token_uri(self) -> str:
        return self._token_uri

    @property
    def target_audience(self) -> str | None:
        return self._audience

    @property
    def id_token(self) -> str | None:
        return self.token

    def sign_bytes(self, message: bytes) -> bytes:
        return self._signer.sign(message)

    def with_target_audience(self, target_audience: str) -> IDTokenCredentials:
        return self._replace(_audience=target_audience)

    def with_token_uri(self, token_uri: str, *,
                       allowed_hosts: Collection[str] = ()) -> IDTokenCredentials:
        check_endpoint(token_uri, field="token_uri", source="with_token_uri",
                       allowed_hosts=allowed_hosts)
        return self._replace(_token_uri=token_uri)

    def token_flow(self, now: datetime) -> Flow[Token]:
        from ._protocol.idtoken import token_times

        if not self._audience:
            raise RefreshError(
                f"an ID token for {self._email} needs an audience: pass target_audience= (the "
                "URL of the Cloud Run service, or the IAP client id).", endpoint=self._token_uri)
        assertion = bearer_assertion(
            self._signer, issuer=self._email, audience=self._token_uri, now=now,
            header=self._jwt_header, extra={**self._claims, "target_audience": self._audience})
        reply = yield from token_exchange(
            self._token_uri, {"grant_type": JWT_BEARER_GRANT, "assertion": assertion},
            retry=self._retry, timeout=self._timeout, require_access_token=False)
        if not reply.id_token:
            raise RefreshError(f"token endpoint {self._token_uri} replied without an id_token "
                               "for an ID-token request.", endpoint=self._token_uri)
        expiry, issued = token_times(reply.id_token, self._token_uri)
        return Token(reply.id_token, expiry=expiry, id_token=reply.id_token,
                     issued_at=issued or now)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(type="service_account_id_token", account=self._email,
                    token_uri=self._token_uri, audience=self._audience)
        return info

    def _describe(self) -> str:
        return f"email={self._email!r} audience={self._audience!r}"


def _api_audience(url: object) -> str | None:
    """``https://HOST/`` for a request URL (gRPC passes ``://HOST/service`` on channels
    without TLS), or ``None`` when ``url`` names no host."""
    if not isinstance(url, str):
        return None
    if url.startswith("://"):
        url = "https" + url
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}/" if port in (None, 443) else f"https://{host}:{port}/"


def _done(token: Token) -> Flow[Token]:
    """A flow that needs no HTTP at all."""
    return token
    yield  # pragma: no cover - makes this a generator
