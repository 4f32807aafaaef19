"""Compute Engine credentials: tokens from the metadata server of the VM (or GKE, Cloud Run...).

::

    from gcauth import compute_engine
    credentials = compute_engine.Credentials()

Every request carries ``Metadata-Flavor: Google`` and every reply must carry it back. The server
address comes from ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP`` at call time.

Whether a metadata server is there is decided in one place, :func:`detect_metadata_server`:
both :func:`is_on_gce` and Application Default Credentials ask it, and ``gcauth explain``
shows its report.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._http import Flow, checked_timeout, run_async, run_sync
from ._protocol import metadata as _md
from ._retry import RetryPolicy
from ._sender import resolve_request
from ._value import Value
from .credentials import Credentials as _Base
from .credentials import Scoped, Signing, _scope_tuple
from .exceptions import RefreshError, UsageError
from .tokens import Clock, Token

if TYPE_CHECKING:
    from ._http import AsyncRequest, Request

__all__ = [
    "Credentials",
    "IDTokenCredentials",
    "MetadataDetection",
    "detect_metadata_server",
    "get_project_id",
    "is_on_gce",
]

DMI_PRODUCT_NAME = "/sys/class/dmi/id/product_name"
#: Serverless platforms that have a metadata server but no DMI.
_SERVERLESS_VARS = ("K_SERVICE", "FUNCTION_TARGET", "GAE_APPLICATION", "CLOUD_RUN_JOB")

Environ = Mapping[str, str]


# -- where the server is (the environment, read at call time) ---------------------------
def metadata_host(environ: Environ | None = None) -> str:
    """``host[:port]`` of the metadata server for data and token requests."""
    env = os.environ if environ is None else environ
    return env.get("GCE_METADATA_HOST") or env.get("GCE_METADATA_IP") or _md.DEFAULT_IP


def ping_host(environ: Environ | None = None) -> str:
    """``host[:port]`` the detection probe is sent to (``GCE_METADATA_IP`` first)."""
    env = os.environ if environ is None else environ
    return env.get("GCE_METADATA_IP") or env.get("GCE_METADATA_HOST") or _md.DEFAULT_IP


def _overridden(env: Environ) -> bool:
    return bool(env.get("GCE_METADATA_HOST") or env.get("GCE_METADATA_IP"))


def _check_disabled(env: Environ) -> bool:
    """``NO_GCE_CHECK`` set to a true value: never probe the metadata server."""
    return env.get("NO_GCE_CHECK", "").strip().lower() in ("1", "true", "yes", "on")


def _probe_timeout(default: float, env: Environ) -> float:
    raw = env.get("GCE_METADATA_TIMEOUT")
    if raw:
        try:
            value = float(raw)
        except ValueError:
            return default
        if value == value:  # not NaN
            return min(max(0.01, value), 60.0)
    return default


def detect_residency(environ: Environ | None = None, dmi_path: str = DMI_PRODUCT_NAME,
                     platform: str | None = None) -> tuple[str, str]:
    """Local evidence alone (no network): ``(residency, why)``, residency one of
    :class:`gcauth._protocol.metadata.Residency`'s values."""
    env = os.environ if environ is None else environ
    for name in _SERVERLESS_VARS:
        if env.get(name):
            return _md.Residency.ON, f"{name} is set (Google serverless runtime)"
    if (platform or sys.platform).startswith("linux"):
        try:
            with open(dmi_path, encoding="utf-8", errors="replace") as handle:
                product = handle.read(256)
        except OSError:
            return _md.Residency.UNKNOWN, f"{dmi_path} is not readable"
        return _md.residency_from_product_name(product)
    return _md.Residency.UNKNOWN, "no local evidence on this platform"


class MetadataDetection(Value):
    """What :func:`detect_metadata_server` decided and why.

    ``outcome`` is ``"found"``, ``"not found"`` (probed, nothing answered) or ``"skipped"``
    (not probed: ``NO_GCE_CHECK``, or local evidence says this is no Google VM); ``location``
    is the address data requests go to (or the probed one, when nothing answered).
    """

    __slots__ = ("available", "outcome", "location", "detail")
    available: bool
    outcome: str
    location: str
    detail: str

    def __init__(self, available: bool, outcome: str, location: str, detail: str):
        self._init(available=available, outcome=outcome, location=location, detail=detail)


def detect_metadata_server(
    request: object | None = None,
    timeout: float | None = None,
    *,
    environ: Environ | None = None,
    dmi_path: str = DMI_PRODUCT_NAME,
    platform: str | None = None,
) -> MetadataDetection:
    """Decide whether a metadata server is there: the one decision tree for ADC and
    :func:`is_on_gce`.

    Disabled (``NO_GCE_CHECK``) → skipped. An overridden address (``GCE_METADATA_HOST``/
    ``GCE_METADATA_IP``) is probed whatever the machine says. Otherwise local evidence first:
    a non-Google DMI product name means no probe at all. The probe is bounded by ``timeout``
    (default 0.5 s, or 3 s with three attempts on a machine that says it is a Google VM;
    ``GCE_METADATA_TIMEOUT`` overrides).
    """
    env = os.environ if environ is None else environ
    if timeout is not None:
        timeout = checked_timeout(timeout)
    where = metadata_host(env)
    if _check_disabled(env):
        return MetadataDetection(False, "skipped", where, "NO_GCE_CHECK is set")
    residency, why = _md.Residency.UNKNOWN, "GCE_METADATA_HOST/GCE_METADATA_IP is set"
    if not _overridden(env):
        residency, why = detect_residency(env, dmi_path, platform)
        if residency == _md.Residency.OFF:
            return MetadataDetection(False, "skipped", where, f"not probed: {why}")
    on = residency == _md.Residency.ON
    wait = timeout if timeout is not None else _probe_timeout(
        _md.ON_GCE_PROBE_TIMEOUT if on else _md.PROBE_TIMEOUT, env)
    attempts = _md.ON_GCE_PROBE_ATTEMPTS if on else 1
    probe = ping_host(env)
    found = run_sync(_md.ping_flow(probe, wait, attempts), resolve_request(request).send)
    if not found:
        return MetadataDetection(False, "not found", probe,
                                 f"no metadata server answered within {wait:g} s ({why})")
    return MetadataDetection(True, "found", where, why)


def is_on_gce(request: Request | None = None, timeout: float | None = None) -> bool:
    """Whether a metadata server answers (honours ``NO_GCE_CHECK``, ``GCE_METADATA_*``).

    See :func:`detect_metadata_server`, which also says why.
    """
    return detect_metadata_server(request, timeout).available


class Credentials(Scoped, Signing):
    """The VM's attached service account (``"default"``, or an email).

    :meth:`sign_bytes` signs as that account through IAM ``signBlob`` (no key on the VM):
    the account needs the Service Account Token Creator role on itself. IAM calls go to
    ``iam_endpoint_override`` when given, else ``https://iamcredentials.<universe>``.
    """

    def __init__(
        self,
        service_account_email: str = "default",
        quota_project_id: str | None = None,
        scopes: Sequence[str] | None = None,
        default_scopes: Sequence[str] | None = None,
        *,
        timeout: float = 3.0,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        iam_endpoint_override: str | None = None,
    ):
        super().__init__(quota_project_id=quota_project_id, clock=clock)
        if iam_endpoint_override is not None:  # checked now, not at the first signature
            from .iam import iam_base

            iam_base(self, iam_endpoint_override, target=None, source="compute_engine")
        self._iam_override = iam_endpoint_override
        self._account = service_account_email
        self._scopes = _scope_tuple(scopes)
        self._default_scopes = _scope_tuple(default_scopes)
        self._timeout = checked_timeout(timeout)
        self._retry = retry
        self._email: str | None = None if service_account_email == "default" else \
            service_account_email
        self._vm_scopes: tuple[str, ...] | None = None

    @property
    def service_account_email(self) -> str:
        """The account's email once known (after :meth:`retrieve_info`), else the alias."""
        return self._email or self._account

    @property
    def vm_scopes(self) -> tuple[str, ...] | None:
        """The access scopes the VM grants this account (after :meth:`retrieve_info`)."""
        return self._vm_scopes

    @property
    def requires_scopes(self) -> bool:
        return False

    def retrieve_info(self, request: Request | None = None) -> None:
        """Ask the metadata server for the account's email and scopes."""
        info = run_sync(_md.info_flow(metadata_host(), self._account, timeout=self._timeout),
                        resolve_request(request).send)
        email = info.get("email")
        if isinstance(email, str):
            self._email = email
        scopes = info.get("scopes")
        if isinstance(scopes, list):
            self._vm_scopes = tuple(str(s) for s in scopes)

    def _email_flow(self) -> Flow[str]:
        """Flow: the account's email (asked once from the metadata server)."""
        if self._email is None:
            info = yield from _md.info_flow(metadata_host(), self._account,
                                            timeout=self._timeout)
            email = info.get("email")
            if not isinstance(email, str) or "@" not in email:
                raise RefreshError(
                    f"the metadata server did not say which account {self._account!r} is (no "
                    "email in its reply). Fix: check GCE_METADATA_HOST points at a metadata "
                    "server.", endpoint=_md.base_url(metadata_host()))
            self._email = email
        return self._email

    @property
    def signer_email(self) -> str:
        """The account's email; asked from the metadata server (blocking) if only the alias
        ``default`` is known yet."""
        if self._email is None:
            run_sync(self._email_flow(), resolve_request(None).send)
        assert self._email is not None
        return self._email

    def sign_flow(self, message: bytes) -> Flow[bytes]:
        """The sans-IO flow of :meth:`sign_bytes`."""
        from .iam import iam_base, sign_blob_flow

        email = yield from self._email_flow()
        base = iam_base(self, self._iam_override, target=email, source="compute_engine")
        return (yield from sign_blob_flow(self, base, email, bytes(message),
                                          retry=self._retry))

    def sign_bytes(self, message: bytes) -> bytes:
        """RS256 signature of ``message`` by the VM's account (IAM ``signBlob``, with the VM's
        own token), blocking, with gcauth's default sender."""
        return run_sync(self.sign_flow(message), resolve_request(None).send)

    async def asign_bytes(self, message: bytes, request: AsyncRequest) -> bytes:
        """Async :meth:`sign_bytes`, sent with ``request``."""
        return await run_async(self.sign_flow(message), request.send)

    def token_flow(self, now: datetime) -> Flow[Token]:
        reply = yield from _md.token_flow(metadata_host(), self._account,
                                          self.effective_scopes(), timeout=self._timeout,
                                          retry=self._retry)
        assert reply.access_token is not None
        return Token(reply.access_token, expiry=reply.expiry(now), scopes=reply.scope,
                     issued_at=now)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(type="compute_engine", account=self.service_account_email)
        return info

    def _describe(self) -> str:
        return f"account={self.service_account_email!r} scopes={self.effective_scopes()!r}"


class IDTokenCredentials(_Base, Signing):
    """ID tokens of the VM's account for ``target_audience`` (google-auth's
    ``google.auth.compute_engine.IDTokenCredentials``). They are credentials:
    ``Authorization: Bearer <ID token>`` on every gcauth transport, same cache.

    With ``use_metadata_identity_endpoint=True`` the metadata server's identity endpoint
    mints them (``format=full``); otherwise a JWT with a ``target_audience`` claim is signed by
    IAM ``signBlob`` as the account (or by ``signer``) and exchanged at ``token_uri``.
    ``request`` is accepted for google-auth compatibility; the account's email is asked from
    the metadata server on the first refresh that needs it, not in the constructor.
    """

    def __init__(
        self,
        request: object | None,
        target_audience: str,
        token_uri: str | None = None,
        additional_claims: Mapping[str, Any] | None = None,
        service_account_email: str | None = None,
        signer: Any = None,
        use_metadata_identity_endpoint: bool = False,
        quota_project_id: str | None = None,
        *,
        iam_endpoint_override: str | None = None,
        timeout: float = 3.0,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
    ):
        from ._endpoints import check_endpoint
        from ._protocol.rfc6749 import GOOGLE_TOKEN_URI

        super().__init__(quota_project_id=quota_project_id, clock=clock)
        if use_metadata_identity_endpoint and (token_uri or additional_claims
                                               or service_account_email or signer):
            raise UsageError("with use_metadata_identity_endpoint=True, token_uri, "
                             "additional_claims, service_account_email and signer must not be "
                             "set: the metadata server mints the token itself.")
        self._audience = target_audience
        self._metadata = bool(use_metadata_identity_endpoint)
        self._token_uri = check_endpoint(token_uri or GOOGLE_TOKEN_URI, field="token_uri",
                                         source="compute_engine.IDTokenCredentials")
        self._claims = dict(additional_claims or {})
        self._vm = Credentials(service_account_email or "default", timeout=timeout, retry=retry,
                               iam_endpoint_override=iam_endpoint_override)
        self._signer = signer
        self._timeout = checked_timeout(timeout)
        self._retry = retry

    @property
    def target_audience(self) -> str:
        return self._audience

    @property
    def use_metadata_identity_endpoint(self) -> bool:
        return self._metadata

    @property
    def service_account_email(self) -> str:
        return self._vm.service_account_email

    @property
    def signer_email(self) -> str:
        return self._vm.signer_email

    @property
    def id_token(self) -> str | None:
        return self.token

    def with_target_audience(self, target_audience: str) -> IDTokenCredentials:
        return self._replace(_audience=target_audience)

    def with_token_uri(self, token_uri: str) -> IDTokenCredentials:
        from ._endpoints import check_endpoint

        if self._metadata:
            raise UsageError("with use_metadata_identity_endpoint=True, token_uri must not be "
                             "set.")
        return self._replace(_token_uri=check_endpoint(
            token_uri, field="token_uri", source="compute_engine.IDTokenCredentials"))

    def sign_bytes(self, message: bytes) -> bytes:
        if self._metadata:
            raise UsageError("no signer with use_metadata_identity_endpoint=True: use "
                             "compute_engine.Credentials().sign_bytes(...) instead.")
        if self._signer is not None:
            signature: bytes = self._signer.sign(message)
            return signature
        return self._vm.sign_bytes(message)

    def _sign_flow(self, message: bytes) -> Flow[bytes]:
        from .iam import Signer

        if isinstance(self._signer, Signer):
            return (yield from self._signer.sign_flow(message))
        if self._signer is not None:
            signature: bytes = self._signer.sign(message)
            return signature
        return (yield from self._vm.sign_flow(message))

    def token_flow(self, now: datetime) -> Flow[Token]:
        from ._protocol import jwt as _jwt
        from ._protocol.idtoken import token_times
        from ._protocol.rfc6749 import token_exchange
        from ._protocol.rfc7523 import JWT_BEARER_GRANT, MAX_LIFETIME

        if not self._audience:
            raise RefreshError("an ID token needs an audience: pass target_audience=.",
                               endpoint=_md.base_url(metadata_host()))
        if self._metadata:
            value = yield from _md.identity_flow(metadata_host(), "default", self._audience,
                                                 timeout=self._timeout, retry=self._retry)
            endpoint = _md.base_url(metadata_host()) + "instance/service-accounts/default/identity"
        else:
            email = yield from self._vm._email_flow()
            iat = int(now.timestamp())
            claims = {"iat": iat, "exp": iat + MAX_LIFETIME, "iss": email,
                      "aud": self._token_uri, "target_audience": self._audience,
                      **self._claims}
            key_id = getattr(self._signer, "key_id", None)
            signing_input = (f"{_jwt.encode_header(key_id if isinstance(key_id, str) else None)}."
                             f"{_jwt.b64url_encode(_jwt._DUMPS(claims).encode())}")
            signature = yield from self._sign_flow(signing_input.encode("ascii"))
            assertion = f"{signing_input}.{_jwt.b64url_encode(signature)}"
            reply = yield from token_exchange(
                self._token_uri, {"grant_type": JWT_BEARER_GRANT, "assertion": assertion},
                retry=self._retry, timeout=self._timeout, require_access_token=False)
            if not reply.id_token:
                raise RefreshError(f"token endpoint {self._token_uri} replied without an "
                                   "id_token.", endpoint=self._token_uri)
            value, endpoint = reply.id_token, self._token_uri
        expiry, issued = token_times(value, endpoint)
        return Token(value, expiry=expiry, id_token=value, issued_at=issued or now)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(type="compute_engine_id_token", account=self._vm.service_account_email,
                    audience=self._audience,
                    token_uri=None if self._metadata else self._token_uri)
        return info

    def _describe(self) -> str:
        return (f"account={self._vm.service_account_email!r} audience={self._audience!r} "
                f"metadata_identity_endpoint={self._metadata!r}")


def get_project_id(request: Request | None = None, timeout: float = 3.0) -> str:
    """The project id of the VM, from the metadata server."""
    return run_sync(_md.project_id_flow(metadata_host(), timeout=timeout),
                    resolve_request(request).send)
