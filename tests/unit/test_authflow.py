"""The one refresh-on-401 rule, driven as a sans-IO generator with no sockets at all."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from gcauth._http import Flow, Headers, HttpRequest
from gcauth.credentials import Credentials
from gcauth.tokens import Token
from gcauth.transport._authflow import (
    Discard,
    NeedToken,
    Send,
    auth_flow,
    replayable,
    run_auth_sync,
)
from tests.kit.creds import later


class Counting(Credentials):
    """Hands out token-1, token-2, ... and records what was invalidated."""

    def __init__(self) -> None:
        super().__init__(quota_project_id="qp")
        self.issued = 0
        self.invalidated: list[str] = []

    def token_flow(self, now: datetime) -> Flow[Token]:
        self.issued += 1
        return _done(Token(f"token-{self.issued}", expiry=later(3600)))

    def invalidate(self, token: Token | str | None = None) -> None:
        assert isinstance(token, Token)
        self.invalidated.append(token.access_token)
        super().invalidate(token)


def _done(token: Token) -> Flow[Token]:
    return token
    yield  # pragma: no cover


def _status(response: int) -> int:
    return response


def steps(flow: Any, answers: Iterator[Any]) -> tuple[list[Any], Any]:
    """Run ``flow``, answering each step from ``answers``; returns (steps, result)."""
    seen = []
    try:
        step = next(flow)
        while True:
            seen.append(step)
            step = flow.send(next(answers))
    except StopIteration as stop:
        return seen, stop.value


def test_a_success_needs_one_token_and_one_send() -> None:
    creds = Counting()
    token = creds.get_token()
    seen, result = steps(auth_flow(creds, _status, can_resend=True), iter([token, 200]))
    assert seen == [NeedToken(False), Send({"authorization": "Bearer token-1",
                                            "x-goog-user-project": "qp"})]
    assert result == 200


def test_a_401_invalidates_the_refused_token_and_resends_once_with_a_fresh_one() -> None:
    creds = Counting()
    first = creds.get_token()
    flow = auth_flow(creds, _status, can_resend=True)
    assert next(flow) == NeedToken(False)
    assert flow.send(first) == Send(creds.headers_for(first))
    assert flow.send(401) == Discard(401)
    assert creds.invalidated == ["token-1"]
    assert flow.send(None) == NeedToken(True)
    second = creds.get_token(fresh=True)
    assert second.access_token == "token-2"
    assert flow.send(second) == Send(creds.headers_for(second))
    with pytest.raises(StopIteration) as done:
        flow.send(401)  # a second 401 is the caller's answer: no loop
    assert done.value.value == 401


@pytest.mark.parametrize("can_resend, attempts", [(False, 1), (True, 0)])
def test_no_resend_for_a_stream_or_without_attempts(can_resend: bool, attempts: int) -> None:
    creds = Counting()
    token = creds.get_token()
    seen, result = steps(auth_flow(creds, _status, can_resend=can_resend,
                                   max_refresh_attempts=attempts), iter([token, 401]))
    assert result == 401 and len(seen) == 2 and creds.invalidated == []


def test_other_statuses_and_custom_refresh_codes() -> None:
    creds = Counting()
    token = creds.get_token()
    _, result = steps(auth_flow(creds, _status, can_resend=True), iter([token, 403]))
    assert result == 403 and creds.invalidated == []
    flow = auth_flow(creds, _status, can_resend=True, refresh_status_codes=(403,))
    seen, _ = steps(flow, iter([token, 403, None, creds.get_token(fresh=True), 200]))
    assert [type(s).__name__ for s in seen] == ["NeedToken", "Send", "Discard", "NeedToken",
                                                "Send"]


def test_the_sync_driver_runs_the_rule_with_plain_callables() -> None:
    creds = Counting()
    sent: list[str] = []
    discarded: list[int] = []
    replies = iter([401, 200])

    def send(headers: Any) -> int:
        sent.append(headers["authorization"])
        return next(replies)

    result = run_auth_sync(auth_flow(creds, _status, can_resend=True),
                           lambda fresh: creds.get_token(fresh=fresh), send, discarded.append)
    assert result == 200
    assert sent == ["Bearer token-1", "Bearer token-2"] and discarded == [401]


def test_replayable_bodies() -> None:
    assert replayable(None) and replayable(b"x") and replayable("x")
    assert not replayable(iter([b"x"]))


def test_http_request_is_immutable_and_hashable() -> None:
    given = {"X-A": "1"}
    request = HttpRequest("GET", "http://127.0.0.1:9/", given, b"body")
    given["X-A"] = "changed"
    assert request.headers["x-a"] == "1"  # a read-only copy, not the caller's dict
    assert isinstance(request.headers, Headers)
    with pytest.raises(TypeError):
        request.headers["x-a"] = "2"  # type: ignore[index]
    with pytest.raises(AttributeError):
        request.url = "http://elsewhere/"
    same = HttpRequest("GET", "http://127.0.0.1:9/", {"x-a": "1"}, b"body")
    assert request == same and hash(request) == hash(same)
    assert len({request, same}) == 1
