"""Credential JSON, client secrets and credential *files* fuzzed: whatever the input, the
loaders return credentials or raise a gcauth error, and what they accept is safe."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

import gcauth
from gcauth import _files, authorized_user, service_account
from gcauth._endpoints import check_endpoint
from gcauth.flow import ClientConfig, DeviceFlow, InstalledAppFlow
from tests.kit.creds import rsa_pem, sa_info, user_info

from .strategies import (
    DEEP_JSON,
    FUZZ,
    field_values,
    json_values,
    only_gcauth_errors,
    raw_json_bytes,
)

SA_FIELDS = list(sa_info()) + ["universe_domain", "quota_project_id", "auth_uri"]
USER_FIELDS = list(user_info()) + ["token_uri", "quota_project_id", "scopes", "account",
                                   "universe_domain", "token", "expiry"]
PEM_LIKE = st.one_of(
    st.just(rsa_pem()), st.text(max_size=80),
    st.builds(lambda body: f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n",
              st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
                      max_size=200)),
    st.builds(lambda body: f"-----BEGIN RSA PRIVATE KEY-----\n{body}", st.text(max_size=50)))
URIS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["https://oauth2.googleapis.com/token", "http://127.0.0.1:1/token",
                     "https://evil.example/token", "http://[::1]/t", "https://x.googleapis.com",
                     "https://[/", "http://127.0.0.1:bad/", "https://oauth2.googleapis.com\\@x/"]))


#: what a saved token's "expiry" may look like (google-auth writes naive UTC + "Z")
EXPIRIES = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59", "2026-13-01",
                     "2026-01-01T00:00:00ZZ", "2026-01-01T00:00:00.1234567Z"]))


def mutated(base: dict[str, Any], fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with some fields replaced by anything, some removed, some extra keys added."""
    def build(changes: dict[str, Any], removed: list[str], extra: dict[str, Any]) -> dict[str, Any]:
        info = {**base, **changes, **extra}
        for name in removed:
            info.pop(name, None)
        return info

    values = field_values | PEM_LIKE | URIS | EXPIRIES
    return st.builds(build, st.dictionaries(st.sampled_from(fields), values, max_size=3),
                     st.lists(st.sampled_from(fields), max_size=2),
                     st.dictionaries(st.text(max_size=8), json_values, max_size=2))


def _load(info: Any) -> None:
    creds, _ = gcauth.load_credentials_from_dict(info)
    token_uri = getattr(creds, "token_uri", None)
    if token_uri is not None:  # anything accepted is an endpoint gcauth may send secrets to
        check_endpoint(token_uri, field="token_uri", source="fuzz")
    text = repr(creds) + str(creds)
    for secret in ("private_key", "refresh_token", "client_secret"):
        value = info.get(secret) if isinstance(info, dict) else None
        if not isinstance(value, str) or len(value) < 12:
            continue
        # a secret may show up only as a copy of a field that is not secret
        public = [str(v) for k, v in info.items() if k != secret]
        if not any(value in other for other in public):
            assert value not in text, secret


@FUZZ
@given(json_values)
def test_any_json_value_as_credential_info(info: Any) -> None:
    only_gcauth_errors(lambda: _load(info))


@FUZZ
@given(mutated(sa_info(), SA_FIELDS) | mutated(user_info(), USER_FIELDS))
def test_near_valid_credential_info(info: dict[str, Any]) -> None:
    only_gcauth_errors(lambda: _load(info))


_AUD = ("//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/"
        "providers/x")
_EXT = {"type": "external_account", "audience": _AUD,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/"
        "-/serviceAccounts/a@p.iam.gserviceaccount.com:generateAccessToken"}
EXTERNAL_BASES: list[dict[str, Any]] = [
    {**_EXT, "credential_source": {"file": "/nonexistent/token", "format": {"type": "text"}}},
    {**_EXT, "credential_source": {"url": "http://127.0.0.1:1/t", "headers": {"a": "b"},
                                   "format": {"type": "json",
                                              "subject_token_field_name": "v"}}},
    {**_EXT, "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
     "credential_source": {"environment_id": "aws1",
                           "region_url": "http://169.254.169.254/latest/meta-data/placement/"
                           "availability-zone",
                           "url": "http://169.254.169.254/latest/meta-data/iam/security-"
                           "credentials",
                           "regional_cred_verification_url": "https://sts.{region}.amazonaws."
                           "com?Action=GetCallerIdentity&Version=2011-06-15"}},
    {**_EXT, "credential_source": {"executable": {"command": "/bin/true",
                                                  "timeout_millis": 5000}}},
    {"type": "external_account_authorized_user", "audience": _AUD, "refresh_token": "r" * 20,
     "token_url": "https://sts.googleapis.com/v1/oauthtoken", "client_id": "c",
     "client_secret": "s" * 20, "revoke_url": "https://sts.googleapis.com/v1/revoke"},
]
EXTERNAL_FIELDS = [*_EXT, "credential_source", "service_account_impersonation",
                   "client_id", "client_secret", "workforce_pool_user_project",
                   "quota_project_id", "universe_domain", "token_info_url", "refresh_token",
                   "revoke_url", "scopes", "token", "expiry"]
SOURCE_FIELDS = ["file", "url", "headers", "format", "environment_id", "region_url",
                 "executable", "imdsv2_session_token_url", "regional_cred_verification_url"]


def _with_source(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    source = base.get("credential_source")
    if not isinstance(source, dict):
        return st.just(base)
    return mutated(source, SOURCE_FIELDS).map(lambda cs: {**base, "credential_source": cs})


@FUZZ
@given(st.one_of(*[mutated(b, EXTERNAL_FIELDS) for b in EXTERNAL_BASES],
                 *[_with_source(b) for b in EXTERNAL_BASES]),
       st.sampled_from([None, ["external_account:file"], ["service_account"]]))
def test_near_valid_federation_configurations(info: dict[str, Any],
                                              allowed: list[str] | None) -> None:
    """external_account and workforce-user files: credentials or a gcauth error, never
    anything fetched or run while loading (sockets are off; executables are not allowed)."""
    only_gcauth_errors(lambda: gcauth.load_credentials_from_dict(info, allowed_types=allowed))
    only_gcauth_errors(lambda: _load(info))


@FUZZ
@given(field_values | st.text(alphabet="ya29.-_~+/=", max_size=30), EXPIRIES | json_values)
def test_a_saved_token_and_expiry(token: Any, expiry: Any) -> None:
    """The quickstart's token.json: whatever its token and expiry, loading gives credentials
    (whose state, file and headers work) or a gcauth error."""
    def load_and_use() -> None:
        creds = authorized_user.Credentials.from_authorized_user_info(
            user_info(token=token, expiry=expiry))
        assert isinstance(creds.expired, bool) and isinstance(creds.valid, bool)
        creds.to_json()
        if creds.token is not None:
            creds.apply({})

    only_gcauth_errors(load_and_use)


@FUZZ
@given(mutated(sa_info(), SA_FIELDS), st.sampled_from(["sa", "user"]))
def test_typed_constructors(info: dict[str, Any], which: str) -> None:
    if which == "sa":
        only_gcauth_errors(lambda: service_account.Credentials.from_service_account_info(info))
    else:
        only_gcauth_errors(lambda: authorized_user.Credentials.from_authorized_user_info(info))


@FUZZ
@given(raw_json_bytes)
@example(DEEP_JSON[0])
@example(DEEP_JSON[1])
def test_any_bytes_as_a_credential_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cred.json"
        path.write_bytes(data)
        only_gcauth_errors(lambda: _files.read_json_file(path))
        only_gcauth_errors(lambda: gcauth.load_credentials_from_file(path))
        only_gcauth_errors(lambda: service_account.Credentials.from_service_account_file(path))
        only_gcauth_errors(lambda: authorized_user.Credentials.from_authorized_user_file(path))
        only_gcauth_errors(lambda: ClientConfig.from_file(path))


# -- client secrets ------------------------------------------------------------------------
CLIENT = {"client_id": "id.apps.googleusercontent.com", "client_secret": "client-secret-xyz",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token", "redirect_uris": ["http://localhost"]}
CLIENT_FIELDS = [*CLIENT, "device_authorization_uri", "revoke_uri", "project_id"]


@st.composite
def client_secrets(draw: st.DrawFn) -> Any:
    section = draw(mutated(CLIENT, CLIENT_FIELDS))
    kind = draw(st.sampled_from(["installed", "web", "other"]))
    extra = draw(st.dictionaries(st.sampled_from(["installed", "web", "type"]), json_values,
                                 max_size=1))
    return {kind: section, **extra}


def _client(info: Any) -> None:
    config = ClientConfig.from_info(info)
    for name in ("auth_uri", "token_uri", "device_authorization_uri", "revoke_uri"):
        value = getattr(config, name)
        if value is not None:
            check_endpoint(value, field=name, source="fuzz")
    assert "client-secret-xyz" not in repr(config)
    InstalledAppFlow(config, ["openid"])
    DeviceFlow(config, ["openid"])


@FUZZ
@given(json_values | client_secrets())
def test_any_client_secrets(info: Any) -> None:
    only_gcauth_errors(lambda: _client(info))


@FUZZ
@given(client_secrets(), st.sampled_from(["installed", "device"]))
def test_client_secrets_through_the_flow_constructors(info: Any, which: str) -> None:
    cls = InstalledAppFlow if which == "installed" else DeviceFlow
    only_gcauth_errors(lambda: cls.from_client_config(info, ["openid"]))
