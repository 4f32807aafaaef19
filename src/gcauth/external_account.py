"""Workload and workforce identity federation: the ``external_account`` credential family.

A workload outside Google Cloud (GitHub Actions, GitLab, AWS, Azure, Kubernetes, an on-prem
identity provider) proves who it is with a token of its own -- the *subject token* -- and
exchanges it at Google's Security Token Service (RFC 8693) for a Google access token,
optionally impersonating a service account with that token. gcloud (``gcloud iam
workload-identity-pools create-cred-config``) and ``google-github-actions/auth`` write the
credential configuration files this reads::

    {"type": "external_account",
     "audience": "//iam.googleapis.com/projects/123/locations/global/"
                 "workloadIdentityPools/p/providers/gh",
     "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
     "token_url": "https://sts.googleapis.com/v1/token",
     "credential_source": {"file": "/var/run/secrets/token", "format": {"type": "text"}},
     "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/"
         "projects/-/serviceAccounts/app@p.iam.gserviceaccount.com:generateAccessToken"}

(long strings split here only to fit the page).

The subject token's source picks the class: :mod:`gcauth.identity_pool` (a file, a URL, or
your own supplier), :mod:`gcauth.aws` (AWS credentials, a SigV4-signed ``GetCallerIdentity``),
:mod:`gcauth.pluggable` (an executable). ``gcauth.load_credentials_from_file()`` and
``gcauth.default()`` pick it for you.

Every step is a sans-IO flow, so blocking and async callers share it, and the token cache
gives one exchange (and one impersonation call) for any number of concurrent callers.
With impersonation, the STS token is cached by an inner credential and reused until it goes
stale; the impersonated token is what callers get.

A credential configuration decides which URLs gcauth fetches and which program it runs, so
its URLs are checked when it is loaded, before any connection: ``token_url`` must be Google's
STS, ``service_account_impersonation_url`` Google's IAM Credentials API, ``token_info_url``
Google's STS; loopback (the gcauth emulator) is allowed for all of them, anything else only
with ``allowed_hosts=[...]``. See SECURITY.md before loading a file someone else wrote.
"""

from __future__ import annotations

import abc
import os
import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote, unquote, urlsplit

from . import _files
from ._endpoints import DEFAULT_UNIVERSE_DOMAIN, check_google_service, is_loopback_host
from ._http import DEFAULT_TIMEOUT, Flow, HttpRequest, Join, checked_timeout, run_async, run_sync
from ._info import credential_origin, optional_id, unreachable
from ._json import loads as json_loads
from ._protocol import sts as _sts
from ._protocol.rfc6749 import parse_error
from ._retry import RetryPolicy, with_retries
from ._sender import resolve_request
from ._value import Value
from .credentials import Scoped, _scope_tuple
from .exceptions import MalformedCredentialsError, RefreshError, TransportError, UsageError
from .tokens import Clock, Token

if TYPE_CHECKING:
    from ._http import AsyncRequest

__all__ = ["CLOUD_PLATFORM", "Credentials", "SupplierContext", "source_kind"]

T = TypeVar("T")

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_STS_TOKEN_URL = _sts.GOOGLE_STS_TOKEN_URL
DEFAULT_IMPERSONATION_LIFETIME = 3600
#: gcloud's bounds for ``service_account_impersonation.token_lifetime_seconds``.
MIN_IMPERSONATION_LIFETIME, MAX_IMPERSONATION_LIFETIME = 600, 43200
#: Most characters a subject token may have (Google's STS limit is far below this).
MAX_SUBJECT_TOKEN = 64 * 1024

_FIX = ("Write the configuration again with `gcloud iam workload-identity-pools "
        "create-cred-config` (or your CI's auth action), or fix the field.")
_WORKLOAD = re.compile(
    r"//iam\.[a-z0-9.-]+/projects/(?P<number>[0-9]+)/locations/[a-z0-9-]+/"
    r"workloadIdentityPools/[^/]+/providers/[^/]+")
_WORKFORCE = re.compile(
    r"//iam\.[a-z0-9.-]+/locations/[a-z0-9-]+/workforcePools/[^/]+/providers/[^/]+")
_EMAIL_IN_URL = re.compile(r"/serviceAccounts/(?P<email>[^/:]+):generateAccessToken$")
_PROJECT_ENV = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")


class SupplierContext(Value):
    """What a subject-token supplier is told: the token type and the audience (google-auth's
    ``SupplierContext``)."""

    __slots__ = ("subject_token_type", "audience")
    subject_token_type: str
    audience: str

    def __init__(self, subject_token_type: str, audience: str):
        self._init(subject_token_type=subject_token_type, audience=audience)


def _malformed(source: str, field: str, text: str) -> MalformedCredentialsError:
    return MalformedCredentialsError(f"{source}: field {field!r} {text} {_FIX}", source=source,
                                     field=field)


def _opt_str(value: object, field: str, source: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _malformed(source, field, "must be a string.")
    return value


def _checked_lifetime(value: object, source: str) -> int:
    field = "service_account_impersonation.token_lifetime_seconds"
    if value is None:
        return DEFAULT_IMPERSONATION_LIFETIME
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed(source, field, "must be a whole number of seconds.")
    if not MIN_IMPERSONATION_LIFETIME <= value <= MAX_IMPERSONATION_LIFETIME:
        raise _malformed(source, field, f"must be between {MIN_IMPERSONATION_LIFETIME} and "
                         f"{MAX_IMPERSONATION_LIFETIME} seconds (12 hours); got {value}.")
    return value


def blocking_step(work: Callable[[], T]) -> Join:
    """A flow step that runs blocking ``work`` (an executable, a user's supplier): inline for
    blocking drivers, in a worker thread for async ones, so no event loop is blocked."""
    def sync(send: object) -> T:
        return work()

    async def async_(send: object) -> T:
        import asyncio

        return await asyncio.to_thread(work)

    return Join(sync, async_)


class Credentials(Scoped):
    """The shared part of every ``external_account`` credential: the STS exchange, optional
    service-account impersonation, the project lookup. Subclasses say where the subject token
    comes from (:meth:`subject_token_flow`)."""

    #: the ``credential_source`` kind: ``file``, ``url``, ``supplier``, ``aws``, ``executable``
    source_kind = "unknown"

    def __init__(
        self,
        audience: str,
        subject_token_type: str,
        token_url: str = GOOGLE_STS_TOKEN_URL,
        credential_source: Mapping[str, Any] | None = None,
        service_account_impersonation_url: str | None = None,
        service_account_impersonation_options: Mapping[str, Any] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_info_url: str | None = None,
        quota_project_id: str | None = None,
        scopes: Sequence[str] | None = None,
        default_scopes: Sequence[str] | None = None,
        workforce_pool_user_project: str | None = None,
        universe_domain: str = DEFAULT_UNIVERSE_DOMAIN,
        *,
        allowed_hosts: Collection[str] = (),
        cloud_resource_manager_url: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock | None = None,
        source: str = "<external account info>",
    ):
        super().__init__(quota_project_id=quota_project_id, clock=clock)
        self._where = source
        if not isinstance(audience, str) or not audience:
            raise _malformed(source, "audience", "must be the workload or workforce pool "
                             "provider (//iam.googleapis.com/.../providers/ID).")
        if subject_token_type not in _sts.SUBJECT_TOKEN_TYPES:
            raise _malformed(source, "subject_token_type",
                             f"must be one of {', '.join(_sts.SUBJECT_TOKEN_TYPES)}.")
        self._audience = audience
        self._subject_token_type = subject_token_type
        universe = _opt_str(universe_domain, "universe_domain", source) or DEFAULT_UNIVERSE_DOMAIN
        self._universe_domain = universe
        self._allowed_hosts = tuple(allowed_hosts)
        self._token_url = check_google_service(
            _opt_str(token_url, "token_url", source) or GOOGLE_STS_TOKEN_URL, "sts",
            field="token_url", source=source, universe_domain=universe,
            allowed_hosts=allowed_hosts)
        self._token_info_url = None if token_info_url is None else check_google_service(
            token_info_url, "sts", field="token_info_url", source=source,
            universe_domain=universe, allowed_hosts=allowed_hosts)
        self._impersonation_url = None
        self._impersonated_email: str | None = None
        if service_account_impersonation_url is not None:
            url = check_google_service(
                service_account_impersonation_url, "iamcredentials",
                field="service_account_impersonation_url", source=source,
                universe_domain=universe, allowed_hosts=allowed_hosts)
            match = _EMAIL_IN_URL.search(urlsplit(url).path)
            email = unquote(match["email"]) if match else ""
            if "@" not in email:
                raise _malformed(source, "service_account_impersonation_url",
                                 "must be .../v1/projects/-/serviceAccounts/EMAIL:"
                                 "generateAccessToken.")
            self._impersonation_url = url
            self._impersonated_email = email
        options = service_account_impersonation_options or {}
        if not isinstance(options, Mapping):
            raise _malformed(source, "service_account_impersonation",
                             "must be a JSON object (token_lifetime_seconds).")
        self._lifetime = _checked_lifetime(options.get("token_lifetime_seconds"), source)
        self._client_id = _opt_str(client_id, "client_id", source)
        self._client_secret = _opt_str(client_secret, "client_secret", source)
        if self._client_secret and not self._client_id:
            raise _malformed(source, "client_id", "is needed when client_secret is set.")
        self._workforce_pool_user_project = _opt_str(
            workforce_pool_user_project, "workforce_pool_user_project", source)
        if self._workforce_pool_user_project and not self.is_workforce_pool:
            raise _malformed(source, "workforce_pool_user_project",
                             "is only for workforce pools (audience //iam.googleapis.com/"
                             "locations/global/workforcePools/...); remove it.")
        self._scopes = _scope_tuple(scopes)
        self._default_scopes = _scope_tuple(default_scopes)
        self._credential_source = dict(credential_source) if credential_source else None
        self._rm_url = self._resource_manager_base(cloud_resource_manager_url)
        self._retry = retry
        self._timeout = checked_timeout(timeout)
        self._project_id: str | None = None
        self._inner: Any = None
        self._inner_lock = threading.Lock()

    # -- what subclasses provide ----------------------------------------------------------
    @abc.abstractmethod
    def subject_token_flow(self, now: datetime) -> Flow[str]:
        """Flow: the subject token to exchange (read, fetched, signed or run at ``now``)."""

    # -- configuration --------------------------------------------------------------------
    @property
    def audience(self) -> str:
        return self._audience

    @property
    def subject_token_type(self) -> str:
        return self._subject_token_type

    @property
    def token_url(self) -> str:
        return self._token_url

    @property
    def token_info_url(self) -> str | None:
        return self._token_info_url

    @property
    def service_account_impersonation_url(self) -> str | None:
        return self._impersonation_url

    @property
    def service_account_email(self) -> str | None:
        """The impersonated service account, if any."""
        return self._impersonated_email

    @property
    def credential_source(self) -> dict[str, Any] | None:
        return None if self._credential_source is None else dict(self._credential_source)

    @property
    def client_id(self) -> str | None:
        return self._client_id

    @property
    def workforce_pool_user_project(self) -> str | None:
        return self._workforce_pool_user_project

    @property
    def is_workforce_pool(self) -> bool:
        return _WORKFORCE.fullmatch(self._audience) is not None

    @property
    def project_number(self) -> str | None:
        """The project number in a workload pool's audience (``None`` for workforce pools)."""
        match = _WORKLOAD.fullmatch(self._audience)
        return match["number"] if match else None

    @property
    def requires_scopes(self) -> bool:
        return False  # no scopes: cloud-platform, like gcloud

    def effective_scopes(self) -> tuple[str, ...] | None:
        return self._scopes or self._default_scopes or (CLOUD_PLATFORM,)

    @property
    def info(self) -> dict[str, Any]:
        """The configuration as a credential file holds it (google-auth's ``info``)."""
        data: dict[str, Any] = {"type": "external_account", "audience": self._audience,
                                "subject_token_type": self._subject_token_type,
                                "token_url": self._token_url}
        if self._credential_source is not None:
            data["credential_source"] = dict(self._credential_source)
        if self._impersonation_url:
            data["service_account_impersonation_url"] = self._impersonation_url
            if self._lifetime != DEFAULT_IMPERSONATION_LIFETIME:
                data["service_account_impersonation"] = {
                    "token_lifetime_seconds": self._lifetime}
        for key, value in (("token_info_url", self._token_info_url),
                           ("client_id", self._client_id),
                           ("client_secret", self._client_secret),
                           ("quota_project_id", self._quota_project_id),
                           ("workforce_pool_user_project", self._workforce_pool_user_project)):
            if value:
                data[key] = value
        data["universe_domain"] = self._universe_domain
        return data

    # -- tokens ---------------------------------------------------------------------------
    def token_flow(self, now: datetime) -> Flow[Token]:
        if self._impersonation_url is not None:
            return cast("Flow[Token]", self._impersonator().token_flow(now))
        return self._exchange_flow(now, self.effective_scopes() or (CLOUD_PLATFORM,))

    def _exchange_flow(self, now: datetime, scopes: tuple[str, ...]) -> Flow[Token]:
        try:
            subject = yield from self.subject_token_flow(now)
        except TransportError as exc:
            raise unreachable(exc, "the subject token source", self._source_file,
                              self._source_via) from None
        options = None
        if self._workforce_pool_user_project and not self._client_id:
            options = {"userProject": self._workforce_pool_user_project}
        try:
            reply = yield from _sts.exchange_flow(
                self._token_url, audience=self._audience, subject_token=subject,
                subject_token_type=self._subject_token_type, scopes=scopes, options=options,
                client_id=self._client_id, client_secret=self._client_secret,
                retry=self._retry, timeout=self._timeout)
        except RefreshError as exc:
            if exc.retryable:
                raise
            raise RefreshError(
                f"{exc} The Security Token Service refused the {self.source_kind}-sourced "
                f"subject token for {self._audience}{self._origin()}: check that the pool "
                "and provider exist, that the provider trusts the token's issuer and "
                "audience, that the token has not expired, and that the provider's attribute "
                "condition admits it.", error=exc.error,
                error_description=exc.error_description, status=exc.status,
                endpoint=exc.endpoint) from None
        except TransportError as exc:
            raise unreachable(exc, "the STS token endpoint", self._source_file,
                              self._source_via) from None
        assert reply.access_token is not None
        return Token(reply.access_token, expiry=reply.expiry(now), scopes=scopes,
                     issued_at=now, token_type=reply.token_type)

    def _origin(self) -> str:
        return credential_origin(self._source_file, self._source_via)

    def _impersonator(self) -> Any:
        """The impersonated credentials whose source is this configuration's STS token
        (built once per copy; ``with_*`` copies build their own)."""
        inner = self._inner
        if inner is None:
            with self._inner_lock:
                if self._inner is None:
                    from .impersonated_credentials import Credentials as Impersonated

                    sts_only = self._replace(_impersonation_url=None, _impersonated_email=None,
                                             _scopes=(CLOUD_PLATFORM,), _default_scopes=None)
                    sts_only._source_file, sts_only._source_via = (self._source_file,
                                                                   self._source_via)
                    assert self._impersonated_email is not None
                    self._inner = Impersonated(
                        sts_only, self._impersonated_email,
                        list(self.effective_scopes() or (CLOUD_PLATFORM,)),
                        lifetime=self._lifetime, iam_endpoint_override=self._impersonation_url,
                        allowed_hosts=self._allowed_hosts, retry=self._retry,
                        timeout=self._timeout, clock=self._cache.clock)
                inner = self._inner
        return inner

    @property
    def impersonated_credentials(self) -> Any:
        """The :class:`gcauth.impersonated_credentials.Credentials` that act as the
        configured service account with this configuration's STS token (``None`` without
        ``service_account_impersonation_url``): what ID tokens and ``sign_bytes`` go
        through."""
        return None if self._impersonation_url is None else self._impersonator()

    def _rebuild_state(self, token: Token | None, clock: Clock) -> None:
        super()._rebuild_state(token, clock)
        self._inner = None

    def _unpickled_attributes(self) -> tuple[str, ...]:
        return ("_inner",)

    # -- the project --------------------------------------------------------------------
    def _resource_manager_base(self, override: str | None) -> str:
        if override is not None:
            return check_google_service(override, "cloudresourcemanager",
                                        field="cloud_resource_manager_url", source=self._where,
                                        universe_domain=self._universe_domain,
                                        allowed_hosts=self._allowed_hosts).rstrip("/")
        parts = urlsplit(self._token_url)
        if is_loopback_host(parts.hostname or ""):  # the emulator serves both
            return f"{parts.scheme}://{parts.netloc}"
        return f"https://cloudresourcemanager.{self._universe_domain}"

    def project_id_flow(self) -> Flow[str | None]:
        """Flow: the project id of the pool's project, from Resource Manager
        (``projects.get`` on the audience's project number, or the workforce pool user
        project), with this credential's token; ``None`` when there is no project number."""
        number = self.project_number or self._workforce_pool_user_project
        if number is None:
            return None
        url = f"{self._rm_url}/v1/projects/{quote(number, safe='')}"
        token = cast(Token, (yield self.token_step()))
        request = HttpRequest("GET", url, {"Accept": "application/json",
                                           **self.headers_for(token)}, None, self._timeout)

        def attempt() -> Flow[str | None]:
            response = yield request
            assert response is not None
            if response.status != 200:
                error = parse_error(response, request.endpoint, what="Resource Manager")
                raise RefreshError(
                    f"{error} Looking up the project id of project {number} failed: set "
                    "GOOGLE_CLOUD_PROJECT, or grant the federated identity "
                    "resourcemanager.projects.get on the project.", status=error.status,
                    endpoint=request.endpoint, retryable=error.retryable,
                    error=error.error) from None
            try:
                data = json_loads(response.body)
            except (ValueError, UnicodeDecodeError):
                data = None
            project = data.get("projectId") if isinstance(data, dict) else None
            if not isinstance(project, str) or not project:
                raise RefreshError(f"Resource Manager at {request.endpoint} replied without a "
                                   "projectId. Set GOOGLE_CLOUD_PROJECT instead.",
                                   endpoint=request.endpoint, status=response.status)
            return project

        return (yield from with_retries(attempt, self._retry))

    def get_project_id(self, request: Any = None) -> str | None:
        """The project id: ``GOOGLE_CLOUD_PROJECT`` (or ``GCLOUD_PROJECT``) when set,
        otherwise looked up once through Resource Manager (see :meth:`project_id_flow`).
        ``gcauth.default()`` never does this lookup itself."""
        for var in _PROJECT_ENV:
            if os.environ.get(var):
                return os.environ[var]
        if self._project_id is None:
            sender = resolve_request(request)
            self._project_id = run_sync(self.project_id_flow(), sender.send)
        return self._project_id

    async def aget_project_id(self, request: AsyncRequest) -> str | None:
        """Async :meth:`get_project_id`."""
        for var in _PROJECT_ENV:
            if os.environ.get(var):
                return os.environ[var]
        if self._project_id is None:
            self._project_id = await run_async(self.project_id_flow(), request.send)
        return self._project_id

    # -- copies and descriptions ----------------------------------------------------------
    def with_token_lifetime(self, seconds: int) -> Credentials:
        """A copy whose impersonated tokens live ``seconds`` (600 to 43200)."""
        return self._replace(_lifetime=_checked_lifetime(seconds, self._where))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(type="external_account", account=self._impersonated_email,
                    token_uri=self._token_url, audience=self._audience,
                    subject_token_type=self._subject_token_type,
                    credential_source=self.source_kind,
                    pool="workforce" if self.is_workforce_pool else "workload",
                    impersonation_url=self._impersonation_url,
                    workforce_pool_user_project=self._workforce_pool_user_project)
        return info

    def _describe(self) -> str:
        return (f"audience={self._audience!r} source={self.source_kind!r} "
                f"impersonating={self._impersonated_email!r} scopes={self._scopes!r}")

    # -- loading ----------------------------------------------------------------------------
    @classmethod
    def _kwargs_from_info(cls, info: Mapping[str, Any], source: str) -> dict[str, Any]:
        """The constructor arguments every ``external_account`` file shares."""
        if not isinstance(info, Mapping):
            raise MalformedCredentialsError(f"{source}: an external_account configuration must "
                                            f"be a JSON object. {_FIX}", source=source)
        kind = info.get("type")
        if kind is not None and kind != "external_account":
            raise _malformed(source, "type", f"is {kind!r}, not 'external_account'.")
        for field in ("audience", "subject_token_type"):
            if not isinstance(info.get(field), str) or not info.get(field):
                raise _malformed(source, field, "is missing or not a string.")
        options = info.get("service_account_impersonation")
        if options is not None and not isinstance(options, Mapping):
            raise _malformed(source, "service_account_impersonation",
                             "must be a JSON object (token_lifetime_seconds).")
        source_info = info.get("credential_source")
        if source_info is not None and not isinstance(source_info, Mapping):
            raise _malformed(source, "credential_source", "must be a JSON object.")
        return {
            "audience": info["audience"],
            "subject_token_type": info["subject_token_type"],
            "token_url": _opt_str(info.get("token_url"), "token_url", source)
            or GOOGLE_STS_TOKEN_URL,
            "credential_source": source_info,
            "service_account_impersonation_url": _opt_str(
                info.get("service_account_impersonation_url"),
                "service_account_impersonation_url", source),
            "service_account_impersonation_options": options,
            "client_id": info.get("client_id"),
            "client_secret": info.get("client_secret"),
            "token_info_url": _opt_str(info.get("token_info_url"), "token_info_url", source),
            "quota_project_id": optional_id(info, "quota_project_id", source),
            "workforce_pool_user_project": info.get("workforce_pool_user_project"),
            "universe_domain": info.get("universe_domain") or DEFAULT_UNIVERSE_DOMAIN,
        }

    @classmethod
    def from_info(cls: type[_C], info: Mapping[str, Any], **kwargs: Any) -> _C:
        """Build from a credential configuration's content (google-auth's ``from_info``);
        ``source=`` names it in errors, ``scopes=`` / ``allowed_hosts=`` as for the
        constructor."""
        source = kwargs.pop("source", "<external account info>")
        merged = cls._kwargs_from_info(info, source)
        merged.update(kwargs)
        try:
            credentials = cls(source=source, **merged)
        except UsageError as exc:
            raise MalformedCredentialsError(f"{source}: {exc}", source=source) from None
        if not source.startswith("<"):
            credentials._source_file = source
        return credentials

    @classmethod
    def from_file(cls: type[_C], filename: str | os.PathLike[str], **kwargs: Any) -> _C:
        name = os.fspath(filename)
        info = _files.read_json_file(name, what="external account configuration",
                                     fix="point at an external_account credential file")
        return cls.from_info(info, source=name, **kwargs)


_C = TypeVar("_C", bound=Credentials)


def source_kind(info: Mapping[str, Any]) -> str | None:
    """The kind of ``credential_source`` a configuration has (``file``, ``url``, ``aws``,
    ``executable``, ``certificate``), or ``None`` when it has none or an unknown one; what
    ``allowed_types=("external_account:aws", ...)`` names."""
    source = info.get("credential_source")
    if not isinstance(source, Mapping):
        return None
    if isinstance(source.get("environment_id"), str) and \
            source["environment_id"].startswith("aws"):
        return "aws"
    for kind in ("executable", "certificate", "file", "url"):
        if kind in source:
            return kind
    return None


def checked_subject_token(value: object, where: str) -> str:
    """A subject token as a source produced it, checked before it is sent anywhere."""
    if not isinstance(value, str):
        raise RefreshError(f"{where} gave a subject token that is not a string "
                           f"({type(value).__name__}).")
    value = value.strip()
    if not value:
        raise RefreshError(f"{where} gave an empty subject token. Check that the identity "
                           "provider wrote or returned the token.")
    if len(value) > MAX_SUBJECT_TOKEN:
        raise RefreshError(f"{where} gave a subject token of {len(value)} characters, more "
                           f"than the {MAX_SUBJECT_TOKEN} gcauth accepts.")
    if not value.isprintable() or not value.isascii():
        raise RefreshError(f"{where} gave a subject token with control or non-ASCII "
                           "characters; it was not sent.")
    return value
