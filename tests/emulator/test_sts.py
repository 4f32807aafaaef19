"""The emulator's STS (``/v1/token``, ``/v1/oauthtoken``, ``/v1/introspect``, ``/v1/revoke``),
its OIDC issuer and Resource Manager, over raw HTTP: every success and every rejection."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gcauth.emulator import Emulator, serve_forever
from gcauth.exceptions import UsageError
from tests.kit.emu import CLOUD, EMAIL, Kit, Resp, b64url

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
SAML = "urn:ietf:params:oauth:token-type:saml2"
AWS4 = "urn:ietf:params:aws:token-type:aws4_request"


def exchange(kit: Kit, audience: str, token: str, *, token_type: str = JWT,
             scope: str | None = CLOUD, options: dict[str, Any] | str | None = None,
             headers: dict[str, str] | None = None, **extra: str) -> Resp:
    form = {"grant_type": EXCHANGE, "audience": audience, "requested_token_type": ACCESS,
            "subject_token": token, "subject_token_type": token_type, **extra}
    if scope is not None:
        form["scope"] = scope
    if options is not None:
        # google-auth quotes the JSON, then form-encodes the body
        form["options"] = options if isinstance(options, str) else quote(json.dumps(options))
    return kit.post("/v1/token", {k: v for k, v in form.items() if v is not None}, headers)


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": "Basic " + raw}


def err(r: Resp, status: int, error: str, *words: str) -> None:
    assert r.status == status, r.text
    body = r.json()
    assert body["error"] == error, body
    for word in words:
        assert word in body["error_description"], body


def jwk_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "alg": "RS256", "kid": kid,
            "n": b64url(numbers.n.to_bytes(256, "big")), "e": b64url(numbers.e.to_bytes(3, "big"))}


def sign_with(key: rsa.RSAPrivateKey, kid: str, claims: dict[str, Any]) -> str:
    return Kit.sign({"private_key_id": kid}, claims, key=key)


@pytest.fixture
def pool(emu: Emulator) -> dict[str, Any]:
    return emu.create_workload_identity_pool()


def audience_claim(config: dict[str, Any]) -> str:
    return "https:" + str(config["audience"])


# -- the exchange ------------------------------------------------------------------------------
def test_oidc_exchange_issues_a_token_the_emulator_accepts(kit: Kit, emu: Emulator,
                                                          pool: dict[str, Any]) -> None:
    token = emu.issue_oidc_token("repo:org/app:ref:refs/heads/main")
    r = exchange(kit, pool["audience"], token, scope=f"{CLOUD} {EMAIL}")
    assert r.status == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in"}
    assert body["issued_token_type"] == ACCESS and body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 3600
    assert r.headers["Cache-Control"] == "no-store"
    rec = emu.access_token_info(body["access_token"])
    assert rec is not None and rec.source == "federated" and rec.email is None
    pool_path = pool["audience"].removeprefix("//iam.googleapis.com/").rsplit("/providers/")[0]
    assert rec.principal == (f"principal://iam.googleapis.com/{pool_path}/subject/"
                             "repo:org/app:ref:refs/heads/main")
    assert rec.scopes == (CLOUD, EMAIL)
    assert kit.api(body["access_token"]).status == 200
    info = kit.get("/tokeninfo?access_token=" + body["access_token"]).json()
    assert info["sub"] == "repo:org/app:ref:refs/heads/main"
    assert emu.counts["sts"] == 1 and emu.counts["sts_issued"] == 1


@pytest.mark.parametrize("form", ["//", "https://"])
def test_both_default_audience_forms_are_accepted(kit: Kit, emu: Emulator, pool: dict[str, Any],
                                                  form: str) -> None:
    aud = form + pool["audience"].removeprefix("//")
    assert exchange(kit, pool["audience"], emu.issue_oidc_token(audience=aud)).status == 200


def test_id_token_type_and_list_audiences(kit: Kit, emu: Emulator, pool: dict[str, Any]) -> None:
    token = emu.issue_oidc_token(audience=["other", audience_claim(pool)])
    assert exchange(kit, pool["audience"], token, token_type=ID_TOKEN).status == 200


def test_allowed_audiences_replace_the_defaults(kit: Kit, emu: Emulator) -> None:
    config = emu.create_workload_identity_pool(allowed_audiences=["https://my-app.example"])
    ok = exchange(kit, config["audience"], emu.issue_oidc_token(audience="https://my-app.example"))
    assert ok.status == 200
    r = exchange(kit, config["audience"], emu.issue_oidc_token(audience=audience_claim(config)))
    err(r, 400, "invalid_grant", "audience", "https://my-app.example")


def test_wrong_audience_claim(kit: Kit, emu: Emulator, pool: dict[str, Any]) -> None:
    r = exchange(kit, pool["audience"], emu.issue_oidc_token(audience="https://elsewhere"))
    err(r, 400, "invalid_grant", "The audience in ID Token", "https://elsewhere")


def test_wrong_issuer(kit: Kit, emu: Emulator, pool: dict[str, Any]) -> None:
    token = emu.issue_oidc_token(claims={"iss": "https://token.actions.githubusercontent.com"})
    err(exchange(kit, pool["audience"], token), 400, "invalid_grant", "issuer",
        "token.actions.githubusercontent.com", emu.oidc_issuer)


def test_bad_signature_and_tampered_claims(kit: Kit, emu: Emulator, pool: dict[str, Any],
                                           other_key: rsa.RSAPrivateKey) -> None:
    good = emu.issue_oidc_token(audience=audience_claim(pool))
    kid = json.loads(base64.urlsafe_b64decode(good.split(".")[0] + "=="))["kid"]
    forged = sign_with(other_key, kid, kit.decode(good))
    err(exchange(kit, pool["audience"], forged), 400, "invalid_grant", "signature")
    head, _, sig = good.split(".")
    claims = {**kit.decode(good), "sub": "repo:evil/app"}
    tampered = f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"
    err(exchange(kit, pool["audience"], tampered), 400, "invalid_grant", "signature")
    none_header = b64url(json.dumps({"alg": "none"}).encode())
    unsigned = f"{none_header}.{good.split('.')[1]}."
    err(exchange(kit, pool["audience"], unsigned), 400, "invalid_grant")
    err(exchange(kit, pool["audience"], "not-a-jwt"), 400, "invalid_grant", "parse")


def test_expired_future_and_too_long_tokens(kit: Kit, emu: Emulator, pool: dict[str, Any]) -> None:
    token = emu.issue_oidc_token(lifetime=60)
    emu.set_clock_skew(120)
    err(exchange(kit, pool["audience"], token), 400, "invalid_grant", "expired")
    emu.set_clock_skew(0)
    now = int(time.time())
    future = emu.issue_oidc_token(claims={"iat": now + 1000, "exp": now + 2000})
    err(exchange(kit, pool["audience"], future), 400, "invalid_grant", "future")
    long = emu.issue_oidc_token(claims={"iat": now, "exp": now + 2 * 86400})
    err(exchange(kit, pool["audience"], long), 400, "invalid_grant", "86400")
    no_exp = emu.issue_oidc_token(claims={"exp": None})
    err(exchange(kit, pool["audience"], no_exp), 400, "invalid_grant", '"exp"')


def test_attribute_condition_and_mapping(kit: Kit, emu: Emulator) -> None:
    config = emu.create_workload_identity_pool(
        attribute_mapping={"google.subject": "assertion.sub",
                           "attribute.repository": "assertion.repository"},
        attribute_condition="attribute.repository.startsWith('org/') && "
                            "(assertion.ref == 'refs/heads/main' || assertion.ref == 'prod')")
    aud = config["audience"]
    ok = emu.issue_oidc_token(claims={"repository": "org/app", "ref": "refs/heads/main"})
    assert exchange(kit, aud, ok).status == 200
    for claims in ({"repository": "evil/app", "ref": "refs/heads/main"},
                   {"repository": "org/app", "ref": "refs/heads/dev"},
                   {"ref": "refs/heads/main"}):  # a missing attribute fails the condition
        r = exchange(kit, aud, emu.issue_oidc_token(claims=claims))
        err(r, 400, "unauthorized_client",
            "The given credential is rejected by the attribute condition.")


def test_attribute_condition_must_be_in_the_supported_subset(emu: Emulator) -> None:
    for bad in ("__import__('os').system('x')", "assertion.sub.matches('x')", "a ? b : c",
                "assertion.sub ==", "(" * 100 + "true" + ")" * 100):
        with pytest.raises(ValueError, match="attribute condition"):
            emu.create_workload_identity_pool(attribute_condition=bad)


def test_subject_mapping_limits(kit: Kit, emu: Emulator, pool: dict[str, Any]) -> None:
    r = exchange(kit, pool["audience"], emu.issue_oidc_token(subject="x" * 128))
    err(r, 400, "invalid_grant", "127 bytes")


@pytest.mark.parametrize(("audience", "error", "words"), [
    ("//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/nope/providers/nope",
     "invalid_target", ("doesn't exist", "audience")),
    ("projects/123/locations/global/workloadIdentityPools/p/providers/v",
     "invalid_request", ('Invalid value for "audience"',)),
    ("", "invalid_request", ('Invalid value for "audience"',)),
])
def test_unknown_and_malformed_audiences(kit: Kit, emu: Emulator, audience: str, error: str,
                                         words: tuple[str, ...]) -> None:
    err(exchange(kit, audience, emu.issue_oidc_token(audience="x")), 400, error, *words)


def test_parameter_errors(kit: Kit, emu: Emulator, pool: dict[str, Any]) -> None:
    aud, token = pool["audience"], emu.issue_oidc_token()
    err(exchange(kit, aud, token, grant_type="refresh_token"), 400, "unsupported_grant_type")
    err(exchange(kit, aud, token, requested_token_type="urn:x"), 400, "invalid_request",
        "requested_token_type")
    err(exchange(kit, aud, token, token_type="urn:x"), 400, "invalid_request",
        "subject_token_type")
    err(exchange(kit, aud, ""), 400, "invalid_request", "subject_token")
    err(exchange(kit, aud, token, scope=None), 400, "invalid_request", "scope")
    err(exchange(kit, aud, token, scope="https://evil.example/scope"), 400, "invalid_scope")
    err(exchange(kit, aud, token, options="%7Bnot json"), 400, "invalid_request", "options")
    err(exchange(kit, aud, token, token_type=SAML), 400, "invalid_request", "SAML")
    err(exchange(kit, aud, token, token_type=AWS4), 400, "invalid_request", "OIDC")
    form = [("grant_type", EXCHANGE), ("audience", aud), ("audience", aud)]
    err(kit.post("/v1/token", form), 400, "invalid_request", "Duplicate")
    r = kit.request("POST", "/v1/token", b"{}", {"Content-Type": "application/json"})
    err(r, 400, "invalid_request", "content type")
    assert kit.get("/v1/token").status == 405
    # every request is counted (a 405 too), only successes are issued
    assert emu.counts["sts"] == 12 and emu.counts["sts_issued"] == 0


def test_uploaded_jwks_of_another_issuer(kit: Kit, emu: Emulator,
                                         other_key: rsa.RSAPrivateKey) -> None:
    issuer = "https://token.actions.githubusercontent.com"
    config = emu.create_workload_identity_pool(
        issuer=issuer, jwks={"keys": [jwk_of(other_key, "gh-1")]}, credential_source={
            "url": "http://127.0.0.1:9/unused", "format": {"type": "text"}})
    now = int(time.time())
    claims = {"iss": issuer, "sub": "repo:org/app:ref:refs/heads/main",
              "aud": audience_claim(config), "iat": now, "exp": now + 300}
    assert exchange(kit, config["audience"], sign_with(other_key, "gh-1", claims)).status == 200
    r = exchange(kit, config["audience"], sign_with(other_key, "gh-2", claims))
    err(r, 400, "invalid_grant", "signature")  # a kid the JWKS does not have
    own = emu.issue_oidc_token(audience=audience_claim(config), claims={"iss": issuer})
    err(exchange(kit, config["audience"], own), 400, "invalid_grant", "signature")


def test_sts_faults_are_counted(kit: Kit, emu: Emulator, pool: dict[str, Any]) -> None:
    emu.faults.add("sts", kind="status", status=503)
    r = exchange(kit, pool["audience"], emu.issue_oidc_token())
    err(r, 503, "temporarily_unavailable")
    assert exchange(kit, pool["audience"], emu.issue_oidc_token()).status == 200
    assert emu.counts["sts"] == 2 and emu.counts["sts_issued"] == 1


# -- workforce pools -----------------------------------------------------------------------
def test_workforce_pools_need_a_user_project(kit: Kit, emu: Emulator,
                                             installed: dict[str, Any]) -> None:
    config = emu.create_workload_identity_pool(workforce=True)
    aud = config["audience"]
    assert aud.startswith("//iam.googleapis.com/locations/global/workforcePools/")
    assert config["workforce_pool_user_project"] == emu.metadata_numeric_project_id
    token = emu.issue_oidc_token(audience=audience_claim(config))
    err(exchange(kit, aud, token), 400, "invalid_request", "userProject")
    err(exchange(kit, aud, token, options={"userProject": "999"}), 400, "invalid_request",
        "999")
    ok = exchange(kit, aud, token, options={"userProject": config["workforce_pool_user_project"]})
    assert ok.status == 200, ok.text
    raw = exchange(kit, aud, token, options='{"userProject": "emu-project"}')  # not re-quoted
    assert raw.status == 200, raw.text
    rec = emu.access_token_info(ok.json()["access_token"])
    assert rec is not None and rec.principal is not None
    assert rec.principal.startswith("principal://iam.googleapis.com/locations/global/"
                                    "workforcePools/")
    # an authenticated OAuth client stands for the user project
    client = basic(installed["client_id"], installed["client_secret"])
    assert exchange(kit, aud, token, headers=client).status == 200
    bad = basic(installed["client_id"], "wrong")
    err(exchange(kit, aud, token, headers=bad), 401, "invalid_client")


# -- impersonation by federated principals ----------------------------------------------------
def generate(kit: Kit, email: str, bearer: str) -> Resp:
    return kit.request("POST", f"/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
                       json.dumps({"scope": [CLOUD]}).encode(),
                       {"Authorization": "Bearer " + bearer, "Content-Type": "application/json"})


def test_pool_principals_may_impersonate_their_service_account(kit: Kit, emu: Emulator) -> None:
    email = emu.create_service_account(name="wif-target", with_key=False)["client_email"]
    config = emu.create_workload_identity_pool(service_account=email)
    assert config["service_account_impersonation_url"] == (
        f"{emu.url}/v1/projects/-/serviceAccounts/{quote(email)}:generateAccessToken")
    other = emu.create_workload_identity_pool()
    sts_token = exchange(kit, config["audience"], emu.issue_oidc_token(
        audience=audience_claim(config))).json()["access_token"]
    other_token = exchange(kit, other["audience"], emu.issue_oidc_token(
        audience=audience_claim(other))).json()["access_token"]
    r = generate(kit, email, sts_token)
    assert r.status == 200, r.text
    rec = emu.access_token_info(r.json()["accessToken"])
    assert rec is not None and rec.email == email and rec.source == "impersonated"
    assert generate(kit, email, other_token).status == 403
    # a single principal may be granted too
    other_principal = emu.access_token_info(other_token).principal  # type: ignore[union-attr]
    assert other_principal is not None
    emu.grant_token_creator(other_principal, email)
    assert generate(kit, email, other_token).status == 200
    assert emu.counts["generateAccessToken"] == 3


def test_pool_factory_checks_its_arguments(emu: Emulator) -> None:
    with pytest.raises(KeyError):
        emu.create_workload_identity_pool(service_account="nobody@emu-project.iam."
                                                          "gserviceaccount.com")
    with pytest.raises(ValueError, match="AWS"):
        emu.create_workload_identity_pool("aws", workforce=True)
    with pytest.raises(ValueError, match="SAML"):
        emu.create_workload_identity_pool("saml")
    with pytest.raises(ValueError, match="pool_id"):
        emu.create_workload_identity_pool(pool_id="Bad_Id")
    emu.create_workload_identity_pool(pool_id="dup-pool", provider_id="dup-prov")
    with pytest.raises(ValueError, match="exists"):
        emu.create_workload_identity_pool(pool_id="dup-pool", provider_id="dup-prov")


# -- credential sources and the OIDC issuer ---------------------------------------------------
def test_default_file_source_holds_a_valid_token(kit: Kit, emu: Emulator,
                                                 pool: dict[str, Any]) -> None:
    assert pool["type"] == "external_account" and pool["universe_domain"] == "googleapis.com"
    assert pool["token_url"] == emu.url + "/v1/token" == emu.sts_token_url
    assert pool["subject_token_type"] == JWT
    source = pool["credential_source"]
    assert source["format"] == {"type": "text"}
    assert stat.S_IMODE(os.stat(source["file"]).st_mode) == 0o600
    with open(source["file"]) as f:
        token = f.read()
    assert exchange(kit, pool["audience"], token).status == 200
    emu.write_subject_token(pool, subject="repo:org/other")
    with open(source["file"]) as f:
        assert kit.decode(f.read())["sub"] == "repo:org/other"


def test_json_file_and_url_sources(kit: Kit, emu: Emulator) -> None:
    fj = emu.create_workload_identity_pool(credential_source="file-json")
    assert fj["credential_source"]["format"] == {"type": "json",
                                                 "subject_token_field_name": "id_token"}
    with open(fj["credential_source"]["file"]) as f:
        assert exchange(kit, fj["audience"], json.load(f)["id_token"]).status == 200
    for kind in ("url", "url-text"):
        config = emu.create_workload_identity_pool(credential_source=kind)
        url = config["credential_source"]["url"]
        assert url.startswith(emu.url + "/oidc/token?")
        r = kit.get(url.removeprefix(emu.url))
        token = r.json()["value"] if kind == "url" else r.text
        assert exchange(kit, config["audience"], token).status == 200
    assert emu.counts["oidc_token"] == 2
    assert kit.get("/oidc/token").status == 400


def test_oidc_discovery_and_jwks_verify_issued_tokens(kit: Kit, emu: Emulator,
                                                      pool: dict[str, Any]) -> None:
    doc = kit.get("/oidc/.well-known/openid-configuration").json()
    assert doc["issuer"] == emu.oidc_issuer == emu.url + "/oidc"
    assert doc["issuer"] != kit.get("/.well-known/openid-configuration").json()["issuer"]
    jwks = kit.get(doc["jwks_uri"].removeprefix(emu.url)).json()
    assert emu.counts["oidc_jwks"] == 1
    token = emu.issue_oidc_token(claims={"repository": "org/app"})
    claims = kit.decode(token)
    assert claims["iss"] == doc["issuer"] and claims["aud"] == audience_claim(pool)
    assert claims["exp"] - claims["iat"] == 3600 and claims["repository"] == "org/app"
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    (key,) = jwks["keys"]
    n = int.from_bytes(base64.urlsafe_b64decode(key["n"] + "=="), "big")
    e = int.from_bytes(base64.urlsafe_b64decode(key["e"] + "=="), "big")
    head, payload, sig = token.split(".")
    rsa.RSAPublicNumbers(e, n).public_key().verify(
        base64.urlsafe_b64decode(sig + "=="), f"{head}.{payload}".encode(),
        padding.PKCS1v15(), hashes.SHA256())


def test_issue_oidc_token_needs_an_audience_without_pools() -> None:
    emu = Emulator()  # never started: nothing listens
    with pytest.raises(ValueError, match="audience"):
        emu.issue_oidc_token()
    assert Kit.decode(emu.issue_oidc_token(audience="a"))["aud"] == "a"
    with pytest.raises(ValueError, match="lifetime"):
        emu.issue_oidc_token(audience="a", lifetime=2 * 86400)


# -- Resource Manager ------------------------------------------------------------------------
def test_resource_manager_projects_get(kit: Kit, emu: Emulator, pool: dict[str, Any]) -> None:
    sts_token = exchange(kit, pool["audience"], emu.issue_oidc_token()).json()["access_token"]
    auth = {"Authorization": "Bearer " + sts_token}
    by_number = kit.get("/v1/projects/123456789012", auth)
    assert by_number.status == 200, by_number.text
    assert by_number.json() == {**by_number.json(), "projectNumber": "123456789012",
                                "projectId": "emu-project", "lifecycleState": "ACTIVE",
                                "name": "emu-project"}
    assert kit.get("/v1/projects/emu-project", auth).json()["projectNumber"] == "123456789012"
    assert kit.get("/v1/projects/555000", auth).status == 403
    assert kit.get("/v1/projects/123456789012").status == 401
    assert kit.get("/v1/projects/123456789012", {"Authorization": "Bearer nope"}).status == 401
    narrow = exchange(kit, pool["audience"], emu.issue_oidc_token(), scope=EMAIL)
    narrow_auth = {"Authorization": "Bearer " + narrow.json()["access_token"]}
    assert kit.get("/v1/projects/123456789012", narrow_auth).status == 403
    other = emu.create_workload_identity_pool(project_number="555111", project_id="team-x")
    assert "/projects/555111/" in other["audience"]
    assert kit.get("/v1/projects/555111", auth).json()["projectId"] == "team-x"
    assert emu.counts["resourcemanager"] == 7


# -- external_account_authorized_user: oauthtoken, introspect, revoke -------------------------
def refresh(kit: Kit, info: dict[str, str], secret: str | None = None,
            token: str | None = None) -> Resp:
    return kit.post("/v1/oauthtoken", {"grant_type": "refresh_token",
                                       "refresh_token": token or info["refresh_token"]},
                    basic(info["client_id"], secret or info["client_secret"]))


def test_external_account_authorized_user_refresh(kit: Kit, emu: Emulator,
                                                  installed: dict[str, Any]) -> None:
    info = emu.create_external_account_authorized_user(account="carol@example.com",
                                                       quota_project_id="qp")
    assert info["type"] == "external_account_authorized_user"
    assert info["token_url"] == emu.url + "/v1/oauthtoken"
    assert info["token_info_url"] == emu.url + "/v1/introspect"
    assert info["revoke_url"] == emu.url + "/v1/revoke"
    assert info["quota_project_id"] == "qp" and info["universe_domain"] == "googleapis.com"
    assert "/workforcePools/" in info["audience"]
    r = refresh(kit, info)
    assert r.status == 200, r.text
    assert r.json()["token_type"] == "Bearer" and r.json()["expires_in"] > 0
    access = r.json()["access_token"]
    assert kit.api(access).status == 200
    rec = emu.access_token_info(access)
    assert rec is not None and rec.principal is not None and rec.sub == "carol@example.com"
    err(refresh(kit, info, secret="wrong"), 401, "invalid_client")
    other = emu.create_external_account_authorized_user()
    err(refresh(kit, other, token=info["refresh_token"]), 400, "invalid_grant")
    user = emu.create_authorized_user()  # a Google user grant is not a workforce one...
    err(refresh(kit, {**user, "refresh_token": user["refresh_token"]}), 400, "invalid_grant")
    google = kit.post("/token", {"grant_type": "refresh_token",  # ...nor the other way round
                                 "refresh_token": info["refresh_token"],
                                 "client_id": info["client_id"],
                                 "client_secret": info["client_secret"]})
    err(google, 400, "invalid_grant")
    no_grant = kit.post("/v1/oauthtoken", {"refresh_token": "x"},
                        basic(info["client_id"], info["client_secret"]))
    err(no_grant, 400, "unsupported_grant_type")
    assert emu.counts["sts_oauthtoken"] == 5
    with pytest.raises(KeyError):
        emu.create_external_account_authorized_user(pool="//iam.googleapis.com/nope")


def test_introspect_and_revoke(kit: Kit, emu: Emulator) -> None:
    info = emu.create_external_account_authorized_user(account="dave@example.com")
    access = refresh(kit, info).json()["access_token"]
    auth = basic(info["client_id"], info["client_secret"])
    live = kit.post("/v1/introspect", {"token": access}, auth).json()
    assert live["active"] is True and live["scope"] == CLOUD
    assert live["username"].endswith("/subject/dave@example.com")
    rt = kit.post("/v1/introspect", {"token": info["refresh_token"]}, auth).json()
    assert rt["active"] is True and rt["username"] == "dave@example.com"
    assert kit.post("/v1/introspect", {"token": "junk"}).json() == {"active": False}
    err(kit.post("/v1/introspect", {}), 400, "invalid_request", "token")
    err(kit.post("/v1/revoke", {"token": info["refresh_token"]}), 400, "invalid_request")
    stranger = emu.create_external_account_authorized_user()
    err(kit.post("/v1/revoke", {"token": info["refresh_token"]},
                 basic(stranger["client_id"], stranger["client_secret"])), 400,
        "invalid_request")
    done = kit.post("/v1/revoke", {"token": info["refresh_token"]}, auth)
    assert done.status == 200 and done.body == b""
    assert kit.post("/v1/introspect", {"token": access}).json() == {"active": False}
    assert not emu.is_access_token_valid(access)
    err(refresh(kit, info), 400, "invalid_grant")
    assert kit.post("/v1/revoke", {"token": "unknown"}, auth).status == 200  # RFC 7009 §2.2
    assert emu.counts["sts_introspect"] == 5 and emu.counts["sts_revoke"] == 4


# -- the command line -------------------------------------------------------------------------
def test_serve_forever_writes_workload_identity_pool_configurations(tmp_path: Path) -> None:
    out = io.StringIO()
    stop = threading.Event()
    result: list[int] = []
    state = tmp_path / "st"
    t = threading.Thread(target=lambda: result.append(serve_forever(
        "127.0.0.1", 0, out, state_dir=state, stop_event=stop,
        workload_identity_pools=["oidc", "aws", "workforce", "oidc"])))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while "workforce workload identity pool" not in out.getvalue() \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        text = out.getvalue()
        for kind in ("oidc", "aws", "workforce"):
            path = state / f"external-account-{kind}.json"
            assert f"# {kind} workload identity pool configuration: {path}" in text
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        config = json.loads((state / "external-account-oidc.json").read_text())
        token_file = Path(config["credential_source"]["file"])
        assert token_file == (state / "oidc-subject-token.txt").resolve()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        url = config["token_url"].removesuffix("/v1/token")
        host, port = url.removeprefix("http://").rsplit(":", 1)

        class Remote:  # a Kit for the emulator serve_forever started
            def __init__(self) -> None:
                self.host, self.port = host, int(port)

        r = exchange(Kit(Remote()), config["audience"],  # type: ignore[arg-type]
                     token_file.read_text())
        assert r.status == 200, r.text
        aws_config = json.loads((state / "external-account-aws.json").read_text())
        assert aws_config["credential_source"]["environment_id"] == "aws1"
        workforce = json.loads((state / "external-account-workforce.json").read_text())
        assert "workforce_pool_user_project" in workforce
    finally:
        stop.set()
        t.join(5)
    assert result == [0]


def test_workload_identity_pool_option_needs_a_state_dir_and_a_known_kind(
        tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--state-dir"):
        serve_forever("127.0.0.1", 0, io.StringIO(), workload_identity_pools=["oidc"])
    with pytest.raises(UsageError, match="saml"):
        serve_forever("127.0.0.1", 0, io.StringIO(), state_dir=tmp_path,
                      workload_identity_pools=["saml"])
