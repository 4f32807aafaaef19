"""``gcauth auth application-default login --impersonate-service-account`` and
``gcauth auth print-identity-token`` as subprocesses against the emulator."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

from gcauth import id_token
from gcauth.emulator import Emulator
from tests.integration.test_login_cli import assert_no_secret
from tests.kit.cli import Cli, adc_path, consent, run_cli

AUD = "https://my-service.run.app"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload)
                                                                                % 4)))
    return data


def keyless(emu: Emulator, name: str, *members: str) -> str:
    email = emu.create_service_account(name=name, with_key=False)["client_email"]
    for member in members:
        emu.grant_token_creator(member, email)
    return email


def test_login_with_impersonation_writes_gclouds_file(emulator: Emulator, client_file: Path,
                                                      env: dict[str, str]) -> None:
    delegate = keyless(emulator, "cli-delegate", "user:alice@example.com")
    target = keyless(emulator, "cli-target", "serviceAccount:" + delegate)
    cli = Cli(["auth", "application-default", "login", "--no-browser",
               f"--client-id-file={client_file}", "--quota-project=billing-9",
               f"--impersonate-service-account={delegate},{target}"], env)
    cli.send(consent(cli.url_line()) + "\n")
    code, out, err = cli.finish()
    assert code == 0, err
    assert f"They impersonate {target} (through {delegate})" in out
    path = adc_path(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["type"] == "impersonated_service_account"
    assert data["delegates"] == [delegate]
    assert data["service_account_impersonation_url"] == (
        f"{emulator.url}/v1/projects/-/serviceAccounts/{target}:generateAccessToken")
    assert data["quota_project_id"] == "billing-9"
    source = data["source_credentials"]
    assert source["type"] == "authorized_user" and "quota_project_id" not in source
    assert {"client_id", "client_secret", "refresh_token"} <= set(source)
    code, out, err = run_cli(["explain"], env)
    assert code == 0, err
    assert f"alice@example.com -> {delegate} -> {target}" in out
    code, token, err = run_cli(["auth", "application-default", "print-access-token"], env)
    assert code == 0, err
    record = emulator.access_token_info(token.strip())
    assert record is not None and record.email == target and record.source == "impersonated"
    code, out, err = run_cli(["auth", "print-identity-token", f"--audiences={AUD}"], env)
    assert code == 0, err
    assert claims_of(out.strip())["aud"] == AUD and "email" not in claims_of(out.strip())
    code, out, err = run_cli(["auth", "print-identity-token", f"--audiences={AUD}",
                              "--include-email"], env)
    assert code == 0, err
    assert claims_of(out.strip())["email"] == target
    assert_no_secret(emulator, err)
    # set-quota-project and revoke work on the impersonation file too (its user login)
    code, out, err = run_cli(["auth", "application-default", "set-quota-project", "other-1"],
                             env)
    assert code == 0, err
    data = json.loads(path.read_text())
    assert data["quota_project_id"] == "other-1"
    assert data["type"] == "impersonated_service_account"
    refresh = source["refresh_token"]

    def revoked() -> bool:
        return any(r.token == refresh and r.revoked for r in emulator.issued_refresh_tokens())

    assert not revoked()
    code, out, err = run_cli(["auth", "application-default", "revoke"], env)
    assert code == 0, err
    assert "revoked" in out and not path.exists() and revoked()


def test_a_bad_account_list_is_refused_before_signing_in(client_file: Path,
                                                         env: dict[str, str]) -> None:
    code, out, err = run_cli(["auth", "application-default", "login", "--no-browser",
                              f"--client-id-file={client_file}",
                              "--impersonate-service-account=app@p.iam,not an email"], env)
    assert code == 1 and out == ""
    assert "--impersonate-service-account takes service-account emails" in err
    assert not adc_path(env).exists()


def test_print_identity_token_prints_only_the_token(emulator: Emulator, tmp_path: Path,
                                                    env: dict[str, str]) -> None:
    key = emulator.create_service_account(name="cli-idt")
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)
    code, out, err = run_cli(["auth", "print-identity-token", f"--audiences={AUD}"], env)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1 and out.endswith("\n")
    claims = id_token.verify_oauth2_token(lines[0], None, AUD, certs_url=emulator.certs_uri)
    assert claims["email"] == key["client_email"]
    code, out, err = run_cli(["auth", "print-identity-token"], env)
    assert code == 1 and out == "" and "--audiences" in err


def test_print_identity_token_impersonating(emulator: Emulator, tmp_path: Path,
                                            env: dict[str, str]) -> None:
    key = emulator.create_service_account(name="cli-idt-source")
    target = keyless(emulator, "cli-idt-target", "serviceAccount:" + key["client_email"])
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)
    args = ["auth", "print-identity-token", f"--audiences={AUD}",
            f"--impersonate-service-account={target}"]
    code, out, err = run_cli(args, env)
    assert code == 0, err
    assert "email" not in claims_of(out.strip()) and claims_of(out.strip())["aud"] == AUD
    code, out, err = run_cli([*args, "--include-email"], env)
    assert code == 0, err
    assert claims_of(out.strip())["email"] == target
    denied = keyless(emulator, "cli-idt-denied")
    code, out, err = run_cli(["auth", "print-identity-token", f"--audiences={AUD}",
                              f"--impersonate-service-account={denied}"], env)
    assert code == 1 and out == ""
    assert f"serviceAccount:{key['client_email']} may not get an ID token for {denied}" in err
    code, out, err = run_cli(["auth", "print-identity-token",
                              f"--impersonate-service-account={target}"], env)
    assert code == 1 and "needs --audiences" in err


def test_print_identity_token_for_a_user(emulator: Emulator, tmp_path: Path,
                                         env: dict[str, str]) -> None:
    info = emulator.create_authorized_user()
    path = tmp_path / "user.json"
    path.write_text(json.dumps(info))
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)
    code, out, err = run_cli(["auth", "print-identity-token"], env)
    assert code == 0, err
    assert claims_of(out.strip())["aud"] == info["client_id"]
    code, out, err = run_cli(["auth", "print-identity-token", f"--audiences={AUD}"], env)
    assert code == 1 and out == ""
    assert "cannot mint an ID token for an arbitrary audience" in err
    assert info["refresh_token"] not in err
