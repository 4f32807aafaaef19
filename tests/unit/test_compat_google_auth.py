"""gcauth.compat.google_auth: the google-auth face of a gcauth credential, with no sockets.

Token requests are answered by :class:`tests.kit.creds.TokenSender`; the integration tests
(tests/integration/test_google_libraries.py) run Google's real client libraries.
"""

from __future__ import annotations

import copy
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import google.auth.credentials as ga
import google.auth.exceptions as ga_exc
import google.oauth2.credentials as ga_user
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

import gcauth
from gcauth import authorized_user, compute_engine, service_account
from gcauth._protocol import jwt
from gcauth._retry import NO_RETRY
from gcauth.compat import google_auth
from gcauth.compat.google_auth import Credentials, ScopedCredentials, to_google_auth
from gcauth.exceptions import SigningError, UsageError
from gcauth.tokens import Token
from tests.kit.creds import TokenSender, sa_info, user_info

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
STORAGE = "https://www.googleapis.com/auth/devstorage.full_control"


def sa(**kwargs: Any) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_info(sa_info(), **kwargs)


def herd(n: int, call: Callable[[], object]) -> list[object]:
    barrier = threading.Barrier(n)

    def one(_: int) -> object:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def requested_scopes(sender: TokenSender, index: int = -1) -> list[str]:
    body = sender.requests[index].body
    assert body is not None
    assertion = parse_qs(body.decode())["assertion"][0]
    return str(jwt.decode(assertion)[1]["scope"]).split()


# -- what it is ---------------------------------------------------------------------------------
def test_a_google_auth_credential_of_the_right_kinds() -> None:
    g = to_google_auth(sa(scopes=[CLOUD]))
    assert isinstance(g, ga.Credentials) and isinstance(g, ga.CredentialsWithQuotaProject)
    assert isinstance(g, ga.Scoped) and isinstance(g, ga.Signing)
    assert isinstance(g, ScopedCredentials)
    user = to_google_auth(authorized_user.Credentials.from_authorized_user_info(user_info()))
    assert isinstance(user, ga.Scoped)  # gcauth's user credentials are Scoped (never required)
    assert isinstance(user, ScopedCredentials) and not user.requires_scopes


def test_calling_it_again_is_harmless_and_wrong_objects_are_named() -> None:
    sender = TokenSender()
    creds = sa(scopes=[CLOUD])
    g = to_google_auth(creds, request=sender)
    assert to_google_auth(g) is g
    again = to_google_auth(creds, request=sender)
    g.before_request(None, "GET", "https://x.googleapis.com/", {})
    again.before_request(None, "GET", "https://x.googleapis.com/", {})
    assert again.token == g.token and sender.count == 1  # one cache behind both
    native = ga_user.Credentials("t")
    assert to_google_auth(native) is native
    with pytest.raises(UsageError, match="wraps a gcauth credential"):
        Credentials(native)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"to_google_auth\(\) takes a gcauth credential.*str"):
        to_google_auth("key.json")
    with pytest.raises(UsageError, match=r"requests\.Request\(session\)"):
        import requests

        to_google_auth(creds, request=requests.Session())  # type: ignore[call-overload]


# -- tokens come from the gcauth cache --------------------------------------------------------
def test_token_expiry_and_state_follow_the_gcauth_cache() -> None:
    sender = TokenSender(expires_in=3600)
    creds = sa(scopes=[CLOUD])
    g = to_google_auth(creds, request=sender)
    assert g.token is None and g.expiry is None and not g.valid and not g.expired
    assert g.token_state is ga.TokenState.INVALID
    headers: dict[str, str] = {}
    g.before_request(None, "GET", "https://storage.googleapis.com/x", headers)
    assert headers == {"authorization": "Bearer tok-1"}
    assert g.token == creds.token == "tok-1" and g.valid and not g.expired
    assert g.token_state is ga.TokenState.FRESH
    assert g.expiry is not None and g.expiry.tzinfo is None  # naive UTC, as google-auth's
    assert creds.expiry is not None
    assert g.expiry == creds.expiry.astimezone(timezone.utc).replace(tzinfo=None)
    for _ in range(5):
        g.before_request(None, "GET", "https://storage.googleapis.com/x", {})
    assert sender.count == 1


def test_expired_and_stale_tokens_map_to_google_auth_states() -> None:
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    creds = sa(scopes=[CLOUD]).with_clock(lambda: now[0])
    creds._cache.set(Token("old", expiry=now[0] + timedelta(seconds=100)))
    g = to_google_auth(creds, request=TokenSender())

    def state() -> ga.TokenState:
        return g.token_state

    assert state() is ga.TokenState.STALE and g.valid
    now[0] += timedelta(seconds=95)
    assert state() is ga.TokenState.INVALID and g.expired and not g.valid


def test_a_herd_of_threads_makes_one_token_request() -> None:
    gate = threading.Event()
    sender = TokenSender(gate=gate)
    g = to_google_auth(sa(scopes=[CLOUD]), request=sender)

    def call() -> str | None:
        g.before_request(None, "GET", "https://x.googleapis.com/", {})
        return g.token

    timer = threading.Timer(0.2, gate.set)
    timer.start()
    seen = herd(32, call)
    timer.join()
    assert sender.count == 1 and set(seen) == {"tok-1"}


def test_refresh_after_401_gets_a_new_token_once_for_a_burst() -> None:
    sender = TokenSender()
    g = to_google_auth(sa(scopes=[CLOUD]), request=sender)
    all_sent = threading.Barrier(16)

    def rejected_then_retried() -> tuple[str, str]:
        sent: dict[str, str] = {}
        g.before_request(None, "GET", "https://x.googleapis.com/", sent)
        all_sent.wait()  # every request went out with the same token, and got a 401
        g.refresh(None)  # what AuthorizedSession and AuthorizedHttp do after a 401
        resent: dict[str, str] = {}
        g.before_request(None, "GET", "https://x.googleapis.com/", resent)
        return sent["authorization"], resent["authorization"]

    results = herd(16, rejected_then_retried)
    assert set(results) == {("Bearer tok-1", "Bearer tok-2")} and sender.count == 2
    g.refresh(None)  # an explicit refresh always fetches (google-auth's meaning)
    assert g.token == "tok-3" and sender.count == 3


def test_background_refresh_is_kept() -> None:
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    sender = TokenSender()
    creds = sa(scopes=[CLOUD]).with_clock(lambda: now[0])
    creds._cache.set(Token("stale", expiry=now[0] + timedelta(seconds=60)))
    g = to_google_auth(creds, request=sender)
    headers: dict[str, str] = {}
    g.before_request(None, "GET", "https://x.googleapis.com/", headers)
    assert headers["authorization"] == "Bearer stale"  # no wait: refreshed behind the caller
    deadline = threading.Event()
    for _ in range(200):
        if g.token == "tok-1":
            break
        deadline.wait(0.01)
    assert g.token == "tok-1" and sender.count == 1


# -- scopes, quota project, universe --------------------------------------------------------
def test_with_scopes_if_required_applies_a_librarys_scopes() -> None:
    sender = TokenSender()
    g = to_google_auth(sa(), request=sender)
    assert isinstance(g, ScopedCredentials) and g.requires_scopes
    scoped = ga.with_scopes_if_required(g, None, default_scopes=[STORAGE])
    assert scoped is not g and not scoped.requires_scopes
    assert scoped.default_scopes == (STORAGE,) and scoped.has_scopes([STORAGE])
    scoped.before_request(None, "GET", "https://storage.googleapis.com/b", {})
    assert requested_scopes(sender) == [STORAGE]
    user_scoped = ga.with_scopes_if_required(g, [CLOUD], default_scopes=[STORAGE])
    assert user_scoped.scopes == (CLOUD,)  # a user's scopes win
    already = to_google_auth(sa(scopes=[CLOUD]))
    assert ga.with_scopes_if_required(already, [STORAGE]) is already


def test_quota_project_copies_share_the_token_and_set_the_header() -> None:
    sender = TokenSender()
    g = to_google_auth(sa(scopes=[CLOUD], quota_project_id="own"), request=sender)
    billed = g.with_quota_project("billing")
    assert g.quota_project_id == "own" and billed.quota_project_id == "billing"
    h1: dict[str, str] = {}
    h2: dict[str, str] = {"X-Goog-User-Project": "stale"}
    g.before_request(None, "GET", "https://x.googleapis.com/", h1)
    billed.before_request(None, "GET", "https://x.googleapis.com/", h2)
    assert h1["x-goog-user-project"] == "own"
    assert h2 == {"authorization": "Bearer tok-1", "x-goog-user-project": "billing"}
    assert sender.count == 1
    cleared = g.with_quota_project(None)
    h3: dict[str, str] = {}
    cleared.before_request(None, "GET", "https://x.googleapis.com/", h3)
    assert "x-goog-user-project" not in h3 and cleared.quota_project_id is None
    with pytest.raises(UsageError, match="X-Goog-User-Project"):
        g.with_quota_project("bad\r\nheader")
    applied: dict[str, str] = {}
    billed.apply(applied)
    assert applied == h2


def test_universe_project_and_cred_info_hold_no_secret() -> None:
    creds = sa(scopes=[CLOUD])
    g = to_google_auth(creds)
    assert g.universe_domain == "googleapis.com"
    assert g.project_id == "unit-project"
    info = g.get_cred_info()
    assert info == {"credential_source": "gcauth",
                    "credential_type": "gcauth service_account credentials",
                    "principal": "robot@unit-project.iam.gserviceaccount.com"}
    assert "PRIVATE" not in repr(g) and "robot@" in repr(g)
    user = to_google_auth(authorized_user.Credentials.from_authorized_user_info(user_info()))
    assert user.project_id is None
    assert "s3cret" not in repr(user) + str(user.get_cred_info())


def test_token_and_expiry_cannot_be_assigned() -> None:
    g = to_google_auth(sa(scopes=[CLOUD]))
    with pytest.raises(UsageError, match="refresh"):
        g.token = "forged"
    with pytest.raises(UsageError, match="refresh"):
        g.expiry = datetime(2030, 1, 1)
    with pytest.raises(UsageError, match="no token yet"):
        g.apply({})


# -- signing --------------------------------------------------------------------------------
def test_a_service_account_signs_through_the_adapter() -> None:
    creds = sa()
    g = to_google_auth(creds)
    assert isinstance(g, ga.Signing)
    signature = g.sign_bytes(b"payload")
    creds.signer.public_key().verify(signature, b"payload", padding.PKCS1v15(), hashes.SHA256())
    assert g.signer_email == "robot@unit-project.iam.gserviceaccount.com"
    assert g.signer.key_id == "key-1" and g.signer.sign("payload") == signature


# (Compute Engine and impersonated credentials sign through IAM signBlob: they are signers.)
@pytest.mark.parametrize("make", [
    lambda: authorized_user.Credentials.from_authorized_user_info(user_info()),
], ids=["authorized_user"])
def test_a_credential_that_cannot_sign_says_so(make: Callable[[], gcauth.credentials.Credentials],
                                               ) -> None:
    g = to_google_auth(make())
    for attempt in (lambda: g.sign_bytes(b"x"), lambda: g.signer_email, lambda: g.signer):
        with pytest.raises(SigningError, match=r"cannot sign.*service-account key.*IAM") as info:
            attempt()
        assert not isinstance(info.value, AttributeError)
    assert type(g.gcauth).__module__ in str(info.value)  # names the credential type


# -- errors are gcauth's and google-auth's --------------------------------------------------
def test_refresh_errors_are_both_libraries_errors() -> None:
    sender = TokenSender(status=400, body={"error": "invalid_grant",
                                           "error_description": "Invalid JWT Signature."})
    g = to_google_auth(sa(scopes=[CLOUD], retry=NO_RETRY), request=sender)
    with pytest.raises(ga_exc.RefreshError) as info:
        g.before_request(None, "GET", "https://x.googleapis.com/", {})
    error = info.value
    assert isinstance(error, gcauth.RefreshError) and isinstance(error, google_auth.RefreshError)
    assert error.error == "invalid_grant" and error.status == 400 and not error.retryable
    with pytest.raises(gcauth.RefreshError):
        g.refresh(None)
    busy = to_google_auth(sa(scopes=[CLOUD], retry=NO_RETRY),
                          request=TokenSender(status=503, body={}))
    with pytest.raises(ga_exc.RefreshError) as retry_info:
        busy.refresh(None)
    assert retry_info.value.retryable


def test_transport_errors_are_google_auth_transport_errors() -> None:
    class Down:
        def send(self, request: Any) -> Any:
            raise gcauth.TransportError("connection refused", url=request.url)

    g = to_google_auth(sa(scopes=[CLOUD], retry=NO_RETRY), request=Down())
    with pytest.raises(ga_exc.TransportError) as info:
        g.before_request(None, "GET", "https://x.googleapis.com/", {})
    assert isinstance(info.value, gcauth.TransportError) and info.value.retryable


# -- copies ---------------------------------------------------------------------------------
def test_pickle_and_deepcopy_give_an_independent_adapter() -> None:
    sender = TokenSender()
    g = to_google_auth(sa(scopes=[CLOUD]), request=sender).with_quota_project("q")
    g.before_request(None, "GET", "https://x.googleapis.com/", {})
    for twin in (pickle.loads(pickle.dumps(g)), copy.deepcopy(g)):
        assert isinstance(twin, ScopedCredentials)
        assert twin.token == "tok-1" and twin.quota_project_id == "q"  # the token travels
        assert twin.gcauth is not g.gcauth and twin.gcauth._cache is not g.gcauth._cache
    shallow = copy.copy(g)
    assert shallow.gcauth is g.gcauth and shallow.quota_project_id == "q"
    unscoped = to_google_auth(compute_engine.Credentials())
    assert isinstance(pickle.loads(pickle.dumps(unscoped)), Credentials)


def test_gcauth_credentials_refuse_oauth2client_authorize() -> None:
    with pytest.raises(UsageError, match=r"to_google_auth\(credentials\)") as info:
        sa().authorize(object())
    assert not isinstance(info.value, AttributeError)
