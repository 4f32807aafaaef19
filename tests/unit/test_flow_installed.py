"""InstalledAppFlow and ClientConfig without any socket: a fake transport answers."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from gcauth._http import HttpRequest, HttpResponse
from gcauth.exceptions import FlowError, MalformedCredentialsError, UnsafeEndpointError
from gcauth.flow import ClientConfig, DeviceFlow, InstalledAppFlow
from tests.kit.creds import T0, reply

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
SECRET = "GOCSPX-client-secret-value"


def client(kind: str = "installed", **overrides: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "client_id": "123-abc.apps.googleusercontent.com",
        "client_secret": SECRET,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "redirect_uris": ["http://localhost"],
    }
    section.update(overrides)
    return {kind: {k: v for k, v in section.items() if v is not None}}


def id_token(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


class FakeServer:
    """A transport: records requests and answers with ``answer(request)``."""

    def __init__(self, answer: Callable[[HttpRequest], HttpResponse]):
        self.answer = answer
        self.requests: list[HttpRequest] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return self.answer(request)

    def form(self, n: int = -1) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs((self.requests[n].body or b"").decode()).items()}


def token_reply(**extra: Any) -> HttpResponse:
    body = {"access_token": "ya29.access", "expires_in": 3599, "token_type": "Bearer",
            "refresh_token": "1//refresh", "scope": f"openid {CLOUD}",
            "id_token": id_token({"email": "alice@example.com", "sub": "1"})}
    body.update(extra)
    return reply(body={k: v for k, v in body.items() if v is not None})


def new_flow(server: FakeServer | None = None, **kwargs: Any) -> InstalledAppFlow:
    flow = InstalledAppFlow.from_client_config(
        client(), ["openid", CLOUD], request=server or FakeServer(lambda r: token_reply()),
        clock=lambda: T0, **kwargs)
    flow.redirect_uri = "http://localhost:8080/"
    return flow


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# -- the authorization request ------------------------------------------------------------
def test_authorization_url_has_pkce_s256_offline_and_a_random_state() -> None:
    flow = new_flow()
    url, state = flow.authorization_url(prompt="consent")
    params = query(url)
    assert url.startswith("https://accounts.google.com/o/oauth2/auth?")
    assert params["response_type"] == "code"
    assert params["client_id"] == "123-abc.apps.googleusercontent.com"
    assert params["redirect_uri"] == "http://localhost:8080/"
    assert params["scope"] == f"openid {CLOUD}"
    assert params["state"] == state and len(state) >= 43
    assert params["code_challenge_method"] == "S256"
    assert params["access_type"] == "offline"
    assert params["prompt"] == "consent"
    assert SECRET not in url
    states = {new_flow().authorization_url()[1] for _ in range(20)}
    assert len(states) == 20


@pytest.mark.parametrize("name", ["state", "code_challenge", "redirect_uri", "client_id"])
def test_security_parameters_cannot_be_overridden(name: str) -> None:
    with pytest.raises(ValueError):
        new_flow().authorization_url(**{name: "x"})


def test_authorization_url_needs_a_redirect_uri() -> None:
    flow = InstalledAppFlow.from_client_config(client(), [CLOUD])
    with pytest.raises(FlowError):
        flow.authorization_url()


def test_auth_uri_query_is_kept() -> None:
    flow = InstalledAppFlow(client(auth_uri="https://accounts.google.com/o/oauth2/auth?hl=en"),
                            [CLOUD], redirect_uri="http://127.0.0.1:1/")
    url, _ = flow.authorization_url()
    assert query(url)["hl"] == "en" and "code_challenge" in query(url)


# -- the redirect -------------------------------------------------------------------------
def test_fetch_token_with_the_full_redirect_exchanges_code_and_verifier() -> None:
    server = FakeServer(lambda r: token_reply())
    flow = new_flow(server)
    url, state = flow.authorization_url()
    challenge = query(url)["code_challenge"]
    creds = flow.fetch_token(
        authorization_response=f"http://localhost:8080/?state={state}&code=4/code&scope=x")
    form = server.form()
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "4/code"
    assert form["redirect_uri"] == "http://localhost:8080/"
    assert form["client_id"] == "123-abc.apps.googleusercontent.com"
    assert form["client_secret"] == SECRET
    digest = hashlib.sha256(form["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge
    assert server.requests[0].url == "https://oauth2.googleapis.com/token"
    assert creds is flow.credentials
    assert creds.token == "ya29.access" and creds.refresh_token == "1//refresh"
    assert creds.granted_scopes == ("openid", CLOUD)
    assert creds.account == "alice@example.com"
    assert creds.id_token is not None
    assert creds.expiry is not None and (creds.expiry - T0).total_seconds() == 3599
    assert creds.client_secret == SECRET
    for text in (repr(flow), repr(creds), str(flow.client_config)):
        for secret in (SECRET, "ya29.access", "1//refresh", form["code_verifier"]):
            assert secret not in text


def test_a_code_is_exchanged_only_once() -> None:
    flow = new_flow()
    _, state = flow.authorization_url()
    flow.fetch_token(code="4/code")
    with pytest.raises(FlowError) as info:
        flow.fetch_token(authorization_response=f"?state={state}&code=4/code")
    assert info.value.error == "no_authorization"


def test_only_the_latest_authorization_is_accepted() -> None:
    flow = new_flow()
    _, old = flow.authorization_url()
    flow.authorization_url()
    with pytest.raises(FlowError) as info:
        flow.fetch_token(authorization_response=f"?state={old}&code=c")
    assert info.value.error == "state_mismatch"


@pytest.mark.parametrize(("make", "error"), [
    (lambda s: "?code=c", "state_mismatch"),
    (lambda s: "?code=c&state=forged", "state_mismatch"),
    (lambda s: f"?code=c&state={s}x", "state_mismatch"),
    (lambda s: f"?state={s}", "invalid_request"),
    (lambda s: f"?state={s}&code=a&code=b", "invalid_request"),
    (lambda s: f"?error=access_denied&state={s}", "access_denied"),
    (lambda s: f"?error=invalid_scope&error_description=bad%20scope&state={s}",
     "invalid_scope"),
    (lambda s: "?error=access_denied&state=forged", "state_mismatch"),
])
def test_bad_redirects_are_flow_errors(make: Callable[[str], str], error: str) -> None:
    server = FakeServer(lambda r: token_reply())
    flow = new_flow(server)
    _, state = flow.authorization_url()
    with pytest.raises(FlowError) as info:
        flow.fetch_token(authorization_response="http://localhost:8080/" + make(state))
    assert info.value.error == error
    assert server.requests == []
    assert state not in str(info.value)


def test_denial_message_is_readable() -> None:
    flow = new_flow()
    _, state = flow.authorization_url()
    with pytest.raises(FlowError, match="access was denied"):
        flow.code_from_response(f"?error=access_denied&state={state}")


def test_fetch_token_wants_exactly_one_argument() -> None:
    flow = new_flow()
    flow.authorization_url()
    with pytest.raises(ValueError):
        flow.fetch_token()
    with pytest.raises(ValueError):
        flow.fetch_token(code="a", authorization_response="?code=a")


def test_credentials_before_login_is_a_flow_error() -> None:
    with pytest.raises(FlowError):
        new_flow().credentials  # noqa: B018


def test_token_endpoint_refusal_is_a_refresh_error_without_the_code() -> None:
    from gcauth.exceptions import RefreshError

    flow = new_flow(FakeServer(lambda r: reply(400, body={"error": "invalid_grant"})))
    flow.authorization_url()
    with pytest.raises(RefreshError) as info:
        flow.fetch_token(code="4/the-code")
    assert "4/the-code" not in str(info.value)


def test_missing_scope_in_the_reply_falls_back_to_the_requested_ones() -> None:
    flow = new_flow(FakeServer(lambda r: token_reply(scope=None, id_token=None)))
    flow.authorization_url()
    creds = flow.fetch_token(code="c")
    assert creds.scopes == ("openid", CLOUD)
    assert creds.granted_scopes is None and creds.account is None


# -- run_console --------------------------------------------------------------------------
def console(flow: InstalledAppFlow, answers: list[str]) -> tuple[Any, str]:
    out = io.StringIO()
    seen: dict[str, str] = {}

    def ask(prompt: str) -> str:
        text = out.getvalue()
        seen["url"] = next(line for line in text.splitlines() if line.startswith("https://"))
        if not answers:
            raise EOFError
        answer = answers.pop(0)
        return answer.replace("STATE", query(seen["url"])["state"])

    return flow.run_console(input=ask, out=out), out.getvalue()


def test_console_accepts_the_pasted_redirect_url() -> None:
    server = FakeServer(lambda r: token_reply())
    flow = new_flow(server)
    creds, text = console(flow, ["http://localhost:55555/?state=STATE&code=4/pasted&scope=x"])
    assert creds.refresh_token == "1//refresh"
    assert server.form()["code"] == "4/pasted"
    url = next(line for line in text.splitlines() if line.startswith("https://"))
    assert urlsplit(query(url)["redirect_uri"]).hostname == "localhost"
    assert server.form()["redirect_uri"] == query(url)["redirect_uri"]


def test_console_accepts_a_bare_code() -> None:
    server = FakeServer(lambda r: token_reply())
    creds, _ = console(new_flow(server), ["  4/bare-code  "])
    assert server.form()["code"] == "4/bare-code"
    assert creds.token == "ya29.access"


def test_console_asks_again_after_a_wrong_state_then_succeeds() -> None:
    server = FakeServer(lambda r: token_reply())
    _, text = console(new_flow(server), ["http://localhost:1/?state=forged&code=evil",
                                         "http://localhost:1/?state=STATE&code=good"])
    assert server.form()["code"] == "good" and len(server.requests) == 1
    assert "did not work" in text


def test_console_gives_up_after_three_bad_pastes() -> None:
    server = FakeServer(lambda r: token_reply())
    with pytest.raises(FlowError):
        console(new_flow(server), ["?state=x&code=a", "", "two words"])
    assert server.requests == []


def test_console_denial_and_end_of_input_are_flow_errors() -> None:
    with pytest.raises(FlowError) as info:
        console(new_flow(), ["http://localhost:1/?error=access_denied&state=STATE"])
    assert info.value.error == "access_denied"
    with pytest.raises(FlowError) as info:
        console(new_flow(), [])
    assert info.value.error == "no_input"


# -- client configuration -----------------------------------------------------------------
def test_web_clients_and_derived_endpoints() -> None:
    config = ClientConfig.from_info(client("web"), source="web.json")
    assert config.kind == "web"
    assert config.device_authorization_uri == "https://oauth2.googleapis.com/device/code"
    assert config.revoke_uri == "https://oauth2.googleapis.com/revoke"
    assert SECRET not in repr(config)
    emu = ClientConfig.from_info(client(token_uri="http://127.0.0.1:9/token",
                                        auth_uri="http://127.0.0.1:9/o/oauth2/auth"))
    assert emu.device_authorization_uri == "http://127.0.0.1:9/device/code"
    assert emu.revoke_uri == "http://127.0.0.1:9/revoke"


def test_missing_endpoints_default_to_google() -> None:
    config = ClientConfig.from_info(client(auth_uri=None, token_uri=None))
    assert config.auth_uri == "https://accounts.google.com/o/oauth2/auth"
    assert config.token_uri == "https://oauth2.googleapis.com/token"


@pytest.mark.parametrize("field", ["auth_uri", "token_uri", "revoke_uri",
                                   "device_authorization_uri"])
def test_endpoints_must_be_google_or_loopback(field: str) -> None:
    with pytest.raises(UnsafeEndpointError) as info:
        InstalledAppFlow.from_client_config(client(**{field: "https://evil.example/x"}), [CLOUD])
    assert info.value.field == f"installed.{field}"
    config = ClientConfig.from_info(client(**{field: "https://evil.example/x"}),
                                    allowed_hosts=["evil.example"])
    assert config.client_id


@pytest.mark.parametrize(("info", "field"), [
    ({"type": "service_account", "client_email": "x"}, "installed"),
    ({"other": {}}, "installed"),
    ({"installed": "nope"}, "installed"),
    (client(client_id=None), "installed.client_id"),
    (client(client_secret=None), "installed.client_secret"),
    (client(client_id=5), "installed.client_id"),
    (client(redirect_uris="http://localhost"), "installed.redirect_uris"),
])
def test_malformed_client_files_name_the_field(info: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedCredentialsError) as excinfo:
        ClientConfig.from_info(info, source="c.json")
    assert excinfo.value.field == field
    assert "c.json" in str(excinfo.value)
    assert SECRET not in str(excinfo.value)


def test_client_secrets_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "client_secrets.json"
    with pytest.raises(MalformedCredentialsError, match="does not exist"):
        InstalledAppFlow.from_client_secrets_file(path, [CLOUD])
    path.write_text("{not json")
    with pytest.raises(MalformedCredentialsError, match="not valid JSON"):
        DeviceFlow.from_client_secrets_file(path, [CLOUD])
    path.write_text(json.dumps(client()))
    flow = InstalledAppFlow.from_client_secrets_file(path, [CLOUD])
    assert flow.client_config.source == str(path)
    assert isinstance(flow, InstalledAppFlow)


def test_scopes_are_required_and_may_be_a_string() -> None:
    with pytest.raises(ValueError):
        InstalledAppFlow(client(), [])
    assert InstalledAppFlow(client(), f"openid,{CLOUD}").scopes == ("openid", CLOUD)


def test_bad_loopback_settings_are_refused_before_anything_listens() -> None:
    flow = new_flow()
    with pytest.raises(FlowError, match="loopback"):
        flow.run_local_server(bind_addr="0.0.0.0", open_browser=False)
    with pytest.raises(FlowError, match="loopback"):
        flow.run_local_server(host="example.com", open_browser=False)


def test_authorization_url_encodes_extra_parameters() -> None:
    flow = new_flow()
    url, _ = flow.authorization_url(login_hint="a b@example.com")
    assert "login_hint=" + urlencode({"x": "a b@example.com"})[2:] in url


def test_console_uses_a_web_clients_registered_redirect() -> None:
    server = FakeServer(lambda r: token_reply())
    flow = InstalledAppFlow.from_client_config(
        client("web", redirect_uris=["http://localhost:8080/cb"]), [CLOUD], request=server)
    out = io.StringIO()
    flow.run_console(input=lambda prompt: "4/code", out=out)
    assert server.form()["redirect_uri"] == "http://localhost:8080/cb"


def test_device_flow_steps_run_on_the_async_driver_without_blocking() -> None:
    from gcauth._http import run_async
    from gcauth._protocol.rfc8628 import DeviceAuthorization

    answers = [reply(428, body={"error": "authorization_pending"}), token_reply()]
    sleeps: list[float] = []

    async def send(request: HttpRequest) -> HttpResponse:
        return answers.pop(0)

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    flow = DeviceFlow.from_client_config(client(), [CLOUD], clock=lambda: T0,
                                         monotonic=lambda: 0.0)
    auth = DeviceAuthorization("dev", "ABCD-EFGH", "https://www.google.com/device", 600, 2)
    coroutine = run_async(flow.token_flow(auth), send, sleep)
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)  # nothing really suspends: one send runs it to the end
    creds = done.value.value
    assert creds.refresh_token == "1//refresh" and flow.credentials is creds
    assert sleeps == [2, 2]


def test_device_instructions_mention_the_complete_uri() -> None:
    from gcauth._protocol.rfc8628 import DeviceAuthorization
    from gcauth.flow import device_instructions

    auth = DeviceAuthorization("dev", "ABCD-EFGH", "https://x.test/device", 60, 5,
                               "https://x.test/device?code=ABCD-EFGH")
    text = device_instructions(auth)
    assert "https://x.test/device\n" in text and "ABCD-EFGH\n" in text
    assert "https://x.test/device?code=ABCD-EFGH" in text and "1 minute)" in text


@pytest.mark.parametrize("pasted", ["http://[::1?code=x&state=y", "https://[fe80::1/?code=x"])
def test_unparsable_addresses_are_flow_errors(pasted: str) -> None:
    flow = new_flow()
    flow.authorization_url()
    with pytest.raises(FlowError):
        flow.code_from_response(pasted)
    with pytest.raises(FlowError):
        flow._code_from_paste(pasted)
