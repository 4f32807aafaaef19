"""Token-endpoint, metadata-server and device-flow replies fuzzed through the real flows:
every flow ends in a result or a gcauth error, with bounded retries and finite sleeps."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from gcauth import authorized_user, compute_engine, service_account
from gcauth._http import Flow, Headers, HttpRequest, HttpResponse, Sleep
from gcauth._protocol import metadata as md
from gcauth._protocol import rfc6749, rfc7009, rfc8628
from gcauth._retry import DEFAULT_RETRY
from gcauth.flow import DeviceFlow, InstalledAppFlow
from gcauth.tokens import Token
from tests.kit.creds import T0, sa_info, user_info

from .strategies import DEEP_JSON, FUZZ, dumps, only_gcauth_errors, reply_sequences, responses

#: Generous upper bound on requests any non-polling flow may make (retries are bounded).
MAX_REQUESTS = DEFAULT_RETRY.max_attempts * 2
OK_META = Headers({"metadata-flavor": "Google"})


def run(flow: Flow[Any], replies: list[HttpResponse], *, limit: int = MAX_REQUESTS,
        polling: bool = False, max_sleep: float | None = None) -> Any:
    """Drive ``flow`` answering with ``replies`` (the last one repeats). A non-polling flow
    must finish within ``limit`` requests; sleeps must be finite and non-negative."""
    count = 0
    slept = 0.0
    step = next(flow)
    try:
        while True:
            if isinstance(step, Sleep):
                assert math.isfinite(step.seconds) and step.seconds >= 0, step
                slept += step.seconds
                if max_sleep is not None:
                    assert slept <= max_sleep, "polled past the code's expiry"
                step = flow.send(None)
                continue
            assert isinstance(step, HttpRequest)
            count += 1
            if count > limit:
                assert polling, f"flow made more than {limit} requests"
                flow.close()
                return None
            step = flow.send(replies[min(count - 1, len(replies) - 1)])
    except StopIteration as stop:
        if not polling:
            assert slept <= DEFAULT_RETRY.deadline + DEFAULT_RETRY.retry_after_cap
        return stop.value


def _token_ok(token: Any) -> None:
    assert isinstance(token, Token) and isinstance(token.access_token, str)
    if token.expiry is not None:
        token.state(T0)  # comparable, tz-aware


SA = service_account.Credentials.from_service_account_info(
    sa_info(), scopes=["https://www.googleapis.com/auth/cloud-platform"])
USER = authorized_user.Credentials.from_authorized_user_info(user_info())
GCE = compute_engine.Credentials()


@FUZZ
@given(responses())
@example(HttpResponse(200, Headers({}), b'{"access_token": "a", "expires_in": 1e999}'))
@example(HttpResponse(200, Headers({}), b'{"access_token": "a", "expires_in": NaN}'))
@example(HttpResponse(200, Headers({}), b'{"access_token": "a", "expires_in": 1e15}'))
@example(HttpResponse(400, Headers({}), DEEP_JSON[0]))
@example(HttpResponse(200, Headers({}), DEEP_JSON[1]))
def test_parse_token_response(response: HttpResponse) -> None:
    def parse() -> None:
        reply = rfc6749.parse_token_response(response, "https://oauth2.googleapis.com/token")
        reply.expiry(T0)
        repr(reply)

    only_gcauth_errors(parse)
    error = only_gcauth_errors(lambda: rfc6749.parse_error(response, "https://x/token"))
    if error is not None:
        str(error)


@FUZZ
@given(reply_sequences, st.sampled_from(["sa", "user", "gce"]))
def test_credential_token_flows(replies: list[HttpResponse], which: str) -> None:
    creds = {"sa": SA, "user": USER, "gce": GCE}[which]
    token = only_gcauth_errors(lambda: run(creds.token_flow(T0), replies))
    if token is not None:
        _token_ok(token)


@FUZZ
@given(st.fixed_dictionaries({"access_token": st.text(min_size=1, max_size=10)}, optional={
    "expires_in": st.integers() | st.floats() | st.integers(min_value=10**300,
                                                            max_value=10**400)}))
@example({"access_token": "a", "expires_in": 10**400})
@example({"access_token": "a", "expires_in": 1e300})
def test_metadata_expires_in(body: dict[str, Any]) -> None:
    reply = HttpResponse(200, OK_META, dumps(body))
    token = only_gcauth_errors(lambda: run(GCE.token_flow(T0), [reply]))
    if token is not None:
        _token_ok(token)


@FUZZ
@given(reply_sequences)
def test_metadata_helper_flows(replies: list[HttpResponse]) -> None:
    host = "127.0.0.1:9"
    for flow in (md.info_flow(host, "default"), md.project_id_flow(host),
                 md.ping_flow(host, 0.1, attempts=3), md.fetch_flow(host, "instance/id")):
        only_gcauth_errors(lambda flow=flow: run(flow, replies))  # type: ignore[misc]


@FUZZ
@given(reply_sequences)
def test_revoke_flow(replies: list[HttpResponse]) -> None:
    result = only_gcauth_errors(
        lambda: run(rfc7009.revoke_flow("https://oauth2.googleapis.com/revoke", "t"), replies))
    assert result in (None, True, False)


CLIENT = {"installed": {"client_id": "cid", "client_secret": "csecret",
                        "token_uri": "https://oauth2.googleapis.com/token"}}


@FUZZ
@given(reply_sequences)
def test_authorization_code_exchange(replies: list[HttpResponse]) -> None:
    flow = InstalledAppFlow(CLIENT, ["openid"], redirect_uri="http://localhost:1/")
    flow.authorization_url()
    creds = only_gcauth_errors(lambda: run(flow.token_flow("code"), replies))
    if creds is not None:
        repr(creds)
        creds.expiry  # noqa: B018


@FUZZ
@given(reply_sequences)
@example([HttpResponse(200, Headers({}), dumps({
    "device_code": "d", "user_code": "u", "verification_uri": "http://[bad"}))])
@example([HttpResponse(200, Headers({}), dumps({
    "device_code": "d", "user_code": "u", "verification_uri": "https://x", "expires_in": "nan"})),
    HttpResponse(400, Headers({}), dumps({"error": "authorization_pending"}))])
def test_device_flow(replies: list[HttpResponse]) -> None:
    flow = DeviceFlow(CLIENT, ["openid"], monotonic=lambda: 0.0)
    auth = only_gcauth_errors(lambda: run(flow.authorization_flow(), replies))
    if auth is None:
        return
    assert isinstance(auth, rfc8628.DeviceAuthorization)
    # polling is bounded by the code's lifetime, so both must be sane numbers
    assert math.isfinite(auth.expires_in) and math.isfinite(auth.interval) and auth.interval > 0
    only_gcauth_errors(lambda: run(flow.token_flow(auth), replies[1:] or replies, limit=1000,
                                   polling=True, max_sleep=auth.expires_in))
