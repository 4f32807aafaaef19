"""Metadata server and the sample API (Cloud SQL Admin ``instances.list``)."""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric import rsa

from gcauth.emulator import Emulator
from tests.kit.emu import CLOUD, EMAIL, Kit

SQL = "https://www.googleapis.com/auth/sqlservice.admin"
DRIVE = "https://www.googleapis.com/auth/drive"
SA_PREFIX = "instance/service-accounts/"


# ---------------------------------------------------------------- metadata
def test_ping(kit: Kit, emu: Emulator) -> None:
    r = kit.get("/", {"Metadata-Flavor": "Google"})
    assert r.status == 200
    assert r.headers["Metadata-Flavor"] == "Google"
    assert r.headers["Server"] == "Metadata Server for VM"
    assert emu.counts["metadata"] == 1


def test_header_required(kit: Kit, emu: Emulator) -> None:
    r = kit.get("/computeMetadata/v1/project/project-id")
    assert r.status == 403
    assert "Metadata-Flavor" in r.text
    assert r.headers["Metadata-Flavor"] == "Google"
    r = kit.get("/computeMetadata/v1/project/project-id", {"Metadata-Flavor": "Gooogle"})
    assert r.status == 403
    assert emu.counts["metadata_token"] == 0


def test_x_forwarded_for_rejected(kit: Kit) -> None:
    r = kit.md("project/project-id", **{"X-Forwarded-For": "10.0.0.1"})
    assert r.status == 403


def test_project_values(kit: Kit, emu: Emulator) -> None:
    assert kit.md("project/project-id").text == emu.metadata_project_id == "emu-project"
    assert kit.md("project/numeric-project-id").text == emu.metadata_numeric_project_id
    assert kit.md("universe/universe-domain").text == "googleapis.com"


def test_service_account_info(kit: Kit, emu: Emulator) -> None:
    email = emu.metadata_service_account_email
    for acct in ("default", email):
        r = kit.md(f"{SA_PREFIX}{acct}/?recursive=true")
        assert r.status == 200
        assert r.json() == {"aliases": ["default"], "email": email, "scopes": [CLOUD, EMAIL]}
        assert kit.md(f"{SA_PREFIX}{acct}/email").text == email
    assert kit.md(f"{SA_PREFIX}default/scopes").text == f"{CLOUD}\n{EMAIL}\n"
    assert kit.md(SA_PREFIX).text == f"default/\n{email}/\n"


def test_unknown_paths(kit: Kit) -> None:
    assert kit.md("instance/nope").status == 404
    assert kit.md(f"{SA_PREFIX}someone@else.com/token").status == 404
    assert kit.get("/computeMetadata/v2/x", {"Metadata-Flavor": "Google"}).status == 404


def test_metadata_token(kit: Kit, emu: Emulator) -> None:
    r = kit.md(f"{SA_PREFIX}default/token")
    assert r.status == 200 and r.headers["Metadata-Flavor"] == "Google"
    body = r.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer" and body["expires_in"] > 3000
    rec = emu.access_token_info(body["access_token"])
    assert rec is not None and rec.scopes == (CLOUD, EMAIL) and rec.source == "metadata"
    assert emu.counts["metadata_token"] == 1 and emu.counts["metadata"] == 1
    assert kit.api(body["access_token"]).status == 200


def test_metadata_token_scopes_param(kit: Kit, emu: Emulator) -> None:
    body = kit.md(f"{SA_PREFIX}default/token?scopes={SQL},{EMAIL}").json()
    rec = emu.access_token_info(body["access_token"])
    assert rec is not None and rec.scopes == (SQL, EMAIL)


def test_configured_metadata() -> None:
    with Emulator(metadata_project_id="p2", metadata_service_account_email="vm@p2.iam.x",
                  metadata_scopes=(SQL,)) as emu:
        kit = Kit(emu)
        assert kit.md("project/project-id").text == "p2"
        assert kit.md(f"{SA_PREFIX}default/email").text == "vm@p2.iam.x"
        assert kit.md(f"{SA_PREFIX}default/scopes").text == f"{SQL}\n"
        emu.metadata_project_id = "p3"
        assert kit.md("project/project-id").text == "p3"


def test_metadata_identity(kit: Kit, emu: Emulator) -> None:
    jwt = kit.md(f"{SA_PREFIX}default/identity?audience=https://svc.example").text
    claims = kit.decode(jwt)
    assert claims["aud"] == "https://svc.example"
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["email"] == emu.metadata_service_account_email
    assert "google" not in claims
    full = kit.decode(kit.md(f"{SA_PREFIX}default/identity?audience=x&format=full").text)
    assert full["google"]["compute_engine"]["project_id"] == "emu-project"
    assert kit.md(f"{SA_PREFIX}default/identity").status == 400
    assert emu.counts["metadata_identity"] == 3


# ---------------------------------------------------------------- sample API
def test_api_success_and_quota_project(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    tok = kit.sa_token(sa)
    r = kit.api(tok, "proj-9", {"X-Goog-User-Project": "billing-proj"})
    assert r.status == 200
    body = r.json()
    assert body["kind"] == "sql#instancesList"
    assert body["items"][0]["name"] == "emu-instance-1"
    assert body["items"][0]["project"] == "proj-9"
    assert kit.api(tok).status == 200
    assert emu.quota_projects_seen == ["billing-proj", None]
    assert emu.counts["api"] == 2


def test_api_sqlservice_scope_ok(kit: Kit, sa: dict[str, str]) -> None:
    assert kit.api(kit.sa_token(sa, SQL)).status == 200


def test_api_missing_and_invalid_credentials(kit: Kit) -> None:
    r = kit.api(None)
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    err = r.json()["error"]
    assert err["code"] == 401 and err["status"] == "UNAUTHENTICATED"
    r = kit.api("ya29.bogus")
    assert r.status == 401
    assert r.json()["error"]["message"].startswith("Request had invalid authentication")


def test_api_expired_and_revoked(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    tok = kit.sa_token(sa)
    emu.expire_access_token(tok)
    assert kit.api(tok).status == 401
    tok2 = kit.sa_token(sa)
    emu.revoke(tok2)
    assert kit.api(tok2).status == 401


def test_api_short_lifetime(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    emu.set_token_lifetime(0.3)
    tok = kit.sa_token(sa)
    assert kit.api(tok).status == 200
    time.sleep(0.35)
    assert kit.api(tok).status == 401


def test_api_insufficient_scope(kit: Kit, sa: dict[str, str]) -> None:
    r = kit.api(kit.sa_token(sa, DRIVE))
    assert r.status == 403
    err = r.json()["error"]
    assert err["status"] == "PERMISSION_DENIED" and "insufficient" in err["message"]
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]


def _self_signed(kit: Kit, sa: dict[str, str], **claims: object) -> str:
    now = int(time.time())
    base: dict[str, object] = {"iss": sa["client_email"], "sub": sa["client_email"],
                               "aud": "https://sqladmin.googleapis.com/", "iat": now,
                               "exp": now + 3600}
    base.update(claims)
    return kit.sign(sa, {k: v for k, v in base.items() if v is not None})


def test_self_signed_jwt_accepted(kit: Kit, sa: dict[str, str]) -> None:
    assert kit.api(_self_signed(kit, sa)).status == 200
    assert kit.api(_self_signed(kit, sa, aud=None, scope=CLOUD)).status == 200


def test_self_signed_jwt_rejected(kit: Kit, sa: dict[str, str],
                                  other_key: rsa.RSAPrivateKey) -> None:
    now = int(time.time())
    assert kit.api(_self_signed(kit, sa, aud="https://other.googleapis.com/")).status == 401
    assert kit.api(_self_signed(kit, sa, sub="x@y.com")).status == 401
    assert kit.api(_self_signed(kit, sa, iat=now, exp=now + 3601)).status == 401
    assert kit.api(_self_signed(kit, sa, iat=now - 4000, exp=now - 500)).status == 401
    assert kit.api(_self_signed(kit, sa, aud=None, scope=DRIVE)).status == 403
    jwt = _self_signed(kit, sa)
    head, payload, _ = jwt.split(".")
    forged = kit.sign(sa, {"iss": "x"}, key=other_key).split(".")[2]
    assert kit.api(f"{head}.{payload}.{forged}").status == 401


def test_id_token_is_not_an_access_token(kit: Kit) -> None:
    jwt = kit.md(f"{SA_PREFIX}default/identity?audience=https://sqladmin.googleapis.com/").text
    assert kit.api(jwt).status == 401


def test_ping_and_echo(kit: Kit) -> None:
    assert kit.get("/ping").text == "ok"
    r = kit.get("/echo", {"Authorization": "Bearer secret", "X-Goog-Api-Client": "gl-python/3"})
    body = r.json()
    assert body["X-Goog-Api-Client"] == "gl-python/3"
    assert "Authorization" not in body and "secret" not in r.text
