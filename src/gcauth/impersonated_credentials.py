"""Service-account impersonation: act as a service account without its key.

::

    from gcauth import impersonated_credentials
    source, _ = gcauth.default()                     # a user login, a key, the VM's account...
    target = impersonated_credentials.Credentials(
        source_credentials=source, target_principal="app@p.iam.gserviceaccount.com",
        target_scopes=["https://www.googleapis.com/auth/cloud-platform"])
    target.sign_bytes(b"payload")                    # IAM signBlob as app@
    target.with_subject("user@example.com")          # domain-wide delegation: signJwt + JWT grant
    impersonated_credentials.IDTokenCredentials(target, target_audience="https://x.run.app")

Tokens come from the IAM Credentials API (``generateAccessToken``, ``generateIdToken``) with the
*source's* token, which the source's own cache provides (one refresh for every caller, sync and
async). The source needs the Service Account Token Creator role on the target; with
``delegates`` (bare emails, as gcloud writes them, or ``projects/-/serviceAccounts/EMAIL``)
each identity of the chain needs it on the next one. ``lifetime`` may be up to 12 hours (more
than one hour needs Google's lifetime-extension organisation policy) and is passed through.

This is also what an ADC file of ``type: impersonated_service_account`` (``gcloud auth
application-default login --impersonate-service-account``) loads as.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _files
from ._endpoints import DEFAULT_UNIVERSE_DOMAIN
from ._http import DEFAULT_TIMEOUT, Flow, checked_timeout, run_async, run_sync
from ._info import optional_id, require_str
from ._protocol import iamcredentials as _iam
from ._protocol.idtoken import token_times
from ._protocol.rfc6749 import GOOGLE_TOKEN_URI, token_exchange
from ._protocol.rfc7523 import JWT_BEARER_GRANT
from ._protocol.rfc7523 import MAX_LIFETIME as JWT_LIFETIME
from ._retry import RetryPolicy
from ._sender import resolve_request
from .credentials import Credentials as _Base
from .credentials import Scoped, Signing, _scope_tuple
from .exceptions import MalformedCredentialsError, RefreshError, UsageError
from .iam import authorized, iam_base, principal_of, sign_blob_flow, sign_jwt_flow
from .tokens import Clock, Token

if TYPE_CHECKING:
    from ._http import AsyncRequest

__all__ = ["Credentials", "IDTokenCredentials"]

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_LIFETIME = 3600
_SOURCE_TYPES = ("authorized_user", "service_account")
_FIX = ("Write it again with `gcauth auth application-default login "
        "--impersonate-service-account=EMAIL` (or gcloud's).")


def _checked_email(value: object, what: str) -> str:
    if not isinstance(value, str) or not _iam._EMAIL.fullmatch(value):
        raise UsageError(f"{what} must be a service-account email "
                         "(name@project.iam.gserviceaccount.com).")
    return value


def _checked_lifetime(value: object) -> int:
    if value is None or value == 0:
        return DEFAULT_LIFETIME
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise UsageError(f"lifetime must be a number of seconds, not {type(value).__name__}.")
    if not 0 < value <= _iam.MAX_LIFETIME:
        raise UsageError(f"lifetime must be more than 0 and at most {_iam.MAX_LIFETIME} seconds "
                         f"(12 hours); got {value!r}.")
    return int(value)


def _prepared_source(source: _Base) -> _Base:
    """The source as it calls IAM: a service-account key without the ``cloud-platform`` or
    ``iam`` scope gets the ``iam`` scope (google-auth does the same); user and VM credentials
    are used as they are (their scopes were fixed at login / by the VM)."""
    from .service_account import Credentials as ServiceAccount

    if isinstance(source, ServiceAccount):
        scopes = set(source.effective_scopes() or ())
        if not scopes & {_iam.IAM_SCOPE, CLOUD_PLATFORM}:
            return source.with_scopes([_iam.IAM_SCOPE]).with_audience(None)
    return source


class Credentials(Scoped, Signing):
    """Short-lived credentials of ``target_principal``, obtained with ``source_credentials``."""

    def __init__(
        self,
        source_credentials: _Base,
        target_principal: str,
        target_scopes: Sequence[str] | None = None,
        delegates: Sequence[str] | None = None,
        subject: str | None = None,
        lifetime: float | None = DEFAULT_LIFETIME,
        quota_project_id: str | None = None,
        iam_endpoint_override: str | None = None,
        *,
        default_scopes: Sequence[str] | None = None,
        allowed_hosts: Collection[str] = (),
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock | None = None,
    ):
        if not isinstance(source_credentials, _Base):
            raise UsageError("source_credentials must be gcauth credentials (from "
                             "gcauth.default(), service_account, authorized_user...), not "
                             f"{type(source_credentials).__name__}.")
        super().__init__(quota_project_id=quota_project_id, clock=clock)
        self._target = _checked_email(target_principal, "target_principal")
        self._source = _prepared_source(source_credentials)
        self._scopes = _scope_tuple(target_scopes)
        self._default_scopes = _scope_tuple(default_scopes)
        self._delegates = _iam.delegate_names(delegates, source="delegates")
        self._subject = subject
        self._lifetime = _checked_lifetime(lifetime)
        self._universe_domain = source_credentials.universe_domain
        self._override = iam_endpoint_override
        self._base = iam_base(source_credentials, iam_endpoint_override, target=self._target,
                              source="impersonated_credentials", allowed_hosts=allowed_hosts)
        self._retry = retry
        self._timeout = checked_timeout(timeout)

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def from_impersonated_service_account_info(
        cls,
        info: Mapping[str, Any],
        scopes: Sequence[str] | None = None,
        *,
        default_scopes: Sequence[str] | None = None,
        allowed_hosts: Collection[str] = (),
        source: str = "<impersonated service account info>",
        **kwargs: Any,
    ) -> Credentials:
        """Build from an ADC file of ``type: impersonated_service_account`` (what gcloud
        writes): ``source_credentials`` (an ``authorized_user`` or ``service_account``),
        ``service_account_impersonation_url``, ``delegates``, ``quota_project_id``."""
        if not isinstance(info, Mapping):
            raise MalformedCredentialsError(f"{source}: impersonated service account info must "
                                            f"be a JSON object. {_FIX}", source=source)
        inner = info.get("source_credentials")
        if not isinstance(inner, Mapping):
            raise MalformedCredentialsError(
                f"{source}: field 'source_credentials' must be a JSON object (the credentials "
                f"that impersonate). {_FIX}", source=source, field="source_credentials")
        where = f"{source} (source_credentials)"
        kind = inner.get("type")
        source_creds: _Base
        if kind == "authorized_user":
            from .authorized_user import Credentials as User

            source_creds = User.from_authorized_user_info(inner, source=where,
                                                          allowed_hosts=allowed_hosts)
        elif kind == "service_account":
            from .service_account import Credentials as ServiceAccount

            source_creds = ServiceAccount.from_service_account_info(
                inner, source=where, allowed_hosts=allowed_hosts)
        else:
            got = "no 'type'" if kind is None else f"type {kind!r}"
            raise MalformedCredentialsError(
                f"{source}: source_credentials has {got}; gcauth impersonates with "
                f"{' or '.join(_SOURCE_TYPES)} credentials. {_FIX}", source=source,
                field="source_credentials.type")
        url = require_str(info, "service_account_impersonation_url", source, _FIX)
        try:
            _, target = _iam.split_endpoint(url, field="service_account_impersonation_url",
                                               source=source, allowed_hosts=allowed_hosts)
        except UsageError as exc:
            raise MalformedCredentialsError(f"{exc} {_FIX}", source=source,
                                            field="service_account_impersonation_url") from None
        if target is None:
            raise MalformedCredentialsError(
                f"{source}: service_account_impersonation_url must name the account "
                "(.../serviceAccounts/EMAIL:generateAccessToken). " + _FIX, source=source,
                field="service_account_impersonation_url")
        delegates = info.get("delegates")
        if delegates is not None and (not isinstance(delegates, list)
                                      or not all(isinstance(d, str) for d in delegates)):
            raise MalformedCredentialsError(f"{source}: field 'delegates' must be a list of "
                                            f"service-account emails. {_FIX}", source=source,
                                            field="delegates")
        raw_scopes = info.get("scopes")
        if scopes is None and isinstance(raw_scopes, list) and \
                all(isinstance(s, str) for s in raw_scopes):
            scopes = raw_scopes
        kwargs.setdefault("quota_project_id", optional_id(info, "quota_project_id", source))
        try:
            return cls(source_creds, target, scopes, delegates,
                       iam_endpoint_override=url,
                       default_scopes=default_scopes, allowed_hosts=allowed_hosts, **kwargs)
        except UsageError as exc:
            raise MalformedCredentialsError(f"{source}: {exc} {_FIX}", source=source) from None

    @classmethod
    def from_impersonated_service_account_file(
        cls, filename: str | os.PathLike[str], scopes: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> Credentials:
        name = os.fspath(filename)
        info = _files.read_json_file(name, what="impersonated service account file",
                                     fix="point at an impersonated_service_account ADC file")
        return cls.from_impersonated_service_account_info(info, scopes, source=name, **kwargs)

    # -- configuration --------------------------------------------------------------------
    @property
    def source_credentials(self) -> _Base:
        return self._source

    @property
    def target_principal(self) -> str:
        return self._target

    @property
    def service_account_email(self) -> str:
        return self._target

    @property
    def signer_email(self) -> str:
        return self._target

    @property
    def delegates(self) -> list[str]:
        """The delegation chain, as ``projects/-/serviceAccounts/EMAIL`` names."""
        return list(self._delegates)

    @property
    def subject(self) -> str | None:
        return self._subject

    @property
    def lifetime(self) -> int:
        return self._lifetime

    @property
    def iam_endpoint(self) -> str:
        """The base every IAM Credentials call goes to."""
        return self._base

    @property
    def requires_scopes(self) -> bool:
        return not self.effective_scopes()

    def with_subject(self, subject: str | None) -> Credentials:
        """A copy that acts as ``subject`` through domain-wide delegation, with no key: IAM
        ``signJwt`` signs the assertion as the target, the JWT bearer grant (at the source's
        token URI) exchanges it."""
        return self._replace(_subject=subject)

    def with_lifetime(self, lifetime: float) -> Credentials:
        return self._replace(_lifetime=_checked_lifetime(lifetime))

    # -- tokens ---------------------------------------------------------------------------
    def _caller(self) -> _iam.Caller:
        return _iam.Caller(principal_of(self._source), self._target, self._delegates)

    def _scopes_for_token(self) -> tuple[str, ...]:
        scopes = self.effective_scopes()
        if not scopes:
            raise RefreshError(
                f"impersonating {self._target} needs scopes: pass target_scopes=[...] (for "
                f"example {CLOUD_PLATFORM}).", error="invalid_scope", endpoint=self._base)
        return scopes

    def token_flow(self, now: datetime) -> Flow[Token]:
        scopes = self._scopes_for_token()
        if self._subject:
            return self._delegation_flow(now, scopes)
        body: dict[str, Any] = {"scope": list(scopes), "lifetime": f"{self._lifetime}s"}
        if self._delegates:
            body["delegates"] = list(self._delegates)
        endpoint = _iam.method_url(self._base, self._target, "generateAccessToken")

        def call(headers: Mapping[str, str]) -> Flow[Token]:
            caller = self._caller()
            data = yield from _iam.call_flow(self._base, "generateAccessToken", caller, body,
                                             headers, timeout=self._timeout, retry=self._retry)
            token, expiry = _iam.parse_access_token(data, endpoint)
            return Token(token, expiry=expiry, scopes=scopes, issued_at=now)

        return authorized(self._source, call)

    def _delegation_flow(self, now: datetime, scopes: tuple[str, ...]) -> Flow[Token]:
        if self.universe_domain != DEFAULT_UNIVERSE_DOMAIN:
            raise RefreshError("domain-wide delegation (with_subject) is only available in "
                               f"the {DEFAULT_UNIVERSE_DOMAIN} universe.", endpoint=self._base)
        token_uri = getattr(self._source, "token_uri", None)
        if not isinstance(token_uri, str):
            token_uri = GOOGLE_TOKEN_URI
        iat = int(now.timestamp())
        claims = {"iss": self._target, "scope": " ".join(scopes), "sub": self._subject,
                  "aud": token_uri, "iat": iat, "exp": iat + JWT_LIFETIME}
        assertion = yield from sign_jwt_flow(self._source, self._base, self._target, claims,
                                             delegates=self._delegates, timeout=self._timeout,
                                             retry=self._retry)
        reply = yield from token_exchange(
            token_uri, {"grant_type": JWT_BEARER_GRANT, "assertion": assertion},
            retry=self._retry, timeout=self._timeout)
        assert reply.access_token is not None
        return Token(reply.access_token, expiry=reply.expiry(now),
                     scopes=reply.scope or scopes, issued_at=now)

    # -- signing --------------------------------------------------------------------------
    def sign_flow(self, message: bytes) -> Flow[bytes]:
        """The sans-IO flow of :meth:`sign_bytes`."""
        return sign_blob_flow(self._source, self._base, self._target, bytes(message),
                              delegates=self._delegates, timeout=self._timeout,
                              retry=self._retry)

    def sign_bytes(self, message: bytes) -> bytes:
        """RS256 signature of ``message`` by the target (IAM ``signBlob``), blocking, with
        gcauth's default sender."""
        return run_sync(self.sign_flow(message), resolve_request(None).send)

    async def asign_bytes(self, message: bytes, request: AsyncRequest) -> bytes:
        """Async :meth:`sign_bytes`, sent with ``request``."""
        return await run_async(self.sign_flow(message), request.send)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        source = self._source.describe()
        emails = _iam.delegate_emails(self._delegates)
        info.update(type="impersonated_service_account", account=self._target,
                    token_uri=None, subject=self._subject, source=source, delegates=emails,
                    chain=[str(source.get("account") or f"({source.get('type')} credentials)"),
                           *emails, self._target],
                    iam_endpoint=self._base, lifetime=self._lifetime)
        return info

    def _describe(self) -> str:
        return (f"target={self._target!r} delegates={_iam.delegate_emails(self._delegates)!r} "
                f"scopes={self.effective_scopes()!r} subject={self._subject!r} "
                f"source={self._source!r}")


class IDTokenCredentials(_Base):
    """ID tokens for ``target_audience`` minted as an impersonated service account (IAM
    ``generateIdToken``). They are credentials: ``Authorization: Bearer <ID token>`` on every
    gcauth transport, refreshed through the same cache before they expire."""

    def __init__(
        self,
        target_credentials: Credentials,
        target_audience: str | None = None,
        include_email: bool = False,
        quota_project_id: str | None = None,
        *,
        clock: Clock | None = None,
    ):
        if not isinstance(target_credentials, Credentials):
            raise UsageError("target_credentials must be gcauth.impersonated_credentials."
                             f"Credentials, not {type(target_credentials).__name__}.")
        super().__init__(quota_project_id=quota_project_id, clock=clock)
        self._target = target_credentials
        self._audience = target_audience
        self._include_email = bool(include_email)
        self._universe_domain = target_credentials.universe_domain

    def from_credentials(self, target_credentials: Credentials,
                         target_audience: str | None = None) -> IDTokenCredentials:
        return type(self)(target_credentials, target_audience, self._include_email,
                          self._quota_project_id)

    def with_target_audience(self, target_audience: str) -> IDTokenCredentials:
        return self._replace(_audience=target_audience)

    def with_include_email(self, include_email: bool) -> IDTokenCredentials:
        return self._replace(_include_email=bool(include_email))

    @property
    def target_audience(self) -> str | None:
        return self._audience

    @property
    def service_account_email(self) -> str:
        return self._target.target_principal

    @property
    def id_token(self) -> str | None:
        return self.token

    def token_flow(self, now: datetime) -> Flow[Token]:
        target = self._target
        if not self._audience:
            raise RefreshError("an ID token needs an audience: pass target_audience= (the URL "
                               "of the Cloud Run service or IAP client id).",
                               endpoint=target.iam_endpoint)
        body: dict[str, Any] = {"audience": self._audience, "includeEmail": self._include_email}
        if target._delegates:
            body["delegates"] = list(target._delegates)
        endpoint = _iam.method_url(target.iam_endpoint, target.target_principal,
                                   "generateIdToken")

        def call(headers: Mapping[str, str]) -> Flow[Token]:
            caller = target._caller()
            data = yield from _iam.call_flow(target.iam_endpoint, "generateIdToken", caller,
                                             body, headers, timeout=target._timeout,
                                             retry=target._retry)
            value = _iam.parse_id_token_reply(data, endpoint)
            expiry, issued = token_times(value, endpoint)
            return Token(value, expiry=expiry, id_token=value, issued_at=issued or now)

        return authorized(target.source_credentials, call)

    def describe(self) -> dict[str, Any]:
        info = self._target.describe()
        info.update(type="impersonated_id_token", audience=self._audience,
                    include_email=self._include_email, scopes=None,
                    quota_project_id=self._quota_project_id)
        return info

    def _describe(self) -> str:
        return (f"target={self._target.target_principal!r} audience={self._audience!r} "
                f"include_email={self._include_email!r}")
