"""Identity-pool credentials: a subject token from a file, a URL, or your own supplier.

::

    from gcauth import identity_pool
    credentials = identity_pool.Credentials.from_file("github-wif.json")

``credential_source`` (as gcloud writes it):

* ``{"file": "/var/run/secrets/tokens/gcp", "format": {"type": "text"}}`` -- a file the
  platform keeps fresh (a Kubernetes projected service-account token, a file your CI step
  writes). It is read again for every exchange, so a rotated token is picked up;
* ``{"url": "http://localhost:8080/token", "headers": {"Metadata": "True"}, "format":
  {"type": "json", "subject_token_field_name": "access_token"}}`` -- a local endpoint or your
  identity provider (Azure's instance metadata, a sidecar). It may be any host: it is the
  provider's, and it is sent only the configured headers, never a Google credential;
* ``format`` ``text`` (the whole content, surrounding whitespace removed) or ``json`` (the
  named field of a JSON object).

Or pass ``subject_token_supplier=`` an object with google-auth's ``get_subject_token(context,
request)`` (:class:`SubjectTokenSupplier`): it is called for every exchange (in a worker thread
for async callers); ``request`` is gcauth's default transport request (callable like
google-auth's).

X.509 (mTLS, ``certificate``) sources are not supported yet: loading one is an error that
says so.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import _files
from ._checks import terminal_safe
from ._http import Flow, HttpRequest
from ._json import loads as json_loads
from ._retry import with_retries
from ._sender import resolve_request
from .exceptions import MalformedCredentialsError, RefreshError
from .external_account import (
    GOOGLE_STS_TOKEN_URL,
    MAX_SUBJECT_TOKEN,
    SupplierContext,
    _malformed,
    blocking_step,
    checked_subject_token,
)
from .external_account import Credentials as _External

__all__ = ["Credentials", "SubjectTokenSupplier", "SupplierContext"]

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*")
_SOURCE_SHAPES = ("{'file': PATH}", "{'url': URL, 'headers': {...}}",
                  "{'environment_id': 'aws1', ...} (type external_account, gcauth.aws)",
                  "{'executable': {'command': ...}} (gcauth.pluggable)")


class SubjectTokenSupplier(abc.ABC):
    """Your own source of subject tokens (google-auth's interface)."""

    @abc.abstractmethod
    def get_subject_token(self, context: SupplierContext, request: Any) -> str:
        """A current subject token for ``context.audience``; raise to fail the refresh."""


class _Format:
    __slots__ = ("kind", "field")

    def __init__(self, kind: str, field: str | None):
        self.kind, self.field = kind, field


def _parse_format(raw: object, source: str) -> _Format:
    if raw is None:
        return _Format("text", None)
    if not isinstance(raw, Mapping):
        raise _malformed(source, "credential_source.format",
                         "must be an object like {'type': 'text'} or {'type': 'json', "
                         "'subject_token_field_name': 'access_token'}.")
    kind = raw.get("type", "text")
    if kind == "text":
        return _Format("text", None)
    if kind != "json":
        raise _malformed(source, "credential_source.format.type",
                         f"must be 'text' or 'json', not {terminal_safe(str(kind)[:40])!r}.")
    field = raw.get("subject_token_field_name")
    if not isinstance(field, str) or not field:
        raise _malformed(source, "credential_source.format.subject_token_field_name",
                         "is needed with format type 'json' (the field holding the token).")
    return _Format("json", field)


def _parse_headers(raw: object, source: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _malformed(source, "credential_source.headers", "must be an object of strings.")
    headers = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name) or \
                not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise _malformed(source, "credential_source.headers",
                             "must map header names to single-line string values.")
        headers[name] = value  # the provider's own credentials may travel here: the user's
    return headers


class Credentials(_External):
    """``external_account`` credentials whose subject token is read from a file, fetched
    from a URL, or given by a supplier."""

    def __init__(
        self,
        audience: str,
        subject_token_type: str,
        token_url: str = GOOGLE_STS_TOKEN_URL,
        credential_source: Mapping[str, Any] | None = None,
        *args: Any,
        subject_token_supplier: SubjectTokenSupplier | None = None,
        **kwargs: Any,
    ):
        super().__init__(audience, subject_token_type, token_url, credential_source, *args,
                         **kwargs)
        source = self._where
        self._supplier = subject_token_supplier
        self._file: str | None = None
        self._url: str | None = None
        self._headers: dict[str, str] = {}
        self._format = _Format("text", None)
        if subject_token_supplier is not None:
            if credential_source is not None:
                raise _malformed(source, "credential_source",
                                 "cannot be given together with subject_token_supplier.")
            if not callable(getattr(subject_token_supplier, "get_subject_token", None)):
                raise _malformed(source, "subject_token_supplier",
                                 "must have a get_subject_token(context, request) method.")
            self.source_kind = "supplier"
            return
        if not isinstance(credential_source, Mapping):
            raise _malformed(source, "credential_source",
                             "is missing: it says where the subject token comes from ("
                             + "; ".join(_SOURCE_SHAPES) + ").")
        if "certificate" in credential_source:
            raise _malformed(source, "credential_source.certificate",
                             "(X.509 workload identity federation) is not supported by "
                             "gcauth yet; use a file or URL source.")
        if "environment_id" in credential_source or "executable" in credential_source:
            kind = "gcauth.aws" if "environment_id" in credential_source else "gcauth.pluggable"
            raise _malformed(source, "credential_source",
                             f"describes a source identity_pool does not read: load the file "
                             f"with gcauth.default(), gcauth.external_account.from_file() or "
                             f"{kind}.")
        has_file, has_url = "file" in credential_source, "url" in credential_source
        if has_file == has_url:
            raise _malformed(source, "credential_source",
                             "must have exactly one of 'file' and 'url' (shapes: "
                             + "; ".join(_SOURCE_SHAPES) + ").")
        if has_file:
            path = credential_source["file"]
            if not isinstance(path, str) or not path or "\0" in path:
                raise _malformed(source, "credential_source.file", "must be a file path.")
            self._file = path
            self.source_kind = "file"
        else:
            url = credential_source["url"]
            if not isinstance(url, str) or not _URL.fullmatch(url) or not url.isascii():
                raise _malformed(source, "credential_source.url",
                                 "must be an http(s) URL without spaces.")
            self._url = url
            self._headers = _parse_headers(credential_source.get("headers"), source)
            self.source_kind = "url"
        self._format = _parse_format(credential_source.get("format"), source)

    @property
    def subject_token_supplier(self) -> SubjectTokenSupplier | None:
        return self._supplier

    # -- the subject token --------------------------------------------------------------
    def subject_token_flow(self, now: datetime) -> Flow[str]:
        if self._supplier is not None:
            return (yield from self._supplied())
        if self._file is not None:
            return self._from_file(self._file)
        assert self._url is not None
        return (yield from self._from_url(self._url))

    def _supplied(self) -> Flow[str]:
        supplier = self._supplier
        assert supplier is not None
        context = SupplierContext(self._subject_token_type, self._audience)

        def call() -> object:
            return supplier.get_subject_token(context, resolve_request(None))

        where = f"the subject token supplier {type(supplier).__qualname__}"
        try:
            value = yield blocking_step(call)
        except RefreshError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code: named, not echoed
            raise RefreshError(f"{where} raised {type(exc).__name__}: "
                               f"{terminal_safe(str(exc)[:200])}") from exc
        return checked_subject_token(value, where)

    def _from_file(self, path: str) -> str:
        field = "credential_source.file"
        where = f"the subject token file {path} ({field} of {self._where})"
        try:
            data = _files.read_bounded(
                path, what="subject token file", max_bytes=MAX_SUBJECT_TOKEN * 2,
                fix=f"check that the platform writes the token there, or fix {field} in "
                    f"{self._where}")
        except MalformedCredentialsError as exc:
            raise RefreshError(str(exc)) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RefreshError(f"{where} is not UTF-8 text.") from None
        return checked_subject_token(self._extract(text, where), where)

    def _from_url(self, url: str) -> Flow[str]:
        request = HttpRequest("GET", url, dict(self._headers), None, self._timeout)
        where = f"the subject token URL {request.endpoint} (credential_source.url of " \
                f"{self._where})"

        def attempt() -> Flow[str]:
            response = yield request
            assert response is not None
            if not 200 <= response.status < 300:
                raise RefreshError(
                    f"{where} answered HTTP {response.status}. Check that the identity "
                    "provider's endpoint is up and that credential_source.headers are what "
                    "it needs.", status=response.status, endpoint=request.endpoint,
                    retryable=response.status in (408, 429, 500, 502, 503, 504))
            try:
                text = response.body.decode("utf-8")
            except UnicodeDecodeError:
                raise RefreshError(f"{where} answered with a body that is not UTF-8 text.",
                                   endpoint=request.endpoint) from None
            return checked_subject_token(self._extract(text, where), where)

        return (yield from with_retries(attempt, self._retry))

    def _extract(self, text: str, where: str) -> object:
        if self._format.kind == "text":
            return text
        field = self._format.field
        try:
            data = json_loads(text)
        except ValueError:
            raise RefreshError(f"{where} is not JSON, but credential_source.format says "
                               "'json'. Fix the format, or the source.") from None
        if not isinstance(data, dict):
            raise RefreshError(f"{where} holds JSON that is not an object.")
        if field not in data:
            raise RefreshError(
                f"{where} has no field {field!r} (credential_source.format."
                f"subject_token_field_name); its fields: "
                f"{terminal_safe(', '.join(sorted(map(str, data)))[:200]) or 'none'}.")
        return data[field]

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(subject_token_file=self._file, subject_token_url=self._url,
                    subject_token_format=self._format.kind)
        return info
