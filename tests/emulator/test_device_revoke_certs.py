"""Device flow (RFC 8628), tokeninfo, revocation and the certificate endpoints."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gcauth.emulator import Emulator
from tests.kit.emu import CLOUD, EMAIL, Kit, b64url

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def _err(r: Any) -> tuple[int, str]:
    return r.status, r.json()["error"]


def _start(kit: Kit, client: dict[str, Any], scope: str = f"openid {EMAIL}") -> dict[str, Any]:
    r = kit.post("/device/code", {"client_id": client["client_id"], "scope": scope})
    assert r.status == 200, r.body
    return dict(r.json())


def _poll(kit: Kit, client: dict[str, Any], device_code: str) -> Any:
    return kit.post("/token", {"grant_type": DEVICE, "device_code": device_code,
                               "client_id": client["client_id"],
                               "client_secret": client["client_secret"]})


# ---------------------------------------------------------------- device flow
def test_device_code_response(kit: Kit, emu: Emulator, device_client: dict[str, Any]) -> None:
    emu.device_interval = 1
    body = _start(kit, device_client)
    assert set(body) == {"device_code", "user_code", "verification_url", "expires_in",
                         "interval"}
    assert re.fullmatch(r"[A-Z]{4}-[A-Z]{4}", body["user_code"])
    assert body["verification_url"] == emu.url + "/device"
    assert body["expires_in"] == 1800 and body["interval"] == 1
    assert emu.counts["device_code"] == 1


def test_device_code_unknown_client(kit: Kit) -> None:
    r = kit.post("/device/code", {"client_id": "nope", "scope": "openid"})
    assert _err(r) == (401, "invalid_client")


@pytest.mark.parametrize("kind", ["installed", "web"])
def test_the_device_flow_needs_a_limited_input_client(kit: Kit, emu: Emulator,
                                                      kind: str) -> None:
    """As at Google: a Desktop-app or web client gets invalid_client "Invalid client type."
    and no device code, so what works here also works against Google."""
    client = emu.create_oauth_client(kind)[kind]
    r = kit.post("/device/code", {"client_id": client["client_id"], "scope": "openid"})
    assert r.status == 401
    assert r.json() == {"error": "invalid_client", "error_description": "Invalid client type."}
    assert emu.counts["device_code"] == 1


def test_device_pending_slow_down_then_approved(kit: Kit, emu: Emulator,
                                                 device_client: dict[str, Any]) -> None:
    emu.device_interval = 0.15
    body = _start(kit, device_client)
    assert _err(_poll(kit, device_client, body["device_code"])) == (428, "authorization_pending")
    assert _err(_poll(kit, device_client, body["device_code"])) == (403, "slow_down")
    time.sleep(0.15)
    assert _err(_poll(kit, device_client, body["device_code"])) == (428, "authorization_pending")
    emu.approve_device(body["user_code"].lower().replace("-", ""), account="bob@example.com")
    time.sleep(0.15)
    r = _poll(kit, device_client, body["device_code"])
    assert r.status == 200, r.body
    tokens = r.json()
    assert "refresh_token" in tokens and kit.decode(tokens["id_token"])["email"] == (
        "bob@example.com")
    # the device code is single-use
    time.sleep(0.15)
    assert _err(_poll(kit, device_client, body["device_code"])) == (400, "invalid_grant")


def test_device_denied(kit: Kit, emu: Emulator, device_client: dict[str, Any]) -> None:
    emu.device_interval = 0.05
    body = _start(kit, device_client)
    emu.deny_device(body["user_code"])
    assert _err(_poll(kit, device_client, body["device_code"])) == (403, "access_denied")
    with pytest.raises(ValueError):
        emu.approve_device(body["user_code"])
    with pytest.raises(KeyError):
        emu.approve_device("ZZZZ-ZZZZ")


def test_device_expired(kit: Kit, emu: Emulator, device_client: dict[str, Any]) -> None:
    emu.device_expires_in = 0.2
    emu.device_interval = 0.05
    body = _start(kit, device_client)
    time.sleep(0.25)
    assert _err(_poll(kit, device_client, body["device_code"])) == (400, "expired_token")


def test_device_poll_wrong_secret(kit: Kit, device_client: dict[str, Any]) -> None:
    body = _start(kit, device_client)
    r = kit.post("/token", {"grant_type": DEVICE, "device_code": body["device_code"],
                            "client_id": device_client["client_id"], "client_secret": "x"})
    assert _err(r) == (401, "invalid_client")


def test_device_browser_pages(kit: Kit, emu: Emulator, device_client: dict[str, Any]) -> None:
    emu.device_interval = 0.05
    body = _start(kit, device_client)
    entry = kit.get("/device")
    assert entry.status == 200 and 'name="user_code"' in entry.text
    bad = kit.post("/device", {"user_code": "BBBB-BBBB"})
    assert bad.status == 400 and 'id="error"' in bad.text
    consent = kit.post("/device", {"user_code": body["user_code"]})
    assert consent.status == 200 and 'id="allow"' in consent.text
    done = kit.approve(consent, "allow", "alice@example.com")
    assert done.status == 200 and 'id="success"' in done.text
    assert _poll(kit, device_client, body["device_code"]).status == 200

    body2 = _start(kit, device_client)
    consent2 = kit.post("/device", {"user_code": body2["user_code"]})
    assert 'id="denied"' in kit.approve(consent2, "deny").text
    assert _err(_poll(kit, device_client, body2["device_code"])) == (403, "access_denied")


# ---------------------------------------------------------------- tokeninfo
def test_tokeninfo_access_token(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user()
    r = kit.post("/token", {"grant_type": "refresh_token", "refresh_token": user["refresh_token"],
                            "client_id": user["client_id"],
                            "client_secret": user["client_secret"]})
    tok = r.json()["access_token"]
    info = kit.get(f"/tokeninfo?access_token={tok}")
    assert info.status == 200
    body = info.json()
    assert body["azp"] == body["aud"] == user["client_id"]
    assert body["email"] == "alice@example.com" and body["email_verified"] == "true"
    assert set(body["scope"].split()) == {CLOUD, "openid", EMAIL}
    assert body["access_type"] == "offline"
    assert 3500 <= int(body["expires_in"]) <= 3599 and int(body["exp"]) > time.time()
    assert emu.counts["tokeninfo"] == 1


def test_tokeninfo_sa_token_without_email_scope(kit: Kit, sa: dict[str, str]) -> None:
    body = kit.get(f"/tokeninfo?access_token={kit.sa_token(sa)}").json()
    assert body["azp"] == sa["client_id"] and "email" not in body
    body = kit.get(f"/tokeninfo?access_token={kit.sa_token(sa, f'{CLOUD} {EMAIL}')}").json()
    assert body["email"] == sa["client_email"]


def test_tokeninfo_invalid(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    bad = {"error": "invalid_token", "error_description": "Invalid Value"}
    r = kit.get("/tokeninfo?access_token=ya29.nope")
    assert r.status == 400 and r.json() == bad
    tok = kit.sa_token(sa)
    emu.expire_access_token(tok)
    r = kit.get(f"/tokeninfo?access_token={tok}")
    assert r.status == 400 and r.json() == bad


def test_tokeninfo_id_token(kit: Kit, emu: Emulator) -> None:
    jwt = kit.md("instance/service-accounts/default/identity?audience=aud1").text
    body = kit.get(f"/tokeninfo?id_token={jwt}").json()
    assert body["aud"] == "aud1" and body["email"] == emu.metadata_service_account_email
    assert body["email_verified"] == "true" and body["alg"] == "RS256"
    head, payload, sig = jwt.split(".")
    forged = f"{head}.{payload}.{b64url(b'x' * 256)}"
    assert kit.get(f"/tokeninfo?id_token={forged}").status == 400


# ---------------------------------------------------------------- revoke
def test_revoke_refresh_token_cascades(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user()
    form = {"grant_type": "refresh_token", "refresh_token": user["refresh_token"],
            "client_id": user["client_id"], "client_secret": user["client_secret"]}
    tok = kit.post("/token", form).json()["access_token"]
    assert kit.api(tok).status == 200
    r = kit.post("/revoke", {"token": user["refresh_token"]})
    assert r.status == 200 and r.json() == {}
    assert kit.api(tok).status == 401
    assert kit.post("/token", form).status == 400
    again = kit.post("/revoke", {"token": user["refresh_token"]})
    assert again.status == 400 and again.json() == {
        "error": "invalid_token", "error_description": "Token expired or revoked"}


def test_revoke_access_token_via_query(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    tok = kit.sa_token(sa)
    r = kit.request("POST", f"/revoke?token={tok}", b"",
                    {"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200
    assert not emu.is_access_token_valid(tok) and emu.counts["revoke"] == 1


def test_revoke_access_token_revokes_grant(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user()
    form = {"grant_type": "refresh_token", "refresh_token": user["refresh_token"],
            "client_id": user["client_id"], "client_secret": user["client_secret"]}
    tok = kit.post("/token", form).json()["access_token"]
    assert kit.post("/revoke", {"token": tok}).status == 200
    assert kit.post("/token", form).json()["error"] == "invalid_grant"


def test_revoke_unknown_and_missing(kit: Kit) -> None:
    assert _err(kit.post("/revoke", {"token": "ya29.unknown"})) == (400, "invalid_token")
    assert _err(kit.post("/revoke", {})) == (400, "invalid_request")


# ---------------------------------------------------------------- certs
def test_jwks_verifies_id_tokens(kit: Kit) -> None:
    jwt = kit.md("instance/service-accounts/default/identity?audience=a").text
    jwks = kit.get("/oauth2/v3/certs").json()
    head, payload, sig = jwt.split(".")
    (jwk,) = jwks["keys"]
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256"
    n = int.from_bytes(_unb64(jwk["n"]), "big")
    e = int.from_bytes(_unb64(jwk["e"]), "big")
    pub = rsa.RSAPublicNumbers(e, n).public_key()
    pub.verify(_unb64(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    pems = kit.get("/oauth2/v1/certs").json()
    cert = x509.load_pem_x509_certificate(pems[jwk["kid"]].encode())
    assert cert.public_key().public_numbers() == pub.public_numbers()  # type: ignore[union-attr]


def test_service_account_x509(kit: Kit, sa: dict[str, str]) -> None:
    path = sa["client_x509_cert_url"].removeprefix(kit.emu.url)
    certs = kit.get(path).json()
    assert sa["private_key_id"] in certs
    assert kit.get("/robot/v1/metadata/x509/ghost@x.iam.gserviceaccount.com").status == 404


def _unb64(s: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
