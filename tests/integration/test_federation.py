"""Workload and workforce identity federation end to end: configuration files loaded through
gcauth.default() against the emulator's STS, OIDC issuer, IMDSv2 stand-in and IAM, sync and
async, herds, and what the STS refuses."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import gcauth
from gcauth import aws, external_account_authorized_user, identity_pool, pluggable
from gcauth.emulator import Emulator
from gcauth.exceptions import DefaultCredentialsError, RefreshError, UnsafeEndpointError
from gcauth.transport import aiohttp as gaiohttp
from gcauth.transport import httpx as ghttpx
from gcauth.transport.requests import AuthorizedSession

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def adc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config: dict[str, Any],
        name: str = "wif.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(config))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return path


def target(emu: Emulator, name: str) -> str:
    return str(emu.create_service_account(project_id="wif", name=name,
                                          with_key=False)["client_email"])


def api_works(emu: Emulator, credentials: gcauth.credentials.Credentials) -> None:
    session = AuthorizedSession(credentials)
    reply = session.get(f"{emu.api_url}/sql/v1beta4/projects/wif/instances")
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("source", ["file", "file-json", "url", "url-text"])
def test_oidc_sources_through_default(emulator: Emulator, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    config = emulator.create_workload_identity_pool("oidc", credential_source=source)
    adc(monkeypatch, tmp_path, config)
    emulator.reset_counts()
    credentials, project = gcauth.default(scopes=SCOPES)
    assert isinstance(credentials, identity_pool.Credentials)
    assert project is None and emulator.counts["sts"] == 0  # nothing fetched by default()
    token = credentials.get_token()
    info = emulator.access_token_info(token.access_token)
    assert info is not None and info.source == "federated"
    assert info.principal is not None and info.principal.startswith("principal://")
    assert emulator.counts["sts"] == 1
    api_works(emulator, credentials)


def test_impersonation_herd_makes_one_exchange_and_one_call(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    email = target(emulator, "wif-herd")
    adc(monkeypatch, tmp_path, emulator.create_workload_identity_pool(
        "oidc", service_account=email))
    credentials, _ = gcauth.default(scopes=SCOPES)
    assert credentials.service_account_email == email  # type: ignore[attr-defined]
    emulator.reset_counts()
    tokens: list[str] = []
    barrier = threading.Barrier(32)

    def caller() -> None:
        barrier.wait()
        tokens.append(credentials.get_token().access_token)

    threads = [threading.Thread(target=caller) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(tokens) == 32 and len(set(tokens)) == 1
    assert emulator.counts["sts"] == 1 and emulator.counts["generateAccessToken"] == 1
    info = emulator.access_token_info(tokens[0])
    assert info is not None and info.email == email
    api_works(emulator, credentials)


@pytest.mark.parametrize("library", ["httpx", "aiohttp"])
def test_async_herd(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    library: str) -> None:
    email = target(emulator, f"wif-async-{library}")
    config = emulator.create_workload_identity_pool("oidc", credential_source="url",
                                                    service_account=email)
    credentials, _ = gcauth.load_credentials_from_dict(config, scopes=SCOPES)
    emulator.reset_counts()

    async def main() -> set[str]:
        request = ghttpx.AsyncRequest() if library == "httpx" else gaiohttp.AsyncRequest()
        tokens = await asyncio.gather(*(credentials.aget_token(request) for _ in range(32)))
        return {t.access_token for t in tokens}

    assert len(asyncio.run(main())) == 1
    assert emulator.counts["sts"] == 1 and emulator.counts["generateAccessToken"] == 1
    assert emulator.counts["oidc_token"] == 1


def test_workforce_pool_with_user_project(emulator: Emulator) -> None:
    config = emulator.create_workload_identity_pool(
        "oidc", workforce_pool_user_project="wf-billing")
    assert "workforcePools" in config["audience"]
    credentials, _ = gcauth.load_credentials_from_dict(config)
    emulator.reset_counts()
    assert emulator.is_access_token_valid(credentials.get_token().access_token)
    assert emulator.counts["sts"] == 1


def test_aws_imdsv2(emulator: Emulator, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    email = target(emulator, "wif-aws")
    adc(monkeypatch, tmp_path, emulator.create_workload_identity_pool(
        "aws", service_account=email))
    credentials, _ = gcauth.default(scopes=SCOPES)
    assert isinstance(credentials, aws.Credentials)
    emulator.reset_counts()
    token = credentials.get_token()
    assert emulator.counts["sts"] == 1 and emulator.counts["aws_imds"] >= 3
    info = emulator.access_token_info(token.access_token)
    assert info is not None and info.email == email


def test_aws_environment_credentials(emulator: Emulator, monkeypatch: pytest.MonkeyPatch
                                     ) -> None:
    config = emulator.create_workload_identity_pool("aws")
    for name, value in emulator.create_aws_credentials().items():
        monkeypatch.setenv(name, value)
    credentials, _ = gcauth.load_credentials_from_dict(config)
    emulator.reset_counts()
    assert emulator.is_access_token_valid(credentials.get_token().access_token)
    assert emulator.counts["aws_imds"] == 0  # the environment was enough


def test_aws_signature_the_sts_rejects(emulator: Emulator, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    config = emulator.create_workload_identity_pool("aws")
    env = emulator.create_aws_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", env["AWS_ACCESS_KEY_ID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-the-emulator-issued")
    monkeypatch.setenv("AWS_SESSION_TOKEN", env["AWS_SESSION_TOKEN"])
    monkeypatch.setenv("AWS_REGION", env["AWS_REGION"])
    credentials, _ = gcauth.load_credentials_from_dict(config, source="/ci/aws.json")
    with pytest.raises(RefreshError) as err:
        credentials.get_token()
    assert err.value.status == 400 and "signature" in str(err.value).lower()
    assert "not-the-secret" not in str(err.value)


def test_sts_refusals_say_why(emulator: Emulator, tmp_path: Path) -> None:
    config = emulator.create_workload_identity_pool(
        "oidc", attribute_condition="assertion.sub.startsWith('repo:my-org/')")
    token_file = Path(config["credential_source"]["file"])
    credentials, _ = gcauth.load_credentials_from_dict(config)
    token_file.write_text(emulator.issue_oidc_token(subject="repo:someone-else/app",
                                                    audience=config["audience"]))
    with pytest.raises(RefreshError) as err:
        credentials.get_token()
    assert err.value.error and "condition" in str(err.value).lower()
    token_file.write_text(emulator.issue_oidc_token(subject="repo:my-org/app",
                                                    audience="//wrong/audience"))
    with pytest.raises(RefreshError):
        credentials.refresh()
    token_file.write_text(emulator.issue_oidc_token(subject="repo:my-org/app",
                                                    audience=config["audience"]))
    credentials.refresh()
    assert credentials.valid


def test_project_id_only_when_asked(emulator: Emulator) -> None:
    config = emulator.create_workload_identity_pool("oidc", project_number="987654321",
                                                    project_id="wif-project")
    credentials, project = gcauth.load_credentials_from_dict(config)
    assert project is None
    emulator.reset_counts()
    assert credentials.get_project_id() == "wif-project"  # type: ignore[attr-defined]
    assert emulator.counts["resourcemanager"] == 1


def test_workforce_user_refresh_and_revoke(emulator: Emulator, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    adc(monkeypatch, tmp_path, emulator.create_external_account_authorized_user())
    credentials, _ = gcauth.default()
    assert isinstance(credentials, external_account_authorized_user.Credentials)
    token = credentials.get_token()
    assert emulator.is_access_token_valid(token.access_token)
    api_works(emulator, credentials)
    credentials.revoke()
    with pytest.raises(RefreshError):
        credentials.refresh()


def test_untrusted_token_url_refused_before_any_connection(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = emulator.create_workload_identity_pool("oidc")
    config["token_url"] = "https://sts.example.com/v1/token"
    path = adc(monkeypatch, tmp_path, config)
    with pytest.raises(DefaultCredentialsError) as err:
        gcauth.default()
    assert str(path) in str(err.value) and err.value.field == "token_url"  # type: ignore
    with pytest.raises(UnsafeEndpointError):
        gcauth.load_credentials_from_dict(config)


def test_allowed_types_refuse_an_executable_before_it_runs(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "exe.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    config = emulator.create_workload_identity_pool("oidc", credential_source={
        "executable": {"command": f"{sys.executable} {script}"}})
    adc(monkeypatch, tmp_path, config)
    monkeypatch.setenv(pluggable.ALLOW_EXECUTABLES, "1")
    with pytest.raises(DefaultCredentialsError, match="external_account:executable"):
        credentials, _ = gcauth.default(allowed_types=["external_account:file"])
    assert not marker.exists()


def write_executable(tmp_path: Path, body: str) -> str:
    script = tmp_path / "exe.py"
    script.write_text(body)
    return f"{sys.executable} {script}"


def test_executable_source(emulator: Emulator, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = emulator.create_workload_identity_pool("oidc", credential_source="file")
    token = emulator.issue_oidc_token(audience=config["audience"])
    seen = tmp_path / "env.json"
    command = write_executable(tmp_path, (
        "import json, os, sys, time\n"
        f"json.dump(dict(os.environ), open({str(seen)!r}, 'w'))\n"
        "print(json.dumps({'version': 1, 'success': True, 'token_type': "
        "'urn:ietf:params:oauth:token-type:jwt', "
        f"'id_token': {token!r}, 'expiration_time': int(time.time()) + 3600}}))\n"))
    config["credential_source"] = {"executable": {"command": command, "timeout_millis": 10000}}
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "quota-p")
    path = adc(monkeypatch, tmp_path, config)
    credentials, _ = gcauth.default()
    assert isinstance(credentials, pluggable.Credentials)
    with pytest.raises(RefreshError, match="GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"):
        credentials.get_token()
    assert not seen.exists()
    monkeypatch.setenv(pluggable.ALLOW_EXECUTABLES, "1")
    assert emulator.is_access_token_valid(credentials.get_token().access_token)
    env = json.loads(seen.read_text())
    assert env["GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE"] == config["audience"]
    assert env["GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE"] == "0"
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env
    assert os.environ["GOOGLE_APPLICATION_CREDENTIALS"] == str(path)


def test_executable_async(emulator: Emulator, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = emulator.create_workload_identity_pool("oidc")
    token = emulator.issue_oidc_token(audience=config["audience"])
    config["credential_source"] = {"executable": {"command": write_executable(tmp_path, (
        "import json, time\n"
        "print(json.dumps({'version': 1, 'success': True, 'token_type': "
        "'urn:ietf:params:oauth:token-type:jwt', "
        f"'id_token': {token!r}, 'expiration_time': int(time.time()) + 3600}}))\n"))}}
    monkeypatch.setenv(pluggable.ALLOW_EXECUTABLES, "1")
    credentials, _ = gcauth.load_credentials_from_dict(config)
    emulator.reset_counts()

    async def main() -> set[str]:
        request = ghttpx.AsyncRequest()
        return {t.access_token for t in await asyncio.gather(
            *(credentials.aget_token(request) for _ in range(8)))}

    assert len(asyncio.run(main())) == 1 and emulator.counts["sts"] == 1


@pytest.mark.parametrize(("body", "says"), [
    ("import sys; sys.exit(3)", "exit"),
    ("print('not json')", "JSON"),
    ("import json; print(json.dumps({'version': 1, 'success': False, 'code': '401', "
     "'message': 'Caller not authorized.'}))", "Caller not authorized."),
    ("import json; print(json.dumps({'version': 1, 'success': True, 'token_type': "
     "'urn:ietf:params:oauth:token-type:jwt', 'id_token': 'x.y.z', 'expiration_time': 1}))",
     "expired"),
    ("import time; time.sleep(60)", "timed out"),
])
def test_executable_failures(emulator: Emulator, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, body: str, says: str) -> None:
    config = emulator.create_workload_identity_pool("oidc")
    config["credential_source"] = {"executable": {
        "command": write_executable(tmp_path, body + "\n"), "timeout_millis": 5000}}
    monkeypatch.setenv(pluggable.ALLOW_EXECUTABLES, "1")
    credentials, _ = gcauth.load_credentials_from_dict(config, source="/etc/exe-wif.json")
    with pytest.raises(RefreshError) as err:
        credentials.get_token()
    assert says.lower() in str(err.value).lower()
    assert "/etc/exe-wif.json" in str(err.value)


def test_google_auth_bridge(emulator: Emulator) -> None:
    pytest.importorskip("google.auth")
    from gcauth.compat.google_auth import to_google_auth

    config = emulator.create_workload_identity_pool(
        "oidc", service_account=target(emulator, "wif-bridge"))
    credentials, _ = gcauth.load_credentials_from_dict(config)
    bridged = to_google_auth(credentials)
    import google.auth.transport.requests

    bridged.refresh(google.auth.transport.requests.Request())
    assert bridged.token is not None and emulator.is_access_token_valid(bridged.token)


def test_demo_has_a_federation_step() -> None:
    import argparse
    import io

    from gcauth.cli import _demo

    out = io.StringIO()
    assert _demo.run(argparse.Namespace(), out) == 0
    text = out.getvalue()
    step = text[text.index("4. Workload identity federation"):text.index("5. No credentials")]
    assert "external_account (file source), impersonating deployer@" in step
    assert "HTTP 200" in step and "1 exchange, 1 impersonation call" in step


def test_explain_shows_pool_source_and_impersonation(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gcauth.cli._explain import build_report, render

    email = target(emulator, "wif-explain")
    config = emulator.create_workload_identity_pool("oidc", service_account=email)
    adc(monkeypatch, tmp_path, config)
    report = build_report(None, True)
    assert report["ok"] and report["type"] == "external_account"
    assert report["federation"]["audience"] == config["audience"]
    assert report["federation"]["impersonated_service_account"] == email
    text = render(report)
    assert "workload or workforce identity federation" in text
    assert f"a file ({config['credential_source']['file']})" in text
    assert email in text and "the token itself is never shown" in text


def test_executable_output_file_is_a_cache(emulator: Emulator, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = emulator.create_workload_identity_pool("oidc")
    token = emulator.issue_oidc_token(audience=config["audience"])
    runs, output = tmp_path / "runs", tmp_path / "cache.json"
    command = write_executable(tmp_path, (
        "import json, os, time\n"
        f"open({str(runs)!r}, 'a').write('x')\n"
        "response = {'version': 1, 'success': True, 'token_type': "
        "'urn:ietf:params:oauth:token-type:jwt', "
        f"'id_token': {token!r}, 'expiration_time': int(time.time()) + 3600}}\n"
        "json.dump(response, open(os.environ['GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE'], 'w'))\n"
        "if os.environ.get('PRINT') == '1':\n"
        "    print(json.dumps(response))\n"))
    config["credential_source"] = {"executable": {"command": command,
                                                  "output_file": str(output)}}
    monkeypatch.setenv(pluggable.ALLOW_EXECUTABLES, "1")
    credentials, _ = gcauth.load_credentials_from_dict(config)
    credentials.refresh()  # prints nothing: the response is read from the output file
    assert runs.read_text() == "x" and output.exists()
    credentials.refresh()
    credentials.refresh()
    assert runs.read_text() == "x"  # the saved, unexpired response was used
    output.write_text(json.dumps({"version": 1, "success": True, "token_type":
                                  "urn:ietf:params:oauth:token-type:jwt", "id_token": token,
                                  "expiration_time": 1}))
    monkeypatch.setenv("PRINT", "1")
    credentials.refresh()  # expired in the file: run again
    assert runs.read_text() == "xx" and credentials.valid


def test_cli_revokes_a_workforce_users_adc_file(emulator: Emulator, tmp_path: Path) -> None:
    from tests.kit.cli import cli_env, run_cli

    env = cli_env(tmp_path)
    info = emulator.create_external_account_authorized_user()
    adc_file = Path(env["CLOUDSDK_CONFIG"]) / "application_default_credentials.json"
    adc_file.parent.mkdir(parents=True, exist_ok=True)
    adc_file.write_text(json.dumps(info))
    code, out, err = run_cli(["auth", "application-default", "print-access-token"], env)
    assert code == 0, err
    assert emulator.is_access_token_valid(out.strip())
    emulator.reset_counts()
    code, out, err = run_cli(["auth", "application-default", "revoke"], env)
    assert code == 0, err
    assert "Workforce credentials revoked" in out and not adc_file.exists()
    assert emulator.counts["sts_revoke"] == 1
    assert info["refresh_token"] not in out + err
    workforce = external_account_authorized_user.Credentials.from_info(info)
    with pytest.raises(RefreshError):
        workforce.refresh()


def test_id_tokens_through_the_impersonated_account(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gcauth import id_token

    email = target(emulator, "wif-idtoken")
    adc(monkeypatch, tmp_path, emulator.create_workload_identity_pool(
        "oidc", service_account=email))
    audience = "https://service-xyz.a.run.app"
    value = id_token.fetch_id_token(None, audience)
    claims = id_token.verify_token(value, None, audience=audience,
                                   certs_url=emulator.certs_uri)
    assert claims["email"] == email and claims["aud"] == audience
    credentials, _ = gcauth.default()
    emulator.reset_counts()
    signature = credentials.impersonated_credentials.sign_bytes(b"payload")  # type: ignore
    assert isinstance(signature, bytes) and len(signature) == 256
    assert emulator.counts["signBlob"] == 1
    adc(monkeypatch, tmp_path, emulator.create_workload_identity_pool("oidc"), "plain.json")
    with pytest.raises(DefaultCredentialsError, match="service_account_impersonation_url"):
        id_token.fetch_id_token(None, audience)
