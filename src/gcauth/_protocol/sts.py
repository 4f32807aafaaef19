"""OAuth 2.0 Token Exchange (RFC 8693) as Google's Security Token Service speaks it.

``exchange_flow`` sends a subject token (an OIDC ID token, a SAML assertion, a signed AWS
request) to the STS ``token_url`` and returns the Google access token it issues; errors are
RFC 6749 §5.2 shaped and become :class:`~gcauth.exceptions.RefreshError` (``parse_error``).
Client authentication, when a credential configuration has ``client_id``/``client_secret``,
is HTTP Basic (RFC 6749 §2.3.1). Pure: no environment, files, clock or transports.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from .._http import DEFAULT_TIMEOUT, Flow
from .._retry import RetryPolicy
from .rfc6749 import TokenResponse, token_exchange

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "AWS4_REQUEST",
    "GOOGLE_STS_TOKEN_URL",
    "ID_TOKEN",
    "JWT",
    "SAML2",
    "SUBJECT_TOKEN_TYPES",
    "TOKEN_EXCHANGE_GRANT",
    "basic_auth",
    "exchange_flow",
    "exchange_params",
]

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
SAML2 = "urn:ietf:params:oauth:token-type:saml2"
AWS4_REQUEST = "urn:ietf:params:aws:token-type:aws4_request"
#: The subject token types Google's STS accepts.
SUBJECT_TOKEN_TYPES = (JWT, ID_TOKEN, SAML2, AWS4_REQUEST)
GOOGLE_STS_TOKEN_URL = "https://sts.googleapis.com/v1/token"


def basic_auth(client_id: str, client_secret: str | None) -> dict[str, str]:
    """The ``Authorization: Basic`` header of RFC 6749 §2.3.1 (id and secret form-encoded
    first, as the RFC says)."""
    pair = f"{quote(client_id, safe='')}:{quote(client_secret or '', safe='')}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")}


def exchange_params(
    *,
    audience: str,
    subject_token: str,
    subject_token_type: str,
    scopes: Sequence[str] | None,
    options: Mapping[str, Any] | None = None,
    requested_token_type: str = ACCESS_TOKEN_TYPE,
) -> dict[str, str]:
    """The form parameters of a token exchange (RFC 8693 §2.1); ``options`` (Google's
    extension, e.g. ``{"userProject": ...}`` for workforce pools) is sent as JSON."""
    params = {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "audience": audience,
        "requested_token_type": requested_token_type,
        "subject_token": subject_token,
        "subject_token_type": subject_token_type,
    }
    if scopes:
        params["scope"] = " ".join(scopes)
    if options:
        params["options"] = json.dumps(dict(options), separators=(",", ":"))
    return params


def exchange_flow(
    token_url: str,
    *,
    audience: str,
    subject_token: str,
    subject_token_type: str,
    scopes: Sequence[str] | None,
    options: Mapping[str, Any] | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Flow[TokenResponse]:
    """Flow: exchange ``subject_token`` at ``token_url`` for an access token (retrying
    transient failures as every token request does)."""
    params = exchange_params(audience=audience, subject_token=subject_token,
                             subject_token_type=subject_token_type, scopes=scopes,
                             options=options)
    headers = basic_auth(client_id, client_secret) if client_id else None
    return token_exchange(token_url, params, headers=headers, retry=retry, timeout=timeout)
