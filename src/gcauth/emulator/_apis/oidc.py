"""The emulator's own OpenID Connect identity provider (``{emu.url}/oidc``), the external
IdP that workload identity pools trust by default (GitHub Actions, GitLab, Kubernetes...
stand-ins): its discovery document, its JWKS, and a token endpoint shaped like GitHub
Actions' (``{"value": JWT}``) for ``url``-sourced credential configurations.

It is a separate issuer from the emulator's Google one (``/.well-known/openid-configuration``
with ``iss=https://accounts.google.com``) and signs with its own key.
"""

from __future__ import annotations

from typing import Any

from .._errors import GoogleError
from .._routing import Call
from .._state import State
from .._wire import BadParams, Reply, json_reply, parse_params, text_reply

__all__ = ["DEFAULT_SUBJECT", "ISSUER_PATH", "discovery", "issue", "jwks", "token"]

ISSUER_PATH = "/oidc"
DEFAULT_SUBJECT = "repo:org/app:ref:refs/heads/main"
#: Longest lifetime the emulator's issuer grants (and the STS accepts, ``exp - iat``).
MAX_OIDC_LIFETIME = 24 * 3600


def issuer(base_url: str) -> str:
    """The issuer URL (``iss``) of the emulator's OIDC provider."""
    return base_url + ISSUER_PATH


def issue(state: State, base_url: str, *, now: float, subject: str, audience: str | list[str],
          claims: dict[str, Any] | None = None, lifetime: float = 3600) -> str:
    """An RS256 ID token from the emulator's issuer."""
    if not 0 < lifetime <= MAX_OIDC_LIFETIME:
        raise ValueError(f"lifetime must be within (0, {MAX_OIDC_LIFETIME}] seconds")
    iat = int(now)
    body: dict[str, Any] = {"iss": issuer(base_url), "sub": subject, "aud": audience,
                            "iat": iat, "exp": iat + int(lifetime)}
    body.update(claims or {})
    return state.oidc_key.sign(body)


def discovery(call: Call) -> Reply:
    """``/oidc/.well-known/openid-configuration``."""
    base = call.config.url
    return json_reply(200, {
        "issuer": issuer(base),
        "jwks_uri": base + ISSUER_PATH + "/jwks",
        "subject_types_supported": ["public"],
        "response_types_supported": ["id_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "aud", "exp", "iat", "iss"],
        "scopes_supported": ["openid"],
    })


def jwks(call: Call) -> Reply:
    """``/oidc/jwks``: the issuer's signing key (counted as ``oidc_jwks``)."""
    return json_reply(200, {"keys": [call.state.oidc_key.jwk()]},
                      [("Cache-Control", f"public, max-age={int(call.config.certs_max_age)}")])


def token(call: Call) -> Reply:
    """``GET /oidc/token?audience=A[&subject=S][&format=text]``: a fresh ID token as
    ``{"value": JWT}`` (GitHub Actions' ``ACTIONS_ID_TOKEN_REQUEST_URL`` shape) or, with
    ``format=text``, the bare token. Counted as ``oidc_token``."""
    try:
        query = parse_params(call.req.query)
    except BadParams as exc:
        raise GoogleError(400, str(exc)) from exc
    audience = query.get("audience")
    if not audience:
        raise GoogleError(400, "Missing required parameter: audience")
    value = issue(call.state, call.config.url, now=call.now,
                  subject=query.get("subject") or DEFAULT_SUBJECT, audience=audience)
    if query.get("format") == "text":
        return text_reply(200, value)
    return json_reply(200, {"value": value})
