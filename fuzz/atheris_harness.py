"""Coverage-guided fuzzing of gcauth's parsers with atheris (libFuzzer for Python).

Every target feeds attacker-controlled bytes to one parser; the only exceptions allowed out
are gcauth's own (``GCAuthError``). Anything else is a finding: atheris stops, prints the
traceback and writes the input to ``crash-<sha1>``.

    .venv/bin/pip install atheris                      # not a test dependency
    .venv/bin/python fuzz/atheris_harness.py --list
    .venv/bin/python fuzz/atheris_harness.py TARGET -atheris_runs=200000 fuzz/corpus/TARGET

See fuzz/README.md.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone

import atheris

import gcauth
from gcauth import _default, _endpoints, flow
from gcauth._http import Headers, HttpResponse, Sleep
from gcauth._protocol import jwt, metadata, rfc6749, rfc8628
from gcauth.exceptions import GCAuthError, UnsafeEndpointError

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
_TMP = tempfile.mkdtemp(prefix="gcauth-atheris-")


def _response(fdp: atheris.FuzzedDataProvider) -> HttpResponse:
    status = fdp.PickValueInList([200, 200, 200, 400, 401, 403, 404, 429, 500, 503, 302])
    headers = {}
    if fdp.ConsumeBool():
        headers["metadata-flavor"] = "Google"
    if fdp.ConsumeBool():
        headers["retry-after"] = fdp.ConsumeUnicodeNoSurrogates(8)
    return HttpResponse(status, Headers(headers), fdp.ConsumeBytes(fdp.remaining_bytes()))


def _drive(flow_: object, reply: HttpResponse, limit: int = 20) -> object:
    """Answer every request of a sans-IO flow with ``reply``; never sleep."""
    gen = flow_
    step = next(gen)  # type: ignore[call-overload]
    for _ in range(limit):
        try:
            step = gen.send(None if isinstance(step, Sleep) else reply)  # type: ignore[attr-defined]
        except StopIteration as stop:
            return stop.value
    gen.close()  # type: ignore[attr-defined]
    return None


# -- targets: each takes the raw fuzzer input ---------------------------------------------
def credential_json(data: bytes) -> None:
    """A credential file: read (size bound, JSON) and loaded by type."""
    path = os.path.join(_TMP, "cred.json")
    with open(path, "wb") as handle:
        handle.write(data)
    try:
        creds, _ = gcauth.load_credentials_from_file(path)
    except GCAuthError:
        return
    uri = getattr(creds, "token_uri", None)
    if uri is not None:  # what was accepted must be a safe endpoint
        _endpoints.check_endpoint(uri, field="token_uri", source="atheris")


def client_secrets(data: bytes) -> None:
    try:
        info = json.loads(data)
    except (ValueError, RecursionError):
        return
    flow.ClientConfig.from_info(info) if isinstance(info, dict) else None


def token_response(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    reply = _response(fdp)
    parsed = rfc6749.parse_token_response(reply, "https://oauth2.googleapis.com/token")
    parsed.expiry(T0)


def token_flow(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    reply = _response(fdp)
    _drive(rfc6749.token_exchange("https://oauth2.googleapis.com/token", {"a": "b"}), reply)


def metadata_reply(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    reply = _response(fdp)
    _drive(metadata.token_flow("default", None, T0), reply)


def device_reply(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    reply = _response(fdp)
    rfc8628.parse_device_authorization(reply, "https://oauth2.googleapis.com/device/code")


def jwt_token(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    jwt.decode(text)


def pem(data: bytes) -> None:
    try:
        jwt.load_public_key(data)
    finally:
        jwt.RSASigner.from_pem(data)


_FLOW = flow.InstalledAppFlow({"installed": {"client_id": "c", "client_secret": "s"}},
                              ["openid"], redirect_uri="http://localhost:1/")


def redirect_query(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    _, state = _FLOW.authorization_url()
    code = _FLOW.code_from_response(text)
    assert state in text or "%" in text, "a code was accepted without this flow's state"
    assert code


def gcloud_config(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    root = os.path.join(_TMP, "gcloud")
    os.makedirs(os.path.join(root, "configurations"), exist_ok=True)
    name = fdp.ConsumeUnicodeNoSurrogates(12)
    with open(os.path.join(root, "active_config"), "w", encoding="utf-8") as handle:
        handle.write(name)
    with open(os.path.join(root, "properties"), "wb") as handle:
        handle.write(fdp.ConsumeBytes(fdp.remaining_bytes()))
    _default.gcloud_project({"CLOUDSDK_CONFIG": root})  # must never raise at all


def endpoint_url(data: bytes) -> None:
    import urllib3.util

    url = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    try:
        _endpoints.check_endpoint(url, field="token_uri", source="atheris")
    except UnsafeEndpointError:
        return
    try:
        host = urllib3.util.parse_url(url).host
    except Exception:  # noqa: BLE001 - urllib3 refusing it connects nowhere
        return
    host = (host or "").lower().strip("[]")
    assert not host or _endpoints._is_google(host) or _endpoints.is_loopback_host(host), (
        f"accepted {url!r} but urllib3 connects to {host!r}")


TARGETS: dict[str, Callable[[bytes], None]] = {
    f.__name__: f for f in (credential_json, client_secrets, token_response, token_flow,
                            metadata_reply, device_reply, jwt_token, pem, redirect_query,
                            gcloud_config, endpoint_url)
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "--list") \
            or sys.argv[1] not in TARGETS:
        print("targets: " + ", ".join(TARGETS))
        sys.exit(0 if len(sys.argv) > 1 and sys.argv[1] == "--list" else 2)
    target = TARGETS[sys.argv[1]]

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except GCAuthError:
            pass

    sys.setrecursionlimit(1000)  # the interpreter default: deep JSON must be handled
    # gcauth is usually an editable install (an import hook atheris cannot instrument
    # through), so instrument every loaded function instead of hooking imports
    atheris.instrument_all()
    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
