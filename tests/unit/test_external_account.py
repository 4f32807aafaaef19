"""external_account credentials (identity_pool sources, STS exchange, impersonation, workforce
users, allow-lists, allowed_types) driven with fake servers: no sockets."""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

import gcauth
from gcauth import external_account_authorized_user, identity_pool
from gcauth._http import HttpRequest, HttpResponse
from gcauth.exceptions import (
    MalformedCredentialsError,
    RefreshError,
    TransportError,
    UnsafeEndpointError,
    UsageError,
)
from tests.kit.creds import T0, drive, reply

AUDIENCE = ("//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/"
            "pool/providers/gh")
WORKFORCE = "//iam.googleapis.com/locations/global/workforcePools/wf/providers/okta"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
SA = "app@proj.iam.gserviceaccount.com"
IMPERSONATE = ("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
               f"{SA}:generateAccessToken")
SUBJECT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvIn0.c2ln"


def config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    token_file = tmp_path / "token"
    if not token_file.exists():
        token_file.write_text(SUBJECT + "\n")
    info: dict[str, Any] = {
        "type": "external_account", "audience": AUDIENCE, "subject_token_type": JWT_TYPE,
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {"file": str(token_file)},
    }
    info.update(overrides)
    return {k: v for k, v in info.items() if v is not None}


def form(request: HttpRequest) -> dict[str, str]:
    assert request.body is not None
    return {k: v[0] for k, v in parse_qs(request.body.decode()).items()}


def sts_ok(request: HttpRequest) -> HttpResponse:
    if request.url.startswith("https://sts."):
        return reply(body={"access_token": "ya29.sts", "issued_token_type":
                           "urn:ietf:params:oauth:token-type:access_token",
                           "token_type": "Bearer", "expires_in": 3600})
    if "generateAccessToken" in request.url:
        return reply(body={"accessToken": "ya29.impersonated",
                           "expireTime": "2026-01-01T13:00:00Z"})
    return reply(404, {"error": "not_found"})


def test_file_source_exchange_sends_rfc8693_parameters(tmp_path: Path) -> None:
    creds = gcauth.load_credentials_from_dict(config(tmp_path))[0]
    assert isinstance(creds, identity_pool.Credentials)
    token, requests, _ = drive(creds.token_flow(T0), sts_ok)
    assert token.access_token == "ya29.sts"
    assert len(requests) == 1
    sent = form(requests[0])
    assert sent == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": AUDIENCE, "requested_token_type":
        "urn:ietf:params:oauth:token-type:access_token", "subject_token": SUBJECT,
        "subject_token_type": JWT_TYPE,
        "scope": "https://www.googleapis.com/auth/cloud-platform"}
    assert "authorization" not in {k.lower() for k in requests[0].headers}


def test_scopes_are_sent_and_client_auth_is_basic(tmp_path: Path) -> None:
    creds = identity_pool.Credentials.from_info(
        config(tmp_path, client_id="cid", client_secret="csecret"),
        scopes=["https://www.googleapis.com/auth/devstorage.read_only"])
    _, requests, _ = drive(creds.token_flow(T0), sts_ok)
    assert form(requests[0])["scope"] == "https://www.googleapis.com/auth/devstorage.read_only"
    auth = dict((k.lower(), v) for k, v in requests[0].headers.items())["authorization"]
    assert base64.b64decode(auth.split()[1]) == b"cid:csecret"


def test_workforce_pool_sends_user_project_option(tmp_path: Path) -> None:
    creds = identity_pool.Credentials.from_info(
        config(tmp_path, audience=WORKFORCE, workforce_pool_user_project="billing-proj"))
    _, requests, _ = drive(creds.token_flow(T0), sts_ok)
    assert json.loads(form(requests[0])["options"]) == {"userProject": "billing-proj"}
    assert creds.is_workforce_pool and creds.project_number is None


def test_user_project_refused_for_workload_pool(tmp_path: Path) -> None:
    with pytest.raises(MalformedCredentialsError) as info:
        identity_pool.Credentials.from_info(config(tmp_path, workforce_pool_user_project="p"))
    assert info.value.field == "workforce_pool_user_project"


def test_impersonation_uses_sts_token_then_generate_access_token(tmp_path: Path) -> None:
    creds = identity_pool.Credentials.from_info(
        config(tmp_path, service_account_impersonation_url=IMPERSONATE,
               service_account_impersonation={"token_lifetime_seconds": 1200}),
        scopes=["https://www.googleapis.com/auth/bigquery"])
    token, requests, _ = drive(creds.token_flow(T0), sts_ok)
    assert token.access_token == "ya29.impersonated"
    assert [r.url.split("/")[2] for r in requests] == ["sts.googleapis.com",
                                                        "iamcredentials.googleapis.com"]
    assert form(requests[0])["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    body = json.loads(requests[1].body or b"")
    assert body == {"scope": ["https://www.googleapis.com/auth/bigquery"], "lifetime": "1200s"}
    assert requests[1].headers["authorization"] == "Bearer ya29.sts"
    assert creds.service_account_email == SA
    assert creds.describe()["account"] == SA


def test_json_url_source_with_headers(tmp_path: Path) -> None:
    info = config(tmp_path, credential_source={
        "url": "http://localhost:5000/token", "headers": {"Metadata": "True"},
        "format": {"type": "json", "subject_token_field_name": "access_token"}})
    creds = identity_pool.Credentials.from_info(info)

    def answer(request: HttpRequest) -> HttpResponse:
        if request.url.startswith("http://localhost:5000"):
            assert request.headers["Metadata"] == "True"
            assert "authorization" not in {k.lower() for k in request.headers}
            return reply(body={"access_token": SUBJECT})
        return sts_ok(request)

    token, requests, _ = drive(creds.token_flow(T0), answer)
    assert token.access_token == "ya29.sts"
    assert form(requests[1])["subject_token"] == SUBJECT


@pytest.mark.parametrize(("body", "status", "says"), [
    (b"oops", 500, "answered HTTP 500"),
    (b"not json", 200, "is not JSON"),
    (b'{"other": 1}', 200, "has no field 'access_token'"),
    (b"[1]", 200, "not an object"),
    (b'{"access_token": ""}', 200, "empty subject token"),
])
def test_url_source_failures_name_the_url(tmp_path: Path, body: bytes, status: int,
                                          says: str) -> None:
    from gcauth._retry import RetryPolicy

    info = config(tmp_path, credential_source={
        "url": "http://localhost:5000/token",
        "format": {"type": "json", "subject_token_field_name": "access_token"}})
    creds = identity_pool.Credentials.from_info(info, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(RefreshError) as err:
        drive(creds.token_flow(T0), lambda r: reply(status, raw=body))
    assert says in str(err.value)
    assert "http://localhost:5000/token" in str(err.value)


def test_missing_and_empty_token_files_name_the_file(tmp_path: Path) -> None:
    info = config(tmp_path, credential_source={"file": str(tmp_path / "nope")})
    creds = identity_pool.Credentials.from_info(info, source="/etc/wif.json")
    with pytest.raises(RefreshError) as err:
        drive(creds.token_flow(T0), sts_ok)
    assert "nope" in str(err.value) and "does not exist" in str(err.value)
    empty = tmp_path / "empty"
    empty.write_text("")
    creds = identity_pool.Credentials.from_info(
        config(tmp_path, credential_source={"file": str(empty)}))
    with pytest.raises(RefreshError, match="empty subject token"):
        drive(creds.token_flow(T0), sts_ok)


def test_token_file_is_read_again_each_refresh(tmp_path: Path) -> None:
    creds = identity_pool.Credentials.from_info(config(tmp_path))
    drive(creds.token_flow(T0), sts_ok)
    (tmp_path / "token").write_text("rotated.token.value")
    _, requests, _ = drive(creds.token_flow(T0), sts_ok)
    assert form(requests[0])["subject_token"] == "rotated.token.value"


@pytest.mark.parametrize(("source", "field"), [
    ({}, "credential_source"),
    ({"file": "a", "url": "http://localhost/x"}, "credential_source"),
    ({"file": 3}, "credential_source.file"),
    ({"url": "ftp://x"}, "credential_source.url"),
    ({"file": "a", "format": {"type": "xml"}}, "credential_source.format.type"),
    ({"file": "a", "format": {"type": "json"}},
     "credential_source.format.subject_token_field_name"),
    ({"url": "http://localhost/x", "headers": {"Bad Name": "v"}}, "credential_source.headers"),
    ({"certificate": {"use_default_certificate_config": True}},
     "credential_source.certificate"),
])
def test_bad_credential_sources_name_the_field(tmp_path: Path, source: dict[str, Any],
                                               field: str) -> None:
    with pytest.raises(MalformedCredentialsError) as err:
        gcauth.load_credentials_from_dict(config(tmp_path, credential_source=source),
                                          source="/x/wif.json")
    assert err.value.field == field
    assert "/x/wif.json" in str(err.value)


@pytest.mark.parametrize(("field", "url"), [
    ("token_url", "https://evil.example.com/v1/token"),
    ("token_url", "https://oauth2.googleapis.com/token"),
    ("token_url", "http://sts.googleapis.com/v1/token"),
    ("service_account_impersonation_url",
     f"https://evil.example.com/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"),
    ("service_account_impersonation_url",
     f"https://sts.googleapis.com/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"),
    ("token_info_url", "https://example.org/v1/introspect"),
])
def test_untrusted_google_endpoints_refused_at_load(tmp_path: Path, field: str,
                                                    url: str) -> None:
    with pytest.raises(UnsafeEndpointError) as err:
        gcauth.load_credentials_from_dict(config(tmp_path, **{field: url}))
    assert err.value.field == field


def test_regional_loopback_and_opt_in_hosts_accepted(tmp_path: Path) -> None:
    for url in ("https://sts.us-east1.rep.googleapis.com/v1/token",
                "http://127.0.0.1:8080/v1/token", "http://[::1]:9/v1/token"):
        creds = identity_pool.Credentials.from_info(config(tmp_path, token_url=url))
        assert creds.token_url == url
    creds = identity_pool.Credentials.from_info(
        config(tmp_path, token_url="https://sts.corp.example/v1/token"),
        allowed_hosts=["sts.corp.example"])
    assert creds.token_url.startswith("https://sts.corp.example")


def test_sts_errors_become_refresh_errors_with_hints(tmp_path: Path) -> None:
    creds = identity_pool.Credentials.from_info(config(tmp_path), source="/ci/wif.json")
    creds._source_file = "/ci/wif.json"
    with pytest.raises(RefreshError) as err:
        drive(creds.token_flow(T0), lambda r: reply(400, {
            "error": "invalid_grant", "error_description": "The audience does not match"}))
    text = str(err.value)
    assert err.value.error == "invalid_grant"
    assert "The audience does not match" in text and "/ci/wif.json" in text
    assert SUBJECT not in text


def test_unreachable_sts_is_a_transport_error(tmp_path: Path) -> None:
    from gcauth._retry import RetryPolicy

    creds = identity_pool.Credentials.from_info(config(tmp_path),
                                                retry=RetryPolicy(max_attempts=1))
    with pytest.raises(TransportError):
        drive(creds.token_flow(T0), lambda r: TransportError("refused", url=r.url))


class Supplier(identity_pool.SubjectTokenSupplier):
    def __init__(self) -> None:
        self.contexts: list[Any] = []

    def get_subject_token(self, context: Any, request: Any) -> str:
        self.contexts.append(context)
        return "supplied.subject.token"


def test_programmatic_supplier(tmp_path: Path) -> None:
    supplier = Supplier()
    creds = identity_pool.Credentials(AUDIENCE, JWT_TYPE, subject_token_supplier=supplier)
    _, requests, _ = drive(creds.token_flow(T0), sts_ok)
    assert form(requests[0])["subject_token"] == "supplied.subject.token"
    assert supplier.contexts[0].audience == AUDIENCE
    assert creds.describe()["credential_source"] == "supplier"


def test_supplier_failure_is_a_refresh_error() -> None:
    class Broken(identity_pool.SubjectTokenSupplier):
        def get_subject_token(self, context: Any, request: Any) -> str:
            raise OSError("idp down")

    creds = identity_pool.Credentials(AUDIENCE, JWT_TYPE, subject_token_supplier=Broken())
    with pytest.raises(RefreshError, match="Broken raised OSError: idp down"):
        drive(creds.token_flow(T0), sts_ok)


def test_secrets_stay_out_of_repr_and_describe(tmp_path: Path) -> None:
    creds = identity_pool.Credentials.from_info(
        config(tmp_path, client_id="cid", client_secret="csecret-value"))
    drive(creds.token_flow(T0), sts_ok)
    assert "csecret-value" not in repr(creds) and "csecret-value" not in json.dumps(
        creds.describe())
    copy = pickle.loads(pickle.dumps(creds))
    assert copy.audience == AUDIENCE


def test_with_scopes_copy_rebuilds_the_impersonator(tmp_path: Path) -> None:
    creds = identity_pool.Credentials.from_info(
        config(tmp_path, service_account_impersonation_url=IMPERSONATE))
    drive(creds.token_flow(T0), sts_ok)
    scoped = creds.with_scopes(["https://www.googleapis.com/auth/pubsub"])
    _, requests, _ = drive(scoped.token_flow(T0), sts_ok)
    assert json.loads(requests[-1].body or b"")["scope"] == [
        "https://www.googleapis.com/auth/pubsub"]


def test_project_id_from_resource_manager(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GCLOUD_PROJECT", raising=False)
    creds = identity_pool.Credentials.from_info(config(tmp_path))

    def answer(request: HttpRequest) -> HttpResponse:
        if "cloudresourcemanager" in request.url:
            assert request.url.endswith("/v1/projects/123456")
            assert request.headers["authorization"] == "Bearer ya29.sts"
            return reply(body={"projectId": "my-project", "projectNumber": "123456"})
        return sts_ok(request)

    project, requests, _ = drive(creds.project_id_flow(), answer)
    assert project == "my-project"
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-env")
    assert creds.get_project_id() == "from-env"


def test_default_never_looks_up_the_project(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "wif.json"
    path.write_text(json.dumps(config(tmp_path)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GCLOUD_PROJECT", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    creds, project = gcauth.default()  # sockets are disabled here: a lookup would fail
    assert isinstance(creds, identity_pool.Credentials) and project is None


# -- allowed_types --------------------------------------------------------------------------
def test_allowed_types_refuses_before_anything_runs(tmp_path: Path) -> None:
    info = config(tmp_path, credential_source={"executable": {"command": "/bin/false"}})
    with pytest.raises(MalformedCredentialsError) as err:
        gcauth.load_credentials_from_dict(info, source="/dl/cred.json",
                                          allowed_types=["service_account",
                                                         "external_account:file"])
    assert "/dl/cred.json" in str(err.value)
    assert "external_account:executable" in str(err.value)
    creds, _ = gcauth.load_credentials_from_dict(config(tmp_path),
                                                 allowed_types=["external_account:file"])
    assert creds.source_kind == "file"  # type: ignore[attr-defined]
    creds, _ = gcauth.load_credentials_from_dict(config(tmp_path),
                                                 allowed_types=["external_account"])
    with pytest.raises(UsageError):
        gcauth.load_credentials_from_dict(config(tmp_path), allowed_types="external_account")
    with pytest.raises(UsageError):
        gcauth.load_credentials_from_dict(config(tmp_path), allowed_types=["nonsense"])


def test_default_allowed_types(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "wif.json"
    path.write_text(json.dumps(config(tmp_path)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    with pytest.raises(MalformedCredentialsError) as err:
        gcauth.default(allowed_types=["service_account"])
    assert str(path) in str(err.value) and "'external_account'" in str(err.value)


# -- external_account_authorized_user --------------------------------------------------------
def workforce_user(**overrides: Any) -> dict[str, Any]:
    info = {"type": "external_account_authorized_user", "audience": WORKFORCE,
            "refresh_token": "wf-refresh-secret", "token_url":
            "https://sts.googleapis.com/v1/oauthtoken", "token_info_url":
            "https://sts.googleapis.com/v1/introspect", "revoke_url":
            "https://sts.googleapis.com/v1/revoke", "client_id": "wf-client",
            "client_secret": "wf-secret", "universe_domain": "googleapis.com"}
    info.update(overrides)
    return {k: v for k, v in info.items() if v is not None}


def test_workforce_user_refresh_and_rotation() -> None:
    creds, project = gcauth.load_credentials_from_dict(workforce_user(quota_project_id="qp"))
    assert isinstance(creds, external_account_authorized_user.Credentials)
    assert project is None and creds.quota_project_id == "qp"

    def answer(request: HttpRequest) -> HttpResponse:
        assert request.url == "https://sts.googleapis.com/v1/oauthtoken"
        auth = request.headers["Authorization"].split()[1]
        assert base64.b64decode(auth) == b"wf-client:wf-secret"
        assert form(request) == {"grant_type": "refresh_token",
                                 "refresh_token": "wf-refresh-secret"}
        return reply(body={"access_token": "ya29.wf", "expires_in": 3600,
                           "refresh_token": "wf-rotated"})

    token, _, _ = drive(creds.token_flow(T0), answer)
    assert token.access_token == "ya29.wf" and creds.refresh_token == "wf-rotated"
    assert "wf-rotated" not in repr(creds) and "wf-secret" not in repr(creds)


def test_workforce_user_revoke() -> None:
    creds = external_account_authorized_user.Credentials.from_info(workforce_user())
    _, requests, _ = drive(creds.revoke_flow(), lambda r: reply(200, {}))
    assert requests[0].url == "https://sts.googleapis.com/v1/revoke"
    assert form(requests[0]) == {"token": "wf-refresh-secret"}


def test_workforce_user_invalid_grant_says_sign_in_again() -> None:
    creds = external_account_authorized_user.Credentials.from_info(workforce_user())
    with pytest.raises(RefreshError, match="--login-config"):
        drive(creds.token_flow(T0), lambda r: reply(400, {"error": "invalid_grant"}))


@pytest.mark.parametrize(("drop", "field"), [("refresh_token", "refresh_token"),
                                             ("token_url", "token_url"),
                                             ("client_secret", "client_secret")])
def test_workforce_user_missing_fields(drop: str, field: str) -> None:
    info = workforce_user()
    del info[drop]
    with pytest.raises(MalformedCredentialsError) as err:
        gcauth.load_credentials_from_dict(info, source="/wf.json")
    assert err.value.field == field


def test_workforce_user_untrusted_token_url() -> None:
    with pytest.raises(UnsafeEndpointError):
        gcauth.load_credentials_from_dict(workforce_user(token_url="https://evil.test/t"))


# -- async -----------------------------------------------------------------------------------
class AsyncFake:
    """An AsyncRequest answering from a sync fake server."""

    def __init__(self) -> None:
        self.seen: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(request)
        return sts_ok(request)


def test_async_callers_share_one_exchange_and_one_impersonation(tmp_path: Path) -> None:
    import asyncio

    supplier = Supplier()
    creds = identity_pool.Credentials(
        AUDIENCE, JWT_TYPE, subject_token_supplier=supplier,
        service_account_impersonation_url=IMPERSONATE)
    fake = AsyncFake()

    async def main() -> list[str]:
        tokens = await asyncio.gather(*(creds.aget_token(fake) for _ in range(20)))
        return [t.access_token for t in tokens]

    assert set(asyncio.run(main())) == {"ya29.impersonated"}
    assert [r.url.split("/")[2] for r in fake.seen] == ["sts.googleapis.com",
                                                         "iamcredentials.googleapis.com"]
    assert len(supplier.contexts) == 1  # the supplier ran once, in a worker thread


def test_threads_share_one_exchange(tmp_path: Path) -> None:
    import threading

    from tests.kit.creds import TokenSender

    gate = threading.Event()
    sender = TokenSender(gate=gate)
    creds = identity_pool.Credentials.from_info(config(tmp_path))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        creds.get_token(sender).access_token)) for _ in range(16)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(results) == 16 and len(set(results)) == 1
    assert sender.count == 1
