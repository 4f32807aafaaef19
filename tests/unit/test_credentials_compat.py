"""What Google's libraries and programs ask of gcauth's own credentials, with no sockets:
pickle and deepcopy, the quickstart's token.json, and JWTs for gapic clients (AIP-4111)."""

from __future__ import annotations

import copy
import json
import pickle
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import google.oauth2.credentials as ga_user
import pytest

from gcauth import authorized_user, compute_engine, service_account
from gcauth._protocol import jwt
from gcauth.credentials import Credentials
from gcauth.exceptions import MalformedCredentialsError, RefreshError
from gcauth.tokens import Token
from tests.kit.creds import TokenSender, sa_info, user_info

CLOUD = "https://www.googleapis.com/auth/cloud-platform"


def _later(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


# -- pickle and deepcopy --------------------------------------------------------------------
def _all_kinds() -> list[Credentials]:
    return [
        service_account.Credentials.from_service_account_info(
            sa_info(), scopes=[CLOUD], quota_project_id="qp").with_subject("u@example.com"),
        authorized_user.Credentials.from_authorized_user_info(
            user_info(quota_project_id="qp", token_uri="http://127.0.0.1:9/token")),
        compute_engine.Credentials(scopes=[CLOUD], quota_project_id="qp"),
    ]


@pytest.mark.parametrize("copier", [lambda c: pickle.loads(pickle.dumps(c)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
@pytest.mark.parametrize("index", [0, 1, 2], ids=["service_account", "authorized_user",
                                                  "compute_engine"])
def test_copies_keep_the_configuration_and_get_their_own_state(copier: Any, index: int) -> None:
    original = _all_kinds()[index]
    original._cache.set(Token("tok-a", expiry=_later(3600)))
    twin = copier(original)
    assert type(twin) is type(original)
    assert twin.describe() == original.describe() and repr(twin) == repr(original)
    assert twin.token == "tok-a" and twin.valid  # the token travels along
    assert twin._cache is not original._cache
    assert twin._cache._lock is not original._cache._lock
    for name, value in vars(original).items():
        if "lock" in type(value).__name__.lower():
            assert vars(twin)[name] is not value, name  # every lock is its own
    twin.invalidate()
    assert original.token == "tok-a" and twin.token is None  # independent caches


def test_a_copy_needs_no_token_and_refreshes_on_its_own() -> None:
    creds = service_account.Credentials.from_service_account_info(sa_info(), scopes=[CLOUD])
    twin = pickle.loads(pickle.dumps(creds))
    assert twin.token is None
    sender = TokenSender()
    assert twin.get_token(sender).access_token == "tok-1"
    assert creds.token is None  # the original never saw it
    # the key was carried: the copy's assertion verifies with the original's public key
    body = sender.requests[0].body
    assert body is not None
    assertion = dict(p.split("=", 1) for p in body.decode().split("&"))["assertion"]
    jwt.verify_rs256(assertion, creds.signer.public_key())


def test_a_copy_made_during_a_refresh_does_not_inherit_it() -> None:
    gate = threading.Event()
    creds = service_account.Credentials.from_service_account_info(sa_info(), scopes=[CLOUD])
    sender = TokenSender(gate=gate)
    worker = threading.Thread(target=creds.get_token, args=(sender,))
    worker.start()
    while sender.count == 0:
        gate.wait(0.005)
    twin = pickle.loads(pickle.dumps(creds))  # the original's refresh is in flight
    gate.set()
    worker.join(10)
    assert twin._cache._inflight is None and twin.token is None
    assert twin.get_token(TokenSender()).access_token == "tok-1"


def test_a_rotated_refresh_token_travels_and_with_copies_get_new_locks() -> None:
    creds = authorized_user.Credentials.from_authorized_user_info(user_info())
    billed = creds.with_quota_project("qp")
    assert billed._rotation_lock is not creds._rotation_lock
    assert pickle.loads(pickle.dumps(billed)).refresh_token == "1//refresh-secret"


# -- the quickstart's token.json ------------------------------------------------------------
def test_token_and_expiry_are_loaded_and_written_back() -> None:
    expiry = _later(1800).replace(microsecond=0)
    info = user_info(token="ya29.saved", expiry=expiry.replace(tzinfo=None).isoformat() + "Z")
    creds = authorized_user.Credentials.from_authorized_user_info(info)
    assert creds.token == "ya29.saved" and creds.expiry == expiry
    assert creds.valid and not creds.expired
    data = json.loads(creds.to_json())
    assert data["token"] == "ya29.saved" and data["expiry"] == info["expiry"]
    assert data["type"] == "authorized_user"
    stripped = json.loads(creds.to_json(strip=("token", "expiry")))
    assert "token" not in stripped and "expiry" not in stripped


def test_an_expired_saved_token_reads_as_expired_and_is_refreshed() -> None:
    info = user_info(token="ya29.old", expiry="2020-01-01T00:00:00Z")
    creds = authorized_user.Credentials.from_authorized_user_info(info)
    assert creds.expired and not creds.valid
    # the quickstart: if not creds.valid: if creds.expired and creds.refresh_token: refresh
    assert creds.refresh_token
    creds.refresh(TokenSender())
    assert creds.token == "tok-1" and creds.valid and not creds.expired


@pytest.mark.parametrize("expiry", ["0001-01-01T00:00:00Z", "1969-07-20T20:17:00",
                                    "9999-12-31T23:59:59.999999Z"])
def test_extreme_expiries_are_expired_or_far_away(expiry: str) -> None:
    creds = authorized_user.Credentials.from_authorized_user_info(
        user_info(token="ya29.x", expiry=expiry))
    assert creds.expired is expiry.startswith(("0", "1"))
    json.loads(creds.to_json())  # and it writes back


def test_loaded_credentials_without_a_token_are_expired_as_in_google_auth() -> None:
    loaded = authorized_user.Credentials.from_authorized_user_info(user_info())
    assert loaded.expired and not loaded.valid
    no_expiry = authorized_user.Credentials.from_authorized_user_info(user_info(token="ya29.x"))
    assert no_expiry.token is None and no_expiry.expired  # google-auth: auto-expired
    built = authorized_user.Credentials(None, refresh_token="r", client_id="c",
                                        client_secret="s")
    assert not built.expired  # a constructed one keeps google-auth's "no expiry" meaning


@pytest.mark.parametrize("field,value,match", [
    ("token", "ya29 with spaces", "'token' is not an access token"),
    ("token", 42, "'token' is not an access token"),
    ("expiry", "next tuesday", "'expiry' is not an ISO 8601 time"),
    ("expiry", 1767225600, "'expiry' must be a string"),
    ("expiry", "0001-01-01T00:00:00+01:00", "'expiry' is not an ISO 8601 time"),
    ("expiry", "9999-12-31T23:59:59-01:00", "'expiry' is not an ISO 8601 time"),
])
def test_a_broken_saved_token_is_a_named_error(field: str, value: object, match: str) -> None:
    info = user_info(token="ya29.ok", expiry="2030-01-01T00:00:00Z")
    info[field] = value
    with pytest.raises(MalformedCredentialsError, match=match) as caught:
        authorized_user.Credentials.from_authorized_user_info(info, source="token.json")
    assert caught.value.field == field and "token.json" in str(caught.value)
    assert "ya29" not in str(caught.value)


def test_google_auth_reads_gcauth_files_and_gcauth_reads_google_auths() -> None:
    expiry = _later(1200).replace(microsecond=0)
    ours = authorized_user.Credentials(
        "ya29.shared", refresh_token="1//r", client_id="cid", client_secret="cs",
        expiry=expiry, quota_project_id="qp")
    theirs = ga_user.Credentials.from_authorized_user_info(json.loads(ours.to_json()))
    assert theirs.token == "ya29.shared" and theirs.refresh_token == "1//r"
    assert theirs.expiry == expiry.replace(tzinfo=None) and theirs.valid
    assert theirs.quota_project_id == "qp" and theirs.client_id == "cid"
    back = authorized_user.Credentials.from_authorized_user_info(json.loads(theirs.to_json()))
    assert back.token == "ya29.shared" and back.expiry == expiry and back.valid
    assert back.refresh_token == "1//r" and back.client_secret == "cs"
    # google-auth writes microseconds and no "type": both are read
    theirs_now = ga_user.Credentials("ya29.t", refresh_token="r", client_id="c",
                                     client_secret="s", expiry=datetime(2030, 1, 1, 0, 0, 0, 5))
    again = authorized_user.Credentials.from_authorized_user_info(json.loads(theirs_now.to_json()))
    assert again.expiry == datetime(2030, 1, 1, 0, 0, 0, 5, tzinfo=timezone.utc)


# -- gapic clients: a JWT for the API host ----------------------------------------------------
def _claims(headers: dict[str, str]) -> dict[str, Any]:
    value = headers["authorization"]
    assert value.startswith("Bearer ")
    return jwt.decode(value[7:])[1]


@pytest.mark.parametrize("url,audience", [
    ("https://secretmanager.googleapis.com/v1/projects/p/secrets", "https://secretmanager.googleapis.com/"),
    ("https://pubsub.googleapis.com:443/google.pubsub.v1.Publisher", "https://pubsub.googleapis.com/"),
    ("://127.0.0.1:50051/google.datastore.v1.Datastore", "https://127.0.0.1:50051/"),
    ("http://[::1]:8080/v1/x", "https://[::1]:8080/"),
])
def test_an_unscoped_service_account_signs_a_jwt_for_the_api_host(url: str, audience: str,
                                                                  ) -> None:
    creds = service_account.Credentials.from_service_account_info(
        sa_info(), quota_project_id="qp")
    headers: dict[str, str] = {}
    creds.before_request(None, "GET", url, headers)
    claims = _claims(headers)
    assert claims["aud"] == audience and "scope" not in claims
    assert claims["iss"] == claims["sub"] == "robot@unit-project.iam.gserviceaccount.com"
    assert headers["x-goog-user-project"] == "qp"
    jwt.verify_rs256(headers["authorization"][7:], creds.signer.public_key())


def test_jwts_are_cached_per_host_and_signed_again_on_refresh() -> None:
    creds = service_account.Credentials.from_service_account_info(sa_info())
    first: dict[str, str] = {}
    again: dict[str, str] = {}
    other: dict[str, str] = {}
    creds.before_request(None, "GET", "https://a.googleapis.com/x", first)
    creds.before_request(None, "POST", "https://a.googleapis.com/y", again)
    creds.before_request(None, "GET", "https://b.googleapis.com/x", other)
    assert first == again and _claims(other)["aud"] == "https://b.googleapis.com/"
    creds._audience_jwts["https://a.googleapis.com/"]._cache.set(
        Token("old-jwt", expiry=_later(3600)))
    creds.refresh(None)  # after a 401 on a JWT: sign new ones, ask no token endpoint
    fresh: dict[str, str] = {}
    creds.before_request(None, "GET", "https://a.googleapis.com/x", fresh)
    assert fresh["authorization"] != "Bearer old-jwt" and _claims(fresh)["aud"].startswith(
        "https://a.")
    scoped = creds.with_scopes([CLOUD])
    assert scoped._audience_jwts == {}  # copies do not share them
    assert pickle.loads(pickle.dumps(creds))._audience_jwts == {}


def test_a_scoped_service_account_still_asks_for_an_access_token() -> None:
    creds = service_account.Credentials.from_service_account_info(sa_info(), scopes=[CLOUD])
    sender = TokenSender()
    headers: dict[str, str] = {}
    creds.before_request(sender, "GET", "https://a.googleapis.com/x", headers)
    assert headers["authorization"] == "Bearer tok-1" and sender.count == 1


def test_without_a_url_an_unscoped_service_account_still_needs_scopes() -> None:
    creds = service_account.Credentials.from_service_account_info(sa_info())
    with pytest.raises(RefreshError, match="needs scopes"):
        creds.before_request(TokenSender(), "GET", "not a url", {})
    with pytest.raises(RefreshError, match="needs scopes"):
        creds.refresh(TokenSender())
