"""The authorization-endpoint half of RFC 6749 (§3.1, §4.1.1-§4.1.3) as pure functions, with
no socket and no flow object: building the URL, reading the redirect, mapping its errors."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

import pytest

from gcauth._protocol import rfc6749
from gcauth.exceptions import FlowError

STATE = "s" * 43


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


# -- §4.1.1 the authorization request -----------------------------------------------------
def test_authorization_params_are_those_of_section_4_1_1() -> None:
    params = rfc6749.authorization_params(client_id="cid", redirect_uri="http://localhost:1/",
                                          scopes=["openid", "email"], state=STATE)
    assert params == {"response_type": "code", "client_id": "cid",
                      "redirect_uri": "http://localhost:1/", "scope": "openid email",
                      "state": STATE}


def test_authorization_url_form_encodes_and_keeps_the_endpoint_query() -> None:
    url = rfc6749.authorization_url("https://accounts.example/auth?hd=example.com#frag",
                                    {"scope": "a b", "login_hint": "x&y=z@example.com"})
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "accounts.example", "/auth")
    assert parts.fragment == ""  # §3.1: no fragment
    assert query(url) == {"hd": ["example.com"], "scope": ["a b"],
                          "login_hint": ["x&y=z@example.com"]}
    assert parts.query.startswith("hd=example.com&")  # retained, and first


def test_authorization_url_without_an_endpoint_query() -> None:
    url = rfc6749.authorization_url("http://127.0.0.1:9/o/oauth2/auth", {"a": "1"})
    assert url == "http://127.0.0.1:9/o/oauth2/auth?a=1"


def test_new_state_is_url_safe_and_unguessable() -> None:
    states = {rfc6749.new_state() for _ in range(50)}
    assert len(states) == 50
    for state in states:
        assert len(state) >= 43  # 256 bits, base64url
        assert quote(state, safe="") == state


def test_reserved_parameters_cover_the_security_carrying_ones() -> None:
    assert {"state", "redirect_uri", "client_id", "code_challenge",
            "code_challenge_method"} <= rfc6749.RESERVED_AUTHORIZATION_PARAMS
    assert "prompt" not in rfc6749.RESERVED_AUTHORIZATION_PARAMS


# -- §4.1.2 reading the redirect ----------------------------------------------------------
@pytest.mark.parametrize("response", [
    f"http://localhost:8080/?code=4%2F0Ab&state={STATE}",
    f"?code=4%2F0Ab&state={STATE}",
    f"code=4%2F0Ab&state={STATE}",
    f"  https://localhost/cb#code=4%2F0Ab&state={STATE}\n",
    f"HTTP://LOCALHOST/?state={STATE}&code=4%2F0Ab",
])
def test_parse_redirect_accepts_every_form_a_user_may_paste(response: str) -> None:
    assert rfc6749.parse_redirect(response) == {"code": "4/0Ab", "state": STATE}


def test_parse_redirect_keeps_blank_values() -> None:
    assert rfc6749.parse_redirect("code=&state=x") == {"code": "", "state": "x"}
    assert rfc6749.parse_redirect("") == {}


@pytest.mark.parametrize("response", ["code=a&code=b&state=x", "state=x&state=x",
                                      "http://h/?code=a&state=x&code=a"])
def test_a_repeated_parameter_is_refused(response: str) -> None:
    with pytest.raises(FlowError, match="repeats") as info:
        rfc6749.parse_redirect(response)
    assert info.value.error == "invalid_request"


@pytest.mark.parametrize("response", ["http://[::1?code=x&state=y", "a=1&&b",
                                      "&".join(f"k{i}=v" for i in range(60))])
def test_a_malformed_or_oversized_redirect_is_a_flow_error(response: str) -> None:
    with pytest.raises(FlowError) as info:
        rfc6749.parse_redirect(response)
    assert info.value.error == "invalid_request"
    assert "code=" not in str(info.value) and "k1=" not in str(info.value)  # not echoed


def test_code_only_with_the_expected_state() -> None:
    assert rfc6749.authorization_code_from({"code": "c1", "state": STATE}, STATE) == "c1"
    for params in ({"code": "c1"}, {"code": "c1", "state": STATE[:-1]},
                   {"code": "c1", "state": STATE + "x"}, {"code": "c1", "state": ""}):
        with pytest.raises(FlowError) as info:
            rfc6749.authorization_code_from(params, STATE)
        assert info.value.error == "state_mismatch"
        assert "c1" not in str(info.value)


def test_the_state_is_checked_before_the_error() -> None:
    """A forged error response (wrong state) is refused like a forged code: it must not end
    the sign-in with the attacker's error."""
    with pytest.raises(FlowError) as info:
        rfc6749.authorization_code_from({"error": "access_denied", "state": "other"}, STATE)
    assert info.value.error == "state_mismatch"


def test_an_error_response_with_the_right_state_is_raised_with_its_code() -> None:
    with pytest.raises(FlowError, match="denied") as info:
        rfc6749.authorization_code_from({"error": "access_denied", "state": STATE,
                                         "code": "ignored"}, STATE)
    assert info.value.error == "access_denied"


def test_a_response_without_a_code_is_an_invalid_request() -> None:
    for params in ({"state": STATE}, {"state": STATE, "code": ""}):
        with pytest.raises(FlowError, match="no authorization code") as info:
            rfc6749.authorization_code_from(params, STATE)
        assert info.value.error == "invalid_request"


# -- §4.1.2.1 error codes -----------------------------------------------------------------
@pytest.mark.parametrize(("error", "words"), [
    ("access_denied", "choose Allow"),
    ("invalid_scope", "--scopes"),
    ("unauthorized_client", "Desktop app"),
    ("invalid_client", "Desktop app"),
    ("server_error", "try again"),
    ("temporarily_unavailable", "try again"),
    ("something_new", "refused the request"),
])
def test_authorization_errors_say_what_to_do(error: str, words: str) -> None:
    exc = rfc6749.authorization_error(error, None)
    assert isinstance(exc, FlowError)
    assert exc.error == error
    assert words in str(exc) and repr(error) in str(exc)


def test_authorization_error_text_from_the_server_is_made_printable_and_bounded() -> None:
    exc = rfc6749.authorization_error("bad\x1b[2J\r\nerror" + "x" * 100,
                                      "line one\x1b]0;title\x07\r\n" + "d" * 500)
    text = str(exc)
    assert not any(c in text for c in "\x1b\x07\r\n")
    assert exc.error is not None and len(exc.error) == 60 and "\x1b" not in exc.error
    assert text.count("d") <= 210


# -- §4.1.3 the token request -------------------------------------------------------------
def test_authorization_code_params_with_pkce_and_secret() -> None:
    params = rfc6749.authorization_code_params(
        "c1", redirect_uri="http://localhost:1/", client_id="cid", client_secret="sec",
        extra={"code_verifier": "v" * 43})
    assert params == {"grant_type": "authorization_code", "code": "c1",
                      "redirect_uri": "http://localhost:1/", "client_id": "cid",
                      "code_verifier": "v" * 43, "client_secret": "sec"}


def test_authorization_code_params_of_a_public_client_carry_no_secret() -> None:
    params = rfc6749.authorization_code_params("c1", redirect_uri="r", client_id="cid",
                                               client_secret=None)
    assert "client_secret" not in params and params["grant_type"] == "authorization_code"
    request = rfc6749.token_request("https://oauth2.googleapis.com/token", params)
    assert parse_qs(request.body.decode()) == {  # type: ignore[union-attr]
        "grant_type": ["authorization_code"], "code": ["c1"], "redirect_uri": ["r"],
        "client_id": ["cid"]}
