"""Executable-sourced credentials: the response format, the output-file cache's decisions, the
child's environment and the configuration checks (no process is run here; see
tests/integration/test_executable_run.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gcauth import _executable as ex
from gcauth.exceptions import MalformedCredentialsError, RefreshError, UsageError

ORIGIN = "the executable `/bin/tok --x` configured in /etc/wif.json"
NOW = 1_700_000_000.0
TOKEN = "eyJhbGciOi.SECRET-SUBJECT-TOKEN.c2ln"
SAML = "PHNhbWxwOlJlc3BvbnNlIFNFQ1JFVC1TQU1MLw=="


def ok(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"version": 1, "success": True, "token_type": ex.TOKEN_TYPE_ID_TOKEN,
                            "id_token": TOKEN, "expiration_time": int(NOW) + 3600}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def parse(body: object, *, require_expiration: bool = False) -> ex.ExecutableResponse:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return ex.parse_response(data, origin=ORIGIN, now=NOW,
                             require_expiration=require_expiration)


# --- parse_response ---------------------------------------------------------------------------

@pytest.mark.parametrize("token_type", [ex.TOKEN_TYPE_ID_TOKEN, ex.TOKEN_TYPE_JWT])
def test_oidc_response(token_type: str) -> None:
    got = parse(ok(token_type=token_type))
    assert got == ex.ExecutableResponse(1, token_type, TOKEN, int(NOW) + 3600)
    assert got.subject_token == TOKEN and got.expiration_time == int(NOW) + 3600
    assert TOKEN not in repr(got) and token_type in repr(got)


def test_saml_response_and_bytes_input() -> None:
    body = ok(token_type=ex.TOKEN_TYPE_SAML2, id_token=..., saml_response=SAML)
    got = parse(json.dumps(body).encode())
    assert (got.token_type, got.subject_token) == (ex.TOKEN_TYPE_SAML2, SAML)
    assert SAML not in repr(got)


def test_expiration_is_optional_without_an_output_file() -> None:
    assert parse(ok(expiration_time=...)).expiration_time is None
    with pytest.raises(RefreshError, match="'expiration_time' is missing.*output_file"):
        parse(ok(expiration_time=...), require_expiration=True)


def test_error_response_names_code_and_message_terminal_safe() -> None:
    body = {"version": 1, "success": False, "code": "401",
            "message": "denied \x1b[31mred\x1b[0m\nFAKE LINE " + "x" * 1000}
    with pytest.raises(RefreshError) as info:
        parse(body)
    text = str(info.value)
    assert ORIGIN in text and "code 401" in text and "denied" in text
    assert "\x1b" not in text and "\n" not in text
    assert len(text) < 800   # the message is truncated
    assert info.value.error == "401"


@pytest.mark.parametrize(("body", "field", "problem"), [
    ("{not json", None, "not valid JSON"),
    (b"\xff\xfe", None, "not UTF-8"),
    ("[1, 2]", None, "JSON list, not an object"),
    ("null", None, "not an object"),
    ("[" * 100000, None, "not valid JSON"),
    (ok(version=...), "version", "is missing"),
    (ok(version="1"), "version", "must be the number 1"),
    (ok(version=True), "version", "must be the number 1"),
    (ok(success=...), "success", "is missing"),
    (ok(success="true"), "success", "true or false"),
    ({"version": 1, "success": False, "message": "m"}, "code", "required in an error"),
    ({"version": 1, "success": False, "code": 1}, "message", "required in an error"),
    ({"version": 1, "success": False, "code": [], "message": "m"}, "code", "must be a string"),
    (ok(token_type=...), "token_type", "is missing"),
    (ok(token_type=5), "token_type", "must be a string"),
    (ok(id_token=...), "id_token", "is required"),
    (ok(id_token=""), "id_token", "non-empty string"),
    (ok(id_token=7), "id_token", "non-empty string"),
    (ok(token_type=ex.TOKEN_TYPE_SAML2), "saml_response", "is required"),
    (ok(expiration_time="soon"), "expiration_time", "seconds since the epoch"),
    (ok(expiration_time=True), "expiration_time", "seconds since the epoch"),
])
def test_malformed_responses(body: object, field: str | None, problem: str) -> None:
    with pytest.raises(RefreshError) as info:
        parse(body)
    text = str(info.value)
    assert ORIGIN in text and problem in text
    if field is not None:
        assert repr(field) in text
    assert '"version": 1' in text     # says what a response must look like
    assert TOKEN not in text


@pytest.mark.parametrize(("body", "problem"), [
    (ok(version=2), "version 2 is not supported"),
    (ok(version=0), "version 0 is not supported"),
    (ok(expiration_time=int(NOW) - 1), "expired"),
    (ok(token_type="urn:ietf:params:oauth:token-type:access_token"), "is not supported"),
    (ok(token_type="bad\x1b[2Jtype"), "is not supported"),
])
def test_unusable_responses(body: object, problem: str) -> None:
    with pytest.raises(RefreshError, match=problem) as info:
        parse(body)
    assert TOKEN not in str(info.value) and "\x1b" not in str(info.value)


def test_expiry_is_decided_by_now() -> None:
    body = json.dumps(ok(expiration_time=int(NOW) + 10))
    assert ex.parse_response(body, origin=ORIGIN, now=NOW + 10,
                             require_expiration=True).expiration_time == int(NOW) + 10
    with pytest.raises(RefreshError, match="expired"):
        ex.parse_response(body, origin=ORIGIN, now=NOW + 11, require_expiration=True)


def test_extra_fields_are_ignored() -> None:
    assert parse(ok(extra={"a": 1})).subject_token == TOKEN


# --- load_output_file -------------------------------------------------------------------------

def load(path: Path) -> ex.ExecutableResponse | None:
    return ex.load_output_file(str(path), origin=ORIGIN, now=NOW)


def test_output_file_usable(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text(json.dumps(ok()))
    assert load(path) == ex.ExecutableResponse(1, ex.TOKEN_TYPE_ID_TOKEN, TOKEN,
                                               int(NOW) + 3600)


@pytest.mark.parametrize("content", [
    "", "  \n", "{broken", b"\xff\xfe\x00",
    json.dumps(ok(expiration_time=int(NOW) - 1)),        # expired
    json.dumps(ok(expiration_time=...)),                 # undated: treated as expired
    json.dumps({"version": 1, "success": False, "code": "1", "message": "m"}),
    json.dumps(ok(version=2)),
    json.dumps(ok(token_type="urn:x")),
])
def test_output_file_means_run_again(tmp_path: Path, content: str | bytes) -> None:
    path = tmp_path / "out.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    assert load(path) is None


def test_output_file_missing_or_not_a_file(tmp_path: Path) -> None:
    assert load(tmp_path / "absent.json") is None
    assert load(tmp_path) is None                           # a directory
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)                                         # never opened blocking
    assert load(fifo) is None
    big = tmp_path / "big.json"
    big.write_text(" " * (ex.MAX_OUTPUT_BYTES + 10) + json.dumps(ok()))
    assert load(big) is None
    assert ex.load_output_file("bad\0name", origin=ORIGIN, now=NOW) is None


@pytest.mark.parametrize(("content", "problem"), [
    ("[]", "not an object"),
    (json.dumps(ok(version=...)), "'version' is missing"),
    (json.dumps(ok(success=...)), "'success' is missing"),
    (json.dumps({"version": 1, "success": False}), "'code'"),
    (json.dumps(ok(token_type=...)), "'token_type' is missing"),
    (json.dumps(ok(id_token=...)), "'id_token' is required"),
])
def test_output_file_malformed_raises(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "out.json"
    path.write_text(content)
    with pytest.raises(RefreshError, match=problem) as info:
        load(path)
    assert str(path) in str(info.value) and ORIGIN in str(info.value)


# --- child_environment ------------------------------------------------------------------------

PARENT = {
    "PATH": "/usr/bin", "HOME": "/home/u",
    "GOOGLE_APPLICATION_CREDENTIALS": "/etc/wif.json",
    "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES": "1",
    "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": "/tmp/t", "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE": "/x",
    "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT": "sa@p.iam.gserviceaccount.com",
    "GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.secret", "GOOGLE_CREDENTIALS": "{}",
    "GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL": "stale@x", "GOOGLE_EXTERNAL_ACCOUNT_ID": "old",
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://gh/x", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "ghtok",
    "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKID", "AZURE_CLIENT_ID": "c",
    "CLOUDSDK_CORE_PROJECT": "p", "GOOGLE_CLOUD_PROJECT": "p",
}
AUD = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x"


def test_child_environment_withholds_google_credentials() -> None:
    env = ex.child_environment(PARENT, audience=AUD, token_type=ex.TOKEN_TYPE_JWT,
                               impersonated_email=None, output_file=None)
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
                 "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE",
                 "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT", "GOOGLE_OAUTH_ACCESS_TOKEN",
                 "GOOGLE_CREDENTIALS", "GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL",
                 "GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", "GOOGLE_EXTERNAL_ACCOUNT_ID"):
        assert name not in env
    for name in ("PATH", "HOME", "ACTIONS_ID_TOKEN_REQUEST_URL",
                 "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "AWS_REGION", "AWS_ACCESS_KEY_ID",
                 "AZURE_CLIENT_ID", "CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        assert env[name] == PARENT[name]
    assert env["GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE"] == AUD
    assert env["GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE"] == ex.TOKEN_TYPE_JWT
    assert env["GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE"] == "0"
    assert PARENT["GOOGLE_APPLICATION_CREDENTIALS"] == "/etc/wif.json"   # parent untouched


def test_child_environment_optional_variables_and_pass_through() -> None:
    env = ex.child_environment(
        PARENT, audience=AUD, token_type=ex.TOKEN_TYPE_SAML2,
        impersonated_email="sa@p.iam.gserviceaccount.com", output_file="/tmp/out.json",
        interactive=True, pass_through=["GOOGLE_APPLICATION_CREDENTIALS",
                                        "GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL"])
    assert env["GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL"] == "sa@p.iam.gserviceaccount.com"
    assert env["GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE"] == "/tmp/out.json"
    assert env["GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE"] == "1"
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/etc/wif.json"
    assert "GOOGLE_OAUTH_ACCESS_TOKEN" not in env
    # a passed-through name the arguments leave out is still not inherited stale
    env = ex.child_environment(PARENT, audience=AUD, token_type="t", impersonated_email=None,
                               output_file=None,
                               pass_through=["GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL"])
    assert "GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL" not in env


def test_the_withheld_list() -> None:
    assert {"GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
            "GOOGLE_OAUTH_ACCESS_TOKEN"} <= ex.WITHHELD_VARIABLES
    assert "CLOUDSDK_AUTH_" in ex.WITHHELD_PREFIXES
    assert not any(n.startswith(("AWS_", "AZURE_", "ACTIONS_")) for n in ex.WITHHELD_VARIABLES)


def test_child_environment_rejects_nul() -> None:
    with pytest.raises(UsageError, match="GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE"):
        ex.child_environment({}, audience="a\0b", token_type="t", impersonated_email=None,
                             output_file=None)


# --- check_allowed ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [None, "", "0", "true", "yes", " 1", "1 "])
def test_executables_need_explicit_permission(value: str | None) -> None:
    environ = {} if value is None else {ex.ALLOW_VARIABLE: value}
    with pytest.raises(RefreshError) as info:
        ex.check_allowed(environ, origin=ORIGIN)
    assert type(info.value) is RefreshError
    text = str(info.value)
    assert "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1" in text and ORIGIN in text
    assert "decides which program runs" in text


def test_permission_given() -> None:
    ex.check_allowed({ex.ALLOW_VARIABLE: "1"}, origin=ORIGIN)  # does not raise


# --- timeouts ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds"), [
    (None, 30.0), (0, 30.0), (5000, 5.0), (120000, 120.0), (45000, 45.0), (7500.0, 7.5),
])
def test_timeout_millis(value: object, seconds: float) -> None:
    assert ex.check_timeout_millis(value, field="timeout_millis", origin=ORIGIN) == seconds


@pytest.mark.parametrize(("value", "problem"), [
    (4999, "outside the allowed 5000 to 120000"), (120001, "outside"), (-1, "outside"),
    ("30000", "not a string"), (True, "not a boolean"), (float("nan"), "finite"),
    (float("inf"), "finite"), ([], "not an array"),
])
def test_bad_timeout_millis(value: object, problem: str) -> None:
    field = "credential_source.executable.timeout_millis"
    with pytest.raises(MalformedCredentialsError, match=problem) as info:
        ex.check_timeout_millis(value, field=field, origin=ORIGIN)
    assert info.value.field == field and repr(field) in str(info.value)


@pytest.mark.parametrize(("value", "seconds"), [
    (None, None), (0, None), (30000, 30.0), (1800000, 1800.0),
])
def test_interactive_timeout_millis(value: object, seconds: float | None) -> None:
    assert ex.check_interactive_timeout_millis(value, origin=ORIGIN) == seconds


@pytest.mark.parametrize("value", [29999, 1800001, "60000", False])
def test_bad_interactive_timeout_millis(value: object) -> None:
    with pytest.raises(MalformedCredentialsError, match="interactive_timeout_millis"):
        ex.check_interactive_timeout_millis(value, origin=ORIGIN)
