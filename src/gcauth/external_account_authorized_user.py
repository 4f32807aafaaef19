"""Workforce identity federation users: a refresh token issued through a workforce pool.

``gcloud auth application-default login --login-config=...`` writes this file for a person
who signs in with their organisation's identity provider (Okta, Entra ID...)::

    {"type": "external_account_authorized_user",
     "audience": "//iam.googleapis.com/locations/global/workforcePools/POOL/providers/PROVIDER",
     "refresh_token": "...", "token_url": "https://sts.googleapis.com/v1/oauthtoken",
     "token_info_url": "https://sts.googleapis.com/v1/introspect",
     "revoke_url": "https://sts.googleapis.com/v1/revoke",
     "client_id": "...", "client_secret": "...", "universe_domain": "googleapis.com"}

Tokens are refreshed at ``token_url`` (RFC 6749 §6) with the client authenticated by HTTP
Basic; a rotated refresh token replaces the old one. :meth:`Credentials.revoke` revokes the
refresh token at ``revoke_url``. ``token_url``, ``token_info_url`` and ``revoke_url`` must be
Google's STS (or loopback, or named in ``allowed_hosts``), checked when the file is loaded.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from . import _files
from ._endpoints import DEFAULT_UNIVERSE_DOMAIN, check_google_service
from ._http import DEFAULT_TIMEOUT, Flow, checked_timeout, run_async, run_sync
from ._info import credential_origin, optional_id, optional_str, relogin_fix, unreachable
from ._protocol.rfc6749 import parse_error, scopes_param, token_exchange, token_request
from ._protocol.sts import basic_auth
from ._retry import RetryPolicy
from ._sender import resolve_request
from .credentials import Scoped, _scope_tuple
from .exceptions import MalformedCredentialsError, RefreshError, TransportError, UsageError
from .tokens import Clock, Token

if TYPE_CHECKING:
    from ._http import AsyncRequest

__all__ = ["Credentials"]

TYPE = "external_account_authorized_user"
_FIX = ("Sign in again with `gcloud auth application-default login --login-config=FILE` "
        "(workforce identity federation).")


class Credentials(Scoped):
    """A workforce identity user's refresh token plus the OAuth client it belongs to."""

    def __init__(
        self,
        token: str | None = None,
        expiry: datetime | None = None,
        refresh_token: str | None = None,
        audience: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_url: str | None = None,
        token_info_url: str | None = None,
        revoke_url: str | None = None,
        scopes: Sequence[str] | None = None,
        quota_project_id: str | None = None,
        universe_domain: str = DEFAULT_UNIVERSE_DOMAIN,
        *,
        allowed_hosts: Collection[str] = (),
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock | None = None,
        source: str = "<external account authorized user info>",
    ):
        super().__init__(quota_project_id=quota_project_id, clock=clock)
        self._where = source
        self._universe_domain = universe_domain or DEFAULT_UNIVERSE_DOMAIN

        def url(value: str | None, field: str) -> str | None:
            if value is None:
                return None
            return check_google_service(value, "sts", field=field, source=source,
                                        universe_domain=self._universe_domain,
                                        allowed_hosts=allowed_hosts)

        self._token_url = url(token_url, "token_url")
        self._token_info_url = url(token_info_url, "token_info_url")
        self._revoke_url = url(revoke_url, "revoke_url")
        self._refresh_token = refresh_token
        self._audience = audience
        self._client_id = client_id
        self._client_secret = client_secret
        self._scopes = _scope_tuple(scopes)
        self._retry = retry
        self._timeout = checked_timeout(timeout)
        self._rotation_lock = threading.Lock()
        if token is not None:
            if expiry is not None and expiry.tzinfo is None:
                expiry = expiry.replace(tzinfo=timezone.utc)
            self._cache.set(Token(token, expiry=expiry, scopes=self._scopes))

    # -- loading --------------------------------------------------------------------------
    @classmethod
    def from_info(cls, info: Mapping[str, Any], **kwargs: Any) -> Credentials:
        source = kwargs.pop("source", "<external account authorized user info>")
        if not isinstance(info, Mapping):
            raise MalformedCredentialsError(f"{source}: the file must be a JSON object. {_FIX}",
                                            source=source)
        kind = info.get("type")
        if kind is not None and kind != TYPE:
            raise MalformedCredentialsError(f"{source}: type is {kind!r}, not {TYPE!r}. {_FIX}",
                                            source=source, field="type")
        fields: dict[str, Any] = {}
        for field in ("refresh_token", "audience", "client_id", "client_secret", "token_url",
                      "token_info_url", "revoke_url", "token", "universe_domain"):
            fields[field] = optional_str(info, field, source)
        if not fields["refresh_token"] or not fields["token_url"]:
            missing = "refresh_token" if not fields["refresh_token"] else "token_url"
            raise MalformedCredentialsError(f"{source}: required field {missing!r} is missing. "
                                            f"{_FIX}", source=source, field=missing)
        if not fields["client_id"] or not fields["client_secret"]:
            missing = "client_id" if not fields["client_id"] else "client_secret"
            raise MalformedCredentialsError(
                f"{source}: field {missing!r} is missing: refreshing needs the OAuth client's "
                f"id and secret. {_FIX}", source=source, field=missing)
        fields["universe_domain"] = fields["universe_domain"] or DEFAULT_UNIVERSE_DOMAIN
        fields["quota_project_id"] = optional_id(info, "quota_project_id", source)
        raw_scopes = info.get("scopes")
        if raw_scopes is not None and not (isinstance(raw_scopes, list) and all(
                isinstance(s, str) for s in raw_scopes)):
            raise MalformedCredentialsError(f"{source}: field 'scopes' must be a list of "
                                            "strings.", source=source, field="scopes")
        fields["scopes"] = raw_scopes
        expiry = None
        raw_expiry = info.get("expiry")
        if fields["token"] and isinstance(raw_expiry, str):
            try:
                expiry = datetime.fromisoformat(raw_expiry.replace("Z", "+00:00"))
            except ValueError:
                raise MalformedCredentialsError(f"{source}: field 'expiry' is not an ISO 8601 "
                                                "time.", source=source, field="expiry") from None
        elif fields["token"]:
            fields["token"] = None  # a token without an expiry is not trusted
        if kwargs.get("scopes") is None:
            kwargs.pop("scopes", None)
        fields.update(kwargs)
        try:
            credentials = cls(expiry=expiry, source=source, **fields)
        except UsageError as exc:
            raise MalformedCredentialsError(f"{source}: {exc} {_FIX}", source=source) from None
        if not source.startswith("<"):
            credentials._source_file = source
        return credentials

    @classmethod
    def from_file(cls, filename: str | os.PathLike[str], **kwargs: Any) -> Credentials:
        name = os.fspath(filename)
        info = _files.read_json_file(name, what="external account authorized user file",
                                     fix="point at an external_account_authorized_user file")
        return cls.from_info(info, source=name, **kwargs)

    # -- configuration --------------------------------------------------------------------
    @property
    def refresh_token(self) -> str | None:
        return self._refresh_token

    @property
    def audience(self) -> str | None:
        return self._audience

    @property
    def client_id(self) -> str | None:
        return self._client_id

    @property
    def client_secret(self) -> str | None:
        return self._client_secret

    @property
    def token_url(self) -> str | None:
        return self._token_url

    @property
    def token_info_url(self) -> str | None:
        return self._token_info_url

    @property
    def revoke_url(self) -> str | None:
        return self._revoke_url

    @property
    def requires_scopes(self) -> bool:
        return False

    @property
    def info(self) -> dict[str, Any]:
        """The file's content (google-auth's ``info``); it holds the refresh token."""
        data: dict[str, Any] = {"type": TYPE}
        for key, value in (("audience", self._audience),
                           ("refresh_token", self._refresh_token),
                           ("token_url", self._token_url),
                           ("token_info_url", self._token_info_url),
                           ("revoke_url", self._revoke_url),
                           ("client_id", self._client_id),
                           ("client_secret", self._client_secret),
                           ("quota_project_id", self._quota_project_id)):
            if value:
                data[key] = value
        token = self._cache.token
        if token is not None:
            data["token"] = token.access_token
            if token.expiry is not None:
                data["expiry"] = token.expiry.astimezone(timezone.utc).isoformat().replace(
                    "+00:00", "Z")
        data["universe_domain"] = self._universe_domain
        return data

    def to_json(self, strip: Sequence[str] | None = None) -> str:
        data = self.info
        for name in strip or ():
            data.pop(name, None)
        return json.dumps(data, indent=2, sort_keys=True)

    # -- tokens ---------------------------------------------------------------------------
    def token_flow(self, now: datetime) -> Flow[Token]:
        if not (self._refresh_token and self._token_url and self._client_id
                and self._client_secret):
            raise RefreshError("these workforce credentials cannot refresh: refresh_token, "
                               f"token_url, client_id and client_secret are all needed. {_FIX}",
                               endpoint=self._token_url)
        params = {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
        scope = scopes_param(self._scopes)
        if scope:
            params["scope"] = scope
        try:
            reply = yield from token_exchange(
                self._token_url, params, headers=basic_auth(self._client_id, self._client_secret),
                retry=self._retry, timeout=self._timeout)
        except RefreshError as exc:
            if exc.error == "invalid_grant":
                origin = credential_origin(self._source_file, self._source_via)
                raise RefreshError(
                    f"{exc} Your workforce sign-in{origin} has expired or was revoked: "
                    f"{relogin_fix(self._source_file, self._source_via)} with "
                    "`gcloud auth application-default login --login-config=FILE`.",
                    error=exc.error, error_description=exc.error_description,
                    status=exc.status, endpoint=exc.endpoint) from None
            raise
        except TransportError as exc:
            raise unreachable(exc, "the STS token endpoint", self._source_file,
                              self._source_via) from None
        if reply.refresh_token and reply.refresh_token != self._refresh_token:
            with self._rotation_lock:
                self._refresh_token = reply.refresh_token
        assert reply.access_token is not None
        return Token(reply.access_token, expiry=reply.expiry(now),
                     scopes=reply.scope or self._scopes, issued_at=now)

    def revoke_flow(self) -> Flow[None]:
        """Flow: revoke the refresh token at ``revoke_url`` (RFC 7009, client authenticated
        by HTTP Basic)."""
        if not self._revoke_url or not self._refresh_token or not self._client_id:
            raise RefreshError("these credentials cannot be revoked: revoke_url, refresh_token "
                               "and client_id are needed.", endpoint=self._revoke_url)
        request = token_request(self._revoke_url, {"token": self._refresh_token},
                                headers=basic_auth(self._client_id, self._client_secret),
                                timeout=self._timeout)
        response = yield request
        assert response is not None
        if not 200 <= response.status < 300:
            raise parse_error(response, request.endpoint, what="revocation")
        self._cache.invalidate(None)

    def revoke(self, request: Any = None) -> None:
        """Revoke the refresh token (google-auth's ``revoke(request)``)."""
        run_sync(self.revoke_flow(), resolve_request(request).send)

    async def arevoke(self, request: AsyncRequest) -> None:
        await run_async(self.revoke_flow(), request.send)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(type=TYPE, token_uri=self._token_url, audience=self._audience,
                    scopes=list(self._scopes) if self._scopes else None,
                    revoke_url=self._revoke_url)
        return info

    def _describe(self) -> str:
        return f"audience={self._audience!r} client_id={self._client_id!r}"
