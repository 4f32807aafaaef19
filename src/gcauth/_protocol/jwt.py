"""JSON Web Tokens (RFC 7519) signed with RS256 (RFC 7518 §3.3), and the RSA signer.

Only what OAuth 2.0 service accounts need: encode a signed JWT, decode one, verify an RS256
signature against a public key or certificate.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._json import loads as json_loads
from ..exceptions import GCAuthError, MalformedCredentialsError, SigningError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["RSASigner", "b64url_decode", "b64url_encode", "decode", "encode", "verify_rs256"]

_SIGN_ARGS: tuple[Any, Any] | None = None


def _sign_args() -> tuple[Any, Any]:
    """(PKCS1v15(), SHA256()), built on first use: cryptography is imported when a key is
    first loaded or checked, not when gcauth is imported."""
    global _SIGN_ARGS
    if _SIGN_ARGS is None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        _SIGN_ARGS = (padding.PKCS1v15(), hashes.SHA256())
    return _SIGN_ARGS


class JWTError(GCAuthError):
    """A JWT could not be decoded or its signature did not verify."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    if isinstance(text, str):
        text = text.encode("ascii", "replace")
    try:
        return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JWTError("not valid base64url") from exc


class RSASigner:
    """Signs with an RSA private key using RSASSA-PKCS1-v1_5 + SHA-256 (RS256)."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key: rsa.RSAPrivateKey, key_id: str | None = None):
        self._key = key
        self.key_id = key_id

    @classmethod
    def from_pem(cls, pem: str | bytes, key_id: str | None = None, *,
                 source: str = "<dict>", field: str = "private_key") -> RSASigner:
        """Load a PEM (PKCS#8 or PKCS#1) RSA private key; anything else is a named error.

        The expensive RSA consistency check is skipped: the key is the user's own, and a
        broken key only produces signatures the server rejects.
        """
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        data = pem.encode("utf-8") if isinstance(pem, str) else pem
        if b"-----BEGIN" not in data:
            raise MalformedCredentialsError(
                f"{source}: field {field!r} is not a PEM private key. Download a new JSON key "
                "for the service account (IAM > Service accounts > Keys > Add key > JSON).",
                source=source, field=field)
        try:
            key = serialization.load_pem_private_key(
                data, password=None, unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise MalformedCredentialsError(
                f"{source}: field {field!r} could not be read as an unencrypted PEM private key "
                f"({type(exc).__name__}). Download a new JSON key for the service account.",
                source=source, field=field) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise MalformedCredentialsError(
                f"{source}: field {field!r} holds a {type(key).__name__.lstrip('_')} key; "
                "service-account keys must be RSA. Create a new JSON key for the account.",
                source=source, field=field)
        return cls(key, key_id)

    def sign(self, message: bytes) -> bytes:
        try:
            return self._key.sign(message, *_sign_args())
        except Exception as exc:  # noqa: BLE001 - cryptography raises several kinds
            raise SigningError(f"RSA signing failed ({type(exc).__name__})") from None

    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (and deepcopy) as the PEM key: a key object itself cannot be pickled. The
        pickle holds the private key, like the key file it came from."""
        from cryptography.hazmat.primitives import serialization

        pem = self._key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        return (RSASigner.from_pem, (pem, self.key_id))

    def __repr__(self) -> str:
        return f"RSASigner(key_id={self.key_id!r})"


_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def encode_header(key_id: str | None) -> str:
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if key_id:
        header["kid"] = key_id
    return b64url_encode(_DUMPS(header).encode())


def encode(signer: RSASigner, payload: Mapping[str, Any], *, header: str | None = None) -> str:
    """Return the compact serialisation of ``payload`` signed with RS256.

    ``header`` may be a pre-encoded header segment (credentials cache theirs).
    """
    head = header if header is not None else encode_header(signer.key_id)
    signing_input = f"{head}.{b64url_encode(_DUMPS(dict(payload)).encode())}"
    signature = signer.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split and decode a JWT *without* verifying it: ``(header, payload, signed, signature)``."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise JWTError("not a JWT: expected three dot-separated segments")
    head_b64, body_b64, sig_b64 = token.split(".")
    if not token.isascii():
        raise JWTError("not a JWT: non-ASCII characters")
    try:
        header = json_loads(b64url_decode(head_b64))
        payload = json_loads(b64url_decode(body_b64))
    except (ValueError, UnicodeDecodeError) as exc:
        raise JWTError("JWT header or payload is not JSON") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise JWTError("JWT header and payload must be JSON objects")
    return header, payload, f"{head_b64}.{body_b64}".encode("ascii"), b64url_decode(sig_b64)


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """Read an RSA public key from a PEM public key or X.509 certificate."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    data = pem.encode() if isinstance(pem, str) else pem
    try:
        if b"CERTIFICATE" in data:
            from cryptography.x509 import load_pem_x509_certificate

            key: object = load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise JWTError("not a PEM public key or certificate") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise JWTError("only RSA keys are supported")
    return key


def verify_rs256(token: str, key: rsa.RSAPublicKey) -> dict[str, Any]:
    """Verify ``token``'s RS256 signature with ``key``; return its payload."""
    header, payload, signed, signature = decode(token)
    if header.get("alg") != "RS256":
        raise JWTError(f"unsupported JWT alg {header.get('alg')!r}")
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, signed, *_sign_args())
    except InvalidSignature:
        raise JWTError("JWT signature does not verify") from None
    return payload
