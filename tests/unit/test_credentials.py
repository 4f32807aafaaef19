"""Credential types: what each flow sends and how it reads replies, with no sockets."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest

from gcauth import authorized_user, compute_engine, service_account
from gcauth._http import HttpRequest
from gcauth._protocol import jwt
from gcauth.exceptions import MalformedCredentialsError, RefreshError, UnsafeEndpointError
from tests.kit.creds import T0, body_text, drive, ec_pem, first_request, reply, sa_info, user_info

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def _assertion(request: HttpRequest) -> dict[str, Any]:
    form = parse_qs(body_text(request))
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    header, payload, _, _ = jwt.decode(form["assertion"][0])
    return {"header": header, **payload}


def test_service_account_jwt_bearer_grant_claims() -> None:
    creds = service_account.Credentials.from_service_account_info(sa_info(), scopes=SCOPES)
    token, requests, _ = drive(creds.token_flow(T0), lambda r: reply(
        body={"access_token": "ya29.x", "expires_in": 3599, "token_type": "Bearer"}))
    claims = _assertion(requests[0])
    assert requests[0].url == "https://oauth2.googleapis.com/token"
    assert claims["iss"] == "robot@unit-project.iam.gserviceaccount.com"
    assert claims["aud"] == "https://oauth2.googleapis.com/token"
    assert claims["scope"] == SCOPES[0]
    assert claims["exp"] - claims["iat"] == 3600 and claims["iat"] == int(T0.timestamp())
    assert claims["header"]["kid"] == "key-1" and claims["header"]["alg"] == "RS256"
    assert "sub" not in claims
    assert token.access_token == "ya29.x" and token.expiry == T0 + timedelta(seconds=3599)
    signer = creds.signer
    form = parse_qs(body_text(requests[0]))
    jwt.verify_rs256(form["assertion"][0], signer.public_key())


def test_domain_wide_delegation_sets_sub_and_with_subject_copies() -> None:
    creds = service_account.Credentials.from_service_account_info(sa_info(), scopes=SCOPES)
    delegated = creds.with_subject("user@example.com")
    assert creds.subject is None and delegated.subject == "user@example.com"
    _, requests, _ = drive(delegated.token_flow(T0), lambda r: reply(body={"access_token": "a"}))
    assert _assertion(requests[0])["sub"] == "user@example.com"


def test_with_scopes_and_quota_project_return_independent_copies() -> None:
    base = service_account.Credentials.from_service_account_info(sa_info())
    scoped = base.with_scopes(SCOPES)
    billed = scoped.with_quota_project("billing")
    assert base.scopes is None and scoped.scopes == tuple(SCOPES)
    assert scoped.quota_project_id is None and billed.quota_project_id == "billing"
    assert billed._cache is not scoped._cache
    assert billed.headers_for(__import__("gcauth").tokens.Token("t"))[
        "x-goog-user-project"] == "billing"


def test_self_signed_jwt_with_audience_and_no_scopes_makes_no_request() -> None:
    creds = service_account.Credentials.from_service_account_info(
        sa_info(), audience="https://sqladmin.googleapis.com/")
    token, requests, _ = drive(creds.token_flow(T0), lambda r: pytest.fail("no HTTP expected"))
    assert requests == []
    payload = jwt.verify_rs256(token.access_token, creds.signer.public_key())
    assert payload["aud"] == "https://sqladmin.googleapis.com/"
    assert payload["iss"] == payload["sub"] == creds.service_account_email
    assert token.expiry == T0 + timedelta(hours=1)


def test_always_use_jwt_access_puts_scopes_in_the_jwt() -> None:
    creds = service_account.Credentials.from_service_account_info(
        sa_info(), scopes=SCOPES, always_use_jwt_access=True)
    token, requests, _ = drive(creds.token_flow(T0), lambda r: pytest.fail("no HTTP"))
    assert jwt.decode(token.access_token)[1]["scope"] == SCOPES[0]


def test_service_account_without_scopes_or_audience_says_what_to_do() -> None:
    creds = service_account.Credentials.from_service_account_info(sa_info())
    with pytest.raises(RefreshError, match="needs scopes"):
        drive(creds.token_flow(T0), lambda r: reply())


def test_sign_bytes_verifies_with_public_key() -> None:
    creds = service_account.Credentials.from_service_account_info(sa_info())
    signature = creds.sign_bytes(b"hello")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    creds.signer.public_key().verify(signature, b"hello", padding.PKCS1v15(), hashes.SHA256())
    assert creds.signer_email == creds.service_account_email


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"private_key": None}, "private_key", "missing"),
        ({"client_email": None}, "client_email", "missing"),
        ({"client_email": 7}, "client_email", "non-empty string"),
        ({"private_key": "garbage"}, "private_key", "not a PEM"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
         "private_key", "could not be read"),
        ({"type": "authorized_user"}, "type", "expected a credential of type"),
    ],
)
def test_service_account_bad_info(change, field, text) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MalformedCredentialsError, match=text) as info:
        service_account.Credentials.from_service_account_info(sa_info(**change))
    assert info.value.field == field


def test_non_rsa_key_is_refused() -> None:
    with pytest.raises(MalformedCredentialsError, match="must be RSA"):
        service_account.Credentials.from_service_account_info(sa_info(private_key=ec_pem()))


def test_foreign_token_uri_is_refused_unless_allowed() -> None:
    info = sa_info(token_uri="https://evil.example.com/token")
    with pytest.raises(UnsafeEndpointError, match="token_uri") as err:
        service_account.Credentials.from_service_account_info(info)
    assert "allowed_hosts" in str(err.value)
    creds = service_account.Credentials.from_service_account_info(
        info, allowed_hosts=["evil.example.com"])
    assert creds.token_uri == "https://evil.example.com/token"


def test_secrets_never_in_repr() -> None:
    creds = service_account.Credentials.from_service_account_info(sa_info(), scopes=SCOPES)
    text = repr(creds) + str(creds) + repr(creds.signer)
    assert "PRIVATE KEY" not in text
    user = authorized_user.Credentials.from_authorized_user_info(user_info())
    assert "s3cret" not in repr(user) and "refresh-secret" not in repr(user)


def test_authorized_user_refresh_grant() -> None:
    creds = authorized_user.Credentials.from_authorized_user_info(
        user_info(quota_project_id="qp"), scopes=SCOPES)
    token, requests, _ = drive(creds.token_flow(T0), lambda r: reply(
        body={"access_token": "ya29.u", "expires_in": 3600, "scope": SCOPES[0],
              "id_token": "h.p.s"}))
    form = parse_qs(body_text(requests[0]))
    assert form == {"grant_type": ["refresh_token"], "refresh_token": ["1//refresh-secret"],
                    "client_id": ["client-1.apps.googleusercontent.com"],
                    "client_secret": ["s3cret-client"], "scope": [SCOPES[0]]}
    assert token.access_token == "ya29.u" and token.id_token == "h.p.s"
    assert creds.headers_for(token) == {"authorization": "Bearer ya29.u",
                                        "x-goog-user-project": "qp"}


def test_authorized_user_invalid_grant_says_log_in_again() -> None:
    creds = authorized_user.Credentials.from_authorized_user_info(user_info())
    with pytest.raises(RefreshError, match="application-default login") as info:
        drive(creds.token_flow(T0), lambda r: reply(400, {"error": "invalid_grant"}))
    assert info.value.error == "invalid_grant" and not info.value.retryable
    assert "refresh-secret" not in str(info.value)


def test_authorized_user_rotated_refresh_token_is_kept() -> None:
    creds = authorized_user.Credentials.from_authorized_user_info(user_info())
    drive(creds.token_flow(T0), lambda r: reply(body={"access_token": "a",
                                                      "refresh_token": "1//new"}))
    assert creds.refresh_token == "1//new"


def test_authorized_user_to_json_roundtrip() -> None:
    creds = authorized_user.Credentials.from_authorized_user_info(
        user_info(quota_project_id="qp", token_uri="http://127.0.0.1:9/token"))
    data = json.loads(creds.to_json())
    assert data["type"] == "authorized_user" and data["quota_project_id"] == "qp"
    assert data["token_uri"] == "http://127.0.0.1:9/token"
    again = authorized_user.Credentials.from_authorized_user_info(data)
    assert again.refresh_token == creds.refresh_token


def test_compute_engine_token_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:1234")
    creds = compute_engine.Credentials(scopes=SCOPES)
    token, requests, _ = drive(creds.token_flow(T0), lambda r: reply(
        body={"access_token": "ya29.m", "expires_in": 100},
        headers={"metadata-flavor": "Google"}))
    assert requests[0].url.startswith(
        "http://127.0.0.1:1234/computeMetadata/v1/instance/service-accounts/default/token")
    assert "scopes=" in requests[0].url
    assert requests[0].headers["Metadata-Flavor"] == "Google"
    assert token.access_token == "ya29.m"


def test_compute_engine_requires_flavor_header_on_reply() -> None:
    creds = compute_engine.Credentials()
    with pytest.raises(RefreshError, match="Metadata-Flavor"):
        drive(creds.token_flow(T0), lambda r: reply(body={"access_token": "x",
                                                          "expires_in": 1}))


def test_compute_engine_403_fails_fast_404_names_path() -> None:
    creds = compute_engine.Credentials()
    seen = []

    def answer(r):  # type: ignore[no-untyped-def]
        seen.append(r)
        return reply(403, raw=b"denied", headers={"metadata-flavor": "Google"})

    with pytest.raises(RefreshError, match="HTTP 403"):
        drive(creds.token_flow(T0), answer)
    assert len(seen) == 1


def test_metadata_host_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    creds = compute_engine.Credentials()
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:1111")
    assert "127.0.0.1:1111" in first_request(creds.token_flow(T0)).url
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:2222")
    assert "127.0.0.1:2222" in first_request(creds.token_flow(T0)).url


def test_google_style_constructor_with_token_and_naive_expiry() -> None:
    from datetime import datetime

    from gcauth.exceptions import GCAuthError

    naive = datetime(2030, 1, 1, 0, 0, 0)
    creds = authorized_user.Credentials("ya29.given", refresh_token="r", client_id="c",
                                        client_secret="s", expiry=naive)
    assert creds.token == "ya29.given"
    assert creds.expiry is not None and creds.expiry.tzinfo is not None
    headers: dict[str, str] = {}
    creds.apply(headers)
    assert headers["authorization"] == "Bearer ya29.given"
    with pytest.raises(GCAuthError, match="no token yet"):
        authorized_user.Credentials(refresh_token="r").apply({})
