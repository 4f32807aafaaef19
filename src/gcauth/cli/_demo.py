"""``gcauth demo``: the whole ADC story, offline, against the built-in emulator."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
#: How the demo ends: where to go next (the login walkthrough, against a running emulator).
NEXT_STEPS = """
Next: log in with your own (emulated) account, step by step, in docs/login.md:
  gcauth emulator --state-dir ./emu          # terminal 1: keeps serving
  gcauth auth application-default login --client-id-file emu/client_secrets.json
  gcauth explain
"""


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo", help="run the offline demo against the built-in emulator",
        description="Start the emulator on loopback, then find credentials through "
                    "GOOGLE_APPLICATION_CREDENTIALS, the gcloud ADC file and the metadata "
                    "server, calling a sample API with each. Nothing leaves this machine.")
    parser.set_defaults(handler=run)


@contextmanager
def _environment(changes: Mapping[str, str | None]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _call_api(credentials: Any, emu: Any, project: str, out: TextIO) -> None:
    from ..transport.urllib3 import AuthorizedHttp

    with AuthorizedHttp(credentials) as http:
        started = time.perf_counter()
        reply = http.request("GET", f"{emu.api_url}/sql/v1beta4/projects/{project}/instances")
        elapsed = (time.perf_counter() - started) * 1000
    items = json.loads(reply.data).get("items", []) if reply.status == 200 else []
    names = ", ".join(item.get("name", "?") for item in items) or "-"
    out.write(f"    GET /sql/v1beta4/projects/{project}/instances -> HTTP {reply.status} "
              f"({elapsed:.1f} ms): {names}\n")
    if reply.status != 200:
        raise SystemExit(f"demo: the sample API refused the call (HTTP {reply.status})")
    token = credentials.current_token
    if token is not None and token.expiry is not None:
        left = token.expiry.timestamp() - time.time()
        out.write(f"    token: {token.token_type}, expires in {left:.0f} s "
                  f"(the token itself is never printed)\n")


def _resolve() -> Any:
    """ADC for the demo's current environment; a gcauth error (not an assert) if nothing."""
    from .._default import find_default, not_found_message
    from ..exceptions import DefaultCredentialsError

    res = find_default(SCOPES)
    if res.credentials is None:
        raise DefaultCredentialsError(not_found_message(res))
    return res


def _project(res: Any) -> str:
    """The project and where it came from, as ``gcauth explain`` says it."""
    from ._explain import _project_text

    return _project_text({"project_id": res.project_id, "project_source": res.project_source,
                          "project_location": res.project_location})


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    import sys

    from .. import _files
    from .._default import default
    from ..emulator import Emulator
    from ..exceptions import DefaultCredentialsError

    out = out or sys.stdout
    with Emulator() as emu, tempfile.TemporaryDirectory(prefix="gcauth-demo-") as tmp:
        work = Path(tmp)
        out.write(f"gcauth demo: emulator listening on {emu.url} (loopback only)\n\n")
        isolated: dict[str, str | None] = {name: None for name in os.environ
                    if name.startswith(("GOOGLE_", "CLOUDSDK_", "GCE_"))}
        isolated.update({"CLOUDSDK_CONFIG": str(work / "gcloud"), "NO_GCE_CHECK": "true"})

        # 1. a service-account key named by GOOGLE_APPLICATION_CREDENTIALS
        key_path = work / "service-account.json"
        info = emu.create_service_account(project_id="demo-project")
        _files.write_private_json(key_path, info)
        out.write("1. Service account key via GOOGLE_APPLICATION_CREDENTIALS\n")
        out.write(f"    created {info['client_email']} (key {key_path.name}, mode 0600)\n")
        with _environment({**isolated, "GOOGLE_APPLICATION_CREDENTIALS": str(key_path)}):
            res = _resolve()
            out.write(f"    ADC chose: {res.source} -> {type(res.credentials).__module__}; "
                      f"project {_project(res)}\n")
            _call_api(res.credentials, emu, res.project_id or "demo-project", out)

        # 2. the gcloud well-known file with a user's refresh token and a quota project
        out.write("\n2. User credentials in the gcloud ADC file, with a quota project\n")
        user = emu.create_authorized_user(account="alice@example.com",
                                          quota_project_id="billing-project")
        adc_file = work / "gcloud" / "application_default_credentials.json"
        _files.write_private_json(adc_file, user)
        with _environment({**isolated, "GOOGLE_CLOUD_PROJECT": "demo-project"}):
            res = _resolve()
            out.write(f"    ADC chose: {res.source} ({adc_file.name}); quota project "
                      f"{res.credentials.quota_project_id}\n")
            _call_api(res.credentials, emu, "demo-project", out)
            out.write(f"    the API saw X-Goog-User-Project: {emu.quota_projects_seen[-1]}\n")
        adc_file.unlink()

        # 3. the metadata server, as on a Compute Engine VM
        out.write("\n3. Compute Engine metadata server\n")
        with _environment({**isolated, "NO_GCE_CHECK": None, **emu.env()}):
            res = _resolve()
            out.write(f"    ADC chose: {res.source} at {res.source_location}; project "
                      f"{_project(res)}\n")
            _call_api(res.credentials, emu, res.project_id or "demo-project", out)

        # 4. workload identity federation: a CI job's OIDC token, exchanged at the STS, then
        # impersonating a service account (the file gcloud's create-cred-config writes)
        out.write("\n4. Workload identity federation (an external_account file, as in CI)\n")
        deployer = emu.create_service_account(project_id="demo-project", name="deployer",
                                              with_key=False)["client_email"]
        config = emu.create_workload_identity_pool(
            "oidc", service_account=deployer,
            attribute_condition="assertion.sub.startsWith('repo:demo-org/')")
        token_file = Path(config["credential_source"]["file"])
        token_file.write_text(emu.issue_oidc_token(
            subject="repo:demo-org/app:ref:refs/heads/main", audience=config["audience"]))
        wif_path = work / "wif.json"
        _files.write_private_json(wif_path, config)
        out.write(f"    the job's OIDC token is in {token_file.name}; pool provider "
                  f"{config['audience'].rsplit('/', 1)[-1]}\n")
        with _environment({**isolated, "GOOGLE_APPLICATION_CREDENTIALS": str(wif_path),
                           "GOOGLE_CLOUD_PROJECT": "demo-project"}):
            before = emu.counts
            res = _resolve()
            out.write(f"    ADC chose: {res.source} -> external_account "
                      f"({res.credentials.source_kind} source), impersonating "
                      f"{res.credentials.service_account_email}\n")
            _call_api(res.credentials, emu, "demo-project", out)
            counts = emu.counts - before
            out.write(f"    the STS checked the token's signature, issuer, audience, expiry "
                      f"and the provider's condition: {counts.get('sts', 0)} exchange, "
                      f"{counts.get('generateAccessToken', 0)} impersonation call\n")

        # 5. nothing at all: the error a user would see (metadata at a closed loopback port)
        out.write("\n5. No credentials anywhere: the error says what was tried and how to fix it\n")
        closed = f"127.0.0.1:{_closed_port()}"
        with _environment({**isolated, "NO_GCE_CHECK": None, "GOOGLE_CLOUD_PROJECT": None,
                           "GCE_METADATA_HOST": closed, "GCE_METADATA_IP": closed}):
            started = time.perf_counter()
            try:
                default(SCOPES)
            except DefaultCredentialsError as exc:
                elapsed = (time.perf_counter() - started) * 1000
                for line in str(exc).splitlines():
                    out.write(f"    | {line}\n")
                out.write(f"    (decided in {elapsed:.1f} ms)\n")

        counts = emu.counts
        out.write(f"\nEmulator saw {counts.get('token', 0)} token request(s), "
                  f"{counts.get('metadata_token', 0)} metadata token request(s), "
                  f"{counts.get('sts', 0)} STS exchange(s), "
                  f"{counts.get('api', 0)} API call(s). Demo complete.\n")
    out.write(NEXT_STEPS)
    return 0
