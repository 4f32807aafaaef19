"""Proof Key for Code Exchange (PKCE, RFC 7636) as pure functions.

The installed-app flow always uses the ``S256`` method (RFC 7636 §4.2): a code stolen on its
way back to the loopback redirect is useless without the verifier, which never leaves this
process.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field

__all__ = ["Pkce", "new_pkce", "s256_challenge"]

#: RFC 7636 §4.1: ``code-verifier = 43*128unreserved``.
_VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def s256_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(code_verifier)))`` without padding (RFC 7636 §4.2)."""
    if not _VERIFIER_RE.fullmatch(verifier):
        raise ValueError("a PKCE code_verifier is 43 to 128 unreserved characters (RFC 7636 §4.1)")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Pkce:
    """A verifier (secret, kept out of ``repr``) and the challenge sent in the clear."""

    verifier: str = field(repr=False)
    challenge: str
    method: str = "S256"

    def authorization_params(self) -> dict[str, str]:
        """The query parameters of the authorization request (RFC 7636 §4.3)."""
        return {"code_challenge": self.challenge, "code_challenge_method": self.method}

    def token_params(self) -> dict[str, str]:
        """The extra token request parameter (RFC 7636 §4.5)."""
        return {"code_verifier": self.verifier}


def new_pkce(nbytes: int = 48) -> Pkce:
    """A fresh S256 pair; the verifier holds ``nbytes`` of CSPRNG entropy (RFC 7636 §4.1, §7.1:
    at least 32 bytes). 48 bytes give a 64-character verifier."""
    if nbytes < 32 or nbytes > 96:
        raise ValueError("PKCE verifier entropy must be 32 to 96 bytes")
    verifier = secrets.token_urlsafe(nbytes)
    return Pkce(verifier, s256_challenge(verifier))
