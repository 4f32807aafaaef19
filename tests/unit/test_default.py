"""ADC discovery order, project discovery, and every kind of bad credential file."""

from __future__ import annotations

import json
import os
from pathlib import Path, PureWindowsPath

import pytest

import gcauth
from gcauth import _default, authorized_user, compute_engine, service_account
from gcauth._files import read_json_file, write_private_json
from gcauth._protocol import metadata
from gcauth.exceptions import DefaultCredentialsError, MalformedCredentialsError
from tests.kit.creds import ec_pem, sa_info, user_info


def write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_env_variable_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           isolated_env: Path) -> None:
    key = write(tmp_path / "sa.json", sa_info())
    write(isolated_env / ".config/gcloud/application_default_credentials.json", user_info())
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    creds, project = gcauth.default(scopes=["s"])
    assert isinstance(creds, service_account.Credentials)
    assert project == "unit-project" and creds.scopes == ("s",)


def test_well_known_file_in_home(isolated_env: Path) -> None:
    write(isolated_env / ".config/gcloud/application_default_credentials.json",
          user_info(quota_project_id="qp"))
    creds, project = gcauth.default()
    assert isinstance(creds, authorized_user.Credentials)
    assert creds.quota_project_id == "qp" and project is None


def test_cloudsdk_config_overrides_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "cfg/application_default_credentials.json", user_info())
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "cfg"))
    res = _default.find_default()
    assert res.source == "gcloud ADC file"
    assert res.source_location == str(tmp_path / "cfg/application_default_credentials.json")


def test_platform_paths() -> None:
    win = _default.well_known_file({"APPDATA": "C:\\Users\\u\\AppData\\Roaming"}, "win32")
    assert PureWindowsPath(win) == PureWindowsPath(
        "C:/Users/u/AppData/Roaming/gcloud/application_default_credentials.json")
    nix = _default.well_known_file({"HOME": "/home/u"}, "linux")
    assert str(nix) == "/home/u/.config/gcloud/application_default_credentials.json"
    mac = _default.well_known_file({"HOME": "/Users/u"}, "darwin")
    assert str(mac) == "/Users/u/.config/gcloud/application_default_credentials.json"


def test_project_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            isolated_env: Path) -> None:
    key = write(tmp_path / "sa.json", sa_info())
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "from-env")
    assert gcauth.default()[1] == "from-env"
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    assert gcauth.default()[1] == "unit-project"


def test_project_from_gcloud_config_files(isolated_env: Path) -> None:
    config = isolated_env / ".config/gcloud"
    write(config / "application_default_credentials.json", user_info())
    write(config / "active_config", "work")
    write(config / "configurations/config_work", "[core]\naccount = a@b.c\nproject = cfg-proj\n")
    res = _default.find_default()
    assert res.project_id == "cfg-proj" and res.project_source == "gcloud_config"
    assert "config_work" in (res.project_location or "")


def test_cloudsdk_core_project_env(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated_env / ".config/gcloud/application_default_credentials.json", user_info())
    monkeypatch.setenv("CLOUDSDK_CORE_PROJECT", "env-proj")
    assert gcauth.default()[1] == "env-proj"


def test_quota_project_argument_and_env(isolated_env: Path, monkeypatch: pytest.MonkeyPatch,
                                        ) -> None:
    write(isolated_env / ".config/gcloud/application_default_credentials.json", user_info())
    assert gcauth.default(quota_project_id="arg")[0].quota_project_id == "arg"
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "envq")
    assert gcauth.default()[0].quota_project_id == "envq"


def test_nothing_found_lists_every_source_and_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DefaultCredentialsError) as info:
        gcauth.default()
    text = str(info.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in text
    assert "application_default_credentials.json" in text
    assert "metadata server" in text
    assert "gcauth auth application-default login" in text


def test_no_gce_check_skips_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    res = _default.find_default()
    assert res.credentials is None
    assert res.tried[-1].outcome == "skipped" and "NO_GCE_CHECK" in res.tried[-1].detail


def test_non_google_dmi_means_no_probe(tmp_path: Path) -> None:
    dmi = write(tmp_path / "product_name", "Standard PC (Q35 + ICH9, 2009)\n")
    residency, why = compute_engine.detect_residency({}, str(dmi), platform="linux")
    assert residency == metadata.Residency.OFF and "Standard PC" in why
    dmi.write_text("Google Compute Engine\n")
    on = compute_engine.detect_residency({}, str(dmi), platform="linux")
    assert on[0] == metadata.Residency.ON
    assert compute_engine.detect_residency({}, str(tmp_path / "missing"),
                                     platform="linux")[0] == metadata.Residency.UNKNOWN
    serverless = compute_engine.detect_residency({"K_SERVICE": "svc"}, str(dmi))
    assert serverless[0] == metadata.Residency.ON


def test_explicit_metadata_env_is_used_before_any_default_address(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:8")
    assert compute_engine.metadata_host() == "127.0.0.1:9"
    assert compute_engine.ping_host() == "127.0.0.1:8"
    monkeypatch.delenv("GCE_METADATA_HOST")
    monkeypatch.delenv("GCE_METADATA_IP")
    assert compute_engine.metadata_host() == metadata.DEFAULT_IP  # an IP: never waits on DNS


# -- bad input: every case ends in a named gcauth error ---------------------------------
def _bad_files(tmp: Path) -> dict[str, Path]:
    cases = {
        "empty": write(tmp / "empty.json", ""),
        "not json": write(tmp / "text.json", "hello: world"),
        "array": write(tmp / "array.json", [1, 2]),
        "unknown type": write(tmp / "type.json", {"type": "martian"}),
        "no type": write(tmp / "notype.json", {"client_email": "x"}),
        "missing fields": write(tmp / "missing.json", {"type": "service_account"}),
        "non-RSA key": write(tmp / "ec.json", sa_info(private_key=ec_pem())),
        "directory": tmp / "a-directory",
        "missing file": tmp / "does-not-exist.json",
        "huge": write(tmp / "huge.json", " " * (300 * 1024) + "{}"),
        "symlink loop": tmp / "loop.json",
        "external type": write(tmp / "ext.json", {"type": "external_account"}),
    }
    (tmp / "a-directory").mkdir()
    pkcs12 = tmp / "key.p12"
    pkcs12.write_bytes(bytes.fromhex("3082097202010330820938") + os.urandom(64))
    cases["PKCS12"] = pkcs12
    os.symlink(tmp / "loop.json", tmp / "loop.json") if not (tmp / "loop.json").exists() else None
    return cases


@pytest.mark.parametrize("case", ["empty", "not json", "array", "unknown type", "no type",
                                  "missing fields", "non-RSA key", "directory", "missing file",
                                  "huge", "symlink loop", "PKCS12", "external type"])
def test_bad_files_name_the_file(tmp_path: Path, case: str) -> None:
    path = _bad_files(tmp_path)[case]
    with pytest.raises(MalformedCredentialsError) as info:
        gcauth.load_credentials_from_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("case", ["empty", "not json", "non-RSA key", "directory",
                                  "missing file", "PKCS12"])
def test_bad_env_file_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         case: str) -> None:
    path = _bad_files(tmp_path)[case]
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    with pytest.raises(MalformedCredentialsError) as info:
        gcauth.default()
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(info.value) and str(path) in str(info.value)


def test_pkcs12_error_says_create_a_json_key(tmp_path: Path) -> None:
    path = _bad_files(tmp_path)["PKCS12"]
    with pytest.raises(MalformedCredentialsError, match="JSON key"):
        service_account.Credentials.from_service_account_file(path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "sa.json", sa_info())
    path.chmod(0)
    with pytest.raises(MalformedCredentialsError, match="cannot be read"):
        gcauth.load_credentials_from_file(path)


def test_broken_well_known_file_says_login_again(isolated_env: Path) -> None:
    write(isolated_env / ".config/gcloud/application_default_credentials.json", "{")
    with pytest.raises(MalformedCredentialsError, match="application-default login"):
        gcauth.default()


def test_well_known_symlink_out_of_config_dir_is_refused(isolated_env: Path,
                                                         tmp_path: Path) -> None:
    outside = write(tmp_path / "elsewhere.json", user_info())
    config = isolated_env / ".config/gcloud"
    config.mkdir(parents=True)
    os.symlink(outside, config / "application_default_credentials.json")
    with pytest.raises(MalformedCredentialsError, match="symbolic link"):
        gcauth.default()


def test_write_private_json_is_atomic_and_0600(tmp_path: Path) -> None:
    target = tmp_path / "dir/adc.json"
    write_private_json(target, {"a": 1})
    assert (target.stat().st_mode & 0o777) == 0o600
    assert read_json_file(target) == {"a": 1}
    write_private_json(target, {"a": 2})
    assert read_json_file(target) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["adc.json"]
