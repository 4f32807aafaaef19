"""Minimal RS256 JWT, JWK and X.509 helpers used by the emulator.

Only what the emulator needs: signing with RSA keys it generated itself and
verifying RS256 signatures made with keys it issued.  Nothing here talks to the
network.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "MAX_LIFETIME",
    "MAX_SKEW",
    "JWTError",
    "JWTTimeError",
    "SigningKey",
    "b64url_decode",
    "check_times",
    "b64url_encode",
    "decode_unverified",
    "encode",
    "new_signing_key",
    "verify_any",
    "verify_signature",
]

#: Longest ``exp - iat`` Google accepts for a JWT it did not issue itself.
MAX_LIFETIME = 3600
#: How far in the future an ``iat`` may lie (clock skew allowance).
MAX_SKEW = 300


class JWTError(ValueError):
    """Raised when a token is not a well-formed JWT."""


class JWTTimeError(JWTError):
    """A JWT's ``iat``/``exp`` claims fail Google's checks.

    ``claim`` names the claim at fault; ``missing`` is True when it is absent or not a
    finite number; ``detail`` says what is wrong in Google's words.
    """

    def __init__(self, claim: str, detail: str, *, missing: bool = False) -> None:
        super().__init__(detail)
        self.claim, self.detail, self.missing = claim, detail, missing


def b64url_encode(data: bytes) -> str:
    """Return unpadded base64url text for ``data``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url ``text``; raise :class:`JWTError` if malformed."""
    if not text or any(c not in _B64URL_ALPHABET for c in text):
        raise JWTError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise JWTError("not base64url") from exc


_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _int_to_b64(value: int) -> str:
    length = max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(length, "big"))


@dataclass(frozen=True)
class SigningKey:
    """An RSA-2048 key pair with a key id.  The private half never appears in repr."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    certificate_pem: str = field(repr=False)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        """The public half of the key."""
        return self.private_key.public_key()

    def private_pem(self) -> str:
        """The private key as unencrypted PKCS#8 PEM text (as in a Google key file)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK (RFC 7517) dictionary."""
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": _int_to_b64(numbers.n),
            "e": _int_to_b64(numbers.e),
        }

    def sign(self, claims: dict[str, Any]) -> str:
        """Return a compact RS256 JWT for ``claims`` with this key's ``kid``."""
        return encode(claims, self)


def new_signing_key(common_name: str, kid: str | None = None) -> SigningKey:
    """Generate a fresh RSA-2048 key and a self-signed certificate for it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kid is None:
        kid = secrets.token_hex(20)
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return SigningKey(kid=kid, private_key=key, certificate_pem=pem)


def encode(claims: dict[str, Any], key: SigningKey) -> str:
    """Serialise and RS256-sign ``claims`` with ``key``."""
    header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    segments = [
        b64url_encode(json.dumps(header, separators=(",", ":")).encode()),
        b64url_encode(json.dumps(claims, separators=(",", ":")).encode()),
    ]
    signing_input = ".".join(segments).encode("ascii")
    signature = key.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return ".".join([*segments, b64url_encode(signature)])


@dataclass(frozen=True)
class ParsedJWT:
    """A JWT split into its decoded parts; the signature is *not* yet verified."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes = field(repr=False)
    signature: bytes = field(repr=False)


def decode_unverified(token: str) -> ParsedJWT:
    """Split and decode a compact JWS; raise :class:`JWTError` if it is malformed."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JWTError("a JWT has three segments")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JWTError("segment is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JWTError("header and claims must be JSON objects")
    signature = b64url_decode(parts[2])
    return ParsedJWT(
        header=header,
        claims=claims,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def check_times(claims: Mapping[str, Any], now: float) -> None:
    """Google's checks on a JWT it did not issue (a JWT-bearer assertion, a self-signed
    service-account JWT): ``iat`` and ``exp`` are finite numbers, ``0 < exp - iat <=
    3600``, ``iat <= now + 300`` and ``exp > now``.  Raise :class:`JWTTimeError`."""
    iat, exp = _number(claims.get("iat")), _number(claims.get("exp"))
    for name, value in (("iat", iat), ("exp", exp)):
        if value is None:
            raise JWTTimeError(name, f'the "{name}" claim is missing or not a number.',
                               missing=True)
    assert iat is not None and exp is not None
    if exp <= iat or exp - iat > MAX_LIFETIME:
        raise JWTTimeError("exp", f'"exp" - "iat" must be at most {MAX_LIFETIME} seconds.')
    if iat > now + MAX_SKEW:
        raise JWTTimeError("iat", '"iat" is in the future.')
    if exp <= now:
        raise JWTTimeError("exp", '"exp" is in the past.')


def verify_any(parsed: ParsedJWT, keys: Iterable[SigningKey]) -> bool:
    """True when ``parsed`` is RS256-signed by one of ``keys``."""
    return any(verify_signature(parsed, key.public_key) for key in keys)


def verify_signature(parsed: ParsedJWT, public_key: rsa.RSAPublicKey) -> bool:
    """Return True when ``parsed`` carries a valid RS256 signature by ``public_key``."""
    if parsed.header.get("alg") != "RS256":
        return False
    try:
        public_key.verify(parsed.signature, parsed.signing_input, padding.PKCS1v15(),
                          hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def at_hash(access_token: str) -> str:
    """The OpenID Connect ``at_hash`` of an access token (left half of SHA-256)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return b64url_encode(digest[: len(digest) // 2])
