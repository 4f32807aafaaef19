"""OpenID Connect ID tokens: certificate documents, RS256 verification and claim checks (pure).

A certificate document is either a JWK Set (RFC 7517, ``{"keys": [...]}``, Google's
``/oauth2/v3/certs``) or Google's ``{kid: PEM certificate}`` map (``/oauth2/v1/certs``, the
``/robot/v1/metadata/x509/EMAIL`` documents). :func:`parse_certs` turns either into a
:class:`KeySet`, whose :meth:`KeySet.verify` checks one token: the RS256 signature by the key its
``kid`` names, then ``iss``, ``aud`` (exact match), ``exp``, ``iat`` and ``nbf`` against
``now`` with a skew. :func:`max_age` reads ``Cache-Control`` so that whoever fetches the
document knows how long it may be kept. Nothing here fetches, caches or reads a clock.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._checks import terminal_safe
from .._http import Flow, HttpRequest
from .._json import loads as json_loads
from .._retry import RetryPolicy, with_retries
from ..exceptions import InvalidTokenError, RefreshError, TransportError
from . import jwt as _jwt

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "FIREBASE_ISSUER_PREFIX",
    "GOOGLE_APIS_CERTS_URL",
    "GOOGLE_ISSUERS",
    "GOOGLE_JWKS_URL",
    "GOOGLE_OAUTH2_CERTS_URL",
    "KeySet",
    "certs_flow",
    "check_claims",
    "max_age",
    "parse_certs",
    "token_times",
]

GOOGLE_OAUTH2_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_APIS_CERTS_URL = ("https://www.googleapis.com/robot/v1/metadata/x509/"
                         "securetoken@system.gserviceaccount.com")
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
FIREBASE_ISSUER_PREFIX = "https://securetoken.google.com/"

#: RFC 4648 §5 base64url alphabet (what a JWT segment may hold), for a fast membership check.
_B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_JWT_CHARS = _B64URL + b"."
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"", b"==", b"=")
_CERTS_RETRY = RetryPolicy(max_attempts=3, initial=0.2, cap=1.0, deadline=3.0)
#: Distinct JWT headers remembered per key set (tokens of one issuer share a few).
_HEADER_MEMO = 64
_JSON = json.JSONDecoder()


def _decode(segment: bytes) -> bytes:
    """One base64url segment already known to hold only base64url characters."""
    if len(segment) % 4 == 1:
        raise _malformed("a segment is not base64url")
    try:
        return binascii.a2b_base64(segment.translate(_TO_STANDARD) + _PADDING[len(segment) % 4])
    except binascii.Error:
        raise _malformed("a segment is not base64url") from None


def _b64url(segment: str) -> bytes:
    """Decode one base64url JWT segment strictly (no foreign characters, no padding)."""
    try:
        raw = segment.encode("ascii")
    except UnicodeEncodeError:
        raise _malformed("it is not ASCII") from None
    if raw.translate(None, _B64URL):
        raise _malformed("a segment is not base64url")
    return _decode(raw)


def _malformed(why: str) -> InvalidTokenError:
    return InvalidTokenError(f"the ID token is not a well-formed signed JWT: {why}.",
                             reason="malformed")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if number == number and abs(number) < 1e12 else None


class KeySet:
    """The RSA public keys of one certificate document, by key id."""

    __slots__ = ("keys", "source", "_headers", "_padding", "_hash")

    def __init__(self, keys: Mapping[str, rsa.RSAPublicKey], source: str):
        self.keys = dict(keys)
        self.source = source
        self._headers: dict[bytes, rsa.RSAPublicKey] = {}
        self._padding, self._hash = _jwt._sign_args()

    def __repr__(self) -> str:
        return f"KeySet(source={self.source!r}, kids={sorted(self.keys)!r})"

    def _key_for(self, head: bytes) -> rsa.RSAPublicKey:
        try:
            header = json_loads(_decode(head))
        except (ValueError, UnicodeDecodeError):
            raise _malformed("its header is not JSON") from None
        if not isinstance(header, dict):
            raise _malformed("its header is not a JSON object")
        alg = header.get("alg")
        if alg != "RS256":
            raise InvalidTokenError(
                f"the ID token is signed with {terminal_safe(str(alg)[:20])!r}; only RS256 is "
                "accepted.", reason="signature")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            if kid is None and len(self.keys) == 1:
                key = next(iter(self.keys.values()))
            else:
                raise InvalidTokenError(
                    f"the ID token's key id is not among the certificates at {self.source} "
                    f"(it names {terminal_safe(str(kid)[:80])!r}; known: "
                    f"{', '.join(sorted(self.keys)) or 'none'}). Fix: check certs_url names "
                    "the issuer's certificates.", reason="unknown_key")
        if len(self._headers) < _HEADER_MEMO:
            self._headers[head] = key
        return key

    def verify(self, token: str | bytes, *, now: float, audience: str | Collection[str] | None,
               issuers: Collection[str] | None, clock_skew: float = 0) -> dict[str, Any]:
        """The claims of ``token`` once its signature and claims check out at ``now`` (Unix
        seconds); :class:`~gcauth.exceptions.InvalidTokenError` saying why not otherwise."""
        if isinstance(token, str):
            try:
                raw = token.encode("ascii")
            except UnicodeEncodeError:
                raise _malformed("it is not ASCII") from None
        elif isinstance(token, bytes):
            raw = token
        else:
            raise _malformed(f"got a {type(token).__name__}, not a string")
        if raw.translate(None, _JWT_CHARS):
            raise _malformed("it holds characters a JWT cannot")
        signing, _, sig = raw.rpartition(b".")
        head, dot, body = signing.partition(b".")
        if not dot or b"." in body:
            raise _malformed("a JWT has three dot-separated segments")
        key = self._headers.get(head) or self._key_for(head)
        try:
            key.verify(_decode(sig), signing, self._padding, self._hash)
        except InvalidTokenError:
            raise
        except Exception:  # noqa: BLE001 - InvalidSignature, or a signature of the wrong size
            raise InvalidTokenError(
                f"the ID token's signature does not verify with the key it names at "
                f"{self.source}: it was altered, or not signed by this issuer.",
                reason="signature") from None
        try:
            text = _decode(body).decode("utf-8")
            claims, end = _JSON.raw_decode(text)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise _malformed("its payload is not JSON") from None
        if end != len(text) and text[end:].strip():
            raise _malformed("its payload is not JSON")
        if not isinstance(claims, dict):
            raise _malformed("its payload is not a JSON object")
        check_claims(claims, now=now, audience=audience, issuers=issuers, clock_skew=clock_skew)
        return claims


def check_claims(claims: Mapping[str, Any], *, now: float,
                 audience: str | Collection[str] | None, issuers: Collection[str] | None,
                 clock_skew: float = 0) -> None:
    """``iss``, ``aud`` (exact match), ``exp``, ``iat``, ``nbf`` of verified claims."""
    if issuers is not None:
        iss = claims.get("iss")
        if iss.__class__ is not str or iss not in issuers:
            raise InvalidTokenError(
                f"the ID token's issuer is {terminal_safe(str(iss)[:100])!r}, not one of "
                f"{', '.join(map(repr, issuers))}.", reason="issuer")
    if audience is not None:
        aud = claims.get("aud")
        single = audience.__class__ is str
        if aud.__class__ is not str or not (aud == audience if single else aud in audience):
            expected = {audience} if isinstance(audience, str) else set(audience)
            found = aud if isinstance(aud, list) else []
            if not any(isinstance(a, str) and a in expected for a in found):
                raise InvalidTokenError(
                    f"the ID token is for audience {terminal_safe(str(aud)[:200])!r}, not "
                    f"{', '.join(sorted(map(repr, expected)))}: it was minted for another "
                    "service.", reason="audience")
    exp = claims.get("exp")
    if exp.__class__ is not int:
        exp = _number(exp)
        if exp is None:
            raise _malformed("its 'exp' claim is missing or not a number")
    if now > exp + clock_skew:
        raise InvalidTokenError(
            f"the ID token expired at {_when(exp)} ({now - exp:.0f} s ago, allowed skew "
            f"{clock_skew:g} s). Fix: get a new token.", reason="expired")
    iat = claims.get("iat")
    if iat.__class__ is not int:
        iat = _number(iat)
        if iat is None:
            raise _malformed("its 'iat' claim is missing or not a number")
    if iat > now + clock_skew:
        raise InvalidTokenError(
            f"the ID token is issued in the future ({_when(iat)}, {iat - now:.0f} s from now, "
            f"allowed skew {clock_skew:g} s): check this machine's clock.",
            reason="not_yet_valid")
    if "nbf" in claims:
        nbf = _number(claims["nbf"])
        if nbf is not None and nbf > now + clock_skew:
            raise InvalidTokenError(f"the ID token is not valid before {_when(nbf)}.",
                                    reason="not_yet_valid")


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_b64(value: object, what: str, source: str) -> int:
    if not isinstance(value, str) or not value:
        raise _bad_certs(source, f"a JWK without a valid {what!r}")
    try:
        return int.from_bytes(_b64url(value), "big")
    except InvalidTokenError:
        raise _bad_certs(source, f"a JWK whose {what!r} is not base64url") from None


def _bad_certs(source: str, what: str) -> TransportError:
    error = TransportError(f"the certificates at {source} are unusable: {what}. Fix: check "
                           "certs_url points at a JWK Set or a {kid: PEM} document.", url=source)
    error.retryable = False
    return error


def parse_certs(body: bytes, source: str) -> KeySet:
    """A JWK Set or a ``{kid: PEM certificate or public key}`` document as a :class:`KeySet`.

    JWKs that are not RSA signing keys are skipped; anything unreadable is a
    :class:`~gcauth.exceptions.TransportError` naming ``source`` (not retryable).
    """
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    try:
        data = json_loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _bad_certs(source, "the reply is not JSON") from None
    if not isinstance(data, dict):
        raise _bad_certs(source, "the reply is not a JSON object")
    keys: dict[str, rsa.RSAPublicKey] = {}
    if "keys" in data:
        jwks = data["keys"]
        if not isinstance(jwks, list):
            raise _bad_certs(source, "'keys' is not a list")
        for jwk in jwks:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
                continue
            if jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
                continue
            kid = jwk.get("kid")
            if not isinstance(kid, str):
                continue
            n, e = _int_b64(jwk.get("n"), "n", source), _int_b64(jwk.get("e"), "e", source)
            if n.bit_length() < 2048 or e < 3:
                raise _bad_certs(source, "a JWK with an RSA key shorter than 2048 bits")
            keys[kid] = RSAPublicNumbers(e, n).public_key()
    else:
        for kid, pem in data.items():
            if not isinstance(pem, str):
                raise _bad_certs(source, "a certificate that is not a PEM string")
            try:
                keys[kid] = _jwt.load_public_key(pem)
            except (_jwt.JWTError, ValueError):
                raise _bad_certs(source, "a certificate that is not an RSA PEM certificate or "
                                         "public key") from None
    if not keys:
        raise _bad_certs(source, "it holds no RSA signing key")
    return KeySet(keys, source)


_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)


def max_age(headers: Mapping[str, str]) -> float:
    """How many seconds a reply may be kept, from ``Cache-Control`` (``max-age`` minus
    ``Age``); 0 for ``no-store``, ``no-cache`` or no ``max-age``."""
    control = headers.get("cache-control") or ""
    lowered = control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0.0
    m = _MAX_AGE.search(control)
    if m is None:
        return 0.0
    seconds = float(m.group(1))
    age = headers.get("age")
    if age is not None and age.strip().isdigit():
        seconds -= float(age.strip())
    return max(0.0, seconds)


def token_times(token: str, endpoint: str) -> tuple[datetime, datetime | None]:
    """``(expiry, issued_at)`` of an ID token the caller just received (unverified: it is
    sent on, not trusted); a :class:`~gcauth.exceptions.RefreshError` naming ``endpoint``
    when it has no usable ``exp``."""
    try:
        claims = _jwt.decode(token)[1]
    except _jwt.JWTError:
        raise RefreshError(f"{endpoint} sent an ID token that is not a JWT; it was not used.",
                           endpoint=endpoint) from None
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is None:
        raise RefreshError(f"{endpoint} sent an ID token without a numeric 'exp'; it was not "
                           "used.", endpoint=endpoint)
    expiry = datetime.fromtimestamp(exp, timezone.utc)
    issued = datetime.fromtimestamp(iat, timezone.utc) if iat is not None and iat < exp \
        else None
    return expiry, issued


def certs_request(url: str, timeout: float) -> HttpRequest:
    return HttpRequest("GET", url, {"Accept": "application/json"}, None, timeout)


def certs_flow(url: str, *, timeout: float = 10.0,
               retry: RetryPolicy | None = None) -> Flow[tuple[KeySet, float]]:
    """Flow: fetch and parse a certificate document; returns ``(keys, seconds it may be
    kept)``. Transient failures (429, 5xx, no reply) are retried."""
    request = certs_request(url, timeout)

    def attempt() -> Flow[tuple[KeySet, float]]:
        response = yield request
        assert response is not None
        if response.status != 200:
            error = TransportError(
                f"could not fetch the certificates at {request.endpoint}: HTTP "
                f"{response.status}. Fix: check certs_url.", url=request.endpoint)
            error.retryable = response.status in (429, 500, 502, 503, 504)
            raise error
        return parse_certs(response.body, request.endpoint), max_age(response.headers)

    return with_retries(attempt, retry or _CERTS_RETRY)
