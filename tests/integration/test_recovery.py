"""Fault recovery against the emulator (issue 5, part 2).

Each test injects faults through the emulator's test-only control surface
(``emu.faults``, see ``docs/emulator.md``) and proves one promise of ``docs/reliability.md``:

* transient faults on the token endpoint and the metadata server are retried with bounded,
  jittered backoff and the call succeeds;
* permanent errors fail fast (one request) with a gcauth error naming the endpoint, the
  RFC 6749 error and the fix;
* a stalled server costs at most the configured timeout per attempt;
* a failed background refresh leaves the still-valid token in use and the next caller retries.

Delays are tiny (``FAST``) so the file runs in seconds; elapsed-time assertions prove
boundedness with generous slack, never speed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from gcauth import authorized_user, compute_engine, service_account
from gcauth._http import run_async, run_sync
from gcauth._protocol.rfc6749 import token_exchange
from gcauth._retry import RetryPolicy
from gcauth.emulator import Emulator
from gcauth.exceptions import GCAuthError, RefreshError, TransportError
from gcauth.tokens import Token, TokenState, utcnow
from gcauth.transport import httpx as gc_httpx
from gcauth.transport import requests as gc_requests
from gcauth.transport import urllib3 as gc_urllib3

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
DRIVE = "https://www.googleapis.com/auth/drive"
#: Up to 4 attempts, sleeping 5-10 ms, then 10-20 ms, then 20-40 ms (full jitter, half floor).
FAST = RetryPolicy(max_attempts=4, initial=0.01, multiplier=2.0, cap=0.04, deadline=1.0,
                   retry_after_cap=0.2)

TRANSPORTS: dict[str, Callable[[], Any]] = {
    "urllib3": gc_urllib3.Request,
    "requests": gc_requests.Request,
    "httpx": gc_httpx.Request,
}


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Iterator[Any]:
    sender = TRANSPORTS[request.param]()
    yield sender
    close_sender(sender)


def close_sender(sender: Any) -> None:
    if isinstance(sender, gc_requests.Request):
        sender.session.close()
    elif isinstance(sender, gc_urllib3.Request):
        sender.http.clear()
    else:
        sender.close()


@pytest.fixture
def emu(fresh_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """A private emulator that also answers as the metadata server."""
    for name, value in fresh_emulator.env().items():
        monkeypatch.setenv(name, value)
    return fresh_emulator


class Clock:
    """A settable clock for credentials (``with_clock``)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def sa_creds(emu: Emulator, **kwargs: Any) -> service_account.Credentials:
    key = emu.create_service_account()
    kwargs.setdefault("scopes", [CLOUD])
    kwargs.setdefault("retry", FAST)
    return service_account.Credentials.from_service_account_info(key, **kwargs)


def user_creds(emu: Emulator, **kwargs: Any) -> authorized_user.Credentials:
    kwargs.setdefault("retry", FAST)
    return authorized_user.Credentials.from_authorized_user_info(
        emu.create_authorized_user(), **kwargs)


def gce_creds(**kwargs: Any) -> compute_engine.Credentials:
    kwargs.setdefault("retry", FAST)
    return compute_engine.Credentials(**kwargs)


def fetch(creds: Any, sender: Any) -> tuple[Token, list[float]]:
    """One token via the credential's own flow, recording every backoff sleep."""
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    return run_sync(creds.token_flow(utcnow()), sender.send, sleep), sleeps


def assert_jittered_backoff(sleeps: list[float], policy: RetryPolicy = FAST) -> None:
    """Each delay lies within [ceiling/2, ceiling] of its attempt, and their sum in the deadline."""
    for attempt, delay in enumerate(sleeps):
        ceiling = min(policy.cap, policy.initial * policy.multiplier**attempt)
        assert ceiling / 2 <= delay <= ceiling, (attempt, delay)
    assert sum(sleeps) <= policy.deadline


def join_background_refreshes(timeout: float = 10.0) -> None:
    for thread in threading.enumerate():
        if thread.name == "gcauth-refresh":
            thread.join(timeout)
            assert not thread.is_alive()


# -- transient faults are retried ----------------------------------------------------------
TOKEN_FAULTS = [
    pytest.param({"kind": "status", "status": 503}, id="503"),
    pytest.param({"kind": "status", "status": 500}, id="500"),
    pytest.param({"kind": "status", "status": 502}, id="502"),
    pytest.param({"kind": "status", "status": 429}, id="429"),
    pytest.param({"kind": "reset"}, id="reset"),
    pytest.param({"kind": "truncate"}, id="truncated"),
    pytest.param({"kind": "non_json"}, id="non-json"),
]


@pytest.mark.parametrize("fault", TOKEN_FAULTS)
def test_token_endpoint_transient_faults_are_retried(emu: Emulator, transport: Any,
                                                     fault: dict[str, Any]) -> None:
    creds = sa_creds(emu)
    emu.faults.add("token", count=2, **fault)
    token, sleeps = fetch(creds, transport)
    assert emu.is_access_token_valid(token.access_token)
    assert emu.counts["token"] == 3 and emu.faults.injected[fault["kind"]] == 2
    assert len(sleeps) == 2
    assert_jittered_backoff(sleeps)


@pytest.mark.parametrize("fault", TOKEN_FAULTS[:1] + TOKEN_FAULTS[4:])
def test_user_refresh_survives_transient_faults(emu: Emulator, transport: Any,
                                                fault: dict[str, Any]) -> None:
    creds = user_creds(emu)
    emu.faults.add("token", count=3, **fault)
    token = creds.get_token(transport)  # the real path: cache + driver + retries
    assert emu.is_access_token_valid(token.access_token)
    assert emu.counts["token"] == 4


METADATA_FAULTS = [
    pytest.param({"kind": "status", "status": 503}, id="503"),
    pytest.param({"kind": "status", "status": 500}, id="500"),
    pytest.param({"kind": "status", "status": 429}, id="429"),
    pytest.param({"kind": "reset"}, id="reset"),
    pytest.param({"kind": "truncate"}, id="truncated"),
]


@pytest.mark.parametrize("fault", METADATA_FAULTS)
def test_metadata_transient_faults_are_retried(emu: Emulator, transport: Any,
                                               fault: dict[str, Any]) -> None:
    creds = gce_creds()
    emu.faults.add("metadata", count=2, **fault)
    token, sleeps = fetch(creds, transport)
    assert emu.is_access_token_valid(token.access_token)
    assert emu.counts["metadata_token"] == 3
    assert len(sleeps) == 2
    assert_jittered_backoff(sleeps)


def test_metadata_default_policy_retries_without_configuration(emu: Emulator) -> None:
    emu.faults.add("metadata", kind="status", status=503, count=2)
    token = compute_engine.Credentials().get_token()
    assert emu.is_access_token_valid(token.access_token)
    assert emu.counts["metadata_token"] == 3


def test_metadata_reply_without_flavor_header_is_refused(emu: Emulator) -> None:
    """A 200 that lacks ``Metadata-Flavor: Google`` is not from a metadata server: never
    trusted as a token, and not retried (the same host would answer the same way)."""
    emu.faults.add("metadata", kind="non_json", count=5)
    with pytest.raises(RefreshError, match="Metadata-Flavor") as err:
        gce_creds().get_token()
    assert emu.counts["metadata_token"] == 1
    assert "GCE_METADATA_HOST" in str(err.value)


def test_async_token_refresh_retries_on_the_event_loop(emu: Emulator) -> None:
    creds = sa_creds(emu)
    emu.faults.add("token", kind="status", status=503, count=2)
    emu.faults.add("token", kind="reset", count=1)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    async def main() -> Token:
        return await run_async(creds.token_flow(utcnow()), gc_httpx.AsyncRequest().send, sleep)

    token = asyncio.run(main())
    assert emu.is_access_token_valid(token.access_token)
    assert emu.counts["token"] == 4
    assert_jittered_backoff(slept)


# -- retries are bounded -------------------------------------------------------------------
def test_persistent_5xx_gives_up_after_max_attempts(emu: Emulator, transport: Any) -> None:
    creds = sa_creds(emu)
    emu.faults.add("token", kind="status", status=503, count=50)
    started = time.monotonic()
    with pytest.raises(RefreshError) as err:
        fetch(creds, transport)
    assert emu.counts["token"] == FAST.max_attempts
    assert time.monotonic() - started < FAST.deadline + 5
    exc = err.value
    assert exc.retryable and exc.status == 503 and exc.error == "temporarily_unavailable"
    assert emu.token_uri in str(exc) and "Fix:" in str(exc)


def test_persistent_resets_give_up_with_a_transport_error(emu: Emulator, transport: Any) -> None:
    creds = gce_creds()
    emu.faults.add("metadata", kind="reset", count=50)
    with pytest.raises(TransportError) as err:
        fetch(creds, transport)
    assert emu.counts["metadata_token"] == FAST.max_attempts
    assert "/computeMetadata/v1/instance/service-accounts/default/token" in str(err.value)


def test_backoff_deadline_bounds_total_sleep(emu: Emulator) -> None:
    policy = RetryPolicy(max_attempts=1000, initial=0.02, cap=0.02, deadline=0.1)
    creds = sa_creds(emu, retry=policy)
    emu.faults.add("token", kind="status", status=500, count=1000)
    with pytest.raises(RefreshError):
        _, sleeps = fetch(creds, gc_urllib3.Request())
    # each sleep is >= 0.01 s, so at most 10 fit in 0.1 s: 11 attempts at the very most
    assert 2 <= emu.counts["token"] <= 11


def test_retry_after_is_honoured_and_capped(emu: Emulator) -> None:
    creds = sa_creds(emu)
    emu.faults.add("token", kind="status", status=429, retry_after=0.05, count=1)
    emu.faults.add("token", kind="status", status=503, retry_after=3600, count=1)
    _, sleeps = fetch(creds, gc_urllib3.Request())
    assert sleeps == [0.05, FAST.retry_after_cap]


def test_jitter_spreads_retries() -> None:
    """Two clients failing together do not retry in lockstep."""
    low = RetryPolicy(initial=1.0, jitter=lambda: 0.0)
    high = RetryPolicy(initial=1.0, jitter=lambda: 1.0)
    assert [low.delay(n) for n in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert [high.delay(n) for n in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert len({RetryPolicy().delay(2) for _ in range(20)}) > 1


# -- permanent errors fail fast ------------------------------------------------------------
def _assert_fast_failure(exc: RefreshError, emu: Emulator, error: str, fix: str) -> None:
    text = str(exc)
    assert exc.error == error and not exc.retryable
    assert exc.endpoint == emu.token_uri and emu.token_uri in text
    assert repr(error) in text and "Fix:" in text and fix in text
    assert emu.counts["token"] == 1


def test_revoked_refresh_token_fails_fast_with_invalid_grant(emu: Emulator) -> None:
    info = emu.create_authorized_user()
    emu.revoke(info["refresh_token"])
    creds = authorized_user.Credentials.from_authorized_user_info(info, retry=FAST)
    with pytest.raises(RefreshError) as err:
        creds.get_token()
    _assert_fast_failure(err.value, emu, "invalid_grant", "log in again")
    assert "gcauth auth application-default login" in str(err.value)


def test_injected_invalid_grant_fails_fast(emu: Emulator) -> None:
    creds = sa_creds(emu)
    emu.faults.add("token", kind="invalid_grant", count=5)
    with pytest.raises(RefreshError) as err:
        creds.get_token()
    _assert_fast_failure(err.value, emu, "invalid_grant", "invalid, expired or revoked")


def test_unknown_scope_fails_fast_with_invalid_scope(emu: Emulator) -> None:
    creds = sa_creds(emu, scopes=["https://evil.example.com/scope"])
    with pytest.raises(RefreshError) as err:
        creds.get_token()
    _assert_fast_failure(err.value, emu, "invalid_scope", "ask only for scopes")


def test_ungranted_user_scope_fails_fast_with_invalid_scope(emu: Emulator) -> None:
    creds = user_creds(emu, scopes=[DRIVE])
    with pytest.raises(RefreshError) as err:
        creds.get_token()
    _assert_fast_failure(err.value, emu, "invalid_scope", "ask only for scopes")


def test_delegation_without_dwd_fails_fast_with_unauthorized_client(emu: Emulator) -> None:
    creds = sa_creds(emu).with_subject("alice@example.com")
    with pytest.raises(RefreshError) as err:
        creds.get_token()
    _assert_fast_failure(err.value, emu, "unauthorized_client", "domain-wide delegation")
    assert err.value.status == 401


def test_wrong_client_secret_fails_fast_with_invalid_client(emu: Emulator) -> None:
    info = {**emu.create_authorized_user(), "client_secret": "not-the-secret"}
    creds = authorized_user.Credentials.from_authorized_user_info(info, retry=FAST)
    with pytest.raises(RefreshError) as err:
        creds.get_token()
    _assert_fast_failure(err.value, emu, "invalid_client", "client_secret")


def test_metadata_403_fails_fast(emu: Emulator) -> None:
    emu.faults.add("metadata", kind="status", status=403, count=5)
    with pytest.raises(RefreshError) as err:
        gce_creds().get_token()
    exc = err.value
    assert exc.status == 403 and not exc.retryable
    assert emu.counts["metadata_token"] == 1
    assert exc.endpoint is not None and exc.endpoint.startswith(emu.url + "/computeMetadata/")
    assert exc.endpoint in str(exc) and "HTTP 403" in str(exc) and "access scopes" in str(exc)


def test_unknown_metadata_account_fails_fast(emu: Emulator) -> None:
    with pytest.raises(RefreshError, match="HTTP 404") as err:
        gce_creds(service_account_email="nobody@example.iam.gserviceaccount.com").get_token()
    assert emu.counts["metadata_token"] == 1
    assert "service account attached" in str(err.value)


# -- a stalled server costs at most the configured timeout ---------------------------------
def test_stalled_metadata_attempt_times_out_then_succeeds(emu: Emulator, transport: Any) -> None:
    timeout = 0.5
    creds = gce_creds(timeout=timeout, retry=RetryPolicy(max_attempts=2, initial=0.01, cap=0.01))
    emu.faults.add("metadata", kind="stall", seconds=30, count=1)
    started = time.monotonic()
    token, _ = fetch(creds, transport)
    elapsed = time.monotonic() - started
    assert emu.is_access_token_valid(token.access_token)
    assert elapsed < timeout * 2 + 2


def test_stalled_metadata_server_costs_at_most_timeout_per_attempt(emu: Emulator,
                                                                   transport: Any) -> None:
    timeout, attempts = 0.3, 3
    creds = gce_creds(timeout=timeout,
                      retry=RetryPolicy(max_attempts=attempts, initial=0.01, cap=0.01))
    emu.faults.add("metadata", kind="stall", seconds=30, count=10)
    started = time.monotonic()
    with pytest.raises(TransportError) as err:
        fetch(creds, transport)
    elapsed = time.monotonic() - started
    assert err.value.timeout and "timed out" in str(err.value)
    assert elapsed < timeout * attempts + 2
    assert emu.counts["metadata_token"] == attempts


def test_stalled_token_endpoint_costs_at_most_the_flow_timeout(emu: Emulator,
                                                               transport: Any) -> None:
    info = emu.create_authorized_user()
    params = {"grant_type": "refresh_token", "refresh_token": info["refresh_token"],
              "client_id": info["client_id"], "client_secret": info["client_secret"]}
    emu.faults.add("token", kind="stall", seconds=30, count=10)
    started = time.monotonic()
    with pytest.raises(TransportError) as err:
        run_sync(token_exchange(emu.token_uri, params, timeout=0.3,
                                retry=RetryPolicy(max_attempts=2, initial=0.01, cap=0.01)),
                 transport.send)
    assert err.value.timeout
    assert time.monotonic() - started < 0.3 * 2 + 2


def test_stalled_token_endpoint_costs_at_most_the_credential_timeout(emu: Emulator) -> None:
    creds = sa_creds(emu, timeout=0.3, retry=RetryPolicy(max_attempts=2, initial=0.01, cap=0.01))
    user = user_creds(emu, timeout=0.3, retry=RetryPolicy(max_attempts=2, initial=0.01, cap=0.01))
    emu.faults.add("token", kind="stall", seconds=30, count=10)
    for each in (creds, user):
        started = time.monotonic()
        with pytest.raises(TransportError):
            each.get_token()
        assert time.monotonic() - started < 0.3 * 2 + 2


def test_async_stalled_metadata_is_bounded(emu: Emulator) -> None:
    timeout = 0.3
    creds = gce_creds(timeout=timeout, retry=RetryPolicy(max_attempts=2, initial=0.01, cap=0.01))
    emu.faults.add("metadata", kind="stall", seconds=30, count=10)

    async def main() -> float:
        started = time.monotonic()
        with pytest.raises(TransportError):
            await creds.aget_token(gc_httpx.AsyncRequest())
        return time.monotonic() - started

    assert asyncio.run(main()) < timeout * 2 + 2


# -- background refresh failure ------------------------------------------------------------
LIFETIME = 240  # stale for the last 60 s, invalid for the last 10 s


def _stale(creds: Any, clock: Clock) -> None:
    """Move the client clock into the token's refresh window, well before its expiry (and
    less than the 5 minutes of skew the token endpoint tolerates in a JWT's ``iat``)."""
    clock.advance(LIFETIME - 40)
    assert creds.token_state is TokenState.STALE


@pytest.mark.parametrize("make", [sa_creds, user_creds], ids=["service_account", "user"])
def test_failed_background_refresh_keeps_the_valid_token(emu: Emulator, make: Any) -> None:
    emu.set_token_lifetime(LIFETIME)
    clock = Clock()
    creds = make(emu).with_clock(clock)
    first = creds.get_token()
    _stale(creds, clock)
    emu.reset_counts()
    emu.faults.add("token", kind="status", status=503, count=100)

    assert creds.get_token() is first  # served at once; the refresh runs in the background
    join_background_refreshes()
    assert emu.counts["token"] == FAST.max_attempts  # it tried, and gave up
    assert creds.token == first.access_token and creds.token_state is TokenState.STALE
    assert creds.get_token() is first  # ...and the token is still in use
    join_background_refreshes()

    emu.faults.clear()
    emu.reset_counts()
    assert creds.get_token() is first  # the next caller starts a new background refresh
    join_background_refreshes()
    assert emu.counts["token"] == 1
    # a property, so mypy's narrowing from the assertion above does not hold
    assert creds.token != first.access_token
    assert creds.token_state is TokenState.FRESH  # type: ignore[comparison-overlap]
    assert emu.is_access_token_valid(creds.token)


def test_failed_background_refresh_async(emu: Emulator) -> None:
    emu.set_token_lifetime(LIFETIME)
    clock = Clock()
    creds = sa_creds(emu).with_clock(clock)
    request = gc_httpx.AsyncRequest()

    async def settle() -> None:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.gather(*others, return_exceptions=True)

    async def main() -> None:
        first = await creds.aget_token(request)
        _stale(creds, clock)
        emu.faults.add("token", kind="reset", count=100)
        assert await creds.aget_token(request) is first
        await settle()
        assert creds.token == first.access_token
        emu.faults.clear()
        assert await creds.aget_token(request) is first
        await settle()
        assert creds.token != first.access_token and emu.is_access_token_valid(creds.token)

    asyncio.run(main())


def test_failed_blocking_refresh_is_not_cached(emu: Emulator) -> None:
    """With no usable token the caller sees the error; the very next caller tries again."""
    creds = sa_creds(emu)
    emu.faults.add("token", kind="status", status=503, count=FAST.max_attempts)
    with pytest.raises(RefreshError):
        creds.get_token()
    token = creds.get_token()
    assert emu.is_access_token_valid(token.access_token)
    assert emu.counts["token"] == FAST.max_attempts + 1


def test_concurrent_callers_share_one_refresh_through_faults(emu: Emulator) -> None:
    creds = sa_creds(emu)
    emu.faults.add("token", kind="status", status=503, count=2)
    barrier = threading.Barrier(16)
    results: list[Token | BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(creds.get_token())
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 16
    assert all(isinstance(r, Token) for r in results)
    assert len({r.access_token for r in results if isinstance(r, Token)}) == 1
    assert emu.counts["token"] == 3  # one refresh: two faults, one success


# -- expired and skewed tokens -------------------------------------------------------------
API_PATH = "/sql/v1beta4/projects/emu-project/instances"


def test_token_issued_expired_is_replaced_after_401(emu: Emulator) -> None:
    url = emu.api_url + API_PATH
    creds = sa_creds(emu)
    emu.faults.add("token", kind="expired", count=1)
    with gc_requests.AuthorizedSession(creds) as session:
        assert session.get(url, timeout=10).status_code == 200
    with gc_urllib3.AuthorizedHttp(sa_creds(emu)) as http:
        emu.faults.add("token", kind="expired", count=1)
        assert http.request("GET", url).status == 200
    emu.faults.add("token", kind="expired", count=1)
    import httpx

    with httpx.Client(auth=gc_httpx.Auth(sa_creds(emu))) as client:
        assert client.get(url).status_code == 200
    assert emu.counts["token"] == 6  # an expired token and its replacement, three times


@pytest.mark.parametrize("skew", [-120.0, 120.0])
def test_moderate_server_clock_skew_is_tolerated(emu: Emulator, skew: float) -> None:
    emu.faults.add("token", kind="skew", seconds=skew, count=1)
    token = sa_creds(emu).get_token()
    assert emu.is_access_token_valid(token.access_token)


def test_every_failure_is_a_gcauth_error(emu: Emulator) -> None:
    """Whatever the fault, callers need to catch only GCAuthError."""
    kinds = ["status", "reset", "truncate", "non_json", "invalid_grant"]
    for kind in kinds:
        emu.faults.add("token", kind=kind, count=10)
        emu.faults.add("metadata", kind=kind if kind != "invalid_grant" else "status", count=10)
        for creds in (sa_creds(emu), user_creds(emu), gce_creds()):
            with pytest.raises(GCAuthError):
                creds.get_token()
        emu.faults.clear()
