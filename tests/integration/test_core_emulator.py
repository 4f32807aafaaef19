"""Each credential type and each ADC branch, end to end against the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

import gcauth
from gcauth import authorized_user, compute_engine, service_account
from gcauth._files import write_private_json
from gcauth.exceptions import RefreshError
from gcauth.oauth2 import refresh_grant
from gcauth.transport.requests import AuthorizedSession
from gcauth.transport.urllib3 import AuthorizedHttp, Request

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
SCOPES = [CLOUD]


def api(emu: Any, project: str = "p") -> str:
    return f"{emu.api_url}/sql/v1beta4/projects/{project}/instances"


def test_service_account_token_is_accepted_by_the_api(emulator: Any) -> None:
    info = emulator.create_service_account(project_id="sa-proj")
    creds = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    with AuthorizedHttp(creds) as http:
        reply = http.request("GET", api(emulator))
    assert reply.status == 200, reply.data
    assert json.loads(reply.data)["kind"] == "sql#instancesList"
    assert creds.valid and creds.token is not None


def test_service_account_file_via_google_samples(emulator: Any, tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    write_private_json(path, emulator.create_service_account())
    creds = service_account.Credentials.from_service_account_file(str(path), scopes=SCOPES)
    creds.refresh(Request(urllib3.PoolManager()))
    assert emulator.is_access_token_valid(creds.token)


def test_domain_wide_delegation_needs_the_grant(emulator: Any) -> None:
    plain = service_account.Credentials.from_service_account_info(
        emulator.create_service_account(), scopes=SCOPES).with_subject("user@example.com")
    with pytest.raises(RefreshError) as info:
        plain.refresh()
    assert info.value.error == "unauthorized_client"
    assert emulator.token_uri in str(info.value) and "domain-wide delegation" in str(info.value)
    dwd = service_account.Credentials.from_service_account_info(
        emulator.create_service_account(domain_wide_delegation=True), scopes=SCOPES,
        subject="user@example.com")
    dwd.refresh()
    assert emulator.is_access_token_valid(dwd.token)


def test_self_signed_jwt_is_accepted_without_a_token_request(fresh_emulator: Any) -> None:
    emu = fresh_emulator
    creds = service_account.Credentials.from_service_account_info(
        emu.create_service_account(), audience="https://sqladmin.googleapis.com/")
    with AuthorizedSession(creds) as session:
        reply = session.get(api(emu))
    assert reply.status_code == 200, reply.text
    assert emu.counts["token"] == 0


def test_authorized_user_quota_project_reaches_the_api(emulator: Any) -> None:
    info = emulator.create_authorized_user(quota_project_id="billing-x")
    creds = authorized_user.Credentials.from_authorized_user_info(info)
    with AuthorizedSession(creds) as session:
        reply = session.get(api(emulator))
    assert reply.status_code == 200
    assert emulator.quota_projects_seen[-1] == "billing-x"


def test_refresh_grant_like_aip_4113(emulator: Any) -> None:
    info = emulator.create_authorized_user()
    access, refresh, expiry, extra = refresh_grant(
        Request(urllib3.PoolManager()), emulator.token_uri, info["refresh_token"],
        info["client_id"], info["client_secret"], SCOPES)
    assert emulator.is_access_token_valid(access)
    assert refresh == info["refresh_token"] and expiry is not None and "access_token" in extra


def test_revoked_refresh_token_says_log_in_again(fresh_emulator: Any) -> None:
    info = fresh_emulator.create_authorized_user()
    fresh_emulator.revoke(info["refresh_token"])
    creds = authorized_user.Credentials.from_authorized_user_info(info)
    with pytest.raises(RefreshError, match="log in again") as err:
        creds.refresh()
    assert err.value.error == "invalid_grant"
    assert info["refresh_token"] not in str(err.value)


def test_compute_engine_credentials(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    assert compute_engine.is_on_gce()
    creds = compute_engine.Credentials()
    creds.retrieve_info()
    assert creds.service_account_email == emulator.metadata_service_account_email
    with AuthorizedHttp(creds) as http:
        assert http.request("GET", api(emulator)).status == 200
    assert compute_engine.get_project_id() == emulator.metadata_project_id


def test_default_env_branch(emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            ) -> None:
    path = tmp_path / "sa.json"
    write_private_json(path, emulator.create_service_account(project_id="env-proj"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    creds, project = gcauth.default(scopes=SCOPES)
    assert isinstance(creds, service_account.Credentials) and project == "env-proj"
    assert requests.get(api(emulator), headers={"authorization": f"Bearer {_token(creds)}"},
                        timeout=5).status_code == 200


def test_default_well_known_branch(emulator: Any, isolated_env: Path) -> None:
    write_private_json(isolated_env / ".config/gcloud/application_default_credentials.json",
                       emulator.create_authorized_user(quota_project_id="qp-1"))
    creds, _ = gcauth.default(scopes=SCOPES)
    assert isinstance(creds, authorized_user.Credentials)
    with AuthorizedSession(creds) as session:
        assert session.get(api(emulator)).status_code == 200
    assert emulator.quota_projects_seen[-1] == "qp-1"


def test_default_metadata_branch(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    creds, project = gcauth.default(scopes=SCOPES)
    assert isinstance(creds, compute_engine.Credentials)
    assert project == emulator.metadata_project_id
    with AuthorizedHttp(creds) as http:
        assert http.request("GET", api(emulator)).status == 200


def test_api_401_triggers_exactly_one_refresh_and_retry(fresh_emulator: Any) -> None:
    emu = fresh_emulator
    creds = service_account.Credentials.from_service_account_info(
        emu.create_service_account(), scopes=SCOPES)
    with AuthorizedSession(creds) as session:
        assert session.get(api(emu)).status_code == 200
        emu.expire_access_token(creds.token)  # server-side expiry the client cannot see
        reply = session.get(api(emu))
        assert reply.status_code == 200
        assert [r.status_code for r in reply.history] == [401]
    assert emu.counts["token"] == 2


def test_emulator_rejects_wrong_scope(emulator: Any) -> None:
    creds = service_account.Credentials.from_service_account_info(
        emulator.create_service_account(), scopes=["https://www.googleapis.com/auth/userinfo.email"])
    with AuthorizedHttp(creds) as http:
        assert http.request("GET", api(emulator)).status == 403


def _token(creds: Any) -> str:
    return creds.get_token().access_token  # type: ignore[no-any-return]
