"""Small helpers shared by tests: RSA keys, service-account info, canned replies, flow stepping."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gcauth._http import Flow, Headers, HttpRequest, HttpResponse, Join, Sleep

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


@lru_cache(maxsize=4)
def rsa_pem(n: int = 0) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def sa_info(**overrides: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": "service_account",
        "project_id": "unit-project",
        "private_key_id": "key-1",
        "private_key": rsa_pem(),
        "client_email": "robot@unit-project.iam.gserviceaccount.com",
        "client_id": "1234",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    info.update(overrides)
    return {k: v for k, v in info.items() if v is not None}


def user_info(**overrides: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": "authorized_user",
        "client_id": "client-1.apps.googleusercontent.com",
        "client_secret": "s3cret-client",
        "refresh_token": "1//refresh-secret",
    }
    info.update(overrides)
    return {k: v for k, v in info.items() if v is not None}


def reply(status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
          raw: bytes | None = None) -> HttpResponse:
    data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
    return HttpResponse(status, Headers(headers or {"content-type": "application/json"}), data)


def drive(flow: Flow[Any], answer: Callable[[HttpRequest], HttpResponse | Exception],
          ) -> tuple[Any, list[HttpRequest], list[float]]:
    """Run a flow with a fake server; returns (result, requests seen, sleeps). A ``Join``
    (another credential's token) is answered the way ``run_sync`` answers it, through the
    same fake server."""
    requests: list[HttpRequest] = []
    sleeps: list[float] = []

    def send(request: HttpRequest) -> HttpResponse:
        requests.append(request)
        result = answer(request)
        if isinstance(result, Exception):
            raise result
        return result

    try:
        step = next(flow)
        while True:
            if isinstance(step, Sleep):
                sleeps.append(step.seconds)
                step = flow.send(None)
                continue
            if isinstance(step, Join):
                try:
                    joined = step.sync(send)
                except Exception as exc:  # noqa: BLE001 - thrown in, as run_sync does
                    step = flow.throw(exc)
                    continue
                step = flow.send(joined)
                continue
            requests.append(step)
            result = answer(step)
            step = flow.throw(result) if isinstance(result, Exception) else flow.send(result)
    except StopIteration as stop:
        return stop.value, requests, sleeps


def first_request(flow: Flow[Any]) -> HttpRequest:
    """The first step of ``flow``, which must be a request (not a sleep)."""
    step = next(flow)
    assert isinstance(step, HttpRequest), step
    return step


def body_text(request: HttpRequest) -> str:
    """A request's body as text (it must have one)."""
    assert request.body is not None, request
    return request.body.decode()


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class TokenSender:
    """A gcauth ``Request`` that answers every token request itself (no socket): access
    tokens ``tok-1``, ``tok-2``... living ``expires_in`` seconds. ``gate`` (when given) holds
    each reply until it is set, so concurrent callers pile up; ``status``/``body`` make every
    reply an error instead."""

    def __init__(self, expires_in: int = 3600, *, gate: threading.Event | None = None,
                 status: int = 200, body: Any = None):
        self.expires_in = expires_in
        self.gate = gate
        self.status = status
        self.body = body
        self.requests: list[HttpRequest] = []
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def send(self, request: HttpRequest) -> HttpResponse:
        with self._lock:
            self.requests.append(request)
            number = len(self.requests)
        if self.gate is not None:
            self.gate.wait(10)
        if self.status != 200:
            return reply(self.status, self.body)
        return reply(body={"access_token": f"tok-{number}", "expires_in": self.expires_in,
                           "token_type": "Bearer"})
