"""PKCE (RFC 7636), the device grant (RFC 8628) and revocation (RFC 7009), driven by hand."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import parse_qs

import pytest

from gcauth._http import HttpRequest, HttpResponse
from gcauth._protocol.rfc7009 import revoke_flow
from gcauth._protocol.rfc7636 import new_pkce, s256_challenge
from gcauth._protocol.rfc8628 import (
    DEVICE_CODE_GRANT,
    DeviceAuthorization,
    device_authorization_flow,
    device_token_flow,
    parse_device_authorization,
)
from gcauth.exceptions import FlowError, RefreshError, TransportError
from tests.kit.creds import drive, reply

TOKEN_URI = "https://oauth2.googleapis.com/token"
DEVICE_URI = "https://oauth2.googleapis.com/device/code"


# -- RFC 7636 -----------------------------------------------------------------------------
def test_s256_matches_the_rfc_7636_appendix_b_example() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_new_pkce_is_random_well_formed_and_keeps_the_verifier_out_of_repr() -> None:
    pairs = [new_pkce() for _ in range(20)]
    assert len({p.verifier for p in pairs}) == 20
    for pair in pairs:
        assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", pair.verifier)
        assert pair.method == "S256"
        assert pair.challenge == s256_challenge(pair.verifier)
        assert pair.verifier not in repr(pair)
        assert pair.authorization_params() == {"code_challenge": pair.challenge,
                                               "code_challenge_method": "S256"}
        assert pair.token_params() == {"code_verifier": pair.verifier}


@pytest.mark.parametrize("verifier", ["short", "x" * 129, "a" * 42 + " ", "é" * 50])
def test_invalid_verifiers_are_refused(verifier: str) -> None:
    with pytest.raises(ValueError):
        s256_challenge(verifier)


def test_pkce_entropy_has_a_floor() -> None:
    with pytest.raises(ValueError):
        new_pkce(16)


# -- RFC 8628 §3.1/3.2 --------------------------------------------------------------------
def test_device_authorization_request_and_google_style_response() -> None:
    answer = reply(body={"device_code": "dev-secret", "user_code": "ABCD-EFGH",
                         "verification_url": "https://www.google.com/device",
                         "expires_in": 1800, "interval": 5})
    result, requests, _ = drive(device_authorization_flow(DEVICE_URI, "cid", ["s1", "s2"]),
                                lambda r: answer)
    assert requests[0].method == "POST" and requests[0].url == DEVICE_URI
    assert parse_qs((requests[0].body or b"").decode()) == {"client_id": ["cid"],
                                                           "scope": ["s1 s2"]}
    assert result.user_code == "ABCD-EFGH"
    assert result.verification_uri == "https://www.google.com/device"
    assert (result.expires_in, result.interval) == (1800, 5)
    assert "dev-secret" not in repr(result)


def test_rfc_style_response_and_defaults() -> None:
    parsed = parse_device_authorization(reply(body={
        "device_code": "d", "user_code": "U", "verification_uri": "https://example.test/dev",
        "verification_uri_complete": "https://example.test/dev?c=U"}), DEVICE_URI)
    assert parsed.interval == 5 and parsed.expires_in == 1800
    assert parsed.verification_uri_complete == "https://example.test/dev?c=U"


@pytest.mark.parametrize("body", [
    {"user_code": "U", "verification_uri": "https://x.test"},
    {"device_code": "d", "verification_uri": "https://x.test"},
    {"device_code": "d", "user_code": "U"},
    {"device_code": "d", "user_code": "U", "verification_uri": "javascript:alert(1)"},
    [1, 2],
])
def test_malformed_device_responses_are_flow_errors(body: object) -> None:
    with pytest.raises(FlowError):
        parse_device_authorization(reply(body=body), DEVICE_URI)


def test_device_authorization_error_is_a_refresh_error() -> None:
    with pytest.raises(RefreshError) as info:
        parse_device_authorization(reply(401, body={"error": "invalid_client"}), DEVICE_URI)
    assert info.value.error == "invalid_client"


# -- RFC 8628 §3.4/3.5 polling ------------------------------------------------------------
AUTH = DeviceAuthorization(device_code="dev-secret", user_code="ABCD-EFGH",
                           verification_uri="https://www.google.com/device", expires_in=600,
                           interval=5)
TOKENS = {"access_token": "at", "expires_in": 3600, "refresh_token": "rt",
          "scope": "s1", "token_type": "Bearer"}


def scripted(*answers: tuple[int, object] | Exception,
             ) -> Callable[[HttpRequest], HttpResponse | Exception]:
    queue = list(answers)

    def answer(_request: HttpRequest) -> HttpResponse | Exception:
        item = queue.pop(0)
        if isinstance(item, Exception):
            return item
        status, body = item
        return reply(status, body=body)

    return answer


def test_polling_honours_interval_pending_and_slow_down() -> None:
    answer = scripted((428, {"error": "authorization_pending"}),
                      (403, {"error": "slow_down"}),
                      (428, {"error": "authorization_pending"}),
                      (200, TOKENS))
    flow = device_token_flow(TOKEN_URI, AUTH, "cid", "csecret", monotonic=lambda: 0.0)
    result, requests, sleeps = drive(flow, answer)
    assert result.refresh_token == "rt"
    assert sleeps == [5, 5, 10, 10]  # slow_down adds 5 s for the rest of the flow
    body = parse_qs((requests[0].body or b"").decode())
    assert body == {"grant_type": [DEVICE_CODE_GRANT], "device_code": ["dev-secret"],
                    "client_id": ["cid"], "client_secret": ["csecret"]}


def test_access_denied_stops_polling() -> None:
    flow = device_token_flow(TOKEN_URI, AUTH, "cid", "s", monotonic=lambda: 0.0)
    with pytest.raises(FlowError) as info:
        drive(flow, scripted((428, {"error": "authorization_pending"}),
                             (403, {"error": "access_denied"})))
    assert info.value.error == "access_denied"
    assert "denied" in str(info.value)


def test_expired_token_from_the_server_stops_polling() -> None:
    flow = device_token_flow(TOKEN_URI, AUTH, "cid", "s", monotonic=lambda: 0.0)
    with pytest.raises(FlowError) as info:
        drive(flow, scripted((400, {"error": "expired_token"})))
    assert info.value.error == "expired_token"


def test_polling_stops_at_expires_in_even_without_a_moving_clock() -> None:
    short = DeviceAuthorization("d", "U", "https://x.test/device", expires_in=12, interval=5)
    pending = (428, {"error": "authorization_pending"})
    flow = device_token_flow(TOKEN_URI, short, "cid", "s", monotonic=lambda: 0.0)
    with pytest.raises(FlowError) as info:
        drive(flow, scripted(pending, pending, pending))
    assert info.value.error == "expired_token"


def test_polling_stops_when_the_clock_says_the_code_expired() -> None:
    now = [0.0]
    flow = device_token_flow(TOKEN_URI, AUTH, "cid", "s", monotonic=lambda: now[0])
    step = next(flow)
    assert step.seconds == 5  # type: ignore[union-attr]
    flow.send(None)  # the poll request
    now[0] = 599.0
    with pytest.raises(FlowError):
        flow.send(reply(428, body={"error": "authorization_pending"}))


def test_connection_failures_back_off_exponentially_then_give_up() -> None:
    failure = TransportError("refused", url=TOKEN_URI)
    flow = device_token_flow(TOKEN_URI, AUTH, "cid", "s", monotonic=lambda: 0.0)
    _, _, sleeps = drive(flow, scripted(failure, failure, (200, TOKENS)))
    assert sleeps == [5, 10, 20]
    flow = device_token_flow(TOKEN_URI, AUTH, "cid", "s", monotonic=lambda: 0.0)
    with pytest.raises(TransportError):
        drive(flow, scripted(*[failure] * 6))


def test_other_errors_end_the_flow() -> None:
    flow = device_token_flow(TOKEN_URI, AUTH, "cid", "s", monotonic=lambda: 0.0)
    with pytest.raises(RefreshError) as info:
        drive(flow, scripted((401, {"error": "invalid_client"})))
    assert info.value.error == "invalid_client"


# -- RFC 7009 -----------------------------------------------------------------------------
def test_revoke_flow_outcomes() -> None:
    uri = "https://oauth2.googleapis.com/revoke"
    ok, requests, _ = drive(revoke_flow(uri, "tok", token_type_hint="refresh_token"),
                            lambda r: reply(200, body={}))
    assert ok is True
    assert parse_qs((requests[0].body or b"").decode()) == {
        "token": ["tok"], "token_type_hint": ["refresh_token"]}
    gone, _, _ = drive(revoke_flow(uri, "tok"),
                       lambda r: reply(400, body={"error": "invalid_token"}))
    assert gone is False
    with pytest.raises(RefreshError):
        drive(revoke_flow(uri, "tok"), lambda r: reply(401, body={"error": "invalid_client"}))


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("expires_in", "nan", 1800), ("expires_in", 1e308 * 10, 1800), ("expires_in", -5, 1800),
    ("expires_in", 10**9, 86400), ("interval", "inf", 5), ("interval", 0, 5),
    ("interval", 0.25, 0.25), ("interval", 10**6, 600),
])
def test_device_numbers_are_finite_and_bounded(field: str, value: object,
                                               expected: float) -> None:
    body = {"device_code": "d", "user_code": "U", "verification_uri": "https://x.test/d",
            field: value}
    parsed = parse_device_authorization(reply(raw=json.dumps(body).encode()), DEVICE_URI)
    assert getattr(parsed, field) == expected


def test_unparsable_verification_uri_is_a_flow_error() -> None:
    with pytest.raises(FlowError):
        parse_device_authorization(reply(body={"device_code": "d", "user_code": "U",
                                               "verification_uri": "http://[bad"}), DEVICE_URI)


def test_device_huge_integers_do_not_overflow() -> None:
    raw = ('{"device_code": "d", "user_code": "U", "verification_uri": "https://x.test/d", '
           '"expires_in": 1' + "0" * 400 + ', "interval": true}').encode()
    parsed = parse_device_authorization(reply(raw=raw), DEVICE_URI)
    assert parsed.expires_in == 1800 and parsed.interval == 5  # unusable: the defaults
