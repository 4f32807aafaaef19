"""``POST /token`` with the RFC 7523 JWT-bearer grant (service accounts)."""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from gcauth.emulator import Emulator
from tests.kit.emu import CLOUD, Kit

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _err(r: Any) -> tuple[int, str, str]:
    body = r.json()
    return r.status, body["error"], body["error_description"]


def test_service_account_key_file_shape(emu: Emulator, sa: dict[str, str]) -> None:
    assert set(sa) == {
        "type", "project_id", "private_key_id", "private_key", "client_email", "client_id",
        "auth_uri", "token_uri", "auth_provider_x509_cert_url", "client_x509_cert_url",
        "universe_domain",
    }
    assert sa["type"] == "service_account"
    assert sa["client_email"] == "tester@emu-project.iam.gserviceaccount.com"
    assert sa["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert sa["token_uri"] == emu.token_uri
    assert sa["client_id"].isdigit()


def test_access_token_issued(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    r = kit.jwt_grant(sa)
    assert r.status == 200, r.body
    body = r.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"
    assert 3500 <= body["expires_in"] <= 3600
    assert r.headers["Cache-Control"] == "no-store"
    assert emu.counts["token"] == 1 and emu.counts["token_issued"] == 1
    rec = emu.access_token_info(body["access_token"])
    assert rec is not None and rec.email == sa["client_email"] and rec.scopes == (CLOUD,)
    assert body["access_token"] not in repr(rec)


def test_emulator_token_uri_accepted_as_audience(kit: Kit, emu: Emulator,
                                                 sa: dict[str, str]) -> None:
    assert kit.jwt_grant(sa, aud=emu.token_uri).status == 200


def test_tampered_signature_rejected(kit: Kit, sa: dict[str, str]) -> None:
    jwt = kit.sign(sa, kit.sa_claims(sa))
    head, payload, sig = jwt.split(".")
    tampered_payload = kit.sign(sa, kit.sa_claims(sa, scope=CLOUD + " openid")).split(".")[1]
    r = kit.jwt_grant(sa, assertion=f"{head}.{tampered_payload}.{sig}")
    assert _err(r) == (400, "invalid_grant", "Invalid JWT Signature.")


def test_wrong_key_rejected(kit: Kit, sa: dict[str, str], other_key: rsa.RSAPrivateKey) -> None:
    r = kit.jwt_grant(sa, assertion=kit.sign(sa, kit.sa_claims(sa), key=other_key))
    assert _err(r) == (400, "invalid_grant", "Invalid JWT Signature.")


def test_unknown_kid_rejected(kit: Kit, sa: dict[str, str]) -> None:
    r = kit.jwt_grant(sa, assertion=kit.sign(sa, kit.sa_claims(sa), header={"kid": "nope"}))
    assert _err(r) == (400, "invalid_grant", "Invalid JWT Signature.")


def test_alg_none_rejected(kit: Kit, sa: dict[str, str]) -> None:
    jwt = kit.sign(sa, kit.sa_claims(sa), header={"alg": "none"})
    r = kit.jwt_grant(sa, assertion=jwt)
    assert _err(r) == (400, "invalid_grant", "Invalid JWT Signature.")


def test_unknown_issuer(kit: Kit, sa: dict[str, str]) -> None:
    r = kit.jwt_grant(sa, iss="ghost@emu-project.iam.gserviceaccount.com")
    assert _err(r)[:2] == (400, "invalid_grant")
    assert "account not found" in _err(r)[2]


def test_wrong_audience(kit: Kit, sa: dict[str, str]) -> None:
    status, error, desc = _err(kit.jwt_grant(sa, aud="https://example.com/token"))
    assert (status, error) == (400, "invalid_grant")
    assert "aud" in desc and "audience" in desc


def test_lifetime_over_an_hour(kit: Kit, sa: dict[str, str]) -> None:
    now = int(time.time())
    status, error, desc = _err(kit.jwt_grant(sa, iat=now, exp=now + 3601))
    assert (status, error) == (400, "invalid_grant") and "iat" in desc and "exp" in desc


def test_exactly_an_hour_is_fine(kit: Kit, sa: dict[str, str]) -> None:
    now = int(time.time())
    assert kit.jwt_grant(sa, iat=now, exp=now + 3600).status == 200


def test_iat_in_future(kit: Kit, sa: dict[str, str]) -> None:
    now = int(time.time())
    assert kit.jwt_grant(sa, iat=now + 200, exp=now + 1000).status == 200  # within skew
    status, error, desc = _err(kit.jwt_grant(sa, iat=now + 400, exp=now + 1000))
    assert (status, error) == (400, "invalid_grant") and "iat" in desc


def test_expired_assertion(kit: Kit, sa: dict[str, str]) -> None:
    now = int(time.time())
    status, error, desc = _err(kit.jwt_grant(sa, iat=now - 4000, exp=now - 1000))
    assert (status, error) == (400, "invalid_grant") and "exp" in desc


def test_missing_iat(kit: Kit, sa: dict[str, str]) -> None:
    claims = kit.sa_claims(sa)
    del claims["iat"]
    status, error, desc = _err(kit.jwt_grant(sa, assertion=kit.sign(sa, claims)))
    assert (status, error) == (400, "invalid_grant") and "iat" in desc


def test_missing_scope(kit: Kit, sa: dict[str, str]) -> None:
    claims = kit.sa_claims(sa)
    del claims["scope"]
    r = kit.jwt_grant(sa, assertion=kit.sign(sa, claims))
    assert _err(r) == (400, "invalid_scope", "Empty or missing scope not allowed.")


def test_bogus_scope(kit: Kit, sa: dict[str, str]) -> None:
    assert _err(kit.jwt_grant(sa, scope="not-a-scope"))[:2] == (400, "invalid_scope")


def test_garbage_assertion(kit: Kit, sa: dict[str, str]) -> None:
    assert _err(kit.jwt_grant(sa, assertion="garbage"))[:2] == (400, "invalid_grant")
    assert _err(kit.jwt_grant(sa, assertion="a.b.c"))[:2] == (400, "invalid_grant")


def test_missing_assertion(kit: Kit) -> None:
    r = kit.post("/token", {"grant_type": JWT_BEARER})
    assert _err(r)[:2] == (400, "invalid_request")


def test_unsupported_grant_type(kit: Kit) -> None:
    r = kit.post("/token", {"grant_type": "password", "username": "u", "password": "p"})
    assert _err(r)[:2] == (400, "unsupported_grant_type")


def test_duplicate_parameter_rejected(kit: Kit, sa: dict[str, str]) -> None:
    jwt = kit.sign(sa, kit.sa_claims(sa))
    r = kit.post("/token", [("grant_type", JWT_BEARER), ("assertion", jwt), ("assertion", jwt)])
    assert _err(r)[:2] == (400, "invalid_request")


def test_wrong_content_type_and_method(kit: Kit, sa: dict[str, str]) -> None:
    r = kit.request("POST", "/token", b'{"grant_type": "x"}', {"Content-Type": "application/json"})
    assert _err(r)[:2] == (400, "invalid_request")
    r = kit.get("/token")
    assert r.status == 405 and r.headers["Allow"] == "POST"


def test_sub_without_domain_wide_delegation(kit: Kit, sa: dict[str, str]) -> None:
    r = kit.jwt_grant(sa, sub="alice@example.com")
    status, error, desc = _err(r)
    assert (status, error) == (401, "unauthorized_client")
    assert desc.startswith("Client is unauthorized to retrieve access tokens using this method")


def test_sub_equal_to_issuer_is_fine(kit: Kit, sa: dict[str, str]) -> None:
    assert kit.jwt_grant(sa, sub=sa["client_email"]).status == 200


def test_sub_with_domain_wide_delegation(kit: Kit, emu: Emulator,
                                         dwd_sa: dict[str, str]) -> None:
    r = kit.jwt_grant(dwd_sa, sub="alice@example.com")
    assert r.status == 200, r.body
    rec = emu.access_token_info(r.json()["access_token"])
    assert rec is not None and rec.email == "alice@example.com" and rec.source == "delegated"


def test_id_token_for_target_audience(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    claims = kit.sa_claims(sa, target_audience="https://run.example.com")
    del claims["scope"]
    r = kit.jwt_grant(sa, assertion=kit.sign(sa, claims))
    assert r.status == 200, r.body
    body = r.json()
    assert set(body) == {"id_token"}
    c = kit.decode(body["id_token"])
    assert c["aud"] == "https://run.example.com"
    assert c["iss"] == "https://accounts.google.com"
    assert c["email"] == sa["client_email"] and c["email_verified"] is True
    assert c["sub"] == sa["client_id"]
    assert 0 < c["exp"] - c["iat"] <= 3601
    assert emu.counts["token_issued"] == 1


def test_second_key_for_same_account(kit: Kit, emu: Emulator) -> None:
    k1 = emu.create_service_account(name="rotating")
    k2 = emu.create_service_account(name="rotating")
    assert k1["client_email"] == k2["client_email"]
    assert k1["private_key_id"] != k2["private_key_id"]
    assert kit.jwt_grant(k1).status == 200
    assert kit.jwt_grant(k2).status == 200


def test_token_lifetime_and_expiry(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    emu.set_token_lifetime(60)
    r = kit.jwt_grant(sa)
    assert r.json()["expires_in"] == 60
    tok = r.json()["access_token"]
    assert emu.is_access_token_valid(tok)
    emu.expire_access_token(tok)
    assert not emu.is_access_token_valid(tok)


def test_clock_skew_setting(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    emu.set_clock_skew(-600)  # server clock 10 minutes behind: a fresh iat is "in the future"
    status, error, desc = _err(kit.jwt_grant(sa))
    assert (status, error) == (400, "invalid_grant") and "iat" in desc
    emu.set_clock_skew(0)
    assert kit.jwt_grant(sa).status == 200
