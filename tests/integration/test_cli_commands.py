"""gcloud parity for the other commands (issue 13, item 10): ``print-access-token --format
json`` and ``--lifetime``, ``gcauth config set/get/unset project`` in gcloud's own file, and
``explain --format json`` with machine values. The CLI runs as a subprocess."""

from __future__ import annotations

import configparser
import json
import re
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.kit.cli import adc_path, http_get, run_cli

PRINT = ["auth", "application-default", "print-access-token"]
ISO_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


@pytest.fixture
def user_env(emulator: Any, env: dict[str, str]) -> dict[str, str]:
    """An ADC user file (with a quota project) written by the emulator."""
    path = adc_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(emulator.create_authorized_user(quota_project_id="bill-3")))
    return env


def api_status(emu: Any, token: str) -> int:
    import http.client

    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=5)
    try:
        conn.request("GET", "/sql/v1beta4/projects/p/instances",
                     headers={"Authorization": f"Bearer {token}"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_print_access_token_format_json(emulator: Any, user_env: dict[str, str]) -> None:
    code, out, err = run_cli([*PRINT, "--format", "json"], user_env)
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"token", "token_type", "expiry", "scopes"}
    assert data["token_type"] == "Bearer"
    assert ISO_SECONDS.fullmatch(data["expiry"]), data["expiry"]  # no microseconds
    left = datetime.fromisoformat(data["expiry"]) - datetime.now(timezone.utc)
    assert 3000 < left.total_seconds() <= 3600
    assert api_status(emulator, data["token"]) == 200
    code, out, _ = run_cli([*PRINT, "--format=yaml"], user_env)
    assert code == 2 and out == ""


def test_print_access_token_scopes_take_short_names(emulator: Any,
                                                     user_env: dict[str, str]) -> None:
    code, out, err = run_cli([*PRINT, "--scopes=cloud-platform", "--format=json"], user_env)
    assert code == 0, err
    token = json.loads(out)["token"]
    info = emulator.access_token_info(token)
    assert info is not None and info.scopes == ("https://www.googleapis.com/auth/cloud-platform",)


def test_lifetime_is_refused_where_the_server_decides(emulator: Any,
                                                      user_env: dict[str, str]) -> None:
    before = emulator.counts["token"]
    code, out, err = run_cli([*PRINT, "--lifetime=600"], user_env)
    assert code == 2 and out == ""
    first, second = err.splitlines()
    assert first.startswith("gcauth: error: --lifetime does not apply to authorized_user "
                            "credentials (from gcloud ADC file)")
    assert "impersonated service-account tokens" in first and second == "Fix: drop --lifetime."
    assert emulator.counts["token"] == before  # refused before any token request
    code, _, err = run_cli([*PRINT, "--lifetime=0"], user_env)
    assert code == 2 and "between 1 and 43200" in err


def read_properties(env: dict[str, str], name: str = "default") -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(Path(env["CLOUDSDK_CONFIG"]) / "configurations" / f"config_{name}")
    return parser


def test_config_set_get_unset_project_in_gclouds_file(env: dict[str, str]) -> None:
    code, out, err = run_cli(["config", "get", "project"], env)
    assert (code, out, err) == (0, "", "(unset)\n")
    code, out, err = run_cli(["config", "set", "project", "my-proj-1"], env)
    assert code == 0 and out == ""
    path = Path(env["CLOUDSDK_CONFIG"]) / "configurations" / "config_default"
    assert err == f"Updated property [core/project] in {path}.\n"
    assert read_properties(env).get("core", "project") == "my-proj-1"
    assert (Path(env["CLOUDSDK_CONFIG"]) / "active_config").read_text() == "default"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(env["CLOUDSDK_CONFIG"]).stat().st_mode) == 0o700
    assert run_cli(["config", "get", "core/project"], env)[1] == "my-proj-1\n"
    # other properties and sections gcloud wrote are kept
    path.write_text("[core]\naccount = a@example.com\nproject = my-proj-1\n\n"
                    "[compute]\nregion = europe-west1\n")
    assert run_cli(["config", "unset", "project"], env)[0] == 0
    parser = read_properties(env)
    assert not parser.has_option("core", "project")
    assert parser.get("core", "account") == "a@example.com"
    assert parser.get("compute", "region") == "europe-west1"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_config_writes_the_active_configuration(env: dict[str, str]) -> None:
    config = Path(env["CLOUDSDK_CONFIG"])
    config.mkdir(parents=True)
    (config / "active_config").write_text("work\n")
    assert run_cli(["config", "set", "project", "work-proj"], env)[0] == 0
    assert read_properties(env, "work").get("core", "project") == "work-proj"
    named = {**env, "CLOUDSDK_ACTIVE_CONFIG_NAME": "other"}
    assert run_cli(["config", "set", "project", "other-proj"], named)[0] == 0
    assert read_properties(env, "other").get("core", "project") == "other-proj"
    assert run_cli(["config", "get", "project"], env)[1] == "work-proj\n"
    code, out, err = run_cli(["config", "get", "project"],
                             {**env, "CLOUDSDK_CORE_PROJECT": "env-proj"})
    assert code == 0 and out == "env-proj\n" and "CLOUDSDK_CORE_PROJECT" in err


@pytest.mark.parametrize("args", [["set", "project", "a b"], ["set", "account", "x"],
                                  ["get", "zone"], ["set", "project"]])
def test_config_refuses_what_it_cannot_do(env: dict[str, str], args: list[str]) -> None:
    code, out, err = run_cli(["config", *args], env)
    assert code == 2 and out == ""
    assert "Traceback" not in err


def test_explain_project_not_set_has_a_fix_in_this_cli(emulator: Any,
                                                       user_env: dict[str, str]) -> None:
    code, out, _ = run_cli(["explain", "--no-token"], user_env)
    assert code == 0
    assert ("project:        not set. Fix: set GOOGLE_CLOUD_PROJECT, or run `gcauth config set "
            "project PROJECT`") in out
    assert run_cli(["config", "set", "project", "cfg-9"], user_env)[0] == 0
    code, out, _ = run_cli(["explain", "--no-token"], user_env)
    assert "project:        cfg-9 (from gcloud's core/project in " in out


def test_explain_json_has_machine_values(emulator: Any, user_env: dict[str, str]) -> None:
    assert run_cli(["config", "set", "project", "cfg-9"], user_env)[0] == 0
    code, raw, err = run_cli(["explain", "--format", "json"], user_env)
    assert code == 0, err
    report = json.loads(raw)
    assert report["type"] == "authorized_user"
    assert report["project_id"] == "cfg-9" and report["project_source"] == "gcloud_config"
    assert report["project_location"].endswith("configurations/config_default")
    assert report["quota_project_id"] == "bill-3"
    assert report["quota_project_source"] == "credential_file"
    assert ISO_SECONDS.fullmatch(report["token"]["expiry"])
    assert {s["outcome"] for s in report["sources"]} <= {"used", "not found", "not consulted"}
    env = {**user_env, "GOOGLE_CLOUD_PROJECT": "env-p"}
    assert json.loads(run_cli(["explain", "--json", "--no-token"], env)[1])[
        "project_source"] == "GOOGLE_CLOUD_PROJECT"
    key = Path(user_env["HOME"]) / "sa.json"
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text(json.dumps(emulator.create_service_account(project_id="sa-proj")))
    env = {**user_env, "GOOGLE_APPLICATION_CREDENTIALS": str(key)}
    report = json.loads(run_cli(["explain", "--json", "--no-token"], env)[1])
    assert report["type"] == "service_account" and report["project_source"] == "credential_file"
    assert report["project_location"] == str(key)


def test_the_emulator_page_and_api_agree_with_print_access_token(
        emulator: Any, user_env: dict[str, str]) -> None:
    token = run_cli(PRINT, user_env)[1].strip()
    status, _, _ = http_get(f"{emulator.url}/tokeninfo?access_token={token}")
    assert status == 200
