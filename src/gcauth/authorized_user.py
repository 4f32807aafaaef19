"""User credentials: an OAuth 2.0 refresh token (RFC 6749 §6), as the ADC user file holds.

This is what ``gcauth auth application-default login`` (like gcloud's) writes::

    {"type": "authorized_user", "client_id": ..., "client_secret": ...,
     "refresh_token": ..., "quota_project_id": ...}

``quota_project_id`` is sent as ``X-Goog-User-Project`` on API requests (AIP-4113).
The constructor mirrors ``google.oauth2.credentials.Credentials``.

The file may also hold the last access token, as google-auth's ``to_json()`` writes it
(Google's quickstarts keep one in ``token.json``)::

    {..., "token": "ya29...", "expiry": "2026-01-01T12:00:00.000000Z"}

A token with its expiry is loaded, so an expired one reads as ``expired`` and is refreshed
rather than sending the user through login again; :meth:`Credentials.to_json` writes them back.
As in google-auth, credentials loaded from a file with no usable token are ``expired`` too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from . import _checks, _files
from ._endpoints import DEFAULT_UNIVERSE_DOMAIN, check_endpoint
from ._http import DEFAULT_TIMEOUT, Flow, checked_timeout
from ._info import (
    LOGIN_COMMAND,
    credential_origin,
    optional_id,
    optional_str,
    relogin_fix,
    require_str,
    require_type,
    unreachable,
)
from ._protocol.rfc6749 import GOOGLE_TOKEN_URI, scopes_param, token_exchange
from ._retry import RetryPolicy
from .credentials import Scoped, _scope_tuple
from .exceptions import MalformedCredentialsError, RefreshError, TransportError
from .tokens import Clock, Token

__all__ = ["Credentials"]

_FIX = f"Run `{LOGIN_COMMAND}` to create a new one."
_TOKEN_FIX = "Remove the 'token' and 'expiry' fields: a new token is fetched on first use."
_LONG_AGO = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Credentials(Scoped):
    """A user's refresh token plus the OAuth client it was issued to."""

    def __init__(
        self,
        token: str | None = None,
        refresh_token: str | None = None,
        id_token: str | None = None,
        token_uri: str | None = GOOGLE_TOKEN_URI,
        client_id: str | None = None,
        client_secret: str | None = None,
        scopes: Sequence[str] | None = None,
        default_scopes: Sequence[str] | None = None,
        quota_project_id: str | None = None,
        expiry: datetime | None = None,
        *,
        granted_scopes: Sequence[str] | None = None,
        account: str | None = None,
        universe_domain: str = DEFAULT_UNIVERSE_DOMAIN,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock | None = None,
    ):
        super().__init__(quota_project_id=quota_project_id, clock=clock)
        self._refresh_token = refresh_token
        self._id_token = id_token
        self._token_uri = token_uri or GOOGLE_TOKEN_URI
        self._client_id = client_id
        self._client_secret = client_secret
        self._scopes = _scope_tuple(scopes)
        self._default_scopes = _scope_tuple(default_scopes)
        self._granted_scopes = _scope_tuple(granted_scopes)
        self._account = account
        self._universe_domain = universe_domain
        self._retry = retry
        self._timeout = checked_timeout(timeout)
        self._rotation_lock = threading.Lock()
        self._loaded = False
        if token is not None:
            if expiry is not None and expiry.tzinfo is None:  # google-auth passes naive UTC
                expiry = expiry.replace(tzinfo=timezone.utc)
            self._cache.set(Token(token, expiry=expiry, scopes=self._scopes, id_token=id_token))

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def from_authorized_user_info(
        cls,
        info: Mapping[str, Any],
        scopes: Sequence[str] | None = None,
        *,
        allowed_hosts: Collection[str] = (),
        source: str = "<authorized user info>",
        **kwargs: Any,
    ) -> Credentials:
        """Build from an ADC user file's content (``type: authorized_user``)."""
        if not isinstance(info, Mapping):
            raise MalformedCredentialsError(
                f"{source}: authorized user info must be a JSON object. {_FIX}", source=source)
        if "type" in info:
            require_type(info, "authorized_user", source, _FIX)
        client_id = require_str(info, "client_id", source, _FIX)
        client_secret = require_str(info, "client_secret", source, _FIX)
        refresh_token = require_str(info, "refresh_token", source, _FIX)
        token_uri = optional_str(info, "token_uri", source) or GOOGLE_TOKEN_URI
        check_endpoint(token_uri, field="token_uri", source=source, allowed_hosts=allowed_hosts)
        raw_scopes = info.get("scopes")
        if scopes is None and raw_scopes is not None:
            if isinstance(raw_scopes, str) or (
                isinstance(raw_scopes, list) and all(isinstance(s, str) for s in raw_scopes)
            ):
                scopes = _scope_tuple(raw_scopes)
            else:
                raise MalformedCredentialsError(
                    f"{source}: field 'scopes' must be a list of strings.",
                    source=source, field="scopes")
        kwargs.setdefault("quota_project_id", optional_id(info, "quota_project_id", source))
        kwargs.setdefault("account", optional_str(info, "account", source))
        kwargs.setdefault("universe_domain",
                          optional_str(info, "universe_domain", source) or DEFAULT_UNIVERSE_DOMAIN)
        token, expiry = _saved_token(info, source)
        credentials = cls(token, refresh_token=refresh_token, token_uri=token_uri,
                          client_id=client_id, client_secret=client_secret, scopes=scopes,
                          expiry=expiry, **kwargs)
        credentials._loaded = True
        if not source.startswith("<"):
            credentials._source_file = source
        return credentials

    @classmethod
    def from_authorized_user_file(
        cls, filename: str | os.PathLike[str], scopes: Sequence[str] | None = None, **kwargs: Any
    ) -> Credentials:
        name = os.fspath(filename)
        info = _files.read_json_file(name, what="authorized user file",
                                     fix=f"run `{LOGIN_COMMAND}` to create it again")
        return cls.from_authorized_user_info(info, scopes, source=name, **kwargs)

    # -- configuration --------------------------------------------------------------------
    @property
    def refresh_token(self) -> str | None:
        return self._refresh_token

    @property
    def id_token(self) -> str | None:
        token = self._cache.token
        return token.id_token if token is not None and token.id_token else self._id_token

    @property
    def token_uri(self) -> str:
        return self._token_uri

    @property
    def client_id(self) -> str | None:
        return self._client_id

    @property
    def client_secret(self) -> str | None:
        return self._client_secret

    @property
    def granted_scopes(self) -> tuple[str, ...] | None:
        return self._granted_scopes

    @property
    def account(self) -> str | None:
        return self._account

    @property
    def requires_scopes(self) -> bool:
        return False

    @property
    def expired(self) -> bool:
        """Whether the token has expired; as in google-auth, credentials loaded from a file or
        dict with no usable token are expired too (so ``if creds.expired and
        creds.refresh_token: creds.refresh(request)`` refreshes them)."""
        if self._loaded and self._cache.token is None:
            return True
        return super().expired

    def to_json(self, strip: Sequence[str] | None = None) -> str:
        """The ADC user file content, as JSON (``strip`` names fields to leave out).

        With a current token, ``token`` and ``expiry`` (naive UTC ISO 8601 with a ``Z``, as
        google-auth writes it) are included, so the quickstart's ``token.json`` keeps its
        token; google-auth's ``from_authorized_user_info`` reads the result, and
        :meth:`from_authorized_user_info` reads google-auth's. It holds a refresh token: write
        it where only its owner can read it (``gcauth`` writes its files with mode 0600).
        """
        import json

        data: dict[str, Any] = {
            "type": "authorized_user",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "refresh_token": self._refresh_token,
        }
        if self._token_uri != GOOGLE_TOKEN_URI:
            data["token_uri"] = self._token_uri
        if self._quota_project_id:
            data["quota_project_id"] = self._quota_project_id
        if self._account:
            data["account"] = self._account
        if self._universe_domain != DEFAULT_UNIVERSE_DOMAIN:
            data["universe_domain"] = self._universe_domain
        token = self._cache.token
        if token is not None:
            data["token"] = token.access_token
            if token.expiry is not None:
                naive = token.expiry.astimezone(timezone.utc).replace(tzinfo=None)
                data["expiry"] = naive.isoformat() + "Z"
        for name in strip or ():
            data.pop(name, None)
        return json.dumps(data, indent=2, sort_keys=True)

    # -- tokens ---------------------------------------------------------------------------
    def token_flow(self, now: datetime) -> Flow[Token]:
        if not (self._refresh_token and self._client_id and self._client_secret):
            raise RefreshError(
                "these user credentials cannot refresh: refresh_token, client_id and "
                f"client_secret are all needed. {_FIX}", endpoint=self._token_uri)
        params = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        scope = scopes_param(self._scopes)
        if scope:
            params["scope"] = scope
        try:
            reply = yield from token_exchange(
                self._token_uri, params, retry=self._retry, timeout=self._timeout)
        except RefreshError as exc:
            if exc.error == "invalid_grant":
                origin = credential_origin(self._source_file, self._source_via)
                raise RefreshError(
                    f"{exc} Your login{origin} has expired or was revoked: "
                    f"{relogin_fix(self._source_file, self._source_via)}.", error=exc.error,
                    error_description=exc.error_description,
                    status=exc.status, endpoint=exc.endpoint, retryable=False) from None
            raise
        except TransportError as exc:
            raise unreachable(exc, "the token endpoint", self._source_file,
                              self._source_via) from None
        if reply.refresh_token and reply.refresh_token != self._refresh_token:
            with self._rotation_lock:  # RFC 6749 §6: the server may rotate the refresh token
                self._refresh_token = reply.refresh_token
        assert reply.access_token is not None
        return Token(reply.access_token, expiry=reply.expiry(now),
                     scopes=reply.scope or self._scopes, id_token=reply.id_token, issued_at=now)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        # no scopes asked for: the refresh token gets every scope granted at login
        info.update(type="authorized_user", account=self._account,
                    scopes=list(self._scopes) if self._scopes else None,
                    token_uri=self._token_uri)
        return info

    def _describe(self) -> str:
        return (f"account={self._account!r} client_id={self._client_id!r} "
                f"scopes={self._scopes!r} quota_project_id={self._quota_project_id!r}")


def _saved_token(info: Mapping[str, Any], source: str) -> tuple[str | None, datetime | None]:
    """The ``token`` and ``expiry`` a file may hold (google-auth's ``to_json`` writes them);
    a token without an expiry is not used (google-auth treats it as expired)."""
    token = info.get("token")
    if token is None or token == "":
        return None, None
    if not _checks.is_b64token(token):
        raise MalformedCredentialsError(
            f"{source}: field 'token' is not an access token (letters, digits and -._~+/ "
            f"only). {_TOKEN_FIX}", source=source, field="token")
    raw = info.get("expiry")
    if raw is None or raw == "":
        return None, None
    if not isinstance(raw, str):
        raise MalformedCredentialsError(
            f"{source}: field 'expiry' must be a string like 2026-01-01T12:00:00Z. "
            f"{_TOKEN_FIX}", source=source, field="expiry")
    text = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        expiry = datetime.fromisoformat(text)
        if expiry.tzinfo is None:  # google-auth writes naive UTC
            expiry = expiry.replace(tzinfo=timezone.utc)
        expiry = expiry.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise MalformedCredentialsError(
            f"{source}: field 'expiry' is not an ISO 8601 time like 2026-01-01T12:00:00Z. "
            f"{_TOKEN_FIX}", source=source, field="expiry") from None
    # long past is just expired (and keeps the refresh-window arithmetic inside datetime's range)
    return token, max(expiry, _LONG_AGO)
