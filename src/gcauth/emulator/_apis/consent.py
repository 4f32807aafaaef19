"""The user-facing half of the OAuth 2.0 server: the consent page (``/o/oauth2/auth``) and
its submission (``/o/oauth2/approve``), and the device flow's start (``/device/code``) and
code-entry page (``/device``)."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from .. import _pages
from .._errors import HtmlError, OAuthError, page_error
from .._routing import Call
from .._state import (
    AuthCode,
    DeviceGrant,
    OAuthClient,
    PendingConsent,
    is_valid_scope,
    normalize_scopes,
    random_secret,
)
from .._wire import BadParams, Reply, form_pairs, html_reply, json_reply, parse_params, with_query
from ._oauth import NO_STORE, authenticate_client, read_form
from .token import PKCE_RE

__all__ = ["approve", "authorize", "device_code", "device_entry", "device_submit",
           "is_loopback_redirect", "redirect_allowed"]

#: What Google's device endpoint answers a client that is not of type "TVs and Limited Input
#: devices" (a desktop or web client).
INVALID_CLIENT_TYPE = "Invalid client type."

CODE_LIFETIME = 600.0
CONSENT_LIFETIME = 1800.0
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


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


def redirect_allowed(client: OAuthClient, uri: str) -> bool:
    """Google's rule: a web client may be sent back only to one of its registered redirect
    URIs, exactly (a loopback address included, port and path too); a desktop client to any
    loopback address (RFC 8252 §7.3) or a registered URI."""
    if uri in client.redirect_uris:
        return True
    return client.kind != "web" and is_loopback_redirect(uri)


def _browser_form(call: Call, error: HtmlError) -> dict[str, str]:
    """The urlencoded form of a browser POST; ``error`` for another method or content type."""
    if call.req.method != "POST" or not call.req.is_form():
        raise error
    return parse_params(form_pairs(call.req.body))


def _redirect(location: str) -> Reply:
    return Reply(302, b"", "text/plain", [("Location", location), *NO_STORE])


# ---------------------------------------------------------------------------- consent page
def authorize(call: Call) -> Reply:
    """``GET /o/oauth2/auth``: validate the request and render the consent page."""
    try:
        q = parse_params(call.req.query)
    except BadParams as exc:
        raise page_error("invalid_request", str(exc)) from exc
    client_id = q.get("client_id")
    if not client_id:
        raise page_error("invalid_request", "Missing required parameter: client_id")
    client = call.state.clients.get(client_id)
    if client is None:
        raise page_error("invalid_client", "The OAuth client was not found.")
    redirect_uri = q.get("redirect_uri")
    if not redirect_uri:
        raise page_error("invalid_request", "Missing required parameter: redirect_uri")
    if not redirect_allowed(client, redirect_uri):
        raise page_error(
            "redirect_uri_mismatch",
            "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 "
            f"policy. Request details: redirect_uri={redirect_uri}")
    if q.get("response_type") != "code":
        raise page_error("unsupported_response_type",
                         f"Invalid response_type: {q.get('response_type', '')}")
    scope = q.get("scope", "")
    if not scope.split():
        raise page_error("invalid_request", "Missing required parameter: scope")
    bad = [s for s in scope.split() if not is_valid_scope(s)]
    if bad:
        raise page_error("invalid_scope", f"Some requested scopes were invalid: {' '.join(bad)}")
    challenge = q.get("code_challenge")
    if not challenge:
        raise page_error("invalid_request", "Missing required parameter: code_challenge")
    method = q.get("code_challenge_method", "plain")
    if method not in ("S256", "plain"):
        raise page_error("invalid_request", f"Invalid code_challenge_method: {method}")
    if not PKCE_RE.fullmatch(challenge):
        raise page_error("invalid_request", "Invalid code_challenge.")
    access_type = q.get("access_type", "online")
    if access_type not in ("online", "offline"):
        raise page_error("invalid_request", f"Invalid access_type: {access_type}")
    pending = PendingConsent(
        pending_id=random_secret("", 32),
        kind="code",
        client_id=client_id,
        scopes=tuple(normalize_scopes(scope.split())),
        expiry=call.now + CONSENT_LIFETIME,
        redirect_uri=redirect_uri,
        state=q.get("state"),
        code_challenge=challenge,
        code_challenge_method=method,
        access_type=access_type,
        nonce=q.get("nonce"),
    )
    return _consent(call, pending, q.get("login_hint"), client)


def _consent(call: Call, pending: PendingConsent, login_hint: str | None,
             client: OAuthClient) -> Reply:
    accounts = list(call.config.accounts)
    if login_hint and "@" in login_hint and login_hint not in accounts:
        accounts.append(login_hint)
    pending.accounts = tuple(accounts)
    call.state.pending[pending.pending_id] = pending
    selected = login_hint if login_hint in accounts else accounts[0]
    page = _pages.consent_page(
        pending_id=pending.pending_id,
        client_label=client.name,
        client_id=client.client_id,
        scopes=pending.scopes,
        accounts=accounts,
        selected=selected or accounts[0],
    )
    return html_reply(200, page)


def approve(call: Call) -> Reply:
    """``POST /o/oauth2/approve``: the consent form's submission."""
    try:
        form = _browser_form(call, page_error("invalid_request", "Bad consent submission."))
    except BadParams as exc:
        raise page_error("invalid_request", str(exc)) from exc
    state = call.state
    pending = state.pending.pop(form.get("pending", ""), None)
    if pending is None or call.now >= pending.expiry:
        raise page_error("invalid_request",
                         "This consent request is unknown, expired or already used.")
    decision = form.get("decision")
    account = form.get("account", "")
    if decision not in ("allow", "deny"):
        raise page_error("invalid_request", "Missing decision.")
    if decision == "allow" and account not in pending.accounts:
        raise page_error("invalid_request", "Choose an account.")
    if pending.kind == "device":
        return _finish_device(call, pending, decision, account)
    if decision == "deny":
        return _redirect(with_query(pending.redirect_uri,
                                    {"error": "access_denied", "state": pending.state}))
    code = random_secret("4/0emu-", 32)
    state.codes[code] = AuthCode(
        code=code,
        client_id=pending.client_id,
        redirect_uri=pending.redirect_uri,
        account=account,
        scopes=pending.scopes,
        code_challenge=pending.code_challenge,
        code_challenge_method=pending.code_challenge_method,
        expiry=call.now + CODE_LIFETIME,
        access_type=pending.access_type,
        nonce=pending.nonce,
    )
    return _redirect(with_query(
        pending.redirect_uri,
        {"state": pending.state, "code": code, "scope": " ".join(pending.scopes)}))


# ---------------------------------------------------------------------------- device flow
def device_code(call: Call) -> Reply:
    """``POST /device/code``: start an RFC 8628 device authorization."""
    params = read_form(call)
    client = authenticate_client(call, params, secret_required=False)
    if client.kind != "limited-input":
        raise OAuthError(401, "invalid_client", INVALID_CLIENT_TYPE)
    scope = params.get("scope", "")
    if not scope.split():
        raise OAuthError(400, "invalid_scope", "Missing required parameter: scope")
    if not all(is_valid_scope(s) for s in scope.split()):
        raise OAuthError(400, "invalid_scope", "Some requested scopes were invalid.")
    state, cfg = call.state, call.config
    while True:
        raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
        user_code = f"{raw[:4]}-{raw[4:]}"
        if user_code not in state.devices_by_user_code:
            break
    grant = DeviceGrant(
        device_code=random_secret("AH-1emu", 32),
        user_code=user_code,
        client_id=client.client_id,
        scopes=tuple(normalize_scopes(scope.split())),
        expiry=call.now + cfg.device_expires_in,
        interval=cfg.device_interval,
    )
    state.devices[grant.device_code] = grant
    state.devices_by_user_code[user_code] = grant
    interval: float = cfg.device_interval
    expires: float = cfg.device_expires_in
    return json_reply(200, {
        "device_code": grant.device_code,
        "user_code": user_code,
        "verification_url": cfg.url + "/device",
        "expires_in": int(expires) if float(expires).is_integer() else expires,
        "interval": int(interval) if float(interval).is_integer() else interval,
    }, NO_STORE)


def device_entry(call: Call) -> Reply:
    """``GET /device``: the code-entry form."""
    return html_reply(200, _pages.device_entry_page())


def device_submit(call: Call) -> Reply:
    """``POST /device`` with ``user_code``: the consent page for that device."""
    bad = HtmlError(400, _pages.device_entry_page("Bad request."))
    try:
        form = _browser_form(call, bad)
    except BadParams:
        raise bad from None
    grant = call.state.find_device(form.get("user_code", ""))
    if grant is None or grant.status != "pending" or call.now >= grant.expiry:
        raise HtmlError(400, _pages.device_entry_page(
            "That code is invalid or has expired. Check the code and try again."))
    client = call.state.clients[grant.client_id]
    pending = PendingConsent(
        pending_id=random_secret("", 32),
        kind="device",
        client_id=grant.client_id,
        scopes=grant.scopes,
        expiry=call.now + CONSENT_LIFETIME,
        user_code=grant.user_code,
    )
    return _consent(call, pending, None, client)


def _finish_device(call: Call, pending: PendingConsent, decision: str, account: str) -> Reply:
    grant = call.state.devices_by_user_code.get(pending.user_code or "")
    if grant is None or grant.status != "pending" or call.now >= grant.expiry:
        raise page_error("expired_token", "The device code has expired.")
    if decision == "deny":
        grant.status = "denied"
        return html_reply(200, _pages.message_page(
            "Access denied", "You denied access. You can close this window.", "denied"))
    grant.status = "approved"
    grant.account = account
    return html_reply(200, _pages.message_page(
        "Success", "Device connected. You can return to your device.", "success"))
