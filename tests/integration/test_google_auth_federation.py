# mypy: disable-error-code="no-untyped-call"
"""The real google-auth's workload/workforce identity federation credentials against the
emulator (is the emulator a faithful STS, OIDC provider, IMDS and Resource Manager?).

Every credential is built with ``from_info`` from a configuration the emulator wrote, so
every URL google-auth uses is the emulator's: ``token_url``, the credential source (file,
URL, executable, IMDS) and ``service_account_impersonation_url``. google-auth (2.62.2, the
pinned version, read in its source) does not validate those URLs, so loopback ones are
used as they are. Two of its URLs are not in the file and are redirected here:
``google.auth.external_account._CLOUD_RESOURCE_MANAGER`` (``get_project_id``) is pointed
at the emulator's Resource Manager, and the regional-access-boundary lookups go to a
closed loopback port (``block_google_auth_lookups``). ``google.auth.default()`` is never
called. A guard refuses any name lookup but loopback's, so a mistake fails here instead of
reaching a resolver.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.auth")

import google.auth.transport.requests as google_requests  # noqa: E402
from google.auth import aws as google_aws  # noqa: E402
from google.auth import exceptions as google_exceptions  # noqa: E402
from google.auth import external_account as google_external_account  # noqa: E402
from google.auth import external_account_authorized_user as google_eau  # noqa: E402
from google.auth import identity_pool as google_identity_pool  # noqa: E402
from google.auth import pluggable as google_pluggable  # noqa: E402

from gcauth.emulator import Emulator  # noqa: E402

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
_LOOPBACK_NAMES = {"127.0.0.1", "::1", "localhost"}
_AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
            "AWS_DEFAULT_REGION")


@pytest.fixture
def emu(fresh_emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
        block_google_auth_lookups: None) -> Iterator[Emulator]:
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK_NAMES:
            raise AssertionError(f"a test tried to look up {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    monkeypatch.setattr(google_external_account, "_CLOUD_RESOURCE_MANAGER",
                        fresh_emulator.url + "/v1/projects/")
    for name in _AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    yield fresh_emulator


def request() -> google_requests.Request:
    return google_requests.Request()


def api_ok(emu: Emulator, credentials: Any) -> None:
    """The credential's token is live in the emulator and opens the sample API."""
    session = google_requests.AuthorizedSession(credentials)
    try:
        r = session.get(f"{emu.api_url}/sql/v1beta4/projects/emu-project/instances",
                        timeout=10)
    finally:
        session.close()
    assert r.status_code == 200, r.text
    assert emu.is_access_token_valid(credentials.token)


def keyless_account(emu: Emulator) -> str:
    return emu.create_service_account(name="wif-runner", with_key=False)["client_email"]


@pytest.mark.parametrize("impersonate", [False, True], ids=["direct", "impersonated"])
@pytest.mark.parametrize("source", ["file", "file-json", "url", "url-text"])
def test_identity_pool_credentials(emu: Emulator, source: str, impersonate: bool) -> None:
    email = keyless_account(emu) if impersonate else None
    config = emu.create_workload_identity_pool(credential_source=source, service_account=email)
    creds = google_identity_pool.Credentials.from_info(config, scopes=[CLOUD])
    creds.refresh(request())
    rec = emu.access_token_info(creds.token)
    assert rec is not None
    if impersonate:
        assert rec.source == "impersonated" and rec.email == email
        assert emu.counts["generateAccessToken"] == 1
    else:
        assert rec.source == "federated"
        assert rec.principal is not None and rec.principal.endswith(
            "/subject/repo:org/app:ref:refs/heads/main")
    assert emu.counts["sts"] == emu.counts["sts_issued"] == 1
    assert emu.counts["oidc_token"] == (1 if source.startswith("url") else 0)
    api_ok(emu, creds)


def test_identity_pool_from_file_and_project_id(emu: Emulator, tmp_path: Path) -> None:
    config = emu.create_workload_identity_pool(subject="system:serviceaccount:ns:app")
    path = tmp_path / "wif.json"
    path.write_text(json.dumps(config))
    creds = google_identity_pool.Credentials.from_file(str(path), scopes=[CLOUD])
    assert creds.get_project_id(request()) == "emu-project"  # Resource Manager
    assert emu.counts["resourcemanager"] == 1
    rec = emu.access_token_info(creds.token)
    assert rec is not None and rec.sub == "system:serviceaccount:ns:app"


def test_workforce_pool_sends_the_user_project(emu: Emulator) -> None:
    config = emu.create_workload_identity_pool(workforce=True,
                                               attribute_condition="assertion.sub == 'alice'",
                                               subject="alice")
    creds = google_identity_pool.Credentials.from_info(config, scopes=[CLOUD])
    assert creds.is_workforce_pool
    creds.refresh(request())
    rec = emu.access_token_info(creds.token)
    assert rec is not None and rec.principal is not None
    assert "/workforcePools/" in rec.principal and rec.principal.endswith("/subject/alice")
    emu.write_subject_token(config, subject="mallory")
    refused = google_identity_pool.Credentials.from_info(config, scopes=[CLOUD])
    with pytest.raises(google_exceptions.OAuthError, match="attribute condition"):
        refused.refresh(request())


def test_rejections_surface_as_google_auth_errors(emu: Emulator) -> None:
    config = emu.create_workload_identity_pool()
    emu.write_subject_token(config, emu.issue_oidc_token(audience="https://elsewhere"))
    creds = google_identity_pool.Credentials.from_info(config, scopes=[CLOUD])
    with pytest.raises(google_exceptions.OAuthError, match="invalid_grant"):
        creds.refresh(request())
    assert emu.counts["sts"] == 1 and emu.counts["sts_issued"] == 0


@pytest.mark.parametrize("impersonate", [False, True], ids=["direct", "impersonated"])
def test_aws_credentials_through_imdsv2(emu: Emulator, impersonate: bool) -> None:
    email = keyless_account(emu) if impersonate else None
    config = emu.create_workload_identity_pool("aws", service_account=email)
    creds = google_aws.Credentials.from_info(config, scopes=[CLOUD])
    creds.refresh(request())
    rec = emu.access_token_info(creds.token)
    assert rec is not None
    assert rec.email == email if impersonate else rec.sub is not None and rec.sub.startswith(
        "arn:aws:sts::111122223333:assumed-role/emu-instance-role/")
    # session token, region, role name, role credentials: IMDSv2 all the way
    assert emu.counts["aws_imds"] >= 4 and emu.counts["sts_issued"] == 1
    api_ok(emu, creds)


@pytest.mark.parametrize("impersonate", [False, True], ids=["direct", "impersonated"])
def test_aws_credentials_from_the_environment(emu: Emulator, impersonate: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    email = keyless_account(emu) if impersonate else None
    config = emu.create_workload_identity_pool("aws", service_account=email)
    for name, value in emu.create_aws_credentials(role="ci-deployer").items():
        monkeypatch.setenv(name, value)
    creds = google_aws.Credentials.from_info(config, scopes=[CLOUD])
    creds.refresh(request())
    assert emu.counts["aws_imds"] == 0  # everything came from the environment
    rec = emu.access_token_info(creds.token)
    assert rec is not None
    if not impersonate:
        assert rec.sub == "arn:aws:sts::111122223333:assumed-role/ci-deployer/emu-session"
    api_ok(emu, creds)


def test_aws_credentials_signed_for_another_region_are_refused(
        emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    config = emu.create_workload_identity_pool("aws")  # us-east-1
    for name, value in emu.create_aws_credentials(region="eu-west-1").items():
        monkeypatch.setenv(name, value)
    creds = google_aws.Credentials.from_info(config, scopes=[CLOUD])
    with pytest.raises(google_exceptions.OAuthError, match="region"):
        creds.refresh(request())


@pytest.mark.parametrize("impersonate", [False, True], ids=["direct", "impersonated"])
def test_pluggable_executable_credentials(emu: Emulator, impersonate: bool, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    email = keyless_account(emu) if impersonate else None
    base = emu.create_workload_identity_pool(service_account=email)
    token_file = tmp_path / "token.jwt"
    token_file.write_text(emu.issue_oidc_token("repo:org/app:environment:prod"))
    script = tmp_path / "supplier.py"
    script.write_text(
        "import json, sys, time\n"
        "token = open(sys.argv[1]).read()\n"
        "print(json.dumps({'version': 1, 'success': True,\n"
        "                  'token_type': 'urn:ietf:params:oauth:token-type:id_token',\n"
        "                  'id_token': token, 'expiration_time': int(time.time()) + 600}))\n")
    config = {**base, "credential_source": {"executable": {
        "command": f"{sys.executable} {script} {token_file}", "timeout_millis": 30000}}}
    creds = google_pluggable.Credentials.from_info(config, scopes=[CLOUD])
    creds.refresh(request())
    rec = emu.access_token_info(creds.token)
    assert rec is not None
    assert rec.email == email if impersonate else rec.sub == "repo:org/app:environment:prod"
    api_ok(emu, creds)


def test_external_account_authorized_user(emu: Emulator) -> None:
    info = emu.create_external_account_authorized_user(account="erin@example.com",
                                                       quota_project_id="emu-project")
    creds = google_eau.Credentials.from_info(info)
    creds.refresh(request())
    assert emu.counts["sts_oauthtoken"] == 1
    rec = emu.access_token_info(creds.token)
    assert rec is not None and rec.sub == "erin@example.com" and rec.source == "federated"
    assert creds.expiry is not None
    api_ok(emu, creds)
    assert emu.quota_projects_seen[-1] == "emu-project"
    emu.revoke(info["refresh_token"])
    stale = google_eau.Credentials.from_info(info)
    with pytest.raises(google_exceptions.OAuthError, match="invalid_grant"):
        stale.refresh(request())
