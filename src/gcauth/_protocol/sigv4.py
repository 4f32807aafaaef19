"""AWS Signature Version 4 (``AWS4-HMAC-SHA256``) request signing and its pieces (pure).

Written from AWS's published algorithm ("Create a signed AWS API request", IAM User Guide) and
checked against AWS's published SigV4 test suite (``tests/data/sigv4``). Workload identity
federation from AWS signs an STS ``GetCallerIdentity`` request with :func:`sign_request`; the
emulator verifies such a request with :func:`parse_authorization`, :func:`canonical_request`,
:func:`string_to_sign`, :func:`signing_key` and :func:`signature`.

The rules, as this module applies them:

* **Canonical URI** (every service but ``s3``): the URL's path *as given* (the form sent on the
  wire) with dot segments removed and runs of ``/`` collapsed (RFC 3986 §5.2.4), then
  URI-encoded: every byte of its UTF-8 form except the unreserved ``A-Z a-z 0-9 - . _ ~`` and
  ``/`` becomes ``%XY`` (upper-case hex). A path that is already percent-encoded is therefore
  encoded a second time (``%20`` → ``%2520``): AWS's "double encoding" for non-S3 services.
  For ``s3`` the path is neither normalised nor double-encoded: each ``/``-separated segment is
  decoded once and encoded once (an encoded ``%2F`` stays one). An empty path is ``/``.
* **Canonical query string**: the query is split on ``&``; each ``name[=value]`` is
  percent-decoded (``+`` is taken literally, as RFC 3986 says, and so becomes ``%2B``) and
  encoded once with the same rule (``/`` encoded too); a missing value is the empty string
  (``name=``); the pairs are sorted by encoded name, then encoded value (repeated names keep
  every value). Empty pieces (``a=1&&b=2``) are skipped.
* **Canonical headers**: names lower-cased and sorted; each value trimmed, runs of spaces and
  tabs collapsed to one space; several values of one name (repeated headers, or the lines of
  an obsolete folded value) joined with ``,`` in the order given. Every header given is
  signed.
* **Payload hash**: the hex SHA-256 of the body (``str`` bodies are UTF-8; ``None`` is empty).
* **String to sign**: ``AWS4-HMAC-SHA256``, the ``x-amz-date``, the credential scope
  ``YYYYMMDD/region/service/aws4_request`` and the hex SHA-256 of the canonical request, one
  per line. The key is ``HMAC("AWS4" + secret, date)`` → region → service → ``aws4_request``.

Nothing here reads the environment, a file or a clock: :func:`sign_request` takes ``now``.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple
from urllib.parse import unquote_to_bytes, urlsplit

from .._value import Value
from ..exceptions import UsageError

__all__ = [
    "ALGORITHM",
    "Authorization",
    "AwsSecurityCredentials",
    "amz_date",
    "canonical_request",
    "credential_scope",
    "parse_authorization",
    "payload_hash",
    "sign_request",
    "signature",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "AWS4-HMAC-SHA256"

#: RFC 3986 unreserved characters: the only bytes AWS leaves unencoded.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_AMZ_DATE = re.compile(r"(\d{8})T\d{6}Z")
#: RFC 9110 §5.6.2 token: what a header name may be.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z\-]+")
#: A credential scope's region and service: what AWS uses (``us-east-1``, ``sts``), a little
#: more liberally; never ``/``, whitespace or a control character.
_SCOPE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_SPACES = re.compile(r"[ \t]+")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class AwsSecurityCredentials(Value):
    """AWS credentials that sign a request: an access key id, its secret and, for temporary
    credentials, a session token. The field names are google-auth's
    (``google.auth.aws.AwsSecurityCredentials``). ``repr`` shows the access key id only."""

    __slots__ = ("access_key_id", "secret_access_key", "session_token")
    _hidden = frozenset({"secret_access_key", "session_token"})
    access_key_id: str
    secret_access_key: str
    session_token: str | None

    def __init__(self, access_key_id: str, secret_access_key: str,
                 session_token: str | None = None):
        for name, value in (("access_key_id", access_key_id),
                            ("secret_access_key", secret_access_key)):
            if not isinstance(value, str) or not value:
                raise UsageError(f"AwsSecurityCredentials: {name} must be a non-empty string, "
                                 f"not {_kind(value)}")
        if session_token is not None and (not isinstance(session_token, str)
                                          or not session_token):
            raise UsageError("AwsSecurityCredentials: session_token must be a non-empty string "
                             f"or None, not {_kind(session_token)}")
        if not _is_field_value(access_key_id) or "/" in access_key_id:
            raise UsageError("AwsSecurityCredentials: access_key_id holds characters an access "
                             "key id never has (a '/', a space or a control character)")
        if session_token is not None and not _is_field_value(session_token):
            raise UsageError("AwsSecurityCredentials: session_token holds whitespace or control "
                             "characters, which cannot be sent in a header")
        self._init(access_key_id=access_key_id, secret_access_key=secret_access_key,
                   session_token=session_token)


class Authorization(NamedTuple):
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header value."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def _kind(value: object) -> str:
    return "an empty string" if value == "" else type(value).__name__


def _is_field_value(value: str) -> bool:
    """No whitespace and no control characters: safe as a header value or a scope part."""
    return not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f for c in value)


# --- encoding ------------------------------------------------------------------------------

def _encode(data: bytes, *, keep_slash: bool) -> str:
    out = []
    for byte in data:
        if byte in _UNRESERVED or (keep_slash and byte == 0x2f):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 on an absolute path, plus AWS's collapsing of empty segments
    (``//`` → ``/``); a trailing ``/`` (or a final ``.``/``..``) leaves a trailing ``/``."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for index, segment in enumerate(segments):
        if segment == ".." and out:
            out.pop()
        if segment not in ("", ".", ".."):
            out.append(segment)
        elif index == len(segments) - 1:
            out.append("")
    return "/" + "/".join(out)


def _canonical_uri(path: str, service: str) -> str:
    if not path:
        return "/"
    if service == "s3":
        return "/".join(_encode(unquote_to_bytes(segment), keep_slash=False)
                        for segment in path.split("/"))
    if not path.startswith("/"):
        path = "/" + path
    return _encode(_remove_dot_segments(path).encode("utf-8"), keep_slash=True)


def _canonical_query(query: str) -> str:
    pairs = []
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        pairs.append((_encode(unquote_to_bytes(name), keep_slash=False),
                      _encode(unquote_to_bytes(value), keep_slash=False)))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def _split_url(url: str, method: str) -> tuple[str, str, str]:
    """``(host, path, query)`` of an absolute http(s) URL, checked."""
    if not isinstance(url, str):
        raise UsageError(f"SigV4: the URL must be a string, not {type(url).__name__}")
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in url):
        raise UsageError("SigV4: the URL contains a control character (CR, LF, NUL...), "
                         "which no request line can hold")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"SigV4: the URL cannot be parsed ({exc}); pass an absolute "
                         "https:// URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError("SigV4: only absolute http:// and https:// URLs can be signed "
                         f"(got scheme {parts.scheme!r}); pass e.g. "
                         "https://sts.us-east-1.amazonaws.com/")
    if parts.username is not None or parts.password is not None:
        raise UsageError("SigV4: the URL holds user information (user:password@); AWS "
                         "requests are authenticated by the signature only: remove it")
    if parts.fragment:
        raise UsageError("SigV4: the URL has a #fragment, which is never sent; remove it")
    if not isinstance(method, str) or not _HEADER_NAME.fullmatch(method):
        raise UsageError(f"SigV4: {method!r} is not an HTTP method")
    host = parts.hostname.lower()
    if not re.fullmatch(r"[a-z0-9.\-_]+|[0-9a-f:.]+", host):
        raise UsageError("SigV4: the URL's host must be an ASCII name or an IP address "
                         "(encode an internationalised name with IDNA first)")
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme.lower() == "https" else 80
    if port is not None and port != default:
        host = f"{host}:{port}"
    return host, parts.path, parts.query


# --- headers -------------------------------------------------------------------------------

def _header_pairs(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
                  ) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    pairs = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise UsageError("SigV4: headers must be a mapping or (name, value) pairs") from None
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise UsageError(f"SigV4: {name!r} is not a valid header name")
        if not isinstance(value, str):
            raise UsageError(f"SigV4: the value of header {name!r} must be a string, "
                             f"not {type(value).__name__}")
        pairs.append((name, value))
    return pairs


def _canonical_value(value: str) -> str:
    """Trimmed, inner runs of spaces collapsed; an obsolete folded value's lines joined with
    ``,`` (AWS's ``get-header-value-multiline`` vector)."""
    lines = [_SPACES.sub(" ", line).strip(" \t") for line in _LINE_BREAK.split(value)]
    return ",".join(line for line in lines if line) if len(lines) > 1 else lines[0]


def _canonical_headers(pairs: Iterable[tuple[str, str]],
                       signed: Iterable[str] | None) -> tuple[str, str]:
    """``(canonical headers block, signed headers list)``."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name.lower(), []).append(_canonical_value(value))
    if signed is not None:
        wanted = list(signed)
        missing = [name for name in wanted if name.lower() not in grouped]
        if missing:
            raise UsageError(f"SigV4: the signed header(s) {', '.join(missing)} are not in "
                             "the request")
        grouped = {name.lower(): grouped[name.lower()] for name in wanted}
    names = sorted(grouped)
    block = "".join(f"{name}:{','.join(grouped[name])}\n" for name in names)
    return block, ";".join(names)


# --- the pieces ----------------------------------------------------------------------------

def payload_hash(body: bytes | str | None) -> str:
    """The hex SHA-256 of the body (``str``: its UTF-8; ``None``: the empty body)."""
    if body is None:
        data = b""
    elif isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
    else:
        raise UsageError(f"SigV4: the body must be bytes, str or None, not "
                         f"{type(body).__name__}")
    return hashlib.sha256(data).hexdigest()


def canonical_request(
    method: str,
    url: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes | str | None,
    *,
    service: str,
    signed_headers: Iterable[str] | None = None,
) -> str:
    """The canonical request of a request (AWS's "Step 1").

    ``headers`` are all the headers to sign, ``host`` (and ``x-amz-date``...) included: a
    mapping, or ``(name, value)`` pairs where a name may repeat. ``signed_headers`` (a
    verifier's list, from :func:`parse_authorization`) restricts the block to those headers and
    raises :class:`~gcauth.exceptions.UsageError` if one is absent. ``service`` matters only as
    ``"s3"``, whose path is neither normalised nor double-encoded.
    """
    _, path, query = _split_url(url, method)
    block, names = _canonical_headers(_header_pairs(headers), signed_headers)
    return "\n".join([method, _canonical_uri(path, service), _canonical_query(query), block,
                      names, payload_hash(body)])


def credential_scope(date: str, region: str, service: str) -> str:
    """``YYYYMMDD/region/service/aws4_request``."""
    _check_scope(date, region, service)
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(canonical: str, *, amz_date: str, region: str, service: str) -> str:
    """The string to sign (AWS's "Step 2") of a canonical request made at ``amz_date``
    (``YYYYMMDDTHHMMSSZ``, the request's ``x-amz-date``)."""
    match = _AMZ_DATE.fullmatch(amz_date) if isinstance(amz_date, str) else None
    if match is None:
        raise UsageError(f"SigV4: x-amz-date {amz_date!r} is not of the form "
                         "YYYYMMDDTHHMMSSZ")
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return "\n".join([ALGORITHM, amz_date, credential_scope(match.group(1), region, service),
                      digest])


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The derived signing key: ``HMAC("AWS4" + secret, date)``, then region, service and
    ``aws4_request`` (AWS's "Step 3"). ``date`` is ``YYYYMMDD``."""
    _check_scope(date, region, service)
    if not isinstance(secret, str) or not secret:
        raise UsageError("SigV4: the secret access key must be a non-empty string")
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def signature(key: bytes, to_sign: str) -> str:
    """The hex ``HMAC-SHA256`` of the string to sign under the signing key ("Step 4")."""
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _check_scope(date: str, region: str, service: str) -> None:
    if not isinstance(date, str) or not re.fullmatch(r"\d{8}", date):
        raise UsageError(f"SigV4: the scope date {date!r} is not of the form YYYYMMDD")
    for what, value in (("region", region), ("service", service)):
        if not isinstance(value, str) or not value:
            raise UsageError(f"SigV4: the {what} must be a non-empty string (e.g. "
                             f"{'us-east-1' if what == 'region' else 'sts'}), not "
                             f"{_kind(value)}")
        if not _SCOPE_PART.fullmatch(value):
            raise UsageError(f"SigV4: the {what} {value!r} is not an AWS {what} name "
                             "(letters, digits, '-', '_' and '.')")


def amz_date(now: datetime.datetime | float) -> str:
    """``YYYYMMDDTHHMMSSZ`` of an aware datetime or a POSIX timestamp, in UTC."""
    if isinstance(now, datetime.datetime):
        if now.tzinfo is None or now.utcoffset() is None:
            raise UsageError("SigV4: `now` is a naive datetime; pass an aware one (e.g. "
                             "datetime.now(timezone.utc)) or a POSIX timestamp")
        moment = now.astimezone(datetime.timezone.utc)
    elif isinstance(now, (int, float)) and not isinstance(now, bool):
        if not math.isfinite(now):
            raise UsageError(f"SigV4: `now` must be a finite timestamp, not {now!r}")
        try:
            moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise UsageError(f"SigV4: `now` ({now!r}) is outside the dates a request can "
                             "carry") from None
    else:
        raise UsageError("SigV4: `now` must be an aware datetime or a POSIX timestamp, not "
                         f"{type(now).__name__}")
    return moment.strftime("%Y%m%dT%H%M%SZ")


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str] | None,
    body: bytes | str | None,
    credentials: AwsSecurityCredentials,
    region: str,
    service: str,
    now: datetime.datetime | float,
) -> dict[str, str]:
    """Sign a request with SigV4 and return every header to send with it.

    The result holds the given ``headers`` (all of them signed), ``host`` (from the URL,
    with its port when not the scheme's default) and ``x-amz-date`` (from ``now``: an aware
    datetime or a POSIX timestamp) unless given, ``x-amz-security-token`` when the
    credentials carry a session token (signed too, as STS's ``GetCallerIdentity`` wants), and
    ``Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<scope>, SignedHeaders=...,
    Signature=...``. A given ``x-amz-date`` is used as the signing time, so it must be
    ``YYYYMMDDTHHMMSSZ``.

    ``url`` is the absolute URL as it will be sent (see the module docstring for how its path
    and query are canonicalised). Header values must be single-line strings; a name given
    twice in different cases is one header with both values. Bad arguments raise
    :class:`~gcauth.exceptions.UsageError`.
    """
    if not isinstance(credentials, AwsSecurityCredentials):
        raise UsageError("SigV4: credentials must be an AwsSecurityCredentials, not "
                         f"{type(credentials).__name__}")
    host, _, _ = _split_url(url, method)
    pairs = _header_pairs(headers)
    for name, value in pairs:
        if "\r" in value or "\n" in value or "\0" in value:
            raise UsageError(f"SigV4: the value of header {name!r} contains CR, LF or NUL, "
                             "which cannot be sent")
    present = {name.lower(): value for name, value in pairs}
    if "authorization" in present:
        raise UsageError("SigV4: the headers already hold an Authorization header; sign the "
                         "request without it")
    out = dict(pairs)
    if "host" not in present:
        out["host"] = host
    if "x-amz-date" in present:
        date_value = present["x-amz-date"].strip()
    else:
        date_value = out["x-amz-date"] = amz_date(now)
    if credentials.session_token is not None and "x-amz-security-token" not in present:
        out["x-amz-security-token"] = credentials.session_token
    _check_scope("00000000", region, service)
    canonical = canonical_request(method, url, out, body, service=service)
    signed = canonical.split("\n")[-2]
    to_sign = string_to_sign(canonical, amz_date=date_value, region=region, service=service)
    key = signing_key(credentials.secret_access_key, date_value[:8], region, service)
    out["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/"
        f"{credential_scope(date_value[:8], region, service)}, SignedHeaders={signed}, "
        f"Signature={signature(key, to_sign)}")
    return out


def parse_authorization(value: str) -> Authorization:
    """Split an ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`` value.

    Returns ``(access_key_id, date, region, service, signed_headers, signature)`` (an
    :class:`Authorization`, a named tuple); ``signed_headers`` is the tuple of lower-case
    names in the order given. A value that is not exactly that (another algorithm, a missing
    or repeated component, a scope that does not end in ``aws4_request``, a signature that is
    not 64 lower-case hex digits, header names out of order) raises
    :class:`~gcauth.exceptions.UsageError` naming the problem, never quoting the value.
    """
    if not isinstance(value, str):
        raise UsageError(f"SigV4: an Authorization value must be a string, not "
                         f"{type(value).__name__}")
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise UsageError(f"SigV4: the Authorization header does not start with {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, eq, field = part.strip().partition("=")
        if not eq or name not in ("Credential", "SignedHeaders", "Signature"):
            raise UsageError("SigV4: the Authorization header has a component other than "
                             "Credential=, SignedHeaders= and Signature=")
        if name in fields:
            raise UsageError(f"SigV4: the Authorization header gives {name}= twice")
        fields[name] = field
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if n not in fields]
    if missing:
        raise UsageError(f"SigV4: the Authorization header lacks {', '.join(missing)}=")
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not scope[0]:
        raise UsageError("SigV4: the Credential= of the Authorization header is not "
                         "<access key id>/YYYYMMDD/<region>/<service>/aws4_request")
    key_id, date, region, service, _ = scope
    if not _is_field_value(key_id):
        raise UsageError("SigV4: the access key id in Credential= holds whitespace or "
                         "control characters")
    _check_scope(date, region, service)
    names = tuple(fields["SignedHeaders"].split(";"))
    if not all(_HEADER_NAME.fullmatch(n) and n == n.lower() for n in names):
        raise UsageError("SigV4: SignedHeaders= must list lower-case header names separated "
                         "by ';'")
    if list(names) != sorted(set(names)):
        raise UsageError("SigV4: SignedHeaders= must list each header once, sorted")
    if not _SIGNATURE.fullmatch(fields["Signature"]):
        raise UsageError("SigV4: Signature= is not 64 lower-case hex digits")
    return Authorization(key_id, date, region, service, names, fields["Signature"])
