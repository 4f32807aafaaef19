"""Hostile and broken input (issue 5, part 4): a credential file decides where secrets go, so
gcauth checks it before any connection; token, metadata and revoke calls never follow
redirects; oversized or special files are refused before parsing; unknown types name the
known ones. The fuzz tests (``tests/fuzz``) cover "nothing but a gcauth error escapes"."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import gcauth
from gcauth import _files, authorized_user, compute_engine, service_account
from gcauth._http import run_async, run_sync
from gcauth._protocol.rfc6749 import token_exchange
from gcauth._protocol.rfc7009 import revoke_flow
from gcauth.exceptions import (
    DefaultCredentialsError,
    MalformedCredentialsError,
    RefreshError,
    UnsafeEndpointError,
)
from gcauth.transport import httpx as gc_httpx
from gcauth.transport import requests as gc_requests
from gcauth.transport import urllib3 as gc_urllib3
from tests.kit.creds import sa_info, user_info

CLOUD = "https://www.googleapis.com/auth/cloud-platform"

HOSTILE_URIS = [
    "https://evil.example.com/token",
    "http://oauth2.googleapis.com/token",  # Google, but not https
    "https://oauth2.googleapis.com.evil.example/token",
    "https://googleapis.com.evil.example/token",
    "https://evilgoogleapis.com/token",
    "https://accounts.google.com.evil.example/o/oauth2/token",
    "https://user:pw@oauth2.googleapis.com/token",  # user info smuggles a host in front
    "https://oauth2.googleapis.com@evil.example.com/token",
    "http://127.0.0.1@evil.example.com/token",
    "http://localhost.evil.example.com/token",
    "http://127.0.0.1.nip.io/token",
    "ftp://oauth2.googleapis.com/token",
    "file:///etc/passwd",
    "//evil.example.com/token",
    "/token",
    "https://oauth2.googleapis.com:99999/token",
    "javascript:alert(1)",
    "",
]


# -- endpoints in credential files ---------------------------------------------------------
@pytest.mark.parametrize("uri", HOSTILE_URIS)
@pytest.mark.parametrize("kind", ["service_account", "authorized_user"])
def test_hostile_token_uri_is_refused_at_load(kind: str, uri: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    info = (sa_info if kind == "service_account" else user_info)(token_uri=uri)
    if uri == "":
        info["token_uri"] = 12  # an empty string means "default"; a non-string must not
    path = tmp_path / "cred.json"
    path.write_text(json.dumps(info))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    loaders: list[Callable[[], object]] = [
        lambda: gcauth.load_credentials_from_dict(info),
        lambda: gcauth.load_credentials_from_file(path),
        lambda: gcauth.default(scopes=[CLOUD]),
    ]
    for load in loaders:
        with pytest.raises(MalformedCredentialsError) as err:
            load()
        assert err.value.field == "token_uri", err.value
        assert "token_uri" in str(err.value)
        if isinstance(err.value, UnsafeEndpointError) and "neither" in str(err.value):
            assert "allowed_hosts" in str(err.value)


@pytest.mark.parametrize("uri", [
    "https://oauth2.googleapis.com/token",
    "https://sts.googleapis.com/v1/token",
    "https://accounts.google.com/o/oauth2/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "http://127.0.0.1:8080/token",
    "http://[::1]:8080/token",
    "http://localhost:9/token",
])
def test_google_and_loopback_token_uris_are_accepted(uri: str) -> None:
    creds, _ = gcauth.load_credentials_from_dict(sa_info(token_uri=uri))
    assert isinstance(creds, service_account.Credentials) and creds.token_uri == uri


def test_allowed_hosts_is_the_explicit_opt_in() -> None:
    uri = "https://token.corp.example/token"
    creds = service_account.Credentials.from_service_account_info(
        sa_info(token_uri=uri), allowed_hosts=["token.corp.example"])
    assert creds.token_uri == uri
    user = authorized_user.Credentials.from_authorized_user_info(
        user_info(token_uri=uri), allowed_hosts=["TOKEN.corp.example"])
    assert user.token_uri == uri
    with pytest.raises(UnsafeEndpointError):  # allowing one host does not allow another
        service_account.Credentials.from_service_account_info(
            sa_info(token_uri="https://other.corp.example/token"),
            allowed_hosts=["token.corp.example"])


def test_with_token_uri_is_checked_too() -> None:
    creds = service_account.Credentials.from_service_account_info(sa_info())
    with pytest.raises(UnsafeEndpointError, match="allowed_hosts"):
        creds.with_token_uri("https://evil.example.com/token")
    assert creds.with_token_uri("http://127.0.0.1:1/token").token_uri == "http://127.0.0.1:1/token"


# -- redirects are never followed ----------------------------------------------------------
class _Redirector(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RedirectHandler)
        self.captured: list[str] = []
        self.status = 302


class _RedirectHandler(BaseHTTPRequestHandler):
    server: _Redirector
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/captured"):
            self.server.captured.append(self.path + " " + body.decode("latin-1"))
            payload = json.dumps({"access_token": "captured", "expires_in": 3600}).encode()
            self.send_response(200)
            self.send_header("Metadata-Flavor", "Google")
        else:
            payload = b""
            port = self.server.server_address[1]
            self.send_response(self.server.status)
            self.send_header("Location", f"http://127.0.0.1:{port}/captured{self.path}")
            self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(params=[302, 307, 308])
def redirector(request: pytest.FixtureRequest) -> Iterator[_Redirector]:
    server = _Redirector()
    server.status = request.param
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(2)


SENDERS = {"urllib3": gc_urllib3.Request, "requests": gc_requests.Request,
           "httpx": gc_httpx.Request}


@pytest.fixture(params=sorted(SENDERS))
def sender(request: pytest.FixtureRequest) -> Iterator[Any]:
    made = SENDERS[request.param]()
    yield made
    if isinstance(made, gc_requests.Request):
        made.session.close()
    elif isinstance(made, gc_urllib3.Request):
        made.http.clear()
    else:
        made.close()


def _base(server: _Redirector) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_token_request_does_not_follow_redirects(redirector: _Redirector, sender: Any) -> None:
    creds = authorized_user.Credentials.from_authorized_user_info(
        user_info(token_uri=_base(redirector) + "/token"))
    with pytest.raises(RefreshError) as err:
        creds.get_token(sender)
    assert err.value.status == redirector.status and not err.value.retryable
    assert redirector.captured == []  # the refresh token went nowhere else


def test_revoke_does_not_follow_redirects(redirector: _Redirector, sender: Any) -> None:
    with pytest.raises(RefreshError):
        run_sync(revoke_flow(_base(redirector) + "/revoke", "1//refresh-secret"), sender.send)
    assert redirector.captured == []


def test_metadata_does_not_follow_redirects(redirector: _Redirector, sender: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    host = f"127.0.0.1:{redirector.server_address[1]}"
    monkeypatch.setenv("GCE_METADATA_HOST", host)
    monkeypatch.setenv("GCE_METADATA_IP", host)
    with pytest.raises(RefreshError) as err:
        compute_engine.Credentials().get_token(sender)
    assert err.value.status == redirector.status
    assert redirector.captured == []


def test_async_token_request_does_not_follow_redirects(redirector: _Redirector) -> None:
    flow = token_exchange(_base(redirector) + "/token", {"grant_type": "x", "secret": "s"})
    with pytest.raises(RefreshError):
        asyncio.run(run_async(flow, gc_httpx.AsyncRequest().send))
    assert redirector.captured == []


# -- files: size bound, special files, types -----------------------------------------------
def _loaders(path: Path) -> list[Any]:
    return [
        lambda: gcauth.load_credentials_from_file(path),
        lambda: service_account.Credentials.from_service_account_file(path),
        lambda: authorized_user.Credentials.from_authorized_user_file(path),
    ]


def test_oversized_credential_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    # not JSON at all: a size error (not a JSON error) proves nothing was parsed
    path.write_bytes(b"x" * (_files.MAX_CREDENTIAL_FILE_BYTES + 1))
    for load in _loaders(path):
        with pytest.raises(MalformedCredentialsError, match="bytes") as err:
            load()
        assert "JSON" not in str(err.value).split(";")[0]


def test_file_at_the_bound_is_read(tmp_path: Path) -> None:
    path = tmp_path / "padded.json"
    text = json.dumps(sa_info())
    path.write_text(text + " " * (_files.MAX_CREDENTIAL_FILE_BYTES - len(text)))
    creds, _ = gcauth.load_credentials_from_file(path)
    assert isinstance(creds, service_account.Credentials)


@pytest.mark.timeout(20)
def test_special_files_are_refused_without_blocking(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening a FIFO for reading would block forever
    for path in (fifo, Path("/dev/zero"), Path("/dev/urandom"), tmp_path):
        for load in _loaders(path):
            with pytest.raises(MalformedCredentialsError):
                load()
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fifo))
    with pytest.raises(DefaultCredentialsError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        gcauth.default()


@pytest.mark.parametrize("kind", ["evil", "", None, 7, ["service_account"]])
def test_unknown_type_lists_the_known_ones(kind: Any) -> None:
    info = {"type": kind} if kind is not None else {}
    with pytest.raises(MalformedCredentialsError) as err:
        gcauth.load_credentials_from_dict(info)
    assert err.value.field == "type"
    assert "service_account" in str(err.value) and "authorized_user" in str(err.value)


def test_secrets_never_reach_error_messages(tmp_path: Path) -> None:
    """A broken file's error names the field, never the secret values beside it."""
    secret = "-----BEGIN PRIVATE KEY-----\nAAAAsupersecretAAAA\n-----END PRIVATE KEY-----\n"
    for info in (sa_info(private_key=secret), sa_info(token_uri="https://evil.example/t"),
                 user_info(token_uri="https://evil.example/t")):
        with pytest.raises(MalformedCredentialsError) as err:
            gcauth.load_credentials_from_dict(info)
        text = str(err.value) + repr(err.value)
        for value in (secret, "supersecret", "1//refresh-secret", "s3cret-client",
                      sa_info()["private_key"][40:80]):
            assert value not in text


# -- written files -------------------------------------------------------------------------
def test_private_json_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        target = tmp_path / "new" / "adc.json"
        _files.write_private_json(target, {"refresh_token": "r"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert json.loads(target.read_text()) == {"refresh_token": "r"}


def test_private_json_write_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "adc.json"
    _files.write_private_json(target, {"v": 1})
    with pytest.raises(TypeError):
        _files.write_private_json(target, {"v": object()})  # fails half-way through dumping
    assert json.loads(target.read_text()) == {"v": 1}  # the old content, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adc.json"]  # no temp file left


def test_private_json_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    config = tmp_path / "config"
    config.mkdir()
    link = config / "adc.json"
    link.symlink_to(outside)
    _files.write_private_json(link, {"refresh_token": "r"})
    assert outside.read_text() == "{}"  # the link's target is untouched
    assert not link.is_symlink() and stat.S_IMODE(link.stat().st_mode) == 0o600


def test_reader_refuses_symlink_out_of_its_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(user_info()))
    config = tmp_path / "config"
    config.mkdir()
    (config / "adc.json").symlink_to(outside)
    (config / "inner.json").write_text(json.dumps(user_info()))
    (config / "ok.json").symlink_to(config / "inner.json")
    with pytest.raises(MalformedCredentialsError, match="symbolic link"):
        _files.read_json_file(config / "adc.json", inside=config)
    assert _files.read_json_file(config / "ok.json", inside=config)["type"] == "authorized_user"
