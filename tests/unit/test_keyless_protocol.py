"""Keyless identities, sans-IO: the Join step, IAM Credentials requests/replies/errors, ID-token
verification and certificate documents, the certificate cache, and the impersonated ADC file.
No sockets: every server here is a function."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization

from gcauth import authorized_user, impersonated_credentials, service_account
from gcauth._default import load_credentials_from_dict
from gcauth._http import Flow, HttpRequest, HttpResponse, Join, run_async, run_sync
from gcauth._protocol import iamcredentials as iam
from gcauth._protocol import idtoken
from gcauth._protocol import jwt as pjwt
from gcauth.emulator._jwt import new_signing_key
from gcauth.exceptions import (
    InvalidTokenError,
    MalformedCredentialsError,
    RefreshError,
    TransportError,
    UnsafeEndpointError,
    UsageError,
)
from gcauth.id_token import CertCache
from gcauth.tokens import Token
from tests.kit.creds import T0, drive, reply, rsa_pem, sa_info, user_info

TARGET = "app@p.iam.gserviceaccount.com"
CLOUD = "https://www.googleapis.com/auth/cloud-platform"
NOW = 1_800_000_000.0


# -- the Join step ------------------------------------------------------------------------------
def _joining_flow(log: list[str]) -> Flow[str]:
    value = yield Join(lambda send: "sync:" + send(HttpRequest("GET", "http://x/")).body.decode(),
                       _async_join)
    log.append(str(value))
    try:
        yield Join(_raise, _araise)
    except RuntimeError as exc:
        log.append(f"thrown in: {exc}")
    return "done"


async def _async_join(send: Callable[[HttpRequest], Any]) -> str:
    response: HttpResponse = await send(HttpRequest("GET", "http://x/"))
    return "async:" + response.body.decode()


def _raise(send: object) -> str:
    raise RuntimeError("boom")


async def _araise(send: object) -> str:
    raise RuntimeError("boom")


def test_join_is_answered_by_both_drivers_and_errors_are_thrown_in() -> None:
    ok = HttpResponse(200, reply().headers, b"ok")
    log: list[str] = []
    assert run_sync(_joining_flow(log), lambda request: ok) == "done"

    async def asend(request: HttpRequest) -> HttpResponse:
        return ok

    assert asyncio.run(run_async(_joining_flow(log), asend)) == "done"
    assert log == ["sync:ok", "thrown in: boom", "async:ok", "thrown in: boom"]


# -- endpoints and names -----------------------------------------------------------------------
def test_split_endpoint_reads_a_base_or_a_method_url() -> None:
    def split(url: str) -> tuple[str, str | None]:
        return iam.split_endpoint(url, field="f", source="s")

    assert split("https://iamcredentials.googleapis.com/") == (
        "https://iamcredentials.googleapis.com", None)
    assert split("http://127.0.0.1:8080") == ("http://127.0.0.1:8080", None)
    full = f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{TARGET}" \
           ":generateAccessToken"
    assert split(full) == ("https://iamcredentials.googleapis.com", TARGET)
    assert split(f"https://europe-west1-iamcredentials.googleapis.com/v1/projects/-/"
                 f"serviceAccounts/{TARGET}:signBlob")[1] == TARGET
    for bad in (full.replace("generateAccessToken", "steal"), full + "?x=1",
                "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/no-at:signJwt"):
        with pytest.raises(UsageError):
            split(bad)
    with pytest.raises(UnsafeEndpointError, match="allowed_hosts"):
        split("https://iam.example.com")
    assert iam.split_endpoint("https://iam.example.com", field="f", source="s",
                              allowed_hosts=["iam.example.com"])[0] == "https://iam.example.com"
    assert iam.method_url("https://h", TARGET, "signJwt") == \
        f"https://h/v1/projects/-/serviceAccounts/{TARGET}:signJwt"
    assert iam.default_base("example.goog") == "https://iamcredentials.example.goog"


def test_delegates_are_accepted_bare_or_as_resource_names() -> None:
    names = iam.delegate_names(["a@p.iam.gserviceaccount.com",
                                "projects/-/serviceAccounts/b@p.iam.gserviceaccount.com"],
                               source="s")
    assert names == ["projects/-/serviceAccounts/a@p.iam.gserviceaccount.com",
                     "projects/-/serviceAccounts/b@p.iam.gserviceaccount.com"]
    assert iam.delegate_emails(names) == ["a@p.iam.gserviceaccount.com",
                                          "b@p.iam.gserviceaccount.com"]
    assert iam.delegate_names(None, source="s") == []
    for bad in ("a@b", ["not an email"], [1], ["projects/-/serviceAccounts/"]):
        with pytest.raises(UsageError, match="delegate"):
            iam.delegate_names(bad, source="s")  # type: ignore[arg-type]


@pytest.mark.parametrize("text,expected", [
    ("2026-01-01T12:00:00Z", datetime(2026, 1, 1, 12, tzinfo=timezone.utc)),
    ("2026-01-01T12:00:00.123456789Z", datetime(2026, 1, 1, 12, 0, 0, 123456, timezone.utc)),
    ("2026-01-01T13:30:00+01:30", datetime(2026, 1, 1, 12, tzinfo=timezone.utc)),
    ("2026-01-01 12:00:00Z", None), ("2026-13-01T12:00:00Z", None), ("yesterday", None),
    (1700000000, None),
])
def test_rfc3339(text: object, expected: datetime | None) -> None:
    assert iam.parse_rfc3339(text) == expected


@pytest.mark.parametrize("data", [
    {}, {"accessToken": 5, "expireTime": "2026-01-01T12:00:00Z"},
    {"accessToken": "ya29.a\r\nX-Evil: 1", "expireTime": "2026-01-01T12:00:00Z"},
    {"accessToken": "ya29.ok", "expireTime": "soon"},
])
def test_hostile_generate_access_token_replies(data: dict[str, Any]) -> None:
    with pytest.raises(RefreshError) as info:
        iam.parse_access_token(data, "https://iam/x")
    assert "https://iam/x" in str(info.value) and "X-Evil" not in str(info.value)


def test_hostile_sign_and_id_token_replies() -> None:
    for bad_blob in ({}, {"signedBlob": "%%%"}, {"signedBlob": ""}):
        with pytest.raises(RefreshError):
            iam.parse_sign_blob(bad_blob, "e")
    assert iam.parse_sign_blob({"signedBlob": "AQID", "keyId": "k"}, "e") == ("k", b"\1\2\3")
    for bad_jwt in ({}, {"signedJwt": "a.b"}, {"signedJwt": "a.b.c\n"}):
        with pytest.raises(RefreshError):
            iam.parse_sign_jwt(bad_jwt, "e")
    for bad_token in ({}, {"token": "nodots"}, {"token": "a b.c.d"}):
        with pytest.raises(RefreshError):
            iam.parse_id_token_reply(bad_token, "e")


def _google_error(status: int, code: str, message: str) -> HttpResponse:
    return reply(status, {"error": {"code": status, "status": code, "message": message}})


def test_a_denial_names_the_principal_the_target_and_the_role() -> None:
    caller = iam.Caller("user:alice@example.com", TARGET)
    error = iam.iam_error(_google_error(403, "PERMISSION_DENIED", "Permission denied."),
                          "https://iam/x", "generateAccessToken", caller)
    text = str(error)
    assert "user:alice@example.com may not get an access token for " + TARGET in text
    assert "roles/iam.serviceAccountTokenCreator" in text
    assert f"add-iam-policy-binding {TARGET} --member=user:alice@example.com" in text
    assert (error.status, error.error, error.retryable) == (403, "PERMISSION_DENIED", False)
    chained = str(iam.iam_error(
        _google_error(403, "PERMISSION_DENIED", "x"), "e", "signBlob",
        iam.Caller(None, TARGET, ["projects/-/serviceAccounts/d@p.iam.gserviceaccount.com"])))
    assert "The caller (account unknown) may not sign bytes as" in chained
    assert "the caller -> d@p.iam.gserviceaccount.com -> " + TARGET in chained
    scope = str(iam.iam_error(_google_error(403, "PERMISSION_DENIED",
                                            "Request had insufficient authentication scopes."),
                              "e", "signJwt", caller))
    assert "lacks the scope" in scope and iam.IAM_SCOPE in scope
    assert "expired or revoked" in str(iam.iam_error(_google_error(401, "UNAUTHENTICATED", "x"),
                                                     "e", "signBlob", caller))
    unavailable = iam.iam_error(reply(503, raw=b"<html>"), "e", "signBlob", caller)
    assert unavailable.retryable and "temporary" in str(unavailable)


def test_call_flow_retries_transient_failures_and_sends_json() -> None:
    answers = [_google_error(503, "UNAVAILABLE", "later"), reply(200, {"signedBlob": "AQ=="})]
    caller = iam.Caller(None, TARGET)
    result, requests, sleeps = drive(
        iam.call_flow("https://iam", "signBlob", caller, {"payload": "AQ=="},
                      {"authorization": "Bearer t"}), lambda request: answers.pop(0))
    assert result == {"signedBlob": "AQ=="} and len(requests) == 2 and len(sleeps) == 1
    sent = requests[0]
    assert sent.method == "POST" and sent.headers["content-type"] == "application/json"
    assert json.loads(sent.body or b"") == {"payload": "AQ=="}
    assert sent.url == f"https://iam/v1/projects/-/serviceAccounts/{TARGET}:signBlob"


# -- impersonated credentials, sans-IO ---------------------------------------------------------
def _fake_google(seen: list[HttpRequest], iam_status: list[int]) -> Callable[[HttpRequest],
                                                                               HttpResponse]:
    def answer(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        if request.url.startswith("https://oauth2.googleapis.com/token"):
            return reply(200, {"access_token": f"source-{len(seen)}", "expires_in": 3600})
        status = iam_status.pop(0) if iam_status else 200
        if status != 200:
            return _google_error(status, "UNAUTHENTICATED", "expired")
        return reply(200, {"accessToken": "ya29.impersonated", "expireTime":
                           "2026-01-01T13:00:00Z"})
    return answer


def test_impersonation_asks_the_source_then_iam_with_its_token() -> None:
    source = authorized_user.Credentials.from_authorized_user_info(user_info()).with_clock(
        lambda: T0)
    creds = impersonated_credentials.Credentials(
        source, TARGET, [CLOUD], delegates=["d@p.iam.gserviceaccount.com"], lifetime=7200)
    seen: list[HttpRequest] = []
    token, _, _ = drive(creds.token_flow(T0), _fake_google(seen, []))
    assert token.access_token == "ya29.impersonated"
    assert token.expiry == datetime(2026, 1, 1, 13, tzinfo=timezone.utc)
    call = seen[-1]
    assert call.url == ("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
                        f"{TARGET}:generateAccessToken")
    assert call.headers["authorization"] == "Bearer source-1"
    assert json.loads(call.body or b"") == {
        "scope": [CLOUD], "lifetime": "7200s",
        "delegates": ["projects/-/serviceAccounts/d@p.iam.gserviceaccount.com"]}


def test_a_401_from_iam_refreshes_the_source_once() -> None:
    source = authorized_user.Credentials.from_authorized_user_info(user_info()).with_clock(
        lambda: T0)
    creds = impersonated_credentials.Credentials(source, TARGET, [CLOUD])
    seen: list[HttpRequest] = []
    token, _, _ = drive(creds.token_flow(T0), _fake_google(seen, [401]))
    assert token.access_token == "ya29.impersonated"
    assert [r.headers.get("authorization") for r in seen if "iamcredentials" in r.url] == [
        "Bearer source-1", "Bearer source-3"]
    seen.clear()
    with pytest.raises(RefreshError, match="expired or revoked") as info:
        drive(creds.token_flow(T0), _fake_google(seen, [401, 401]))
    assert info.value.status == 401


def test_service_account_sources_get_the_iam_scope_and_universe_decides_the_base() -> None:
    sa = service_account.Credentials.from_service_account_info(
        sa_info(universe_domain="example.goog"))
    creds = impersonated_credentials.Credentials(sa, TARGET, [CLOUD])
    prepared = creds.source_credentials
    assert isinstance(prepared, service_account.Credentials)
    assert prepared.effective_scopes() == (iam.IAM_SCOPE,)
    assert creds.iam_endpoint == "https://iamcredentials.example.goog"
    scoped = sa.with_scopes([CLOUD])
    assert impersonated_credentials.Credentials(scoped, TARGET).source_credentials is scoped


@pytest.mark.parametrize("kwargs,match", [
    ({"lifetime": 43201}, "12 hours"), ({"lifetime": -5}, "12 hours"),
    ({"lifetime": "1h"}, "number of seconds"),
    ({"iam_endpoint_override": "https://iamcredentials.googleapis.com/v1/projects/-/"
      "serviceAccounts/other@p.iam.gserviceaccount.com:generateAccessToken"}, "names the account"),
    ({"target_principal": "not-an-email"}, "service-account email"),
])
def test_impersonation_arguments_are_checked(kwargs: dict[str, Any], match: str) -> None:
    source = authorized_user.Credentials.from_authorized_user_info(user_info())
    args: dict[str, Any] = {"target_principal": TARGET, **kwargs}
    with pytest.raises(UsageError, match=match):
        impersonated_credentials.Credentials(source, **args)
    with pytest.raises(UsageError, match="source_credentials"):
        impersonated_credentials.Credentials(object(), TARGET)  # type: ignore[arg-type]


def test_lifetime_default_and_no_scopes() -> None:
    source = authorized_user.Credentials.from_authorized_user_info(user_info())
    creds = impersonated_credentials.Credentials(source, TARGET, lifetime=None)
    assert creds.lifetime == 3600 and creds.requires_scopes
    with pytest.raises(RefreshError, match="needs scopes"):
        drive(creds.token_flow(T0), lambda r: reply(200, {}))


# -- the impersonated_service_account ADC file -------------------------------------------------
def impersonated_file(**overrides: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": "impersonated_service_account",
        "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/"
                                             f"projects/-/serviceAccounts/{TARGET}"
                                             ":generateAccessToken",
        "delegates": ["d@p.iam.gserviceaccount.com"],
        "source_credentials": user_info(),
        "quota_project_id": "billing-1",
    }
    info.update(overrides)
    return {k: v for k, v in info.items() if v is not None}


def test_adc_loads_the_file_gcloud_writes() -> None:
    creds, project = load_credentials_from_dict(impersonated_file(), scopes=[CLOUD])
    assert isinstance(creds, impersonated_credentials.Credentials) and project is None
    assert creds.target_principal == TARGET and creds.quota_project_id == "billing-1"
    assert creds.delegates == ["projects/-/serviceAccounts/d@p.iam.gserviceaccount.com"]
    assert isinstance(creds.source_credentials, authorized_user.Credentials)
    info = creds.describe()
    assert info["type"] == "impersonated_service_account" and info["account"] == TARGET
    assert info["chain"] == ["(authorized_user credentials)", "d@p.iam.gserviceaccount.com",
                             TARGET]
    assert info["source"]["type"] == "authorized_user"
    sa_source, _ = load_credentials_from_dict(impersonated_file(source_credentials=sa_info(),
                                                                delegates=None))
    assert isinstance(sa_source, impersonated_credentials.Credentials)
    assert sa_source.describe()["chain"] == [sa_info()["client_email"], TARGET]
    regional = impersonated_file(service_account_impersonation_url=(
        "http://127.0.0.1:8085/v1/projects/-/serviceAccounts/" + TARGET + ":generateAccessToken"))
    loop, _ = load_credentials_from_dict(regional)
    assert isinstance(loop, impersonated_credentials.Credentials)
    assert loop.iam_endpoint == "http://127.0.0.1:8085"
    secret = user_info()["client_secret"]
    assert secret not in repr(creds) and secret not in json.dumps(info)


@pytest.mark.parametrize("overrides,field", [
    ({"source_credentials": None}, "source_credentials"),
    ({"source_credentials": {"type": "external_account"}}, "source_credentials.type"),
    ({"source_credentials": user_info(refresh_token=None)}, "refresh_token"),
    ({"service_account_impersonation_url": None}, "service_account_impersonation_url"),
    ({"service_account_impersonation_url": "https://iamcredentials.googleapis.com"},
     "service_account_impersonation_url"),
    ({"service_account_impersonation_url": "https://evil.example.com/v1/projects/-/"
      f"serviceAccounts/{TARGET}:generateAccessToken"}, "service_account_impersonation_url"),
    ({"delegates": "d@p.iam.gserviceaccount.com"}, "delegates"),
    ({"quota_project_id": "bad project"}, "quota_project_id"),
])
def test_a_broken_impersonated_file_names_its_field(overrides: dict[str, Any],
                                                    field: str) -> None:
    with pytest.raises(MalformedCredentialsError) as info:
        load_credentials_from_dict(impersonated_file(**overrides), source="adc.json")
    assert info.value.field == field or field in str(info.value)
    assert "adc.json" in str(info.value)
    assert user_info()["client_secret"] not in str(info.value)


def test_a_bad_delegate_in_the_file_is_a_malformed_file() -> None:
    with pytest.raises(MalformedCredentialsError, match="delegate"):
        load_credentials_from_dict(impersonated_file(delegates=["nope"]), source="adc.json")


# -- ID-token verification ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def signer() -> pjwt.RSASigner:
    return pjwt.RSASigner.from_pem(rsa_pem(), "kid-1")


@pytest.fixture(scope="module")
def keys(signer: pjwt.RSASigner) -> idtoken.KeySet:
    return idtoken.KeySet({"kid-1": signer.public_key()}, "https://certs.example/")


def make_token(signer: pjwt.RSASigner, **claims: Any) -> str:
    body: dict[str, Any] = {"iss": "https://accounts.google.com", "aud": "https://x.run.app",
                            "sub": "1", "iat": int(NOW) - 10, "exp": int(NOW) + 3590}
    body.update(claims)
    return pjwt.encode(signer, {k: v for k, v in body.items() if v is not None})


def verify(keys: idtoken.KeySet, token: str | bytes, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"now": NOW, "audience": "https://x.run.app",
                               "issuers": idtoken.GOOGLE_ISSUERS, "clock_skew": 0}
    options.update(kwargs)
    return keys.verify(token, **options)


def test_a_good_token_verifies(keys: idtoken.KeySet, signer: pjwt.RSASigner) -> None:
    token = make_token(signer, email="a@b.c")
    assert verify(keys, token)["email"] == "a@b.c"
    assert verify(keys, token.encode())["sub"] == "1"
    assert verify(keys, token, audience=["https://other", "https://x.run.app"])["sub"] == "1"
    assert verify(keys, make_token(signer, aud=["https://x.run.app", "y"]))["sub"] == "1"
    assert verify(keys, token, audience=None, issuers=None)["sub"] == "1"


@pytest.mark.parametrize("change,reason", [
    ({"aud": "https://other.run.app"}, "audience"),
    ({"aud": "https://x.run.app/"}, "audience"),
    ({"iss": "https://evil.example.com"}, "issuer"),
    ({"exp": int(NOW) - 1}, "expired"),
    ({"iat": int(NOW) + 100}, "not_yet_valid"),
    ({"nbf": int(NOW) + 100}, "not_yet_valid"),
    ({"exp": None}, "malformed"), ({"exp": "tomorrow"}, "malformed"), ({"iat": None}, "malformed"),
])
def test_claims_that_fail(keys: idtoken.KeySet, signer: pjwt.RSASigner, change: dict[str, Any],
                          reason: str) -> None:
    with pytest.raises(InvalidTokenError) as info:
        verify(keys, make_token(signer, **change))
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


def test_clock_skew_is_allowed_both_ways(keys: idtoken.KeySet, signer: pjwt.RSASigner) -> None:
    late = make_token(signer, exp=int(NOW) - 5)
    early = make_token(signer, iat=int(NOW) + 5)
    for token in (late, early):
        with pytest.raises(InvalidTokenError):
            verify(keys, token)
        assert verify(keys, token, clock_skew=10)["sub"] == "1"


def test_signatures_keys_and_shapes_that_fail(keys: idtoken.KeySet,
                                              signer: pjwt.RSASigner) -> None:
    token = make_token(signer)
    head, body, sig = token.split(".")
    other = pjwt.RSASigner.from_pem(rsa_pem(1), "kid-1")
    forged_body = pjwt.b64url_encode(json.dumps({"iss": "https://accounts.google.com",
                                                 "aud": "https://x.run.app", "sub": "admin",
                                                 "iat": int(NOW), "exp": int(NOW) + 60})
                                     .encode())
    cases = {
        "signature": [f"{head}.{forged_body}.{sig}", make_token(other),
                      f"{head}.{body}.{sig[:-4]}AAAA",
                      pjwt.b64url_encode(b'{"alg":"none","kid":"kid-1"}') + f".{body}."],
        "unknown_key": [make_token(pjwt.RSASigner.from_pem(rsa_pem(1), "kid-9"))],
        "malformed": ["", "a.b", f"{head}.{body}", f"{head}.{body}.{sig}.x", f"{head}.{body}.s*g",
                      "é." + body + "." + sig, f"{head}.{pjwt.b64url_encode(b'[1]')}.{sig}",
                      pjwt.b64url_encode(b"[]") + f".{body}.{sig}"],
    }
    for reason, tokens in cases.items():
        for bad in tokens:
            with pytest.raises(InvalidTokenError) as info:
                verify(keys, bad)
            assert info.value.reason in (reason, "signature"), (reason, bad)
            if reason != "malformed":
                assert info.value.reason == reason, bad
    with pytest.raises(InvalidTokenError):
        verify(keys, 12)  # type: ignore[arg-type]


def _pem_document(*pairs: tuple[str, str]) -> bytes:
    return json.dumps(dict(pairs)).encode()


def test_certs_documents_jwks_and_pem() -> None:
    key = new_signing_key("issuer", kid="cert-1")
    pem = idtoken.parse_certs(_pem_document(("cert-1", key.certificate_pem)), "u")
    jwks = idtoken.parse_certs(json.dumps({"keys": [
        key.jwk(), {"kty": "EC", "kid": "ec"}, {**key.jwk(), "kid": "enc", "use": "enc"},
        {"kty": "RSA"}]}).encode(), "u")
    public = key.public_key.public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    raw = idtoken.parse_certs(_pem_document(("k", public)), "u")
    assert sorted(pem.keys) == ["cert-1"] and sorted(jwks.keys) == ["cert-1"]
    assert sorted(raw.keys) == ["k"]
    token = key.sign({"iss": "https://accounts.google.com", "aud": "a", "iat": int(NOW),
                      "exp": int(NOW) + 60})
    for keyset in (pem, jwks):
        assert keyset.verify(token, now=NOW, audience="a", issuers=None)["aud"] == "a"


@pytest.mark.parametrize("body", [
    b"<html>", b"[1]", b'{"keys": 5}', b"{}", b'{"keys": []}', b'{"k": 5}',
    b'{"k": "-----BEGIN CERTIFICATE-----\\nnope\\n-----END CERTIFICATE-----"}',
    b'{"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"}]}',
    b'{"keys": [{"kty": "RSA", "kid": "k", "n": "*", "e": "AQAB"}]}',
])
def test_unusable_certs_documents(body: bytes) -> None:
    with pytest.raises(TransportError, match="https://certs.example/x") as info:
        idtoken.parse_certs(body, "https://certs.example/x")
    assert not info.value.retryable


@pytest.mark.parametrize("headers,seconds", [
    ({"cache-control": "public, max-age=19809, must-revalidate, no-transform"}, 19809.0),
    ({"cache-control": "max-age=100", "age": "30"}, 70.0),
    ({"cache-control": "max-age=100", "age": "300"}, 0.0),
    ({"cache-control": "no-store, max-age=100"}, 0.0), ({"cache-control": "no-cache"}, 0.0),
    ({}, 0.0), ({"cache-control": "max-age=abc"}, 0.0),
])
def test_max_age(headers: Mapping[str, str], seconds: float) -> None:
    assert idtoken.max_age(headers) == seconds


def test_token_times(signer: pjwt.RSASigner) -> None:
    expiry, issued = idtoken.token_times(make_token(signer), "e")
    assert expiry == datetime.fromtimestamp(int(NOW) + 3590, timezone.utc)
    assert issued == expiry - timedelta(seconds=3600)
    for bad in ("junk", make_token(signer, exp=None)):
        with pytest.raises(RefreshError, match="e sent an ID token"):
            idtoken.token_times(bad, "e")


# -- the certificate cache ----------------------------------------------------------------------
class FakeCerts:
    """A certs endpoint as a gcauth Request: counts fetches, answers with ``max_age``."""

    def __init__(self, max_age: int = 60, fail: int = 0):
        self.key = new_signing_key("cache", kid="c1")
        self.max_age = max_age
        self.fail = fail
        self.fetches = 0
        self.gate: threading.Event | None = None

    def send(self, request: HttpRequest) -> HttpResponse:
        if self.gate is not None:
            self.gate.wait(5)
        self.fetches += 1
        if self.fail:
            self.fail -= 1
            return reply(404, {})
        return reply(200, {self.key.kid: self.key.certificate_pem},
                     {"cache-control": f"max-age={self.max_age}"})


def test_the_cache_honours_max_age_and_does_not_cache_failures() -> None:
    now = [100.0]
    cache = CertCache(clock=lambda: now[0])
    server = FakeCerts(max_age=60, fail=1)
    url = "https://certs.example/v1"
    with pytest.raises(TransportError, match="HTTP 404"):
        cache.get(url, server)
    first = cache.get(url, server)
    assert cache.get(url, server) is first and server.fetches == 2 and cache.fetches == 1
    now[0] += 59
    assert cache.get(url, server) is first and server.fetches == 2
    now[0] += 2
    assert cache.get(url, server) is not first and server.fetches == 3
    zero = FakeCerts(max_age=0)
    cache.get("https://certs.example/zero", zero)
    cache.get("https://certs.example/zero", zero)
    assert zero.fetches == 2


def test_concurrent_callers_share_one_fetch() -> None:
    cache = CertCache()
    server = FakeCerts()
    server.gate = threading.Event()
    results: list[idtoken.KeySet] = []
    threads = [threading.Thread(target=lambda: results.append(
        cache.get("https://certs.example/herd", server))) for _ in range(16)]
    for thread in threads:
        thread.start()
    server.gate.set()
    for thread in threads:
        thread.join(10)
    assert len(results) == 16 and len({id(r) for r in results}) == 1
    assert server.fetches == 1


def test_async_callers_share_one_fetch_too() -> None:
    cache = CertCache()
    server = FakeCerts()

    class Async:
        async def send(self, request: HttpRequest) -> HttpResponse:
            await asyncio.sleep(0.01)
            return server.send(request)

    async def main() -> list[idtoken.KeySet]:
        return list(await asyncio.gather(*(cache.aget("https://certs.example/a", Async())
                                           for _ in range(20))))

    results = asyncio.run(main())
    assert len({id(r) for r in results}) == 1 and server.fetches == 1


def test_certs_url_must_not_be_cleartext_off_loopback() -> None:
    from gcauth import id_token

    for url in ("http://certs.example.com/v1", "ftp://x", "", "https://a b"):
        with pytest.raises(UsageError):
            id_token.verify_token("a.b.c", None, certs_url=url)


def test_an_expiry_read_from_a_token_has_the_refresh_windows_of_its_lifetime(
        signer: pjwt.RSASigner) -> None:
    expiry, issued = idtoken.token_times(make_token(signer), "e")
    token = Token("x", expiry=expiry, issued_at=issued)
    assert token.stale_at() == expiry - timedelta(minutes=3, seconds=45)


def test_urls_in_errors_never_carry_queries() -> None:
    with pytest.raises(TransportError) as info:
        idtoken.parse_certs(b"[]", "https://certs.example/x")
    assert urlsplit("https://certs.example/x").query == ""
    assert "?" not in str(info.value)


def test_service_account_id_token_credentials_send_target_audience(
        signer: pjwt.RSASigner) -> None:
    creds = service_account.IDTokenCredentials.from_service_account_info(
        sa_info(), target_audience="https://x.run.app", additional_claims={"extra": "1"})
    minted = make_token(signer)
    token, requests, _ = drive(creds.token_flow(T0), lambda r: reply(200, {"id_token": minted}))
    assert token.access_token == token.id_token == minted
    assertion = dict(p.split("=", 1) for p in (requests[0].body or b"").decode().split("&"))[
        "assertion"]
    claims = pjwt.decode(assertion)[1]
    assert claims["target_audience"] == "https://x.run.app" and claims["extra"] == "1"
    assert claims["aud"] == "https://oauth2.googleapis.com/token"
    with pytest.raises(RefreshError, match="without an id_token"):
        drive(creds.token_flow(T0), lambda r: reply(200, {"access_token": "x"}))
    with pytest.raises(RefreshError, match="not a JWT"):
        drive(creds.token_flow(T0), lambda r: reply(200, {"id_token": "a.b.c"}))
    with pytest.raises(RefreshError, match="audience"):
        drive(creds.with_target_audience("").token_flow(T0), lambda r: reply(200, {}))
    assert base64.b64decode(base64.b64encode(creds.sign_bytes(b"x")))
