"""RFC 6749 parsing, retries and the JWT bearer grant, driven with no sockets."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives.asymmetric import padding

from gcauth._http import HttpResponse
from gcauth._protocol import jwt
from gcauth._protocol.rfc6749 import parse_token_response, token_exchange
from gcauth._retry import RetryPolicy
from gcauth.exceptions import RefreshError, TransportError
from tests.kit.creds import body_text, drive, first_request, reply, rsa_pem

URI = "https://oauth2.googleapis.com/token"
FIXED = RetryPolicy(jitter=lambda: 1.0)


def test_success_response_is_parsed() -> None:
    parsed = parse_token_response(
        reply(body={"access_token": "a", "expires_in": 3599, "scope": "x y",
                    "token_type": "Bearer", "refresh_token": "r"}), URI)
    assert parsed.access_token == "a" and parsed.expires_in == 3599
    assert parsed.scope == ("x", "y") and parsed.refresh_token == "r"
    assert "a" not in repr(parsed).replace("access", "").replace("Bearer", "")


@pytest.mark.parametrize(
    ("status", "body", "error", "retryable"),
    [
        (400, {"error": "invalid_grant", "error_description": "Bad"}, "invalid_grant", False),
        (400, {"error": "invalid_scope"}, "invalid_scope", False),
        (401, {"error": "unauthorized_client"}, "unauthorized_client", False),
        (503, {"error": "temporarily_unavailable"}, "temporarily_unavailable", True),
        (500, None, None, True),
        (429, {}, None, True),
        (400, {"error": "server_error"}, "server_error", True),
    ],
)
def test_error_responses_become_refresh_errors(status, body, error, retryable) -> None:  # type: ignore[no-untyped-def]
    raw = b"<html>oops</html>" if body is None else json.dumps(body).encode()
    with pytest.raises(RefreshError) as info:
        parse_token_response(reply(status, raw=raw), URI)
    assert info.value.error == error
    assert info.value.status == status
    assert info.value.retryable is retryable
    assert URI in str(info.value)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2]", b'{"token_type": "Bearer"}',
                                 b'{"access_token": "a", "expires_in": "soon"}'])
def test_bad_success_bodies_are_gcauth_errors(raw: bytes) -> None:
    with pytest.raises(RefreshError) as info:
        parse_token_response(reply(200, raw=raw), URI)
    assert URI in str(info.value)


def test_transient_failures_are_retried_with_backoff_then_succeed() -> None:
    answers: list[HttpResponse | Exception] = [
        TransportError("reset", url=URI), reply(503, {"error": "x"}),
        reply(body={"access_token": "ok", "expires_in": 10})]
    result, requests, sleeps = drive(token_exchange(URI, {"grant_type": "g"}, retry=FIXED),
                                     lambda r: answers.pop(0))
    assert result.access_token == "ok"
    assert len(requests) == 3
    assert sleeps == [0.2, 0.4]


def test_retry_after_is_honoured_and_capped() -> None:
    answers = [reply(429, {}, headers={"retry-after": "3"}),
               reply(429, {}, headers={"retry-after": "999"}),
               reply(body={"access_token": "ok"})]
    policy = RetryPolicy(jitter=lambda: 1.0, deadline=30, retry_after_cap=5)
    _, _, sleeps = drive(token_exchange(URI, {}, retry=policy), lambda r: answers.pop(0))
    assert sleeps == [3.0, 5.0]


def test_permanent_error_is_not_retried() -> None:
    seen = []

    def answer(request):  # type: ignore[no-untyped-def]
        seen.append(request)
        return reply(400, {"error": "invalid_grant"})

    with pytest.raises(RefreshError):
        drive(token_exchange(URI, {}, retry=FIXED), answer)
    assert len(seen) == 1


def test_retries_are_bounded() -> None:
    seen = []

    def answer(request):  # type: ignore[no-untyped-def]
        seen.append(request)
        return reply(503, {})

    with pytest.raises(RefreshError) as info:
        drive(token_exchange(URI, {}, retry=RetryPolicy(max_attempts=3, jitter=lambda: 0)),
              answer)
    assert len(seen) == 3 and info.value.retryable


def test_token_request_is_form_encoded() -> None:
    flow = token_exchange(URI, {"grant_type": "refresh_token", "refresh_token": "r t"})
    request = first_request(flow)
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(body_text(request)) == {"grant_type": ["refresh_token"],
                                               "refresh_token": ["r t"]}


def test_jwt_roundtrip_and_signature_verification() -> None:
    signer = jwt.RSASigner.from_pem(rsa_pem(), "kid-1")
    token = jwt.encode(signer, {"iss": "me", "n": 1})
    header, payload, signed, signature = jwt.decode(token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    assert payload == {"iss": "me", "n": 1}
    assert jwt.verify_rs256(token, signer.public_key()) == payload
    signer.public_key().verify(signature, signed, padding.PKCS1v15(),
                               __import__("cryptography.hazmat.primitives.hashes",
                                          fromlist=["SHA256"]).SHA256())
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(jwt.JWTError):
        jwt.verify_rs256(tampered, signer.public_key())


@pytest.mark.parametrize("bad", ["", "a.b", "a.b.c.d", "!!.??.**", "e30.bm90anNvbg.c2ln"])
def test_jwt_decode_rejects_garbage(bad: str) -> None:
    with pytest.raises(jwt.JWTError):
        jwt.decode(bad)
