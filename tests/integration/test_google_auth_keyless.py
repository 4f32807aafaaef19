# mypy: disable-error-code="no-untyped-call"
"""The real google-auth against the emulator's keyless endpoints (is the emulator faithful?),
and gcauth and google-auth verifying each other's ID tokens.

google-auth is pointed at the emulator only through explicit endpoints and the environment:
``iam_endpoint_override``, key files whose ``token_uri`` is the emulator's, ``GCE_METADATA_*``,
``certs_url``, and (where google-auth has no override) its IAM endpoint templates replaced
by the emulator's. Its regional-access-boundary lookup goes to a closed loopback port.

google-auth's ``Credentials.from_authorized_user_info`` always sends a user's refresh token to
Google (it overrides the file's ``token_uri``), so user sources are built with the
constructor and its ``token_uri=``, and impersonated files here have service-account
sources. A guard refuses any name lookup but loopback's, so a mistake fails here instead of
reaching a resolver.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.auth")

import google.auth.transport.requests as google_requests  # noqa: E402
from google.auth import _regional_access_boundary_utils as google_rab  # noqa: E402
from google.auth import iam as google_iam  # noqa: E402
from google.auth import impersonated_credentials as google_impersonated  # noqa: E402
from google.oauth2 import credentials as google_user  # noqa: E402
from google.oauth2 import id_token as google_id_token  # noqa: E402
from google.oauth2 import service_account as google_sa  # noqa: E402

from gcauth import id_token, impersonated_credentials, service_account  # noqa: E402
from gcauth.emulator import Emulator  # noqa: E402
from gcauth.transport.requests import AuthorizedSession  # noqa: E402
from tests.integration.test_keyless import keyless, user, verifies  # noqa: E402
from tests.kit.network import closed_loopback_port  # noqa: E402

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
AUD = "https://my-service.run.app"


_LOOPBACK_NAMES = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def google_auth_stays_on_loopback(emulator: Emulator,
                                  monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK_NAMES:
            raise AssertionError(f"a test tried to look up {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    closed = f"http://127.0.0.1:{closed_loopback_port()}"

    def rab_endpoint(email: str) -> str:
        return f"{closed}/v1/projects/-/serviceAccounts/{email}/allowedLocations"

    monkeypatch.setattr(google_rab, "get_service_account_rab_endpoint", rab_endpoint)
    base = emulator.iam_endpoint + "/v1/projects/-/serviceAccounts/{}"
    monkeypatch.setattr(google_iam, "_IAM_IDTOKEN_ENDPOINT", base + ":generateIdToken")
    monkeypatch.setattr(google_iam, "_IAM_SIGN_ENDPOINT", base + ":signBlob")
    yield


def google_user_source(emu: Emulator) -> google_user.Credentials:
    info = emu.create_authorized_user()
    return google_user.Credentials(None, refresh_token=info["refresh_token"],
                                   token_uri=emu.token_uri, client_id=info["client_id"],
                                   client_secret=info["client_secret"])


def override(emu: Emulator, target: str) -> str:
    return f"{emu.iam_endpoint}/v1/projects/-/serviceAccounts/{target}:generateAccessToken"


def sql(emu: Emulator) -> str:
    return f"{emu.api_url}/sql/v1beta4/projects/p1/instances"


def test_google_auth_impersonates_with_a_service_account_source(emulator: Emulator) -> None:
    key = emulator.create_service_account(name="ga-source")
    target = keyless(emulator, "ga-target", granted=("serviceAccount:" + key["client_email"],))
    source = google_sa.Credentials.from_service_account_info(key)
    creds = google_impersonated.Credentials(
        source_credentials=source, target_principal=target, target_scopes=[CLOUD],
        lifetime=600, iam_endpoint_override=override(emulator, target))
    request = google_requests.Request()
    emulator.reset_counts()
    creds.refresh(request)  # its source token carries only the iam scope; "delegates": null
    assert creds.token and creds.expiry is not None
    record = emulator.access_token_info(creds.token)
    assert record is not None and record.email == target
    assert emulator.counts["generateAccessToken"] == 1
    assert google_requests.AuthorizedSession(creds).get(sql(emulator)).status_code == 200


def test_google_auth_impersonates_with_a_user_source_and_mints_id_tokens(
        emulator: Emulator) -> None:
    target = keyless(emulator, "ga-user-target")
    source = google_user_source(emulator)
    creds = google_impersonated.Credentials(
        source_credentials=source, target_principal=target, target_scopes=[CLOUD],
        iam_endpoint_override=override(emulator, target))
    request = google_requests.Request()
    ids = google_impersonated.IDTokenCredentials(creds, target_audience=AUD,
                                                 include_email=True)
    ids.refresh(request)
    assert isinstance(ids.token, str)
    # gcauth verifies the ID token google-auth obtained
    claims = id_token.verify_oauth2_token(ids.token, None, AUD,
                                          certs_url=emulator.pem_certs_uri)
    assert claims["email"] == target
    signature = google_iam.Signer(request, source, target).sign(b"signed url")
    assert verifies(emulator, target, b"signed url", signature)


def test_google_auth_fetch_id_token_with_a_key_file(emulator: Emulator, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(emulator.create_service_account(name="ga-fetch")))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    token = google_id_token.fetch_id_token(google_requests.Request(), AUD)
    claims = id_token.verify_oauth2_token(token, None, AUD, certs_url=emulator.certs_uri)
    assert claims["email"] == "ga-fetch@emu-project.iam.gserviceaccount.com"


def test_google_auth_fetch_id_token_with_an_impersonated_file(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = emulator.create_service_account(name="ga-fetch-imp-source")
    target = keyless(emulator, "ga-fetch-imp", granted=("serviceAccount:" + key["client_email"],))
    path = tmp_path / "adc.json"
    path.write_text(json.dumps({
        "type": "impersonated_service_account", "delegates": [],
        "service_account_impersonation_url": override(emulator, target),
        "source_credentials": key}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    token = google_id_token.fetch_id_token(google_requests.Request(), AUD)
    assert id_token.verify_oauth2_token(token, None, AUD,
                                        certs_url=emulator.certs_uri)["email"] == target
    # gcauth reads the same file, through the same endpoint
    ours = id_token.fetch_id_token(None, AUD)
    assert id_token.verify_token(ours, None, AUD, certs_url=emulator.certs_uri)["email"] == target


def test_google_auth_fetch_id_token_from_the_metadata_server(
        emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    emulator.reset_counts()
    token = google_id_token.fetch_id_token(google_requests.Request(), AUD)
    assert emulator.counts["metadata_identity"] == 1
    claims = id_token.verify_oauth2_token(token, None, AUD, certs_url=emulator.pem_certs_uri)
    assert claims["email"] == emulator.metadata_service_account_email


def test_google_auth_verifies_what_gcauth_obtained(emulator: Emulator) -> None:
    target = keyless(emulator, "ga-verify")
    ours = impersonated_credentials.IDTokenCredentials(
        impersonated_credentials.Credentials(user(emulator), target, [CLOUD],
                                             iam_endpoint_override=emulator.iam_endpoint),
        target_audience=AUD, include_email=True)
    token = ours.get_token().access_token
    request = google_requests.Request()
    claims: dict[str, Any] = dict(google_id_token.verify_token(
        token, request, audience=AUD, certs_url=emulator.pem_certs_uri))
    assert claims["email"] == target and claims["iss"] == "https://accounts.google.com"
    key = emulator.create_service_account(name="ga-verify-sa")
    sa_token = service_account.IDTokenCredentials.from_service_account_info(
        key, target_audience=AUD).get_token().access_token
    assert google_id_token.verify_token(sa_token, request, audience=AUD,
                                        certs_url=emulator.pem_certs_uri)["aud"] == AUD
    with pytest.raises(ValueError):
        google_id_token.verify_token(token, request, audience="https://other",
                                     certs_url=emulator.pem_certs_uri)


def test_gcauth_uses_tokens_minted_for_google_auth_on_its_transports(emulator: Emulator) -> None:
    target = keyless(emulator, "ga-shared")
    source = google_user_source(emulator)
    theirs = google_impersonated.Credentials(source_credentials=source, target_principal=target,
                                             target_scopes=[CLOUD],
                                             iam_endpoint_override=override(emulator, target))
    theirs.refresh(google_requests.Request())
    ours = impersonated_credentials.Credentials(user(emulator), target, [CLOUD],
                                                iam_endpoint_override=override(emulator, target))
    assert AuthorizedSession(ours).get(sql(emulator)).status_code == 200
    both = {theirs.token, ours.token}
    assert len(both) == 2 and all(emulator.is_access_token_valid(str(t)) for t in both)
    assert base64.b64decode(base64.b64encode(b"ok")) == b"ok"
