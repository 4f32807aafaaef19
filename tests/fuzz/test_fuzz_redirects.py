"""Redirect query strings and pasted addresses fuzzed: the installed-app flow returns a code
only for a response carrying this flow's exact ``state``; everything else is a FlowError."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from hypothesis import example, given
from hypothesis import strategies as st

from gcauth.exceptions import FlowError, GCAuthError
from gcauth.flow import InstalledAppFlow

from .strategies import FUZZ, only_gcauth_errors

CLIENT = {"installed": {"client_id": "cid", "client_secret": "csecret"}}


def new_flow() -> tuple[InstalledAppFlow, str]:
    flow = InstalledAppFlow(CLIENT, ["openid"], redirect_uri="http://localhost:8080/")
    _, state = flow.authorization_url()
    return flow, state


values = st.text(max_size=20) | st.sampled_from(["", "4/0Ab-code", "%00", "%ZZ", "a=b", "&"])
keys = st.sampled_from(["code", "state", "error", "error_description", "scope", "authuser",
                        "", "Code", "state "]) | st.text(max_size=6)


@st.composite
def redirect_responses(draw: st.DrawFn, state: str) -> str:
    pairs = draw(st.lists(st.tuples(keys, values), max_size=6))
    if draw(st.booleans()):
        pairs.append(("state", draw(st.sampled_from([state, state[:-1], state + "x",
                                                     state.upper(), " " + state]))))
    if draw(st.booleans()):
        pairs.append(("code", draw(values)))
    pairs = draw(st.permutations(pairs))
    query = urlencode(pairs) if draw(st.booleans()) else "&".join(
        f"{k}={v}" for k, v in pairs)
    form = draw(st.sampled_from(["bare", "?", "url", "fragment", "weird"]))
    if form == "?":
        return "?" + query
    if form == "url":
        return f"http://localhost:8080/?{query}"
    if form == "fragment":
        return f"http://localhost:8080/#{query}"
    if form == "weird":
        prefix = draw(st.sampled_from(["http://[::1", "https://", "http://localhost:99999/?",
                                       "HTTP://x/?", "http://[fe80::1%25eth0]/?", " "]))
        return prefix + query
    return query


@FUZZ
@given(st.data())
def test_code_only_with_the_right_state(data: st.DataObject) -> None:
    flow, state = new_flow()
    response = data.draw(redirect_responses(state) | st.text(max_size=80))
    try:
        code = flow.code_from_response(response)
    except FlowError:
        return
    assert isinstance(code, str) and code
    assert state in response or quote(state) in response


@FUZZ
@given(st.text(max_size=120))
@example("http://[::1?code=x&state=y")
@example("http://localhost:99999/?code=x")
def test_pasted_text_raises_only_flow_errors(pasted: str) -> None:
    flow, _ = new_flow()
    only_gcauth_errors(lambda: flow._code_from_paste(pasted))
    flow, _ = new_flow()
    try:
        flow.code_from_response(pasted)
    except GCAuthError as exc:
        assert isinstance(exc, FlowError)


def test_repeated_parameters_are_refused() -> None:
    flow, state = new_flow()
    try:
        flow.code_from_response(f"code=a&code=b&state={state}")
    except FlowError as exc:
        assert "repeats" in str(exc)
    else:
        raise AssertionError("a repeated code was accepted")
