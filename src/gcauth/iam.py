"""Signing without a private key: IAM ``signBlob`` and ``signJwt`` as another identity.

::

    from gcauth import iam
    signer = iam.Signer(request, credentials, "app@project.iam.gserviceaccount.com")
    signature = signer.sign(b"payload")       # RS256 by the account's Google-managed key

``credentials`` are the *caller's* (any gcauth credentials whose token carries the
``cloud-platform`` or ``iam`` scope); the caller needs the Service Account Token Creator role on
the account (a service account signing as itself needs it on itself). Every IAM Credentials
call goes to one base: ``iam_endpoint_override=`` when given, else
``https://iamcredentials.<universe domain>``, checked by the same allow-list as ``token_uri``.

The calls are sans-IO flows like every other gcauth request: the caller's token comes from the
caller's own cache (one refresh for everyone, sync and async), a 401 from IAM invalidates it and
retries once with a fresh one, and transient errors (429, 5xx) are retried with backoff.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._http import DEFAULT_TIMEOUT, Flow, checked_timeout, run_async, run_sync
from ._protocol import iamcredentials as _iam
from ._retry import RetryPolicy
from ._sender import resolve_request
from .credentials import Credentials
from .exceptions import RefreshError, UsageError
from .tokens import Token

if TYPE_CHECKING:
    from ._http import AsyncRequest, Request

__all__ = ["IAM_SCOPE", "Signer"]

T = TypeVar("T")

#: The scope IAM Credentials calls need (``cloud-platform`` works too).
IAM_SCOPE = _iam.IAM_SCOPE


def principal_of(credentials: Credentials) -> str | None:
    """The IAM member ``credentials`` act as (``user:...``, ``serviceAccount:...``), when
    known: for error messages that say who lacks a role."""
    info = credentials.describe()
    account = info.get("account")
    if not isinstance(account, str) or not account or account == "default":
        token = credentials.current_token  # a user login names its account in its ID token
        account = _email_of(token.id_token) if token is not None and token.id_token else None
        if account is None:
            return None
    return ("user:" if info.get("type") == "authorized_user" else "serviceAccount:") + account


def _email_of(id_token: str) -> str | None:
    from ._protocol import jwt as _jwt

    try:
        email = _jwt.decode(id_token)[1].get("email")
    except _jwt.JWTError:
        return None
    return email if isinstance(email, str) and "@" in email else None


def iam_base(credentials: Credentials, override: str | None, *, target: str | None,
             source: str, allowed_hosts: Collection[str] = ()) -> str:
    """The base every IAM Credentials call of these credentials uses: the override's (checked;
    it must name ``target`` if it names an account), else Google's in the credentials'
    universe."""
    if override is None:
        return _iam.default_base(credentials.universe_domain)
    base, named = _iam.split_endpoint(override, field="iam_endpoint_override", source=source,
                                      allowed_hosts=allowed_hosts)
    if named is not None and target is not None and named != target:
        raise UsageError(
            f"{source}: iam_endpoint_override names the account {named}, but the target is "
            f"{target}. Fix: give the override for {target}, or just the endpoint's base URL.")
    return base


def authorized(credentials: Credentials, call: Callable[[Mapping[str, str]], Flow[T]]) -> Flow[T]:
    """Flow: ``call(headers)`` with ``credentials``' token (from its own cache); if IAM answers
    401 the token is invalidated and the call made once more with a fresh one."""
    token = cast(Token, (yield credentials.token_step()))
    try:
        return (yield from call(credentials.headers_for(token)))
    except RefreshError as exc:
        if exc.status != 401:
            raise
    credentials.invalidate(token)
    token = cast(Token, (yield credentials.token_step(fresh=True)))
    return (yield from call(credentials.headers_for(token)))


def sign_blob_flow(credentials: Credentials, base: str, email: str, message: bytes, *,
                   delegates: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT,
                   retry: RetryPolicy | None = None) -> Flow[bytes]:
    """Flow: the signature IAM ``signBlob`` makes of ``message`` as ``email``."""
    body: dict[str, Any] = {"payload": base64.b64encode(message).decode("ascii")}
    if delegates:
        body["delegates"] = list(delegates)

    def call(headers: Mapping[str, str]) -> Flow[bytes]:
        caller = _iam.Caller(principal_of(credentials), email, delegates)
        data = yield from _iam.call_flow(base, "signBlob", caller, body, headers,
                                         timeout=timeout, retry=retry)
        return _iam.parse_sign_blob(data, _iam.method_url(base, email, "signBlob"))[1]

    return authorized(credentials, call)


def sign_jwt_flow(credentials: Credentials, base: str, email: str, claims: Mapping[str, Any],
                  *, delegates: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT,
                  retry: RetryPolicy | None = None) -> Flow[str]:
    """Flow: the JWT IAM ``signJwt`` signs with ``claims`` as ``email``."""
    body: dict[str, Any] = {"payload": json.dumps(dict(claims), separators=(",", ":"))}
    if delegates:
        body["delegates"] = list(delegates)

    def call(headers: Mapping[str, str]) -> Flow[str]:
        caller = _iam.Caller(principal_of(credentials), email, delegates)
        data = yield from _iam.call_flow(base, "signJwt", caller, body, headers,
                                         timeout=timeout, retry=retry)
        return _iam.parse_sign_jwt(data, _iam.method_url(base, email, "signJwt"))[1]

    return authorized(credentials, call)


def _as_bytes(message: bytes | str) -> bytes:
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    raise UsageError(f"the message to sign must be bytes (or str), not {type(message).__name__}")


class Signer:
    """Signs bytes as ``service_account_email`` through IAM ``signBlob`` (google-auth's
    ``google.auth.iam.Signer``): for signed URLs and JWTs without a private key.

    ``request`` sends the blocking :meth:`sign` calls (``None``: gcauth's default);
    :meth:`asign` uses the async request it is given.
    """

    def __init__(self, request: Request | object | None, credentials: Credentials,
                 service_account_email: str, *, iam_endpoint_override: str | None = None,
                 delegates: Sequence[str] | None = None, allowed_hosts: Collection[str] = (),
                 timeout: float = DEFAULT_TIMEOUT, retry: RetryPolicy | None = None):
        if not isinstance(credentials, Credentials):
            raise UsageError("iam.Signer needs gcauth credentials (the caller's), not "
                             f"{type(credentials).__name__}.")
        if not isinstance(service_account_email, str) or "@" not in service_account_email:
            raise UsageError("iam.Signer needs the email of the service account to sign as.")
        self._request = request
        self._credentials = credentials
        self._email = service_account_email
        self._base = iam_base(credentials, iam_endpoint_override, target=service_account_email,
                              source="iam.Signer", allowed_hosts=allowed_hosts)
        self._delegates = _iam.delegate_names(delegates, source="iam.Signer")
        self._timeout = checked_timeout(timeout)
        self._retry = retry

    @property
    def key_id(self) -> str | None:
        """Always ``None``: which of the account's Google-managed keys IAM uses is not known
        in advance (as in google-auth)."""
        return None

    @property
    def service_account_email(self) -> str:
        return self._email

    def sign_flow(self, message: bytes | str) -> Flow[bytes]:
        """The sans-IO flow of one signature (for callers that drive flows themselves)."""
        return sign_blob_flow(self._credentials, self._base, self._email, _as_bytes(message),
                              delegates=self._delegates, timeout=self._timeout,
                              retry=self._retry)

    def sign(self, message: bytes | str) -> bytes:
        """The RS256 (PKCS#1 v1.5, SHA-256) signature of ``message`` by the account."""
        return run_sync(self.sign_flow(message), resolve_request(self._request).send)

    async def asign(self, message: bytes | str, request: AsyncRequest) -> bytes:
        """Async :meth:`sign`, sent with ``request``."""
        return await run_async(self.sign_flow(message), request.send)

    def __repr__(self) -> str:
        return f"<gcauth.iam.Signer email={self._email!r} base={self._base!r}>"
