"""Keyless identities against the emulator: impersonation (sync, async, herds, denials,
delegate chains, a source token that dies mid-chain), ADC files, signing without keys,
domain-wide delegation without keys, ID tokens on every transport, fetch_id_token's ADC
order and ID-token verification with the certificate cache."""

from __future__ import annotations

import asyncio
import base64
import http.client
import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import gcauth
from gcauth import (
    authorized_user,
    compute_engine,
    iam,
    id_token,
    impersonated_credentials,
    service_account,
)
from gcauth.cli._explain import build_report, render
from gcauth.emulator import Emulator
from gcauth.exceptions import (
    DefaultCredentialsError,
    InvalidTokenError,
    RefreshError,
    TransportError,
    UsageError,
)
from gcauth.transport import aiohttp as gaiohttp
from gcauth.transport import httpx as ghttpx
from gcauth.transport.requests import AuthorizedSession
from gcauth.transport.urllib3 import AuthorizedHttp

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
AUD = "https://my-service.run.app"


# -- helpers ----------------------------------------------------------------------------------
class Recorder(http.server.ThreadingHTTPServer):
    """A loopback API that records the Authorization header of every request."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                recorder.seen.append(self.headers.get("Authorization"))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/api"
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


def user(emu: Emulator, account: str = "alice@example.com") -> authorized_user.Credentials:
    return authorized_user.Credentials.from_authorized_user_info(
        emu.create_authorized_user(account))


def keyless(emu: Emulator, name: str, *, dwd: bool = False,
            granted: tuple[str, ...] = ("user:alice@example.com",)) -> str:
    email = emu.create_service_account(name=name, with_key=False,
                                       domain_wide_delegation=dwd)["client_email"]
    for member in granted:
        emu.grant_token_creator(member, email)
    return email


def impersonate(emu: Emulator, source: gcauth.credentials.Credentials, target: str,
                **kwargs: Any) -> impersonated_credentials.Credentials:
    return impersonated_credentials.Credentials(source, target, [CLOUD],
                                                iam_endpoint_override=emu.iam_endpoint,
                                                **kwargs)


def robot_key(emu: Emulator, email: str, kid: str | None = None) -> list[rsa.RSAPublicKey]:
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=5)
    try:
        conn.request("GET", f"/robot/v1/metadata/x509/{email}")
        certs = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    keys = []
    for pem in certs.values():
        key = x509.load_pem_x509_certificate(pem.encode()).public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        keys.append(key)
    return keys


def verifies(emu: Emulator, email: str, message: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    for key in robot_key(emu, email):
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            continue
    return False


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload)
                                                                                % 4)))
    return data


def sql(emu: Emulator) -> str:
    return f"{emu.api_url}/sql/v1beta4/projects/p1/instances"


# -- impersonation ----------------------------------------------------------------------------
def test_a_user_impersonates_a_keyless_account(emulator: Emulator) -> None:
    target = keyless(emulator, "imp-basic")
    creds = impersonate(emulator, user(emulator), target)
    emulator.reset_counts()
    session = AuthorizedSession(creds)
    assert session.get(sql(emulator)).status_code == 200
    assert session.get(sql(emulator)).status_code == 200
    counts = emulator.counts
    assert (counts["token"], counts["generateAccessToken"], counts["api"]) == (1, 1, 2)
    token = creds.token
    assert token is not None
    record = emulator.access_token_info(token)
    assert record is not None and record.email == target and record.source == "impersonated"
    assert creds.service_account_email == creds.signer_email == target


def test_the_source_token_comes_from_the_sources_own_cache(emulator: Emulator) -> None:
    source = user(emulator)
    source.get_token()
    emulator.reset_counts()
    impersonate(emulator, source, keyless(emulator, "imp-cache")).get_token()
    impersonate(emulator, source, keyless(emulator, "imp-cache-2")).get_token()
    assert emulator.counts["token"] == 0 and emulator.counts["generateAccessToken"] == 2


def test_a_service_account_source_needs_only_the_iam_scope(emulator: Emulator) -> None:
    key = emulator.create_service_account(name="imp-sa-source")
    target = keyless(emulator, "imp-sa-target", granted=("serviceAccount:" + key["client_email"],))
    source = service_account.Credentials.from_service_account_info(key)
    creds = impersonate(emulator, source, target)
    token = creds.get_token()
    source_tokens = [t for t in emulator.issued_access_tokens()
                     if t.email == key["client_email"]]
    assert source_tokens[-1].scopes == (iam.IAM_SCOPE,)
    assert AuthorizedHttp(creds).request("GET", sql(emulator)).status == 200
    assert token.scopes == (CLOUD,)


def test_32_threads_make_one_source_request_and_one_generate_access_token(
        emulator: Emulator) -> None:
    creds = impersonate(emulator, user(emulator), keyless(emulator, "imp-herd"))
    barrier = threading.Barrier(32)
    tokens: list[str] = []

    def caller() -> None:
        barrier.wait()
        tokens.append(creds.get_token().access_token)

    emulator.reset_counts()
    threads = [threading.Thread(target=caller) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(tokens) == 32 and len(set(tokens)) == 1
    assert emulator.counts["token"] == 1 and emulator.counts["generateAccessToken"] == 1


@pytest.mark.parametrize("library", ["httpx", "aiohttp"])
def test_async_herd_and_async_refresh(emulator: Emulator, library: str) -> None:
    creds = impersonate(emulator, user(emulator), keyless(emulator, f"imp-async-{library}"))
    request = ghttpx.AsyncRequest() if library == "httpx" else gaiohttp.AsyncRequest()

    async def main() -> list[str]:
        tokens = await asyncio.gather(*(creds.aget_token(request) for _ in range(32)))
        return [t.access_token for t in tokens]

    emulator.reset_counts()
    tokens = asyncio.run(main())
    assert len(set(tokens)) == 1
    assert emulator.counts["token"] == 1 and emulator.counts["generateAccessToken"] == 1


def test_httpx_async_client_sends_impersonated_tokens(emulator: Emulator) -> None:
    creds = impersonate(emulator, user(emulator), keyless(emulator, "imp-httpx"))

    async def main() -> int:
        async with httpx.AsyncClient(auth=ghttpx.Auth(creds)) as client:
            return (await client.get(sql(emulator))).status_code

    assert asyncio.run(main()) == 200


def test_denied_impersonation_names_principal_target_and_role(emulator: Emulator) -> None:
    target = keyless(emulator, "imp-denied", granted=())
    source = user(emulator, "bob@example.com")
    with pytest.raises(RefreshError) as info:
        impersonate(emulator, source, target).get_token()
    text = str(info.value)
    assert "user:bob@example.com may not get an access token for " + target in text
    assert "roles/iam.serviceAccountTokenCreator" in text
    assert info.value.status == 403 and info.value.error == "PERMISSION_DENIED"
    assert source.token is not None and source.token not in text


def test_a_broken_delegate_chain(emulator: Emulator) -> None:
    first = keyless(emulator, "imp-chain-1")
    last = keyless(emulator, "imp-chain-2", granted=())
    creds = impersonate(emulator, user(emulator), last, delegates=[first])
    with pytest.raises(RefreshError) as info:
        creds.get_token()
    assert f"user:alice@example.com -> {first} -> {last}" in str(info.value)
    emulator.grant_token_creator("serviceAccount:" + first, last)
    assert creds.get_token().access_token
    full_name = impersonate(emulator, user(emulator), last,
                            delegates=[f"projects/-/serviceAccounts/{first}"])
    assert full_name.get_token().access_token


def test_a_source_token_that_dies_mid_chain_is_refreshed_once(emulator: Emulator) -> None:
    source = user(emulator)
    creds = impersonate(emulator, source, keyless(emulator, "imp-expired-source"))
    first = source.get_token()
    emulator.expire_access_token(first.access_token)  # the server says no, the cache says yes
    emulator.reset_counts()
    assert creds.get_token().access_token
    assert emulator.counts["generateAccessToken"] == 2 and emulator.counts["token"] == 1
    assert source.get_token().access_token != first.access_token


def test_a_revoked_source_login_says_log_in_again(emulator: Emulator) -> None:
    info = emulator.create_authorized_user()
    source = authorized_user.Credentials.from_authorized_user_info(info)
    emulator.revoke(info["refresh_token"])
    with pytest.raises(RefreshError, match="log in again"):
        impersonate(emulator, source, keyless(emulator, "imp-revoked")).get_token()


def test_a_lifetime_above_one_hour_is_passed_through(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    emu.set_token_lifetime(43200)
    creds = impersonate(emu, user(emu), keyless(emu, "imp-long"), lifetime=7200)
    token = creds.get_token()
    assert token.expiry is not None
    left = token.expiry - datetime.now(timezone.utc)
    assert timedelta(seconds=7100) < left <= timedelta(seconds=7200)


def test_quota_project_goes_to_the_api(emulator: Emulator) -> None:
    creds = impersonate(emulator, user(emulator), keyless(emulator, "imp-quota"),
                        quota_project_id="billing-7")
    assert AuthorizedSession(creds).get(sql(emulator)).status_code == 200
    assert emulator.quota_projects_seen[-1] == "billing-7"
    assert creds.with_quota_project("other").quota_project_id == "other"


def test_the_iam_endpoint_is_checked_like_a_token_uri(emulator: Emulator) -> None:
    with pytest.raises(gcauth.MalformedCredentialsError, match="allowed_hosts"):
        impersonated_credentials.Credentials(user(emulator), "a@p.iam.gserviceaccount.com",
                                             [CLOUD], iam_endpoint_override="https://evil.test")
    default = impersonated_credentials.Credentials(user(emulator), "a@p.iam.gserviceaccount.com")
    assert default.iam_endpoint == "https://iamcredentials.googleapis.com"


# -- ADC --------------------------------------------------------------------------------------
def impersonated_adc(emu: Emulator, target: str, delegates: list[str]) -> dict[str, Any]:
    return {
        "type": "impersonated_service_account",
        "delegates": delegates,
        "service_account_impersonation_url": f"{emu.iam_endpoint}/v1/projects/-/"
                                             f"serviceAccounts/{target}:generateAccessToken",
        "source_credentials": emu.create_authorized_user(),
        "quota_project_id": "billing-adc",
    }


@pytest.mark.parametrize("where", ["env", "well-known"])
def test_adc_loads_an_impersonated_file(emulator: Emulator, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    first = keyless(emulator, f"adc-delegate-{where}")
    target = keyless(emulator, f"adc-target-{where}", granted=("serviceAccount:" + first,))
    data = impersonated_adc(emulator, target, [first])
    if where == "env":
        path = tmp_path / "adc.json"
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    else:
        monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
        path = tmp_path / "application_default_credentials.json"
    path.write_text(json.dumps(data))
    creds, _ = gcauth.default(scopes=[CLOUD])
    assert isinstance(creds, impersonated_credentials.Credentials)
    assert creds.quota_project_id == "billing-adc"
    assert AuthorizedSession(creds).get(sql(emulator)).status_code == 200
    report = build_report(None, True)
    assert report["ok"] and report["account"] == target
    assert report["impersonation"]["chain"][1:] == [first, target]
    text = render(report)
    assert f"-> {first} -> {target}" in text and "impersonated" in text
    assert data["source_credentials"]["refresh_token"] not in json.dumps(report) + text


# -- signing without keys ---------------------------------------------------------------------
def test_impersonated_credentials_sign_bytes(emulator: Emulator) -> None:
    target = keyless(emulator, "sign-imp")
    creds = impersonate(emulator, user(emulator), target)
    signature = creds.sign_bytes(b"storage signed url")
    assert verifies(emulator, target, b"storage signed url", signature)
    assert not verifies(emulator, target, b"another message", signature)
    assert emulator.counts["signBlob"] >= 1

    async def main() -> bytes:
        return await creds.asign_bytes(b"async", gaiohttp.AsyncRequest())

    assert verifies(emulator, target, b"async", asyncio.run(main()))


def test_iam_signer_signs_as_another_account(emulator: Emulator) -> None:
    key = emulator.create_service_account(name="signer-caller")
    target = keyless(emulator, "signer-target", granted=("serviceAccount:" + key["client_email"],))
    caller = service_account.Credentials.from_service_account_info(key, scopes=[CLOUD])
    signer = iam.Signer(None, caller, target, iam_endpoint_override=emulator.iam_endpoint)
    assert signer.key_id is None
    assert verifies(emulator, target, b"blob", signer.sign(b"blob"))
    assert verifies(emulator, target, b"text", signer.sign("text"))

    async def main() -> bytes:
        return await signer.asign(b"async", ghttpx.AsyncRequest())

    assert verifies(emulator, target, b"async", asyncio.run(main()))
    denied = iam.Signer(None, caller, keyless(emulator, "signer-denied", granted=()),
                        iam_endpoint_override=emulator.iam_endpoint)
    with pytest.raises(RefreshError, match="may not sign bytes as"):
        denied.sign(b"x")
    with pytest.raises(UsageError):
        iam.Signer(None, caller, "x", iam_endpoint_override=emulator.iam_endpoint)


def test_signing_retries_transient_iam_errors(emulator: Emulator) -> None:
    target = keyless(emulator, "sign-retry")
    creds = impersonate(emulator, user(emulator), target)
    creds.get_token()
    emulator.faults.add("iam", kind="status", status=503, count=2)
    try:
        assert verifies(emulator, target, b"x", creds.sign_bytes(b"x"))
    finally:
        emulator.faults.clear()
    assert emulator.faults.injected["status"] >= 2


def test_compute_engine_signs_as_the_vm_account(emulator: Emulator,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    vm = emulator.metadata_service_account_email
    creds = compute_engine.Credentials(iam_endpoint_override=emulator.iam_endpoint)
    with pytest.raises(RefreshError, match="may not sign bytes as"):
        creds.sign_bytes(b"x")
    emulator.grant_token_creator("serviceAccount:" + vm, vm)
    try:
        assert creds.signer_email == vm
        assert verifies(emulator, vm, b"vm", creds.sign_bytes(b"vm"))
    finally:
        emulator.revoke_token_creator("serviceAccount:" + vm, vm)


def test_domain_wide_delegation_without_a_key(emulator: Emulator) -> None:
    target = keyless(emulator, "dwd-keyless", dwd=True)
    creds = impersonate(emulator, user(emulator), target).with_subject("carol@example.com")
    emulator.reset_counts()
    token = creds.get_token()
    record = emulator.access_token_info(token.access_token)
    assert record is not None and record.email == "carol@example.com"
    assert record.source == "delegated"
    assert emulator.counts["signJwt"] == 1 and emulator.counts["token_issued"] == 2
    no_dwd = impersonate(emulator, user(emulator), keyless(emulator, "dwd-refused"))
    with pytest.raises(RefreshError, match="unauthorized_client"):
        no_dwd.with_subject("carol@example.com").get_token()


# -- ID tokens --------------------------------------------------------------------------------
def verify(emu: Emulator, token: str, audience: str = AUD) -> dict[str, Any]:
    return id_token.verify_oauth2_token(token, None, audience=audience,
                                        certs_url=emu.pem_certs_uri)


def test_service_account_id_tokens_are_bearer_credentials(emulator: Emulator,
                                                          recorder: Recorder) -> None:
    key = emulator.create_service_account(name="idt-sa")
    creds = service_account.IDTokenCredentials.from_service_account_info(key,
                                                                         target_audience=AUD)
    session = AuthorizedSession(creds)
    assert session.get(recorder.url).status_code == 200
    assert session.get(recorder.url).status_code == 200
    assert creds.token is not None and recorder.seen == [f"Bearer {creds.token}"] * 2
    claims = verify(emulator, creds.token)
    assert claims["email"] == key["client_email"] and claims["aud"] == AUD
    assert creds.id_token == creds.token


def test_id_tokens_refresh_before_they_expire(fresh_emulator: Emulator,
                                             recorder: Recorder) -> None:
    emu = fresh_emulator
    emu.set_token_lifetime(1)  # ID tokens live 2 s
    key = emu.create_service_account(name="idt-refresh")
    creds = service_account.IDTokenCredentials.from_service_account_info(key,
                                                                         target_audience=AUD)
    http_ = AuthorizedHttp(creds)
    http_.request("GET", recorder.url)
    first = creds.current_token
    assert first is not None and first.expiry is not None
    wait = (first.expiry - datetime.now(timezone.utc)).total_seconds() - 0.05
    time.sleep(max(0.0, wait))  # now inside its last tenth: it must not be sent again
    http_.request("GET", recorder.url)
    assert emu.counts["token_issued"] == 2
    assert recorder.seen[0] == f"Bearer {first.access_token}"
    assert recorder.seen[1] == f"Bearer {creds.token}" != recorder.seen[0]


def test_impersonated_id_tokens(emulator: Emulator, recorder: Recorder) -> None:
    target = keyless(emulator, "idt-imp")
    creds = impersonated_credentials.IDTokenCredentials(
        impersonate(emulator, user(emulator), target), target_audience=AUD, include_email=True)
    assert AuthorizedSession(creds).get(recorder.url).status_code == 200
    assert creds.token is not None and recorder.seen == [f"Bearer {creds.token}"]
    assert verify(emulator, creds.token)["email"] == target
    plain = creds.with_include_email(False)

    async def main() -> str:
        return (await plain.aget_token(gaiohttp.AsyncRequest())).access_token

    assert "email" not in verify(emulator, asyncio.run(main()))
    with pytest.raises(UsageError):
        impersonated_credentials.IDTokenCredentials(user(emulator))  # type: ignore[arg-type]


def test_compute_engine_id_tokens_both_ways(emulator: Emulator, recorder: Recorder,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    emulator.reset_counts()
    creds = compute_engine.IDTokenCredentials(None, AUD, use_metadata_identity_endpoint=True)
    assert AuthorizedSession(creds).get(recorder.url).status_code == 200
    assert creds.token is not None
    claims = verify(emulator, creds.token)
    assert "compute_engine" in claims["google"] and emulator.counts["metadata_identity"] == 1
    with pytest.raises(UsageError):
        creds.sign_bytes(b"x")
    with pytest.raises(UsageError):
        compute_engine.IDTokenCredentials(None, AUD, token_uri=emulator.token_uri,
                                          use_metadata_identity_endpoint=True)
    vm = emulator.metadata_service_account_email
    emulator.grant_token_creator("serviceAccount:" + vm, vm)
    try:
        signed = compute_engine.IDTokenCredentials(
            None, AUD, token_uri=emulator.token_uri, iam_endpoint_override=emulator.iam_endpoint)
        token = signed.get_token()
        assert verify(emulator, token.access_token)["email"] == vm
        assert emulator.counts["signBlob"] == 1 and signed.signer_email == vm
    finally:
        emulator.revoke_token_creator("serviceAccount:" + vm, vm)


# -- fetch_id_token: ADC's order --------------------------------------------------------------
def test_fetch_id_token_with_a_service_account_key(emulator: Emulator, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(emulator.create_service_account(name="fetch-sa")))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    token = id_token.fetch_id_token(None, AUD)
    assert verify(emulator, token)["email"] == "fetch-sa@emu-project.iam.gserviceaccount.com"


@pytest.mark.parametrize("where", ["env", "well-known"])
def test_fetch_id_token_with_an_impersonated_file(emulator: Emulator, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  where: str) -> None:
    target = keyless(emulator, f"fetch-imp-{where}")
    data = impersonated_adc(emulator, target, [])
    if where == "env":
        path = tmp_path / "adc.json"
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    else:
        monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
        path = tmp_path / "application_default_credentials.json"
    path.write_text(json.dumps(data))
    emulator.reset_counts()
    token = id_token.fetch_id_token(None, AUD)
    assert verify(emulator, token)["email"] == target
    assert emulator.counts["generateIdToken"] == 1


def test_fetch_id_token_from_the_metadata_server(emulator: Emulator,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    token = id_token.fetch_id_token(None, AUD)
    assert verify(emulator, token)["email"] == emulator.metadata_service_account_email

    async def main() -> str:
        return await id_token.afetch_id_token(ghttpx.AsyncRequest(), AUD)

    assert verify(emulator, asyncio.run(main()))["aud"] == AUD


def test_a_user_login_cannot_mint_for_any_audience(emulator: Emulator, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    info = emulator.create_authorized_user()
    path = tmp_path / "user.json"
    path.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    with pytest.raises(DefaultCredentialsError) as error:
        id_token.fetch_id_token(None, AUD)
    text = str(error.value)
    assert "cannot mint an ID token for an arbitrary audience" in text
    assert "--impersonate-service-account" in text and info["client_id"] in text
    assert info["refresh_token"] not in text and info["client_secret"] not in text
    own = id_token.fetch_id_token(None, info["client_id"])  # its own client: allowed
    assert verify(emulator, own, info["client_id"])["email"] == "alice@example.com"


def test_no_adc_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    with pytest.raises(DefaultCredentialsError, match="Could not find"):
        id_token.fetch_id_token(None, AUD)
    with pytest.raises(UsageError):
        id_token.fetch_id_token_credentials("")


# -- verification -----------------------------------------------------------------------------
@pytest.fixture
def minted(emulator: Emulator) -> str:
    key = emulator.create_service_account(name="verify-sa")
    return service_account.IDTokenCredentials.from_service_account_info(
        key, target_audience=AUD).get_token().access_token


@pytest.mark.parametrize("which", ["pem", "jwks"])
def test_verification_fetches_the_certs_once(emulator: Emulator, minted: str,
                                             which: str) -> None:
    url = emulator.pem_certs_uri if which == "pem" else emulator.certs_uri
    cache = id_token.CertCache()
    emulator.reset_counts()
    for _ in range(50):
        claims = id_token.verify_token(minted, None, AUD, certs_url=url, cache=cache)
    assert claims["aud"] == AUD
    assert emulator.counts["certs"] == 1 and cache.fetches == 1


def test_verification_honours_max_age(emulator: Emulator, minted: str) -> None:
    cache = id_token.CertCache()
    emulator.config.certs_max_age = 0
    try:
        emulator.reset_counts()
        for _ in range(3):
            id_token.verify_token(minted, None, AUD, certs_url=emulator.certs_uri, cache=cache)
        assert emulator.counts["certs"] == 3
    finally:
        emulator.config.certs_max_age = 3600


def test_verification_failures(emulator: Emulator, fresh_emulator: Emulator, minted: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    def reason(token: str, audience: str = AUD, **kwargs: Any) -> str:
        with pytest.raises(InvalidTokenError) as info:
            id_token.verify_oauth2_token(token, None, audience, certs_url=emulator.certs_uri,
                                         **kwargs)
        assert minted not in str(info.value)
        return info.value.reason

    assert reason(minted, "https://someone-else.run.app") == "audience"
    other = fresh_emulator.create_service_account(name="other-issuer")
    foreign = service_account.IDTokenCredentials.from_service_account_info(
        other, target_audience=AUD).get_token().access_token
    assert reason(foreign) == "unknown_key"
    head, body, sig = minted.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["email"] = "admin@example.com"
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    assert reason(f"{head}.{forged_body}.{sig}") == "signature"
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    emulator.faults.add("metadata", kind="expired", count=1)
    stale = compute_engine.IDTokenCredentials(None, AUD, use_metadata_identity_endpoint=True)
    expired = stale._fetch_sync(None).access_token
    assert reason(expired) == "expired"
    assert id_token.verify_oauth2_token(expired, None, AUD, clock_skew_in_seconds=7200,
                                        certs_url=emulator.certs_uri)["aud"] == AUD
    with pytest.raises(InvalidTokenError) as info:
        id_token.verify_firebase_token(minted, None, "my-project", certs_url=emulator.certs_uri)
    assert info.value.reason in ("issuer", "audience")
    with pytest.raises(InvalidTokenError) as info:
        id_token.verify_token(minted, None, AUD, certs_url=emulator.certs_uri,
                              issuers=["https://issuer.example"])
    assert info.value.reason == "issuer"


def test_unusable_certs_endpoints(emulator: Emulator, minted: str) -> None:
    with pytest.raises(TransportError, match="/ping"):
        id_token.verify_token(minted, None, AUD, certs_url=emulator.url + "/ping",
                              cache=id_token.CertCache())
    with pytest.raises(TransportError, match="HTTP 404"):
        id_token.verify_token(minted, None, AUD, cache=id_token.CertCache(),
                              certs_url=emulator.url + "/robot/v1/metadata/x509/x@y.z")


def test_async_verification(emulator: Emulator, minted: str) -> None:
    cache = id_token.CertCache()

    async def main() -> list[dict[str, Any]]:
        request = gaiohttp.AsyncRequest()
        return list(await asyncio.gather(*(
            id_token.averify_oauth2_token(minted, request, AUD, certs_url=emulator.certs_uri,
                                          cache=cache) for _ in range(10))))

    emulator.reset_counts()
    assert all(c["aud"] == AUD for c in asyncio.run(main()))
    assert emulator.counts["certs"] == 1


@pytest.mark.parametrize("transport", ["urllib3", "requests", "httpx", "httpx-async",
                                       "aiohttp"])
def test_id_token_credentials_on_every_transport(emulator: Emulator, recorder: Recorder,
                                                 transport: str) -> None:
    target = keyless(emulator, f"idt-transport-{transport}")
    creds = impersonated_credentials.IDTokenCredentials(
        impersonate(emulator, user(emulator), target), target_audience=AUD)

    async def async_call() -> int:
        if transport == "aiohttp":
            async with gaiohttp.AuthorizedSession(creds) as session:
                async with session.get(recorder.url) as response:
                    return response.status
        async with httpx.AsyncClient(auth=ghttpx.Auth(creds)) as client:
            return (await client.get(recorder.url)).status_code

    if transport == "urllib3":
        status = AuthorizedHttp(creds).request("GET", recorder.url).status
    elif transport == "requests":
        status = AuthorizedSession(creds).get(recorder.url).status_code
    elif transport == "httpx":
        with httpx.Client(auth=ghttpx.Auth(creds)) as client:
            status = client.get(recorder.url).status_code
    else:
        status = asyncio.run(async_call())
    assert status == 200
    assert creds.token is not None and recorder.seen == [f"Bearer {creds.token}"]
    assert verify(emulator, creds.token)["aud"] == AUD
