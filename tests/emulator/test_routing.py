"""The route table and router: patterns, methods, error dialects, one clock, the public
names (counts keys, fault groups) and adding an endpoint as one module + one entry."""

from __future__ import annotations

import json
import re
import threading
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from gcauth.emulator import Emulator
from gcauth.emulator._config import Config
from gcauth.emulator._errors import GoogleError, OAuthError, TextError, page_error
from gcauth.emulator._faults import FaultInjector
from gcauth.emulator._routing import GOOGLE, OAUTH, PAGES, Api, App, Call, Route, Router
from gcauth.emulator._state import State
from gcauth.emulator._table import ROUTER, ROUTES
from gcauth.emulator._wire import Reply, Request, json_reply
from tests.kit.emu import Kit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "emulator.md"

#: The documented ``counts`` keys (docs/emulator.md): users' tests assert on these names.
DOCUMENTED_COUNTS = {"token", "token_issued", "metadata", "metadata_token",
                     "metadata_token_issued", "metadata_identity", "api", "tokeninfo", "revoke",
                     "auth", "approve", "device_code", "device_page", "certs", "ping", "echo",
                     "generateAccessToken", "generateIdToken", "signBlob", "signJwt",
                     "discovery", "sts", "sts_issued", "sts_oauthtoken", "sts_introspect",
                     "sts_revoke", "resourcemanager", "oidc_jwks", "oidc_token", "aws_imds"}
DOCUMENTED_GROUPS = {"token", "metadata", "api", "revoke", "tokeninfo", "device_code", "iam",
                     "sts", "resourcemanager", "aws_imds"}


def request(method: str, path: str, body: bytes = b"", **headers: str) -> Request:
    msg = Message()
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    target, _, query = path.partition("?")
    pairs = [(k, v) for k, _, v in (p.partition("=") for p in query.split("&") if p)]
    return Request(method, target, pairs, msg, body)


def app_for(routes: list[Route], *, control: bool = False) -> App:
    config = Config(url="http://127.0.0.1:8080", port=8080, control=control)
    router = Router(routes)
    return App(router, State(config), config, FaultInjector(router.fault_groups | {"x"}),
               threading.Event())


def body_of(reply: Any) -> Any:
    assert isinstance(reply, Reply)
    return json.loads(reply.body)


# -- patterns and methods ----------------------------------------------------------------------
def echo_args(call: Call) -> Reply:
    return json_reply(200, dict(call.args))


def test_patterns_capture_decoded_segments() -> None:
    app = app_for([
        Route("/v1/projects/-/serviceAccounts/{sa}:generateAccessToken", echo_args,
              methods="POST"),
        Route("/files/{name...}", echo_args),
        Route("/dir/{d}/?", echo_args),
    ])
    sa_path = "/v1/projects/-/serviceAccounts/a%40b.iam:generateAccessToken"
    reply = app.handle(request("POST", sa_path))
    assert body_of(reply) == {"sa": "a@b.iam"}
    assert body_of(app.handle(request("GET", "/files/a/b%2Fc"))) == {"name": "a/b/c"}
    assert body_of(app.handle(request("GET", "/files/"))) == {"name": ""}
    assert body_of(app.handle(request("GET", "/dir/x//"))) == {"d": "x"}
    # {sa} is one non-empty segment; the literal suffix must match
    for path in ("/v1/projects/-/serviceAccounts/:generateAccessToken",
                 "/v1/projects/-/serviceAccounts/a/b:generateAccessToken",
                 "/v1/projects/-/serviceAccounts/a:generateIdToken", "/dir/x/y"):
        reply = app.handle(request("POST", path))
        assert isinstance(reply, Reply) and reply.status == 404, path


def test_methods_select_a_route_and_405_uses_the_api_dialect() -> None:
    def named(name: str) -> Any:
        return lambda call: json_reply(200, {"route": name})

    app = app_for([
        Route("/thing", named("get"), api=OAUTH, methods="GET"),
        Route("/thing", named("post"), api=OAUTH, methods=("POST",)),
        Route("/page", named("page"), api=PAGES, methods="GET"),
        Route("/any", named("any")),
    ])
    assert body_of(app.handle(request("GET", "/thing"))) == {"route": "get"}
    assert body_of(app.handle(request("POST", "/thing"))) == {"route": "post"}
    reply = app.handle(request("DELETE", "/thing"))
    assert isinstance(reply, Reply) and reply.status == 405
    assert ("Allow", "GET, POST") in reply.headers
    assert body_of(reply) == {"error": "invalid_request",
                              "error_description": "Invalid request method: DELETE"}
    page = app.handle(request("POST", "/page"))
    assert isinstance(page, Reply) and page.status == 405 and b"Use GET." in page.body
    assert page.content_type.startswith("text/html")
    assert body_of(app.handle(request("PATCH", "/any"))) == {"route": "any"}


def test_routes_of_one_path_must_agree() -> None:
    with pytest.raises(ValueError, match="disagree"):
        Router([Route("/x", echo_args, api=OAUTH), Route("/x", echo_args, api=GOOGLE)])
    with pytest.raises(ValueError, match="start with"):
        Router([Route("x", echo_args)])


def test_control_routes_exist_only_with_control() -> None:
    routes = [Route("/_emulator/x", echo_args, control=True)]
    off = app_for(routes).handle(request("GET", "/_emulator/x", host="127.0.0.1:8080"))
    on = app_for(routes, control=True).handle(request("GET", "/_emulator/x",
                                                      host="127.0.0.1:8080"))
    assert isinstance(off, Reply) and off.status == 404
    assert isinstance(on, Reply) and on.status == 200


# -- errors are raised and turned into replies in one place -------------------------------------
def test_raised_errors_become_their_replies() -> None:
    def oauth(call: Call) -> Reply:
        raise OAuthError(400, "invalid_grant", "Bad grant.", [("X-Extra", "1")])

    def google(call: Call) -> Reply:
        raise GoogleError(400, "Precondition.", status_name="FAILED_PRECONDITION",
                          details=[{"@type": "t"}])

    def text(call: Call) -> Reply:
        raise TextError(404, "Not Found\n")

    def page(call: Call) -> Reply:
        raise page_error("access_denied", "<script>no</script>")

    app = app_for([Route("/o", oauth, api=OAUTH), Route("/g", google), Route("/t", text),
                   Route("/p", page, api=PAGES)])
    o = app.handle(request("GET", "/o"))
    assert body_of(o) == {"error": "invalid_grant", "error_description": "Bad grant."}
    assert isinstance(o, Reply) and ("X-Extra", "1") in o.headers
    assert ("Cache-Control", "no-store") in o.headers
    assert body_of(app.handle(request("GET", "/g"))) == {"error": {
        "code": 400, "message": "Precondition.", "status": "FAILED_PRECONDITION",
        "details": [{"@type": "t"}]}}
    t = app.handle(request("GET", "/t"))
    assert isinstance(t, Reply) and (t.status, t.body) == (404, b"Not Found\n")
    p = app.handle(request("GET", "/p"))
    assert isinstance(p, Reply) and p.status == 400
    assert b"&lt;script&gt;" in p.body and b"<script>" not in p.body


def test_unexpected_exception_is_a_500_in_the_api_shape(
        capfd: pytest.CaptureFixture[str]) -> None:
    secret = "ya29." + "".join(["SEC", "RET"])  # not a literal: tracebacks show source lines

    def broken(call: Call) -> Reply:
        raise KeyError(secret)

    app = app_for([Route("/o", broken, api=OAUTH), Route("/g", broken)])
    assert body_of(app.handle(request("GET", "/o")))["error"] == "server_error"
    assert body_of(app.handle(request("GET", "/g")))["error"]["status"] == "INTERNAL"
    err = capfd.readouterr().err
    assert "KeyError" in err and "SECRET" not in err


def test_api_guard_headers_and_counts() -> None:
    seen: list[str] = []

    def guard(call: Call) -> None:
        seen.append(call.req.path)
        if call.req.header("x-deny"):
            raise TextError(403, "denied\n")

    api = Api("demo", OAUTH.errors, headers=(("X-Api", "demo"),), guard=guard)
    app = app_for([Route("/d", echo_args, api=api, methods="GET", counts=("d", "d_all"),
                         group="x")])
    ok = app.handle(request("GET", "/d"))
    denied = app.handle(request("GET", "/d", x_deny="1"))
    wrong = app.handle(request("POST", "/d"))
    assert isinstance(ok, Reply) and ("X-Api", "demo") in ok.headers
    assert isinstance(denied, Reply) and denied.status == 403
    assert ("X-Api", "demo") in denied.headers
    assert isinstance(wrong, Reply) and wrong.status == 405  # guard runs before the method check
    assert seen == ["/d", "/d", "/d"]
    assert app.state.counts == {"d": 3, "d_all": 3}
    app.faults.add("x", kind="status", status=503)
    faulted = app.handle(request("GET", "/d"))
    assert isinstance(faulted, Reply) and faulted.status == 503
    assert body_of(faulted)["error"] == "temporarily_unavailable"
    assert app.state.counts["d"] == 4 and len(seen) == 3  # counted, but never reached the API


# -- the public names --------------------------------------------------------------------------
def test_counts_keys_and_fault_groups_are_the_documented_ones() -> None:
    issued = {"token_issued", "metadata_token_issued", "sts_issued"}  # bumped by handlers
    assert ROUTER.counter_names | issued == DOCUMENTED_COUNTS
    assert ROUTER.fault_groups == DOCUMENTED_GROUPS
    assert FaultInjector().groups == DOCUMENTED_GROUPS
    docs = DOCS.read_text()
    for name in DOCUMENTED_COUNTS | DOCUMENTED_GROUPS:
        assert f"`{name}`" in docs, name


def test_every_route_is_reachable() -> None:
    """No route hides behind an earlier pattern (a table-order mistake)."""
    for route in ROUTES:
        path = re.sub(r"\{(\w+)\.\.\.\}", "rest", route.path)
        path = re.sub(r"\{(\w+)\}", "seg", path).removesuffix("/?")
        method = route.methods[0] if route.methods else "PATCH"
        match = ROUTER.match(method, path or "/", control=True)
        assert match is not None and match.route is route, route


def test_config_is_exposed_and_old_settings_still_work(kit: Kit, emu: Emulator) -> None:
    assert isinstance(emu.config, Config)
    emu.metadata_project_id = "renamed"
    try:
        assert emu.config.metadata_project_id == "renamed"
        assert kit.md("project/project-id").text == "renamed"
        emu.config.metadata_project_id = "direct"
        assert emu.metadata_project_id == "direct"
        assert kit.md("project/project-id").text == "direct"
    finally:
        emu.config.metadata_project_id = "emu-project"
    emu.metadata_scopes = ["https://www.googleapis.com/auth/cloud-platform"]  # type: ignore[assignment]
    try:
        assert emu.config.metadata_scopes == ("https://www.googleapis.com/auth/cloud-platform",)
    finally:
        emu.metadata_scopes = Config().metadata_scopes
    assert emu.verbose is emu.config.verbose is False


# -- one clock ---------------------------------------------------------------------------------
def test_consent_page_expiry_follows_the_emulator_clock(kit: Kit, emu: Emulator,
                                                        installed: dict[str, Any]) -> None:
    """The consent page used to expire by time.time(), ignoring set_clock_skew."""
    page = kit.consent(installed["client_id"], "http://127.0.0.1:9/cb")
    assert page.status == 200
    emu.set_clock_skew(1801)  # consent pages live 30 minutes
    r = kit.approve(page)
    assert r.status == 400 and "expired" in r.text
    emu.set_clock_skew(0)
    fresh = kit.consent(installed["client_id"], "http://127.0.0.1:9/cb")
    emu.set_clock_skew(1700)
    assert kit.approve(fresh).status == 302


def test_skew_fault_applies_to_token_liveness(kit: Kit, emu: Emulator,
                                              sa: dict[str, str]) -> None:
    tok = kit.sa_token(sa)
    assert kit.api(tok).status == 200
    emu.faults.add("api", kind="skew", seconds=7200)  # this request sees the token expired
    assert kit.api(tok).status == 401
    assert kit.api(tok).status == 200


@pytest.mark.parametrize("claim", ["iat", "exp"])
def test_non_finite_jwt_times_are_refused(kit: Kit, sa: dict[str, str], claim: str) -> None:
    claims = kit.sa_claims(sa)
    claims[claim] = float("nan")
    r = kit.jwt_grant(sa, assertion=kit.sign(sa, claims))
    assert r.status == 400
    expected = f'Invalid JWT: the "{claim}" claim is missing or not a number.'
    assert r.json()["error_description"] == expected
