"""The emulator's IAM Credentials API over raw HTTP: the permission model, delegate chains,
the wire details real clients rely on, signatures verifiable with the account's certs, and
the certificate documents' caching headers."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

from gcauth.emulator import Emulator
from tests.kit.emu import CLOUD, Kit, Resp

IAM = "https://www.googleapis.com/auth/iam"
BASE = "/v1/projects/-/serviceAccounts/"


def iam(kit: Kit, email: str, method: str, body: Any, bearer: str | None) -> Resp:
    headers = {"Content-Type": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return kit.request("POST", f"{BASE}{email}:{method}", raw, headers)


def user_token(kit: Kit, emu: Emulator, account: str = "alice@example.com",
               scope: str | None = None) -> str:
    info = emu.create_authorized_user(account)
    form = {"grant_type": "refresh_token", "refresh_token": info["refresh_token"],
            "client_id": info["client_id"], "client_secret": info["client_secret"]}
    if scope:
        form["scope"] = scope
    r = kit.post("/token", form)
    assert r.status == 200, r.text
    return str(r.json()["access_token"])


@pytest.fixture(scope="module")
def target(shared_emu: Emulator) -> str:
    email = shared_emu.create_service_account(name="iam-target", with_key=False)["client_email"]
    shared_emu.grant_token_creator("user:alice@example.com", email)
    return email


def test_keyless_accounts_have_no_key_in_their_dict(emu: Emulator) -> None:
    keyless = emu.create_service_account(name="keyless-1", with_key=False)
    keyed = emu.create_service_account(name="keyed-1")
    assert set(keyed) - set(keyless) == {"private_key", "private_key_id"}
    assert keyless["type"] == "service_account"
    assert keyless["client_email"] == "keyless-1@emu-project.iam.gserviceaccount.com"


def test_generate_access_token_wire_details(kit: Kit, emu: Emulator, target: str) -> None:
    bearer = user_token(kit, emu)
    before = time.time()
    r = iam(kit, target, "generateAccessToken",
            {"delegates": None, "scope": [CLOUD], "lifetime": "600s"}, bearer)
    assert r.status == 200, r.text
    data = r.json()
    assert set(data) == {"accessToken", "expireTime"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["expireTime"])
    expiry = time.mktime(time.strptime(data["expireTime"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before + 590 <= expiry <= time.time() + 601
    rec = emu.access_token_info(data["accessToken"])
    assert rec is not None and rec.email == target and rec.source == "impersonated"
    assert rec.scopes == (CLOUD,)
    assert kit.api(data["accessToken"]).status == 200  # the API accepts it
    assert emu.counts["generateAccessToken"] == 1


def test_lifetime_is_capped_by_the_token_lifetime_and_checked(kit: Kit, emu: Emulator,
                                                              target: str) -> None:
    bearer = user_token(kit, emu)
    emu.set_token_lifetime(43200)
    r = iam(kit, target, "generateAccessToken", {"scope": [CLOUD], "lifetime": "7200s"}, bearer)
    rec = emu.access_token_info(r.json()["accessToken"])
    assert rec is not None and 7190 < rec.expiry - time.time() <= 7200
    for bad in ("43201s", "-1s", "3600", "abc s", 3600):
        r = iam(kit, target, "generateAccessToken", {"scope": [CLOUD], "lifetime": bad}, bearer)
        assert r.status == 400, bad
        assert r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_missing_scope_and_bad_json_are_invalid_argument(kit: Kit, emu: Emulator,
                                                         target: str) -> None:
    bearer = user_token(kit, emu)
    bodies: list[Any] = [{}, {"scope": []}, {"scope": "x"}, {"scope": ["not-a-scope"]},
                         b"{nope", b"[1]"]
    for body in bodies:
        r = iam(kit, target, "generateAccessToken", body, bearer)
        assert r.status == 400, body
        assert r.json()["error"]["code"] == 400


def test_no_bearer_is_401_and_a_dead_one_too(kit: Kit, emu: Emulator, target: str) -> None:
    r = iam(kit, target, "generateAccessToken", {"scope": [CLOUD]}, None)
    assert r.status == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
    assert "missing required authentication credential" in r.json()["error"]["message"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    bearer = user_token(kit, emu)
    emu.expire_access_token(bearer)
    r = iam(kit, target, "generateAccessToken", {"scope": [CLOUD]}, bearer)
    assert r.status == 401 and "invalid authentication credentials" in r.text
    assert iam(kit, target, "signBlob", {"payload": "eA=="}, "ya29.unknown").status == 401


def test_a_source_token_with_only_the_iam_scope_is_accepted(kit: Kit, emu: Emulator,
                                                            sa: dict[str, str]) -> None:
    keyless = emu.create_service_account(name="iam-only-target", with_key=False)["client_email"]
    emu.grant_token_creator("serviceAccount:" + sa["client_email"], keyless)
    only_iam = kit.sa_token(sa, scope=IAM)
    r = iam(kit, keyless, "generateAccessToken", {"scope": [CLOUD]}, only_iam)
    assert r.status == 200, r.text
    sql_only = kit.sa_token(sa, scope="https://www.googleapis.com/auth/sqlservice.admin")
    r = iam(kit, keyless, "generateAccessToken", {"scope": [CLOUD]}, sql_only)
    assert r.status == 403 and "insufficient authentication scopes" in r.text
    assert r.json()["error"]["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


def test_a_self_signed_jwt_may_call_iam(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    keyless = emu.create_service_account(name="jwt-caller-target", with_key=False)
    emu.grant_token_creator("serviceAccount:" + sa["client_email"], keyless["client_email"])
    now = int(time.time())
    jwt = kit.sign(sa, {"iss": sa["client_email"], "sub": sa["client_email"], "iat": now,
                        "exp": now + 600, "aud": "https://iamcredentials.googleapis.com/"})
    assert iam(kit, keyless["client_email"], "signBlob", {"payload": "eA=="}, jwt).status == 200
    wrong = kit.sign(sa, {"iss": sa["client_email"], "sub": sa["client_email"], "iat": now,
                          "exp": now + 600, "aud": "https://sqladmin.googleapis.com/"})
    assert iam(kit, keyless["client_email"], "signBlob", {"payload": "eA=="}, wrong).status == 401


@pytest.mark.parametrize("method,body,permission", [
    ("generateAccessToken", {"scope": [CLOUD]}, "iam.serviceAccounts.getAccessToken"),
    ("generateIdToken", {"audience": "https://x"}, "iam.serviceAccounts.getOpenIdToken"),
    ("signBlob", {"payload": "eA=="}, "iam.serviceAccounts.signBlob"),
    ("signJwt", {"payload": "{}"}, "iam.serviceAccounts.signJwt"),
])
def test_without_the_role_every_method_is_permission_denied(
        kit: Kit, emu: Emulator, target: str, method: str, body: dict[str, Any],
        permission: str) -> None:
    bob = user_token(kit, emu, "bob@example.com")
    r = iam(kit, target, method, body, bob)
    assert r.status == 403
    err = r.json()["error"]
    assert err["status"] == "PERMISSION_DENIED"
    assert err["message"] == (f"Permission '{permission}' denied on resource (or it may not "
                              "exist).")
    assert err["details"][0]["reason"] == "IAM_PERMISSION_DENIED"
    assert err["details"][0]["metadata"] == {"permission": permission}
    assert emu.counts[method] == 1
    unknown = iam(kit, "ghost@emu-project.iam.gserviceaccount.com", method, body,
                  user_token(kit, emu))
    assert unknown.status == 403


def test_grants_can_be_revoked(kit: Kit, emu: Emulator) -> None:
    email = emu.create_service_account(name="revocable", with_key=False)["client_email"]
    bearer = user_token(kit, emu, "bob@example.com")
    emu.grant_token_creator("user:bob@example.com", email)
    assert iam(kit, email, "signBlob", {"payload": "eA=="}, bearer).status == 200
    emu.revoke_token_creator("user:bob@example.com", email)
    assert iam(kit, email, "signBlob", {"payload": "eA=="}, bearer).status == 403
    with pytest.raises(KeyError):
        emu.grant_token_creator("user:bob@example.com", "ghost@x.iam.gserviceaccount.com")
    with pytest.raises(ValueError):
        emu.grant_token_creator("bob@example.com", email)


def test_delegates_must_be_granted_along_the_chain(kit: Kit, emu: Emulator) -> None:
    first = emu.create_service_account(name="chain-a", with_key=False)["client_email"]
    second = emu.create_service_account(name="chain-b", with_key=False)["client_email"]
    end = emu.create_service_account(name="chain-c", with_key=False)["client_email"]
    bearer = user_token(kit, emu, "bob@example.com")
    emu.grant_token_creator("user:bob@example.com", first)
    emu.grant_token_creator("serviceAccount:" + first, second)
    body = {"scope": [CLOUD], "delegates": [f"projects/-/serviceAccounts/{first}", second]}
    assert iam(kit, end, "generateAccessToken", body, bearer).status == 403  # second -> end
    emu.grant_token_creator("serviceAccount:" + second, end)
    assert iam(kit, end, "generateAccessToken", body, bearer).status == 200
    # bob himself has no role on `end`: without the chain he is denied
    assert iam(kit, end, "generateAccessToken", {"scope": [CLOUD]}, bearer).status == 403
    # the chain is checked in order: skipping `first` breaks it
    body["delegates"] = [second]
    assert iam(kit, end, "generateAccessToken", body, bearer).status == 403
    bad = iam(kit, end, "generateAccessToken", {"scope": [CLOUD], "delegates": "x"}, bearer)
    assert bad.status == 400


def test_generate_id_token_has_email_only_when_asked(kit: Kit, emu: Emulator,
                                                     target: str) -> None:
    bearer = user_token(kit, emu)
    plain = iam(kit, target, "generateIdToken", {"audience": "https://x.run.app"}, bearer)
    assert plain.status == 200, plain.text
    claims = kit.decode(plain.json()["token"])
    assert "email" not in claims and "email_verified" not in claims
    assert claims["aud"] == "https://x.run.app" and claims["iss"] == "https://accounts.google.com"
    assert claims["sub"] == claims["azp"] and claims["exp"] > claims["iat"]
    full = iam(kit, target, "generateIdToken",
               {"audience": "https://x.run.app", "includeEmail": True, "delegates": None}, bearer)
    assert kit.decode(full.json()["token"])["email"] == target
    # the emulator's own key signs it: tokeninfo (which checks the signature) accepts it
    info = kit.get("/tokeninfo?id_token=" + full.json()["token"])
    assert info.status == 200 and info.json()["email"] == target
    assert iam(kit, target, "generateIdToken", {"audience": ""}, bearer).status == 400
    assert iam(kit, target, "generateIdToken",
               {"audience": "a", "includeEmail": "yes"}, bearer).status == 400


def _robot_key(kit: Kit, email: str, kid: str, form: str) -> rsa.RSAPublicKey:
    r = kit.get(f"/robot/v1/metadata/{form}/{email}")
    assert r.status == 200 and "max-age=" in r.headers["Cache-Control"]
    if form == "x509":
        key = x509.load_pem_x509_certificate(r.json()[kid].encode()).public_key()
    else:
        (jwk,) = [k for k in r.json()["keys"] if k["kid"] == kid]

        def num(v: str) -> int:
            return int.from_bytes(base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)), "big")

        key = RSAPublicNumbers(num(jwk["e"]), num(jwk["n"])).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


@pytest.mark.parametrize("form", ["x509", "jwk"])
def test_sign_blob_verifies_with_the_accounts_published_certs(kit: Kit, emu: Emulator,
                                                              target: str, form: str) -> None:
    bearer = user_token(kit, emu)
    message = b"GET\n\n\n1700000000\n/bucket/object"
    r = iam(kit, target, "signBlob", {"payload": base64.b64encode(message).decode()}, bearer)
    assert r.status == 200, r.text
    kid, signature = r.json()["keyId"], base64.b64decode(r.json()["signedBlob"])
    key = _robot_key(kit, target, kid, form)
    key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        key.verify(signature, message + b"x", padding.PKCS1v15(), hashes.SHA256())
    assert iam(kit, target, "signBlob", {"payload": "not base64!"}, bearer).status == 400
    assert iam(kit, target, "signBlob", {}, bearer).status == 400


def test_sign_jwt_makes_an_assertion_the_token_endpoint_accepts(kit: Kit, emu: Emulator) -> None:
    dwd = emu.create_service_account(name="iam-dwd", with_key=False,
                                     domain_wide_delegation=True)["client_email"]
    emu.grant_token_creator("user:alice@example.com", dwd)
    bearer = user_token(kit, emu)
    now = int(time.time())
    claims = {"iss": dwd, "sub": "carol@example.com", "scope": CLOUD,
              "aud": "https://oauth2.googleapis.com/token", "iat": now, "exp": now + 3600}
    r = iam(kit, dwd, "signJwt", {"payload": json.dumps(claims)}, bearer)
    assert r.status == 200, r.text
    signed = r.json()["signedJwt"]
    header = json.loads(base64.urlsafe_b64decode(signed.split(".")[0] + "=="))
    assert header == {"alg": "RS256", "kid": r.json()["keyId"], "typ": "JWT"}
    assert kit.decode(signed) == claims
    grant = kit.jwt_grant({}, assertion=signed)
    assert grant.status == 200, grant.text
    rec = emu.access_token_info(grant.json()["access_token"])
    assert rec is not None and rec.email == "carol@example.com" and rec.source == "delegated"
    far = dict(claims, exp=now + 13 * 3600)
    assert iam(kit, dwd, "signJwt", {"payload": json.dumps(far)}, bearer).status == 400
    assert iam(kit, dwd, "signJwt", {"payload": "[1]"}, bearer).status == 400
    assert iam(kit, dwd, "signJwt", {"payload": "{"}, bearer).status == 400


def test_unique_ids_name_accounts_too(kit: Kit, emu: Emulator, target: str) -> None:
    bearer = user_token(kit, emu)
    unique_id = emu.create_service_account(name="iam-target", with_key=False)["client_id"]
    assert unique_id != target
    assert iam(kit, unique_id, "signBlob", {"payload": "eA=="}, bearer).status == 200
    assert iam(kit, "1" + unique_id, "signBlob", {"payload": "eA=="}, bearer).status == 403


def test_iam_faults_and_counters(kit: Kit, emu: Emulator, target: str) -> None:
    bearer = user_token(kit, emu)
    emu.faults.add("iam", kind="status", status=503, count=1)
    r = iam(kit, target, "signBlob", {"payload": "eA=="}, bearer)
    assert r.status == 503 and r.json()["error"]["status"] == "UNAVAILABLE"
    assert iam(kit, target, "signBlob", {"payload": "eA=="}, bearer).status == 200
    assert emu.counts["signBlob"] == 2
    assert kit.request("GET", f"{BASE}{target}:signBlob").status == 405


def test_metadata_identity_tokens_are_signed_by_the_emulator_and_counted(
        kit: Kit, emu: Emulator) -> None:
    r = kit.md("instance/service-accounts/default/identity?audience=https://a&format=full")
    assert r.status == 200
    assert kit.get("/tokeninfo?id_token=" + r.text).status == 200
    assert emu.counts["metadata_identity"] == 1
    claims = kit.decode(r.text)
    assert claims["aud"] == "https://a" and "compute_engine" in claims["google"]


def test_certs_documents_carry_max_age_from_the_config(kit: Kit, emu: Emulator) -> None:
    for path in ("/oauth2/v1/certs", "/oauth2/v3/certs"):
        assert "max-age=3600" in kit.get(path).headers["Cache-Control"]
    emu.config.certs_max_age = 5
    try:
        assert "public, max-age=5," in kit.get("/oauth2/v1/certs").headers["Cache-Control"]
    finally:
        emu.config.certs_max_age = 3600
    assert kit.get("/robot/v1/metadata/jwk/ghost@x.iam.gserviceaccount.com").status == 404


def test_the_vm_account_may_sign_as_itself_once_granted(kit: Kit, emu: Emulator) -> None:
    vm = emu.metadata_service_account_email
    token = kit.md("instance/service-accounts/default/token").json()["access_token"]
    assert iam(kit, vm, "signBlob", {"payload": "eA=="}, token).status == 403
    emu.grant_token_creator("serviceAccount:" + vm, vm)
    try:
        assert iam(kit, vm, "signBlob", {"payload": "eA=="}, token).status == 200
    finally:
        emu.revoke_token_creator("serviceAccount:" + vm, vm)
