"""Endpoint logic: OAuth 2.0 server, metadata server, certs and the sample API.

Each handler maps a parsed :class:`~._http.Request` to a :class:`~._http.Reply`;
the HTTP mechanics (sockets, faults, framing) live in :mod:`._server`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, unquote_plus, urlsplit

from . import _pages
from ._faults import FaultInjector
from ._http import (
    BadParams,
    Ctx,
    Reply,
    Request,
    api_error,
    form_pairs,
    html_reply,
    json_reply,
    oauth_error,
    parse_params,
    text_reply,
    with_query,
)
from ._jwt import JWTError, at_hash, b64url_encode, decode_unverified, verify_signature
from ._state import (
    CLOUD_PLATFORM,
    GOOGLE_ISSUER,
    GOOGLE_TOKEN_URI,
    SQLSERVICE_ADMIN,
    USERINFO_EMAIL,
    AuthCode,
    DeviceGrant,
    OAuthClient,
    PendingConsent,
    State,
    is_valid_scope,
    normalize_scopes,
    numeric_id,
    token,
)

__all__ = ["App", "Config", "group_for"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Token URIs Google accepts as a JWT-bearer ``aud`` (current and legacy).
GOOGLE_TOKEN_AUDIENCES = frozenset(
    {
        GOOGLE_TOKEN_URI,
        "https://accounts.google.com/o/oauth2/token",
        "https://www.googleapis.com/oauth2/v4/token",
    }
)
SQLADMIN_AUDIENCE = "https://sqladmin.googleapis.com/"
API_SCOPES = frozenset({CLOUD_PLATFORM, SQLSERVICE_ADMIN})
TIMEFRAME = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
    "timeframe. Check your iat and exp values in the JWT claim."
)
DWD_DENIED = (
    "Client is unauthorized to retrieve access tokens using this method, or client not "
    "authorized for any of the scopes requested."
)
MISSING_CREDENTIAL = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
INVALID_CREDENTIAL = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
NO_CLIENT_ID = "Could not determine client ID from request."
CODE_LIFETIME = 600.0
CONSENT_LIFETIME = 1800.0
MAX_SKEW = 300
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
_PKCE_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_SQL_RE = re.compile(r"/sql/v1beta4/projects/([^/]+)/instances")
_COUNTERS = (
    ("/o/oauth2/auth", "auth"),
    ("/o/oauth2/v2/auth", "auth"),
    ("/o/oauth2/approve", "approve"),
    ("/device", "device_page"),
    ("/oauth2/v3/certs", "certs"),
    ("/oauth2/v1/certs", "certs"),
    ("/robot/v1/metadata/x509/", "certs"),
    ("/ping", "ping"),
    ("/echo", "echo"),
)
_SA_RE = re.compile(r"instance/service-accounts/([^/]+)(?:/(.*))?")


def group_for(path: str) -> str | None:
    """The fault-injection endpoint group of ``path`` (None: never faulted)."""
    if path == "/token":
        return "token"
    if path in ("/tokeninfo", "/oauth2/v3/tokeninfo"):
        return "tokeninfo"
    if path in ("/revoke", "/o/oauth2/revoke"):
        return "revoke"
    if path == "/device/code":
        return "device_code"
    if path == "/" or path.startswith("/computeMetadata/"):
        return "metadata"
    if path.startswith("/sql/"):
        return "api"
    return None


@dataclass
class Config:
    """Mutable emulator settings read on every request."""

    url: str = ""
    metadata_project_id: str = "emu-project"
    metadata_numeric_project_id: str = "123456789012"
    metadata_service_account_email: str = "123456789012-compute@developer.gserviceaccount.com"
    metadata_scopes: tuple[str, ...] = (CLOUD_PLATFORM, USERINFO_EMAIL)
    device_interval: float = 5
    device_expires_in: float = 1800
    accounts: tuple[str, ...] = ("alice@example.com", "bob@example.com")
    control: bool = False

    @property
    def token_uri(self) -> str:
        """The emulator's token endpoint."""
        return self.url + "/token"


def user_sub(account: str) -> str:
    """A stable Google-like subject id for a test user."""
    return numeric_id("user:" + account.lower())


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _pkce_ok(verifier: str, challenge: str, method: str) -> bool:
    if not _PKCE_RE.fullmatch(verifier):
        return False
    if method == "S256":
        expected = b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())
    else:
        expected = verifier
    return hmac.compare_digest(expected, challenge)


def is_loopback_redirect(uri: str) -> bool:
    """RFC 8252 §7.3 loopback redirect: http on 127.0.0.1, [::1] or localhost, any port/path."""
    try:
        parts = urlsplit(uri)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return False
    if parts.scheme != "http" or parts.fragment or "@" in parts.netloc:
        return False
    return parts.hostname in ("127.0.0.1", "::1", "localhost")


class App:
    """Routes requests to the endpoint implementations."""

    def __init__(self, state: State, faults: FaultInjector, config: Config) -> None:
        self.state = state
        self.faults = faults
        self.config = config

    # ------------------------------------------------------------------ routing
    def count(self, req: Request) -> None:
        """Bump the request counters for ``req`` (also for requests answered by a fault)."""
        path = req.path
        keys: list[str] = []
        group = group_for(path)
        if group is not None:
            keys.append(group)
        if group == "metadata":
            leaf = path.rstrip("/").rsplit("/", 1)[-1]
            if path.startswith("/computeMetadata/v1/instance/service-accounts/") and leaf in (
                "token", "identity"
            ):
                keys.append("metadata_" + leaf)
        elif group is None:
            for prefix, key in _COUNTERS:
                if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                    keys.append(key)
                    break
        with self.state.lock:
            for key in keys:
                self.state.counts[key] += 1

    def dispatch(self, req: Request, ctx: Ctx) -> Reply:
        """Handle ``req``; state is mutated under the state lock."""
        path = req.path
        with self.state.lock:
            if path == "/token":
                return self.token(req, ctx)
            if path in ("/tokeninfo", "/oauth2/v3/tokeninfo"):
                return self.tokeninfo(req, ctx)
            if path in ("/revoke", "/o/oauth2/revoke"):
                return self.revoke(req)
            if path in ("/o/oauth2/auth", "/o/oauth2/v2/auth"):
                return self.authorize(req, ctx)
            if path == "/o/oauth2/approve":
                return self.approve(req, ctx)
            if path == "/device/code":
                return self.device_code(req, ctx)
            if path == "/device":
                return self.device_page(req, ctx)
            if path == "/" or path.startswith("/computeMetadata/"):
                return self.metadata(req, ctx)
            if path.startswith("/sql/"):
                return self.sample_api(req, ctx)
            if path in ("/oauth2/v3/certs", "/oauth2/v1/certs") or path.startswith(
                "/robot/v1/metadata/x509/"
            ):
                return self.certs(req)
            if path == "/.well-known/openid-configuration":
                return self.discovery()
            if path == "/ping":
                return text_reply(200, "ok")
            if path == "/echo":
                return self.echo(req)
            if path.startswith("/_emulator/") and self.config.control:
                return self.control(req)
        return api_error(404, "The requested URL was not found on this server.")

    # ------------------------------------------------------------------ helpers
    def _form(self, req: Request) -> dict[str, str] | Reply:
        if req.method != "POST":
            return oauth_error(405, "invalid_request", f"Invalid request method: {req.method}",
                               [("Allow", "POST")])
        if not req.is_form():
            return oauth_error(400, "invalid_request",
                               "Invalid content type; expected application/x-www-form-urlencoded.")
        try:
            return parse_params(form_pairs(req.body))
        except BadParams as exc:
            return oauth_error(400, "invalid_request", str(exc))

    def _client_credentials(
        self, req: Request, params: dict[str, str]
    ) -> tuple[str | None, str | None, bool] | Reply:
        """Client id/secret from HTTP Basic (RFC 6749 §2.3.1) or the body."""
        auth = req.header("authorization") or ""
        if auth[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
                raw_id, raw_secret = decoded.split(":", 1)
            except (ValueError, UnicodeDecodeError):
                return oauth_error(400, "invalid_request", "Malformed HTTP Basic credentials.")
            cid, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
            if "client_secret" in params or params.get("client_id", cid) != cid:
                return oauth_error(400, "invalid_request",
                                   "Client authentication must use only one method.")
            return cid, secret, True
        return params.get("client_id"), params.get("client_secret"), False

    def _authenticate(self, req: Request, params: dict[str, str]) -> OAuthClient | Reply:
        creds = self._client_credentials(req, params)
        if isinstance(creds, Reply):
            return creds
        cid, secret, basic = creds
        challenge = [("WWW-Authenticate", 'Basic realm="gcauth-emulator"')] if basic else []
        if not cid:
            return oauth_error(400, "invalid_request", NO_CLIENT_ID)
        client = self.state.clients.get(cid)
        if client is None:
            return oauth_error(401, "invalid_client", "The OAuth client was not found.", challenge)
        if secret is None or not hmac.compare_digest(secret.encode(),
                                                     client.client_secret.encode()):
            return oauth_error(401, "invalid_client", "Unauthorized", challenge)
        return client

    def _issued(self) -> None:
        self.state.count("token_issued")

    def _user_tokens(
        self,
        ctx: Ctx,
        client: OAuthClient,
        account: str,
        scopes: tuple[str, ...],
        refresh_value: str,
        *,
        include_refresh: bool,
        nonce: str | None = None,
    ) -> dict[str, Any]:
        access, expires_in = self.state.new_access_token(
            now=ctx.now, scopes=scopes, azp=client.client_id, email=account,
            sub=user_sub(account), source="user", refresh_token=refresh_value,
            access_type="offline", expired=ctx.expired,
        )
        out: dict[str, Any] = {
            "access_token": access,
            "expires_in": expires_in,
            "scope": " ".join(scopes),
            "token_type": "Bearer",
        }
        if "openid" in scopes:
            extra: dict[str, object] = {"at_hash": at_hash(access)}
            if nonce is not None:
                extra["nonce"] = nonce
            email = account if USERINFO_EMAIL in scopes else None
            out["id_token"] = self.state.id_token(
                now=ctx.now, aud=client.client_id, azp=client.client_id, sub=user_sub(account),
                email=email, extra=extra, expired=ctx.expired,
            )
        if include_refresh:
            out["refresh_token"] = refresh_value
        self._issued()
        return out

    # ------------------------------------------------------------------ /token
    def token(self, req: Request, ctx: Ctx) -> Reply:
        """``POST /token``: all four grant types."""
        params = self._form(req)
        if isinstance(params, Reply):
            return params
        grant_type = params.get("grant_type", "")
        if grant_type == JWT_BEARER:
            return self._jwt_bearer(params, ctx)
        if grant_type == "refresh_token":
            return self._refresh(req, params, ctx)
        if grant_type == "authorization_code":
            return self._auth_code(req, params, ctx)
        if grant_type == DEVICE_CODE_GRANT:
            return self._device_grant(req, params, ctx)
        return oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _jwt_bearer(self, params: dict[str, str], ctx: Ctx) -> Reply:
        assertion = params.get("assertion")
        if not assertion:
            return oauth_error(400, "invalid_request", "Missing required parameter: assertion")
        try:
            parsed = decode_unverified(assertion)
        except JWTError:
            return oauth_error(400, "invalid_grant",
                               "Invalid JWT: the assertion is not a compact signed JWT.")
        claims = parsed.claims
        iss = claims.get("iss")
        sa = self.state.service_accounts.get(iss) if isinstance(iss, str) else None
        if sa is None:
            return oauth_error(400, "invalid_grant", "Invalid grant: account not found")
        kid = parsed.header.get("kid")
        if kid is None:
            candidates = list(sa.keys.values())
        else:
            key = sa.keys.get(kid) if isinstance(kid, str) else None
            candidates = [key] if key is not None else []
        if not any(verify_signature(parsed, k.public_key) for k in candidates):
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        aud = claims.get("aud")
        if aud not in GOOGLE_TOKEN_AUDIENCES and aud != self.config.token_uri:
            return oauth_error(
                400, "invalid_grant",
                f'Invalid JWT: Failed audience check. The "aud" claim must be {GOOGLE_TOKEN_URI} '
                f"(or this emulator's token URI), was: {aud!r}.",
            )
        iat, exp = _num(claims.get("iat")), _num(claims.get("exp"))
        if iat is None or exp is None:
            missing = "iat" if iat is None else "exp"
            return oauth_error(400, "invalid_grant",
                               f'Invalid JWT: the "{missing}" claim is missing or not a number.')
        if exp <= iat or exp - iat > 3600:
            return oauth_error(400, "invalid_grant",
                               TIMEFRAME + ' ("exp" - "iat" must be at most 3600 seconds.)')
        if iat > ctx.now + MAX_SKEW:
            return oauth_error(400, "invalid_grant", TIMEFRAME + ' ("iat" is in the future.)')
        if exp <= ctx.now:
            return oauth_error(400, "invalid_grant", TIMEFRAME + ' ("exp" is in the past.)')

        target_audience = claims.get("target_audience")
        if target_audience is not None:
            if not isinstance(target_audience, str) or not target_audience:
                return oauth_error(400, "invalid_request",
                                   'Invalid JWT: "target_audience" must be a non-empty string.')
            id_token = self.state.id_token(
                now=ctx.now, aud=target_audience, azp=sa.unique_id, sub=sa.unique_id,
                email=sa.email, expired=ctx.expired,
            )
            self._issued()
            return json_reply(200, {"id_token": id_token}, [("Cache-Control", "no-store")])

        sub = claims.get("sub")
        delegated: str | None = None
        if sub is not None and sub != sa.email:
            if not sa.domain_wide_delegation:
                return oauth_error(401, "unauthorized_client", DWD_DENIED)
            if not isinstance(sub, str) or "@" not in sub:
                return oauth_error(400, "invalid_grant", "Invalid email or User ID")
            delegated = sub
        scope = claims.get("scope")
        if not isinstance(scope, str) or not scope.split():
            return oauth_error(400, "invalid_scope", "Empty or missing scope not allowed.")
        requested = scope.split()
        if not all(is_valid_scope(s) for s in requested):
            return oauth_error(400, "invalid_scope",
                               "Invalid OAuth scope or ID token audience provided.")
        access, expires_in = self.state.new_access_token(
            now=ctx.now,
            scopes=tuple(normalize_scopes(requested)),
            azp=sa.unique_id,
            email=delegated or sa.email,
            sub=user_sub(delegated) if delegated else sa.unique_id,
            source="delegated" if delegated else "service_account",
            expired=ctx.expired,
        )
        self._issued()
        return json_reply(
            200,
            {"access_token": access, "expires_in": expires_in, "token_type": "Bearer"},
            [("Cache-Control", "no-store")],
        )

    def _refresh(self, req: Request, params: dict[str, str], ctx: Ctx) -> Reply:
        client = self._authenticate(req, params)
        if isinstance(client, Reply):
            return client
        value = params.get("refresh_token")
        if not value:
            return oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
        rt = self.state.refresh_tokens.get(value)
        if rt is None or rt.revoked or rt.client_id != client.client_id:
            return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        scopes = rt.scopes
        if params.get("scope"):
            requested = tuple(normalize_scopes(params["scope"].split()))
            extra = [s for s in requested if s not in rt.scopes]
            if extra:
                return oauth_error(
                    400, "invalid_scope",
                    f"Some requested scopes were not granted by the user: {' '.join(extra)}",
                )
            scopes = requested
        out = self._user_tokens(ctx, client, rt.account, scopes, value, include_refresh=False)
        return json_reply(200, out, [("Cache-Control", "no-store")])

    def _auth_code(self, req: Request, params: dict[str, str], ctx: Ctx) -> Reply:
        client = self._authenticate(req, params)
        if isinstance(client, Reply):
            return client
        code = params.get("code")
        if not code:
            return oauth_error(400, "invalid_request", "Missing required parameter: code")
        rec = self.state.codes.get(code)
        if rec is None:
            return oauth_error(400, "invalid_grant", "Malformed auth code.")
        if rec.used:
            # RFC 6749 §4.1.2: a replayed code revokes what it produced.
            if rec.refresh_token is not None:
                self.state.revoke(rec.refresh_token)
            return oauth_error(400, "invalid_grant", "Code was already redeemed.")
        if rec.client_id != client.client_id:
            return oauth_error(400, "invalid_grant", "Malformed auth code.")
        rec.used = True  # any attempt by the right client burns the code
        if ctx.now >= rec.expiry:
            return oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        if params.get("redirect_uri") != rec.redirect_uri:
            return oauth_error(400, "redirect_uri_mismatch", "Bad Request")
        verifier = params.get("code_verifier")
        if not verifier:
            return oauth_error(400, "invalid_grant", "Missing code verifier.")
        if not _pkce_ok(verifier, rec.code_challenge, rec.code_challenge_method):
            return oauth_error(400, "invalid_grant", "Invalid code verifier.")
        refresh_value = self.state.new_refresh_token(client.client_id, rec.account, rec.scopes)
        rec.refresh_token = refresh_value
        include = rec.access_type == "offline" or client.kind == "installed"
        out = self._user_tokens(ctx, client, rec.account, rec.scopes, refresh_value,
                                include_refresh=include, nonce=rec.nonce)
        return json_reply(200, out, [("Cache-Control", "no-store")])

    def _device_grant(self, req: Request, params: dict[str, str], ctx: Ctx) -> Reply:
        client = self._authenticate(req, params)
        if isinstance(client, Reply):
            return client
        value = params.get("device_code")
        if not value:
            return oauth_error(400, "invalid_request", "Missing required parameter: device_code")
        grant = self.state.devices.get(value)
        if grant is None or grant.client_id != client.client_id or grant.status == "done":
            return oauth_error(400, "invalid_grant", "Bad Request")
        if ctx.now >= grant.expiry:
            return oauth_error(400, "expired_token", "Bad Request")
        if grant.status == "denied":
            return oauth_error(403, "access_denied", "Forbidden")
        mono = time.monotonic()
        last, grant.last_poll = grant.last_poll, mono
        if grant.status == "pending":
            if last is not None and mono - last < grant.interval * 0.8:
                return oauth_error(403, "slow_down", "Forbidden")
            return oauth_error(428, "authorization_pending", "Precondition Required")
        assert grant.account is not None
        grant.status = "done"
        refresh_value = self.state.new_refresh_token(client.client_id, grant.account,
                                                     grant.scopes)
        out = self._user_tokens(ctx, client, grant.account, grant.scopes, refresh_value,
                                include_refresh=True)
        return json_reply(200, out, [("Cache-Control", "no-store")])

    # ------------------------------------------------------------------ tokeninfo / revoke
    def tokeninfo(self, req: Request, ctx: Ctx) -> Reply:
        """``GET|POST /tokeninfo``: describe a live access token or a valid ID token."""
        pairs = list(req.query)
        if req.method == "POST" and req.is_form():
            try:
                pairs += form_pairs(req.body)
            except BadParams as exc:
                return oauth_error(400, "invalid_request", str(exc))
        try:
            params = parse_params(pairs)
        except BadParams as exc:
            return oauth_error(400, "invalid_request", str(exc))
        invalid = oauth_error(400, "invalid_token", "Invalid Value")
        if "access_token" in params:
            rec = self.state.live_access_token(params["access_token"])
            if rec is None:
                return invalid
            now = self.state.now()
            info: dict[str, str] = {"azp": rec.azp, "aud": rec.azp}
            if rec.sub is not None and rec.source != "service_account":
                info["sub"] = rec.sub
            info["scope"] = " ".join(rec.scopes)
            info["exp"] = str(int(rec.expiry))
            info["expires_in"] = str(max(0, int(rec.expiry - now)))
            if rec.email is not None and USERINFO_EMAIL in rec.scopes:
                info["email"] = rec.email
                info["email_verified"] = "true"
            info["access_type"] = rec.access_type
            return json_reply(200, info)
        if "id_token" in params:
            try:
                parsed = decode_unverified(params["id_token"])
            except JWTError:
                return invalid
            key = self.state.signing_key
            exp = _num(parsed.claims.get("exp"))
            if (parsed.header.get("kid") != key.kid or not verify_signature(parsed, key.public_key)
                    or exp is None or exp <= self.state.now()):
                return invalid
            out = {k: (str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, int)
                       else v) for k, v in parsed.claims.items()}
            out.update({"alg": "RS256", "kid": key.kid, "typ": "JWT"})
            return json_reply(200, out)
        return oauth_error(400, "invalid_request",
                           "Either access_token, id_token, or token_handle required")

    def revoke(self, req: Request) -> Reply:
        """``POST /revoke``: revoke an access or refresh token (and its grant)."""
        pairs = list(req.query)
        if req.method not in ("POST", "GET"):
            return oauth_error(405, "invalid_request", f"Invalid request method: {req.method}",
                               [("Allow", "POST")])
        if req.method == "POST" and req.body:
            if not req.is_form():
                return oauth_error(400, "invalid_request", "Invalid content type.")
            try:
                pairs += form_pairs(req.body)
            except BadParams as exc:
                return oauth_error(400, "invalid_request", str(exc))
        try:
            params = parse_params(pairs)
        except BadParams as exc:
            return oauth_error(400, "invalid_request", str(exc))
        value = params.get("token")
        if not value:
            return oauth_error(400, "invalid_request", "Missing required parameter: token")
        if not self.state.revoke(value):
            return oauth_error(400, "invalid_token", "Token expired or revoked")
        return json_reply(200, {})

    # ------------------------------------------------------------------ browser consent
    def authorize(self, req: Request, ctx: Ctx) -> Reply:
        """``GET /o/oauth2/auth``: validate the request and render the consent page."""
        if req.method != "GET":
            return html_reply(405, _pages.error_page("invalid_request", "Use GET."))
        try:
            q = parse_params(req.query)
        except BadParams as exc:
            return html_reply(400, _pages.error_page("invalid_request", str(exc)))

        def fail(error: str, description: str) -> Reply:
            return html_reply(400, _pages.error_page(error, description))

        client_id = q.get("client_id")
        if not client_id:
            return fail("invalid_request", "Missing required parameter: client_id")
        client = self.state.clients.get(client_id)
        if client is None:
            return fail("invalid_client", "The OAuth client was not found.")
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri:
            return fail("invalid_request", "Missing required parameter: redirect_uri")
        registered = client.kind == "web" and redirect_uri in client.redirect_uris
        if not (registered or is_loopback_redirect(redirect_uri)):
            return fail(
                "redirect_uri_mismatch",
                "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 "
                f"policy. Request details: redirect_uri={redirect_uri}",
            )
        if q.get("response_type") != "code":
            return fail("unsupported_response_type",
                        f"Invalid response_type: {q.get('response_type', '')}")
        scope = q.get("scope", "")
        if not scope.split():
            return fail("invalid_request", "Missing required parameter: scope")
        bad = [s for s in scope.split() if not is_valid_scope(s)]
        if bad:
            return fail("invalid_scope", f"Some requested scopes were invalid: {' '.join(bad)}")
        challenge = q.get("code_challenge")
        if not challenge:
            return fail("invalid_request", "Missing required parameter: code_challenge")
        method = q.get("code_challenge_method", "plain")
        if method not in ("S256", "plain"):
            return fail("invalid_request", f"Invalid code_challenge_method: {method}")
        if not _PKCE_RE.fullmatch(challenge):
            return fail("invalid_request", "Invalid code_challenge.")
        access_type = q.get("access_type", "online")
        if access_type not in ("online", "offline"):
            return fail("invalid_request", f"Invalid access_type: {access_type}")
        pending = PendingConsent(
            pending_id=token("", 32),
            kind="code",
            client_id=client_id,
            scopes=tuple(normalize_scopes(scope.split())),
            expiry=time.time() + CONSENT_LIFETIME,
            redirect_uri=redirect_uri,
            state=q.get("state"),
            code_challenge=challenge,
            code_challenge_method=method,
            access_type=access_type,
            nonce=q.get("nonce"),
        )
        return self._consent(pending, q.get("login_hint"), client)

    def _consent(self, pending: PendingConsent, login_hint: str | None,
                 client: OAuthClient) -> Reply:
        accounts = list(self.config.accounts)
        if login_hint and "@" in login_hint and login_hint not in accounts:
            accounts.append(login_hint)
        pending.accounts = tuple(accounts)
        self.state.pending[pending.pending_id] = pending
        selected = login_hint if login_hint in accounts else accounts[0]
        page = _pages.consent_page(
            pending_id=pending.pending_id,
            client_label=client.client_id,
            scopes=pending.scopes,
            accounts=accounts,
            selected=selected or accounts[0],
        )
        return html_reply(200, page)

    def approve(self, req: Request, ctx: Ctx) -> Reply:
        """``POST /o/oauth2/approve``: the consent form's submission."""
        if req.method != "POST" or not req.is_form():
            return html_reply(400, _pages.error_page("invalid_request", "Bad consent submission."))
        try:
            form = parse_params(form_pairs(req.body))
        except BadParams as exc:
            return html_reply(400, _pages.error_page("invalid_request", str(exc)))
        pending = self.state.pending.pop(form.get("pending", ""), None)
        if pending is None or time.time() >= pending.expiry:
            return html_reply(400, _pages.error_page(
                "invalid_request", "This consent request is unknown, expired or already used."))
        decision = form.get("decision")
        account = form.get("account", "")
        if decision not in ("allow", "deny"):
            return html_reply(400, _pages.error_page("invalid_request", "Missing decision."))
        if decision == "allow" and account not in pending.accounts:
            return html_reply(400, _pages.error_page("invalid_request", "Choose an account."))
        if pending.kind == "device":
            return self._finish_device(pending, decision, account, ctx)
        if decision == "deny":
            location = with_query(pending.redirect_uri,
                                  {"error": "access_denied", "state": pending.state})
            return Reply(302, b"", "text/plain", [("Location", location),
                                                   ("Cache-Control", "no-store")])
        code = token("4/0emu-", 32)
        self.state.codes[code] = AuthCode(
            code=code,
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            account=account,
            scopes=pending.scopes,
            code_challenge=pending.code_challenge,
            code_challenge_method=pending.code_challenge_method,
            expiry=ctx.now + CODE_LIFETIME,
            access_type=pending.access_type,
            nonce=pending.nonce,
        )
        location = with_query(
            pending.redirect_uri,
            {"state": pending.state, "code": code, "scope": " ".join(pending.scopes)},
        )
        return Reply(302, b"", "text/plain", [("Location", location),
                                               ("Cache-Control", "no-store")])

    # ------------------------------------------------------------------ device flow
    def device_code(self, req: Request, ctx: Ctx) -> Reply:
        """``POST /device/code``: start an RFC 8628 device authorization."""
        params = self._form(req)
        if isinstance(params, Reply):
            return params
        creds = self._client_credentials(req, params)
        if isinstance(creds, Reply):
            return creds
        cid, secret, _ = creds
        if not cid:
            return oauth_error(400, "invalid_request", NO_CLIENT_ID)
        client = self.state.clients.get(cid)
        if client is None:
            return oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if secret is not None and not hmac.compare_digest(secret.encode(),
                                                          client.client_secret.encode()):
            return oauth_error(401, "invalid_client", "Unauthorized")
        scope = params.get("scope", "")
        if not scope.split():
            return oauth_error(400, "invalid_scope", "Missing required parameter: scope")
        if not all(is_valid_scope(s) for s in scope.split()):
            return oauth_error(400, "invalid_scope", "Some requested scopes were invalid.")
        while True:
            raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
            user_code = f"{raw[:4]}-{raw[4:]}"
            if user_code not in self.state.devices_by_user_code:
                break
        cfg = self.config
        grant = DeviceGrant(
            device_code=token("AH-1emu", 32),
            user_code=user_code,
            client_id=cid,
            scopes=tuple(normalize_scopes(scope.split())),
            expiry=ctx.now + cfg.device_expires_in,
            interval=cfg.device_interval,
        )
        self.state.devices[grant.device_code] = grant
        self.state.devices_by_user_code[user_code] = grant
        interval: float = cfg.device_interval
        expires: float = cfg.device_expires_in
        return json_reply(200, {
            "device_code": grant.device_code,
            "user_code": user_code,
            "verification_url": cfg.url + "/device",
            "expires_in": int(expires) if float(expires).is_integer() else expires,
            "interval": int(interval) if float(interval).is_integer() else interval,
        }, [("Cache-Control", "no-store")])

    def find_device(self, user_code: str) -> DeviceGrant | None:
        """Look a device grant up by user code (case- and hyphen-insensitive)."""
        raw = re.sub(r"[\s-]", "", user_code).upper()
        if len(raw) != 8:
            return None
        return self.state.devices_by_user_code.get(f"{raw[:4]}-{raw[4:]}")

    def device_page(self, req: Request, ctx: Ctx) -> Reply:
        """``GET /device`` (code entry) and ``POST /device`` (code → consent page)."""
        if req.method == "GET":
            return html_reply(200, _pages.device_entry_page())
        if req.method != "POST" or not req.is_form():
            return html_reply(400, _pages.device_entry_page("Bad request."))
        try:
            form = parse_params(form_pairs(req.body))
        except BadParams:
            return html_reply(400, _pages.device_entry_page("Bad request."))
        grant = self.find_device(form.get("user_code", ""))
        if grant is None or grant.status != "pending" or ctx.now >= grant.expiry:
            return html_reply(400, _pages.device_entry_page(
                "That code is invalid or has expired. Check the code and try again."))
        client = self.state.clients[grant.client_id]
        pending = PendingConsent(
            pending_id=token("", 32),
            kind="device",
            client_id=grant.client_id,
            scopes=grant.scopes,
            expiry=time.time() + CONSENT_LIFETIME,
            user_code=grant.user_code,
        )
        return self._consent(pending, None, client)

    def _finish_device(self, pending: PendingConsent, decision: str, account: str,
                       ctx: Ctx) -> Reply:
        grant = self.state.devices_by_user_code.get(pending.user_code or "")
        if grant is None or grant.status != "pending" or ctx.now >= grant.expiry:
            return html_reply(400, _pages.error_page("expired_token",
                                                     "The device code has expired."))
        if decision == "deny":
            grant.status = "denied"
            return html_reply(200, _pages.message_page(
                "Access denied", "You denied access. You can close this window.", "denied"))
        grant.status = "approved"
        grant.account = account
        return html_reply(200, _pages.message_page(
            "Success", "Device connected. You can return to your device.", "success"))

    # ------------------------------------------------------------------ metadata server
    def metadata(self, req: Request, ctx: Ctx) -> Reply:
        """The Compute Engine metadata server (``/`` and ``/computeMetadata/...``)."""
        reply = self._metadata(req, ctx)
        reply.headers += [("Metadata-Flavor", "Google"), ("Server", "Metadata Server for VM")]
        return reply

    def _metadata(self, req: Request, ctx: Ctx) -> Reply:
        cfg = self.config
        if req.header("x-forwarded-for") is not None:
            return text_reply(403, "Request denied: the X-Forwarded-For header is not allowed.\n")
        if req.method not in ("GET", "HEAD"):
            return text_reply(405, "Method Not Allowed\n")
        if req.path == "/":
            return text_reply(200, "computeMetadata/\n", "application/text")
        if req.header("metadata-flavor") != "Google":
            return text_reply(
                403,
                f"Your client does not have permission to get URL {req.path} from this server. "
                'Missing required header "Metadata-Flavor": "Google"\n',
            )
        try:
            q = parse_params(req.query)
        except BadParams as exc:
            return text_reply(400, str(exc) + "\n")
        rel = req.path.removeprefix("/computeMetadata/v1/")
        if rel == req.path:
            return text_reply(404, "Not Found\n")

        def text(value: str) -> Reply:
            return text_reply(200, value, "application/text")

        simple = {
            "project/project-id": cfg.metadata_project_id,
            "project/numeric-project-id": cfg.metadata_numeric_project_id,
            "instance/id": numeric_id("instance:" + cfg.metadata_project_id, 19),
            "instance/zone": f"projects/{cfg.metadata_numeric_project_id}/zones/us-central1-a",
            "instance/hostname": "emu-instance.us-central1-a.c.internal",
            "universe/universe-domain": "googleapis.com",
        }
        if rel in simple:
            return text(simple[rel])
        if rel.rstrip("/") == "instance/service-accounts":
            return text(f"default/\n{cfg.metadata_service_account_email}/\n")
        m = _SA_RE.fullmatch(rel)
        if m is None or unquote(m.group(1)) not in ("default", cfg.metadata_service_account_email):
            return text_reply(404, "Not Found\n")
        leaf = (m.group(2) or "").rstrip("/")
        email = cfg.metadata_service_account_email
        if leaf == "":
            if q.get("recursive", "").lower() == "true":
                return json_reply(200, {"aliases": ["default"], "email": email,
                                        "scopes": list(cfg.metadata_scopes)})
            return text("aliases\nemail\nidentity\nscopes\ntoken\n")
        if leaf == "email":
            return text(email)
        if leaf == "aliases":
            return text("default")
        if leaf == "scopes":
            return text("".join(s + "\n" for s in cfg.metadata_scopes))
        if leaf == "token":
            scopes = tuple(cfg.metadata_scopes)
            if q.get("scopes"):
                scopes = tuple(normalize_scopes([s for s in q["scopes"].split(",") if s]))
            sa_id = numeric_id("sa:" + email)
            access, expires_in = self.state.new_access_token(
                now=ctx.now, scopes=scopes, azp=sa_id, email=email, sub=sa_id,
                source="metadata", expired=ctx.expired,
            )
            self.state.count("metadata_token_issued")
            return json_reply(200, {"access_token": access, "expires_in": expires_in,
                                    "token_type": "Bearer"})
        if leaf == "identity":
            audience = q.get("audience")
            if not audience:
                return text_reply(400, "non-empty audience parameter required\n")
            sa_id = numeric_id("sa:" + email)
            extra: dict[str, object] = {}
            if q.get("format") == "full":
                extra["google"] = {"compute_engine": {
                    "instance_id": simple["instance/id"],
                    "instance_name": "emu-instance",
                    "project_id": cfg.metadata_project_id,
                    "project_number": int(cfg.metadata_numeric_project_id)
                    if cfg.metadata_numeric_project_id.isdigit() else 0,
                    "zone": "us-central1-a",
                }}
            jwt = self.state.id_token(now=ctx.now, aud=audience, azp=sa_id, sub=sa_id,
                                      email=email, extra=extra, expired=ctx.expired)
            return text(jwt)
        return text_reply(404, "Not Found\n")

    # ------------------------------------------------------------------ sample API
    def sample_api(self, req: Request, ctx: Ctx) -> Reply:
        """``GET /sql/v1beta4/projects/{project}/instances``: an authenticated Google API."""
        self.state.quota_projects_seen.append(req.header("x-goog-user-project"))
        m = _SQL_RE.fullmatch(req.path)
        if m is None:
            return api_error(404, "The requested URL was not found on this server.")
        if req.method != "GET":
            return api_error(405, f"Method {req.method} is not allowed.", [("Allow", "GET")])
        challenge = 'Bearer realm="https://accounts.google.com/"'
        auth = req.header("authorization") or ""
        if auth[:7].lower() != "bearer " or not auth[7:].strip():
            return api_error(401, MISSING_CREDENTIAL, [("WWW-Authenticate", challenge)])
        bearer = auth[7:].strip()
        verdict = self._check_bearer(bearer, ctx)
        if verdict == "invalid":
            return api_error(401, INVALID_CREDENTIAL, [(
                "WWW-Authenticate", challenge + ', error="invalid_token"')])
        if verdict == "scope":
            return api_error(
                403, "Request had insufficient authentication scopes.",
                [("WWW-Authenticate", challenge + ', error="insufficient_scope", '
                  f'scope="{CLOUD_PLATFORM} {SQLSERVICE_ADMIN}"')],
                [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                  "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                  "domain": "googleapis.com",
                  "metadata": {"service": "sqladmin.googleapis.com",
                               "method": "cloudsql.instances.list"}}],
            )
        project = unquote(m.group(1))
        return json_reply(200, {
            "kind": "sql#instancesList",
            "items": [{
                "kind": "sql#instance",
                "name": "emu-instance-1",
                "project": project,
                "databaseVersion": "POSTGRES_16",
                "region": "us-central1",
                "state": "RUNNABLE",
                "instanceType": "CLOUD_SQL_INSTANCE",
                "connectionName": f"{project}:us-central1:emu-instance-1",
                "selfLink": f"{self.config.url}/sql/v1beta4/projects/{quote(project)}"
                            "/instances/emu-instance-1",
            }],
        })

    def _check_bearer(self, bearer: str, ctx: Ctx) -> str:
        """Classify a bearer token: "ok", "invalid" or "scope" (insufficient scopes)."""
        if bearer.count(".") != 2:
            rec = self.state.live_access_token(bearer)
            if rec is None:
                return "invalid"
            return "ok" if API_SCOPES.intersection(rec.scopes) else "scope"
        # A self-signed service-account JWT (AIP-4111).
        try:
            parsed = decode_unverified(bearer)
        except JWTError:
            return "invalid"
        kid = parsed.header.get("kid")
        sa = self.state.keys_by_kid.get(kid) if isinstance(kid, str) else None
        if sa is None or not verify_signature(parsed, sa.keys[str(kid)].public_key):
            return "invalid"
        c = parsed.claims
        iat, exp = _num(c.get("iat")), _num(c.get("exp"))
        if c.get("iss") != sa.email or c.get("sub") != sa.email or iat is None or exp is None:
            return "invalid"
        if exp <= iat or exp - iat > 3600 or exp <= ctx.now or iat > ctx.now + MAX_SKEW:
            return "invalid"
        scope = c.get("scope")
        if scope is not None:
            if not isinstance(scope, str):
                return "invalid"
            return "ok" if API_SCOPES.intersection(scope.split()) else "scope"
        return "ok" if c.get("aud") == SQLADMIN_AUDIENCE else "invalid"

    # ------------------------------------------------------------------ misc
    def certs(self, req: Request) -> Reply:
        """JWKS / PEM certificates for the emulator's ID-token key and SA keys."""
        key = self.state.signing_key
        if req.path == "/oauth2/v3/certs":
            return json_reply(200, {"keys": [key.jwk()]}, [("Cache-Control", "max-age=3600")])
        if req.path == "/oauth2/v1/certs":
            return json_reply(200, {key.kid: key.certificate_pem},
                              [("Cache-Control", "max-age=3600")])
        email = unquote(req.path.removeprefix("/robot/v1/metadata/x509/"))
        sa = self.state.service_accounts.get(email)
        if sa is None:
            return api_error(404, f"Unknown service account {email!r}.")
        return json_reply(200, {k.kid: k.certificate_pem for k in sa.keys.values()})

    def discovery(self) -> Reply:
        """A minimal OpenID Connect discovery document."""
        url = self.config.url
        return json_reply(200, {
            "issuer": GOOGLE_ISSUER,
            "authorization_endpoint": url + "/o/oauth2/auth",
            "device_authorization_endpoint": url + "/device/code",
            "token_endpoint": url + "/token",
            "revocation_endpoint": url + "/revoke",
            "jwks_uri": url + "/oauth2/v3/certs",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT,
                                      JWT_BEARER],
        })

    def echo(self, req: Request) -> Reply:
        """Return the request headers (minus Authorization/Cookie) as JSON."""
        out: dict[str, str] = {}
        for name, value in req.headers.items():
            if name.lower() in ("authorization", "cookie"):
                continue
            out[name] = f"{out[name]}, {value}" if name in out else str(value)
        return json_reply(200, out)

    def control(self, req: Request) -> Reply:
        """``/_emulator/faults`` (GET status, POST command) and ``/_emulator/counts``."""
        if req.path == "/_emulator/counts" and req.method == "GET":
            return json_reply(200, dict(self.state.counts))
        if req.path != "/_emulator/faults":
            return api_error(404, "Unknown control endpoint.")
        if req.method == "GET":
            return json_reply(200, self.faults.status())
        if req.method != "POST":
            return api_error(405, "Use GET or POST.")
        ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return api_error(400, "Content-Type must be application/json.")
        try:
            command = json.loads(req.body)
            if not isinstance(command, dict):
                raise TypeError("command must be a JSON object")
            return json_reply(200, self.faults.apply_command(command))
        except (ValueError, TypeError, KeyError) as exc:
            return api_error(400, f"Bad fault command: {exc}")
