"""Refresh-token grant, consent page and authorization-code grant with PKCE."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import pytest

from gcauth.emulator import Emulator
from tests.kit.emu import CLOUD, EMAIL, Kit


def _err(r: Any) -> tuple[int, str, str]:
    body = r.json()
    return r.status, body["error"], body["error_description"]


def _refresh(kit: Kit, user: dict[str, str], **overrides: str) -> Any:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": user["refresh_token"],
        "client_id": user["client_id"],
        "client_secret": user["client_secret"],
        **overrides,
    }
    return kit.post("/token", form)


# ---------------------------------------------------------------- refresh grant
def test_authorized_user_shape(emu: Emulator) -> None:
    user = emu.create_authorized_user(quota_project_id="qp")
    assert user["type"] == "authorized_user"
    assert set(user) == {"type", "client_id", "client_secret", "refresh_token", "token_uri",
                         "quota_project_id"}
    assert user["token_uri"] == emu.token_uri
    assert "quota_project_id" not in emu.create_authorized_user()


def test_refresh_grant(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user(account="carol@example.com")
    r = _refresh(kit, user)
    assert r.status == 200, r.body
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split()) == {CLOUD, "openid", EMAIL}
    assert "refresh_token" not in body
    claims = kit.decode(body["id_token"])
    assert claims["aud"] == user["client_id"] and claims["email"] == "carol@example.com"
    rec = emu.access_token_info(body["access_token"])
    assert rec is not None and rec.email == "carol@example.com"


def test_refresh_with_basic_auth(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user()
    basic = base64.b64encode(
        f"{quote(user['client_id'])}:{quote(user['client_secret'])}".encode()).decode()
    r = kit.post("/token", {"grant_type": "refresh_token", "refresh_token": user["refresh_token"]},
                 {"Authorization": f"Basic {basic}"})
    assert r.status == 200, r.body


def test_refresh_without_openid_has_no_id_token(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user(scopes=(CLOUD,))
    body = _refresh(kit, user).json()
    assert "id_token" not in body and body["scope"] == CLOUD


def test_refresh_wrong_secret(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user()
    assert _err(_refresh(kit, user, client_secret="nope")) == (401, "invalid_client",
                                                               "Unauthorized")


def test_refresh_unknown_client(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user()
    r = _refresh(kit, user, client_id="123-x.apps.googleusercontent.com")
    assert _err(r) == (401, "invalid_client", "The OAuth client was not found.")


def test_refresh_token_of_other_client(kit: Kit, emu: Emulator) -> None:
    a, b = emu.create_authorized_user(), emu.create_authorized_user()
    r = _refresh(kit, a, client_id=b["client_id"], client_secret=b["client_secret"])
    assert _err(r) == (400, "invalid_grant", "Token has been expired or revoked.")


def test_refresh_unknown_token(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user()
    assert _err(_refresh(kit, user, refresh_token="1//bogus"))[:2] == (400, "invalid_grant")


def test_refresh_scope_subset(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user()
    r = _refresh(kit, user, scope=CLOUD)
    assert r.status == 200 and r.json()["scope"] == CLOUD and "id_token" not in r.json()
    r = _refresh(kit, user, scope=f"{CLOUD} https://www.googleapis.com/auth/drive")
    assert _err(r)[:2] == (400, "invalid_scope")


def test_refresh_after_revoke(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user()
    assert emu.revoke(user["refresh_token"])
    assert _err(_refresh(kit, user)) == (400, "invalid_grant", "Token has been expired or revoked.")


# ---------------------------------------------------------------- consent page
def test_consent_page_contents(kit: Kit, installed: dict[str, Any]) -> None:
    page = kit.consent(installed["client_id"], "http://127.0.0.1:5555/",
                       scope=f"openid {CLOUD} https://www.googleapis.com/auth/custom.x",
                       login_hint="dave@example.com")
    assert page.status == 200
    html = page.text
    assert '<button id="allow" name="decision" value="allow"' in html
    assert 'id="deny" name="decision" value="deny"' in html
    for acct in ("alice@example.com", "bob@example.com", "dave@example.com"):
        assert f'value="{acct}"' in html
    assert 'value="dave@example.com" checked' in html
    assert "See, edit, configure, and delete your Google Cloud data" in html
    assert "https://www.googleapis.com/auth/custom.x" in html
    assert page.headers["X-Frame-Options"] == "DENY"


def test_consent_page_escapes_reflected_values(kit: Kit, installed: dict[str, Any]) -> None:
    page = kit.consent(installed["client_id"], "http://127.0.0.1:5555/",
                       login_hint='"><script>alert(1)</script>@x.com')
    assert page.status == 200
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;" in page.text


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:1234/cb", "http://[::1]:8080/", "http://localhost:9999/x/y",
    "http://localhost",
])
def test_loopback_redirects_allowed(kit: Kit, installed: dict[str, Any], uri: str) -> None:
    assert kit.consent(installed["client_id"], uri).status == 200


@pytest.mark.parametrize("uri", [
    "https://evil.example.com/cb", "http://evil.example.com/", "https://127.0.0.1:1234/",
    "http://127.0.0.1.evil.com/", "http://user@127.0.0.1:5/", "http://127.0.0.1:5/#frag",
    "urn:ietf:wg:oauth:2.0:oob", "javascript:alert(1)",
])
def test_non_loopback_redirects_rejected(kit: Kit, installed: dict[str, Any], uri: str) -> None:
    page = kit.consent(installed["client_id"], uri)
    assert page.status == 400
    assert "Location" not in page.headers
    assert "redirect_uri_mismatch" in page.text


def test_web_client_registered_redirect(kit: Kit, emu: Emulator) -> None:
    web = emu.create_oauth_client("web", redirect_uris=["https://app.example.com/cb"])["web"]
    assert kit.consent(web["client_id"], "https://app.example.com/cb").status == 200
    assert kit.consent(web["client_id"], "https://app.example.com/other").status == 400


@pytest.mark.parametrize("uri", ["http://localhost:8081/oauth2callback",
                                 "http://localhost:8080/other", "http://127.0.0.1:8080/",
                                 "http://localhost/"])
def test_web_client_only_its_registered_loopback_redirect(kit: Kit, emu: Emulator,
                                                          uri: str) -> None:
    """Google's rule for web clients: exactly a registered URI, loopback ones included
    (port and path); the any-port loopback rule of RFC 8252 is for desktop clients only."""
    web = emu.create_oauth_client("web")["web"]
    assert web["redirect_uris"] == ["http://localhost:8080/oauth2callback"]
    assert kit.consent(web["client_id"], "http://localhost:8080/oauth2callback").status == 200
    page = kit.consent(web["client_id"], uri)
    assert page.status == 400 and "redirect_uri_mismatch" in page.text
    assert "Location" not in page.headers


def test_consent_page_names_the_application(kit: Kit, emu: Emulator) -> None:
    named = emu.create_oauth_client(name="Acme <Reports>")["installed"]
    page = kit.consent(named["client_id"], "http://127.0.0.1:5555/")
    assert page.status == 200
    assert '<span id="app-name">Acme &lt;Reports&gt;</span> wants to access' in page.text
    assert "<title>Sign in - Acme &lt;Reports&gt;</title>" in page.text
    # the long client id is kept out of the heading, in a collapsed details element
    heading = page.text[page.text.index("<h1>"):page.text.index("</h1>")]
    assert named["client_id"] not in heading
    assert f'<code id="client-id">{named["client_id"]}</code></details>' in page.text
    default = emu.create_oauth_client()["installed"]
    assert 'id="app-name">Emulator test app<' in kit.consent(
        default["client_id"], "http://127.0.0.1:5555/").text


def test_unknown_client_error_page(kit: Kit) -> None:
    page = kit.consent("999-nope.apps.googleusercontent.com", "http://127.0.0.1:5/")
    assert page.status == 400 and "invalid_client" in page.text


def test_missing_code_challenge(kit: Kit, installed: dict[str, Any]) -> None:
    page = kit.get("/o/oauth2/auth?" + "&".join([
        f"client_id={installed['client_id']}", "redirect_uri=http://127.0.0.1:5/",
        "response_type=code", "scope=openid"]))
    assert page.status == 400 and "code_challenge" in page.text


def test_bad_response_type_and_scope(kit: Kit, installed: dict[str, Any]) -> None:
    assert kit.consent(installed["client_id"], "http://127.0.0.1:5/",
                       response_type="token").status == 400
    assert kit.consent(installed["client_id"], "http://127.0.0.1:5/", scope="bogus").status == 400
    assert kit.consent(installed["client_id"], "http://127.0.0.1:5/", scope="").status == 400


def test_deny_redirects_with_access_denied(kit: Kit, installed: dict[str, Any]) -> None:
    page = kit.consent(installed["client_id"], "http://127.0.0.1:5/cb?keep=1", state="s1")
    params = kit.redirect_params(kit.approve(page, "deny"))
    assert params == {"keep": "1", "error": "access_denied", "state": "s1"}


def test_pending_id_single_use(kit: Kit, installed: dict[str, Any]) -> None:
    page = kit.consent(installed["client_id"], "http://127.0.0.1:5/")
    assert kit.approve(page).status == 302
    assert kit.approve(page).status == 400
    forged = kit.post("/o/oauth2/approve", {"pending": "forged", "decision": "allow",
                                            "account": "alice@example.com"})
    assert forged.status == 400


def test_approve_with_unoffered_account(kit: Kit, installed: dict[str, Any]) -> None:
    page = kit.consent(installed["client_id"], "http://127.0.0.1:5/")
    assert kit.approve(page, account="mallory@example.com").status == 400


# ---------------------------------------------------------------- code grant
def test_code_flow_success(kit: Kit, emu: Emulator, installed: dict[str, Any]) -> None:
    params, verifier, redirect = kit.code_flow(installed)
    assert params["state"] == "st8"
    assert set(params["scope"].split()) == {"openid", EMAIL, CLOUD}
    r = kit.exchange(installed, params["code"], verifier, redirect)
    assert r.status == 200, r.body
    body = r.json()
    assert {"access_token", "expires_in", "scope", "token_type", "refresh_token",
            "id_token"} <= set(body)
    claims = kit.decode(body["id_token"])
    assert claims["email"] == "alice@example.com" and claims["aud"] == installed["client_id"]
    assert "at_hash" in claims
    # the refresh token works
    r2 = kit.post("/token", {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                             "client_id": installed["client_id"],
                             "client_secret": installed["client_secret"]})
    assert r2.status == 200


def test_code_reuse_rejected_and_revokes(kit: Kit, emu: Emulator,
                                         installed: dict[str, Any]) -> None:
    params, verifier, redirect = kit.code_flow(installed)
    first = kit.exchange(installed, params["code"], verifier, redirect)
    assert first.status == 200
    second = kit.exchange(installed, params["code"], verifier, redirect)
    assert _err(second)[:2] == (400, "invalid_grant")
    assert not emu.is_access_token_valid(first.json()["access_token"])


def test_wrong_verifier(kit: Kit, installed: dict[str, Any]) -> None:
    params, _, redirect = kit.code_flow(installed)
    r = kit.exchange(installed, params["code"], "w" * 50, redirect)
    assert _err(r) == (400, "invalid_grant", "Invalid code verifier.")


def test_missing_verifier(kit: Kit, installed: dict[str, Any]) -> None:
    params, _, redirect = kit.code_flow(installed)
    r = kit.exchange(installed, params["code"], None, redirect)
    assert _err(r) == (400, "invalid_grant", "Missing code verifier.")


def test_plain_pkce(kit: Kit, installed: dict[str, Any]) -> None:
    verifier = "v" * 60
    page = kit.consent(installed["client_id"], "http://localhost:7/", challenge=verifier,
                       method="plain")
    params = kit.redirect_params(kit.approve(page))
    assert kit.exchange(installed, params["code"], verifier, "http://localhost:7/").status == 200


def test_redirect_uri_must_match(kit: Kit, installed: dict[str, Any]) -> None:
    params, verifier, _ = kit.code_flow(installed)
    r = kit.exchange(installed, params["code"], verifier, "http://127.0.0.1:10/other")
    assert _err(r)[:2] == (400, "redirect_uri_mismatch")


def test_code_for_other_client(kit: Kit, emu: Emulator, installed: dict[str, Any]) -> None:
    other = emu.create_oauth_client()["installed"]
    params, verifier, redirect = kit.code_flow(installed)
    assert _err(kit.exchange(other, params["code"], verifier, redirect))[:2] == (
        400, "invalid_grant")


def test_code_expires(kit: Kit, emu: Emulator, installed: dict[str, Any]) -> None:
    params, verifier, redirect = kit.code_flow(installed)
    emu.set_clock_skew(601)
    assert _err(kit.exchange(installed, params["code"], verifier, redirect))[:2] == (
        400, "invalid_grant")


def test_web_client_online_gets_no_refresh_token(kit: Kit, emu: Emulator) -> None:
    web = emu.create_oauth_client("web", redirect_uris=["http://127.0.0.1:5/"])["web"]
    verifier, challenge = kit.pkce()
    page = kit.consent(web["client_id"], "http://127.0.0.1:5/", challenge=challenge,
                       access_type="online")
    params = kit.redirect_params(kit.approve(page))
    body = kit.exchange(web, params["code"], verifier, "http://127.0.0.1:5/").json()
    assert "refresh_token" not in body and "access_token" in body
