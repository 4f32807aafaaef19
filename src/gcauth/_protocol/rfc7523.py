"""JWT bearer grant (RFC 7523 §2.1) and self-signed JWT access (Google AIP-4111)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .jwt import RSASigner, encode

__all__ = ["JWT_BEARER_GRANT", "MAX_LIFETIME", "bearer_assertion", "self_signed_jwt"]

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Google accepts assertions and self-signed JWTs valid for at most one hour.
MAX_LIFETIME = 3600


def bearer_assertion(
    signer: RSASigner,
    *,
    issuer: str,
    audience: str,
    now: datetime,
    scopes: Sequence[str] | None = None,
    subject: str | None = None,
    lifetime: int = MAX_LIFETIME,
    header: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The signed assertion for the JWT bearer grant (RFC 7523 §3): iss, aud, iat, exp,
    ``scope`` (space-separated) and ``sub`` for domain-wide delegation."""
    iat = int(now.timestamp())
    claims: dict[str, Any] = {"iss": issuer, "aud": audience, "iat": iat,
                              "exp": iat + min(lifetime, MAX_LIFETIME)}
    if scopes:
        claims["scope"] = " ".join(scopes)
    if subject:
        claims["sub"] = subject
    if extra:
        claims.update(extra)
    return encode(signer, claims, header=header)


def self_signed_jwt(
    signer: RSASigner,
    *,
    email: str,
    now: datetime,
    audience: str | None = None,
    scopes: Sequence[str] | None = None,
    lifetime: int = MAX_LIFETIME,
    header: str | None = None,
) -> str:
    """A JWT the API accepts directly as a bearer token (AIP-4111): iss = sub = the service
    account, and either ``aud`` (the API's audience) or ``scope``."""
    iat = int(now.timestamp())
    claims: dict[str, Any] = {"iss": email, "sub": email, "iat": iat,
                              "exp": iat + min(lifetime, MAX_LIFETIME)}
    if scopes:
        claims["scope"] = " ".join(scopes)
    else:
        claims["aud"] = audience
    return encode(signer, claims, header=header)
