"""Google's own client libraries on gcauth credentials, against loopback servers and the
emulator: google-cloud-storage and google-cloud-bigquery (REST), google-cloud-datastore and
a gapic client (Secret Manager) over gRPC, googleapiclient (discovery), and google-auth
itself reading gcauth's files.

Nothing leaves loopback: every endpoint comes from ``client_options``, tokens come from the
emulator, google-auth's own lookups are pointed at a closed loopback port
(``block_google_auth_lookups``), and the suite's socket guard refuses anything else. The fake
APIs check every bearer token with the emulator, so "the emulator-issued token arrives" is
what each test asserts.
"""

from __future__ import annotations

import base64
import functools
import json
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google.auth.credentials as ga
import google.auth.transport.grpc as ga_grpc
import google.auth.transport.requests as ga_requests
import google.cloud.bigquery as bigquery
import google.cloud.datastore as datastore
import google.cloud.secretmanager as secretmanager
import google.cloud.storage as storage
import google.oauth2.credentials as ga_user
import google.oauth2.service_account as ga_sa
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from google.cloud.datastore import _gapic as datastore_gapic
from google.cloud.datastore_v1.types import (
    Entity,
    EntityResult,
    Key,
    LookupResponse,
    PartitionId,
    Value,
)
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from google.cloud.secretmanager_v1.types import AccessSecretVersionResponse, SecretPayload
from googleapiclient import discovery

import gcauth
from gcauth import authorized_user, service_account
from gcauth._protocol import jwt
from gcauth.compat.google_auth import ScopedCredentials, to_google_auth
from gcauth.emulator import Emulator
from gcauth.exceptions import SigningError, UsageError
from tests.kit.google import FakeGrpcApi, FakeRestApi, Seen, bearer_tokens

pytestmark = pytest.mark.usefixtures("block_google_auth_lookups")

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
STORAGE_SCOPE = "https://www.googleapis.com/auth/devstorage.full_control"
SECRET = "projects/p/secrets/s/versions/1"
LOOKUP = "/google.datastore.v1.Datastore/Lookup"
ACCESS = "/google.cloud.secretmanager.v1.SecretManagerService/AccessSecretVersion"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _counts(emu: Emulator) -> None:
    emu.reset_counts()


@pytest.fixture(scope="module")
def key(emu: Emulator) -> dict[str, str]:
    return emu.create_service_account(project_id="emu-project", name="libraries")


def sa(key: dict[str, str], **kwargs: Any) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_info(key, **kwargs)


# -- a REST API that checks tokens with the emulator ------------------------------------------
def _checked(emu: Emulator, answer: Callable[[Seen, Any], tuple[int, Any]],
             ) -> Callable[[Seen, Any], tuple[int, Any]]:
    def reply(seen: Seen, match: Any) -> tuple[int, Any]:
        tokens = bearer_tokens([seen.headers])
        if not tokens or not emu.is_access_token_valid(tokens[0]):
            return 401, {"error": {"code": 401, "message": "Invalid Credentials",
                                   "status": "UNAUTHENTICATED"}}
        return answer(seen, match)
    return reply


def _buckets(seen: Seen, match: Any) -> tuple[int, Any]:
    return 200, {"kind": "storage#buckets",
                 "items": [{"kind": "storage#bucket", "id": "b1", "name": "b1"}]}


def _job_insert(seen: Seen, match: Any) -> tuple[int, Any]:
    body = seen.json()
    reference = {**body.get("jobReference", {}), "location": "US"}
    return 200, {"kind": "bigquery#job", "jobReference": reference,
                 "configuration": body.get("configuration", {}), "status": {"state": "DONE"}}


def _query_results(seen: Seen, match: Any) -> tuple[int, Any]:
    return 200, {"kind": "bigquery#getQueryResultsResponse", "jobComplete": True,
                 "jobReference": {"projectId": match["p"], "jobId": match["j"],
                                  "location": "US"},
                 "totalRows": "1", "rows": [{"f": [{"v": "1"}]}],
                 "schema": {"fields": [{"name": "f0_", "type": "INTEGER", "mode": "NULLABLE"}]}}


@pytest.fixture
def rest_api(emu: Emulator) -> Iterator[FakeRestApi]:
    routes = {
        ("GET", r"/storage/v1/b"): _checked(emu, _buckets),
        ("POST", r"/bigquery/v2/projects/(?P<p>[^/]+)/jobs"): _checked(emu, _job_insert),
        ("GET", r"/bigquery/v2/projects/(?P<p>[^/]+)/queries/(?P<j>[^/]+)"):
            _checked(emu, _query_results),
    }
    with FakeRestApi(routes) as api:
        yield api


def _storage(api: FakeRestApi, credentials: Any, **options: Any) -> Any:
    return storage.Client(project="emu-project", credentials=credentials,
                          client_options={"api_endpoint": api.url, **options})


# -- storage ----------------------------------------------------------------------------------
def test_storage_sends_the_emulator_token_and_the_client_options_quota_project(
        emu: Emulator, key: dict[str, str], rest_api: FakeRestApi) -> None:
    client = _storage(rest_api, to_google_auth(sa(key)), quota_project_id="billing")
    assert [b.name for b in client.list_buckets()] == ["b1"]
    client.close()
    [seen] = rest_api.requests("/storage/v1/b")
    [token] = bearer_tokens([seen.headers])
    assert emu.is_access_token_valid(token) and seen.headers["x-goog-user-project"] == "billing"
    info = emu.access_token_info(token)
    assert info is not None and STORAGE_SCOPE in info.scopes  # the library's scopes applied
    assert emu.counts["token_issued"] == 1


def test_a_storage_herd_of_32_threads_makes_one_token_request(
        emu: Emulator, key: dict[str, str], rest_api: FakeRestApi) -> None:
    client = _storage(rest_api, to_google_auth(sa(key)))
    barrier = threading.Barrier(32)

    def one(_: int) -> list[str]:
        barrier.wait()
        return [b.name for b in client.list_buckets()]

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(32)))
    client.close()
    assert results == [["b1"]] * 32
    assert emu.counts["token"] == 1
    assert len(set(bearer_tokens([s.headers for s in rest_api.seen]))) == 1


def test_a_storage_401_gets_a_new_token_not_the_cached_one(
        emu: Emulator, key: dict[str, str], rest_api: FakeRestApi) -> None:
    client = _storage(rest_api, to_google_auth(sa(key)))
    list(client.list_buckets())
    [first] = bearer_tokens([s.headers for s in rest_api.seen])
    emu.expire_access_token(first)  # the server forgets it; the client's cache does not know
    assert [b.name for b in client.list_buckets()] == ["b1"]
    client.close()
    tokens = bearer_tokens([s.headers for s in rest_api.seen])
    assert tokens[:2] == [first, first] and len(tokens) == 3 and tokens[2] != first
    assert emu.is_access_token_valid(tokens[2]) and emu.counts["token"] == 2


def test_storage_signs_urls_with_a_service_account_key(key: dict[str, str]) -> None:
    creds = sa(key)
    client = storage.Client(project="emu-project", credentials=to_google_auth(creds),
                            client_options={"api_endpoint": "http://127.0.0.1:9"})
    blob = client.bucket("bucket").blob("object.txt")
    url = blob.generate_signed_url(version="v4", expiration=timedelta(minutes=5),
                                   method="GET")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Goog-Credential"][0].startswith(creds.signer_email + "/")
    assert len(bytes.fromhex(query["X-Goog-Signature"][0])) == 256  # RSA-2048
    v2 = blob.generate_signed_url(version="v2", expiration=timedelta(minutes=5))
    client.close()
    signed = parse_qs(urlsplit(v2).query)
    assert signed["GoogleAccessId"] == [creds.signer_email]
    # V2's string to sign: method, MD5, type, expiry, resource; signed with the gcauth key
    string_to_sign = f"GET\n\n\n{signed['Expires'][0]}\n/bucket/object.txt".encode()
    creds.signer.public_key().verify(base64.b64decode(signed["Signature"][0]),
                                     string_to_sign, padding.PKCS1v15(), hashes.SHA256())


def test_signing_without_a_key_is_a_gcauth_error_that_says_what_works(emu: Emulator) -> None:
    user = authorized_user.Credentials.from_authorized_user_info(emu.create_authorized_user())
    client = storage.Client(project="emu-project", credentials=to_google_auth(user),
                            client_options={"api_endpoint": "http://127.0.0.1:9"})
    blob = client.bucket("bucket").blob("object.txt")
    with pytest.raises(SigningError, match=r"authorized_user credentials .* cannot sign") as info:
        blob.generate_signed_url(version="v4", expiration=timedelta(minutes=5))
    assert "service_account_email=" in str(info.value)
    client.close()
    assert not isinstance(info.value, AttributeError)


# -- BigQuery ---------------------------------------------------------------------------------
def test_bigquery_runs_a_query_with_the_emulator_token(
        emu: Emulator, key: dict[str, str], rest_api: FakeRestApi) -> None:
    client = bigquery.Client(project="emu-project", credentials=to_google_auth(sa(key)),
                             client_options={"api_endpoint": rest_api.url})
    rows = list(client.query("SELECT 1").result())
    client.close()
    assert [tuple(row.values()) for row in rows] == [(1,)]
    seen = rest_api.requests("/bigquery/")
    assert len(seen) >= 2 and rest_api.unmatched == []
    tokens = set(bearer_tokens([s.headers for s in seen]))
    assert len(tokens) == 1 and emu.is_access_token_valid(tokens.pop())
    assert emu.counts["token"] == 1


# -- gRPC: Datastore and a gapic client -------------------------------------------------------
def _lookup(request: bytes) -> bytes:
    entity = Entity(key=Key(partition_id=PartitionId(project_id="emu-project"),
                            path=[Key.PathElement(kind="Task", name="t1")]),
                    properties={"done": Value(boolean_value=True)})
    return bytes(LookupResponse.serialize(LookupResponse(found=[EntityResult(entity=entity)])))


def _access(request: bytes) -> bytes:
    reply = AccessSecretVersionResponse(name=SECRET, payload=SecretPayload(data=b"hello"))
    return bytes(AccessSecretVersionResponse.serialize(reply))


@pytest.fixture
def grpc_api() -> Iterator[FakeGrpcApi]:
    with FakeGrpcApi({LOOKUP: _lookup, ACCESS: _access}) as api:
        yield api


def _secret_manager(api: FakeGrpcApi, credentials: Any, **options: Any) -> Any:
    transport = functools.partial(SecretManagerServiceGrpcTransport,
                                  ssl_channel_credentials=api.channel_credentials())
    return secretmanager.SecretManagerServiceClient(
        credentials=credentials, transport=transport,
        client_options={"api_endpoint": api.target, **options})


def test_datastore_over_grpc_sends_the_emulator_token_once_for_many_calls(
        emu: Emulator, key: dict[str, str], grpc_api: FakeGrpcApi,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # datastore's https path always dials port 443 with TLS (google.cloud._helpers
    # .make_secure_channel): this one call is re-targeted at the loopback server with
    # local-TCP channel credentials; the credentials plumbing (google-auth's gRPC metadata
    # plugin calling before_request on every call) is the library's own
    def channel(credentials: Any, user_agent: str, host: str, extra_options: Any = ()) -> Any:
        return ga_grpc.secure_authorized_channel(
            credentials, ga_requests.Request(), grpc_api.target,
            ssl_credentials=grpc_api.channel_credentials())

    monkeypatch.setattr(datastore_gapic, "make_secure_channel", channel)
    client = datastore.Client(project="emu-project", credentials=to_google_auth(sa(key)),
                              client_options={"api_endpoint": "https://127.0.0.1",
                                              "quota_project_id": "billing"})
    with ThreadPoolExecutor(16) as pool:
        entities = list(pool.map(lambda _: client.get(client.key("Task", "t1")), range(16)))
    assert all(e is not None and e["done"] is True for e in entities)
    client.close()
    assert len(grpc_api.calls) == 16 and {c.method for c in grpc_api.calls} == {LOOKUP}
    tokens = set(bearer_tokens([c.metadata for c in grpc_api.calls]))
    assert len(tokens) == 1 and emu.is_access_token_valid(next(iter(tokens)))
    assert {c.metadata.get("x-goog-user-project") for c in grpc_api.calls} == {"billing"}
    assert emu.counts["token"] == 1


def test_a_gapic_client_applies_its_default_scopes_and_quota_project_to_the_adapter(
        emu: Emulator, key: dict[str, str], grpc_api: FakeGrpcApi) -> None:
    client = _secret_manager(grpc_api, to_google_auth(sa(key)), quota_project_id="billing")
    assert client.access_secret_version(name=SECRET).payload.data == b"hello"
    [call] = grpc_api.calls
    [token] = bearer_tokens([call.metadata])
    info = emu.access_token_info(token)
    assert info is not None and info.scopes == (CLOUD,)  # SecretManager's AUTH_SCOPES
    assert call.metadata["x-goog-user-project"] == "billing"
    client.transport.close()


def test_a_gapic_client_takes_gcauth_credentials_directly(
        emu: Emulator, key: dict[str, str], grpc_api: FakeGrpcApi) -> None:
    # an unscoped service account: a self-signed JWT for the API host (AIP-4111)
    creds = sa(key, quota_project_id="own")
    client = _secret_manager(grpc_api, creds)
    assert client.access_secret_version(name=SECRET).payload.data == b"hello"
    [token] = bearer_tokens([grpc_api.calls[-1].metadata])
    jwt.verify_rs256(token, creds.signer.public_key())
    claims = jwt.decode(token)[1]
    assert claims["aud"] == f"https://{grpc_api.target}/" and claims["iss"] == key["client_email"]
    assert grpc_api.calls[-1].metadata["x-goog-user-project"] == "own"
    assert emu.counts["token"] == 0  # no token endpoint involved
    client.transport.close()
    # scoped, and a user: the emulator's access tokens
    for direct in (sa(key, scopes=[CLOUD]), authorized_user.Credentials.from_authorized_user_info(
            emu.create_authorized_user())):
        other = _secret_manager(grpc_api, direct)
        other.access_secret_version(name=SECRET)
        [token] = bearer_tokens([grpc_api.calls[-1].metadata])
        assert emu.is_access_token_valid(token)
        other.transport.close()


# -- googleapiclient -------------------------------------------------------------------------
def test_googleapiclient_static_discovery_pointed_at_the_emulator(
        emu: Emulator, key: dict[str, str]) -> None:
    g = to_google_auth(sa(key, quota_project_id="billing"))
    with discovery.build("sqladmin", "v1beta4", credentials=g,
                         client_options={"api_endpoint": emu.url}) as service:
        reply = service.instances().list(project="emu-project").execute()
    assert reply["items"][0]["name"] == "emu-instance-1"
    assert emu.counts["api"] == 1 and emu.quota_projects_seen[-1] == "billing"
    assert emu.counts["token_issued"] == 1


def test_googleapiclient_refreshes_after_a_401_through_google_auth_httplib2(
        emu: Emulator, key: dict[str, str]) -> None:
    g = to_google_auth(sa(key))
    with discovery.build("sqladmin", "v1beta4", credentials=g,
                         client_options={"api_endpoint": emu.url}) as service:
        service.instances().list(project="p").execute()
        first = service._http.credentials.token  # the scoped copy googleapiclient made
        emu.expire_access_token(first)  # the API now answers 401 to it
        reply = service.instances().list(project="p").execute()
        second = service._http.credentials.token
    assert reply["items"][0]["name"] == "emu-instance-1"
    assert second != first and emu.is_access_token_valid(second)
    assert emu.counts["api"] == 3 and emu.counts["token_issued"] == 2


def test_google_auths_own_lookups_go_to_a_closed_loopback_port(
        emu: Emulator, key: dict[str, str], rest_api: FakeRestApi,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from google.auth import _regional_access_boundary_utils as rab

    assert urlsplit(rab.get_service_account_rab_endpoint("a@b")).hostname == "127.0.0.1"
    monkeypatch.setenv(
        "GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED", "true")
    client = _storage(rest_api, ga_sa.Credentials.from_service_account_info(key))
    assert [b.name for b in client.list_buckets()] == ["b1"]  # the lookup fails, quietly
    client.close()


def test_googleapiclient_builds_offline_from_the_emulators_discovery_documents(
        emu: Emulator) -> None:
    user = authorized_user.Credentials.from_authorized_user_info(
        emu.create_authorized_user(quota_project_id="user-billing"))
    url = emu.url + "/discovery/v1/apis/{api}/{apiVersion}/rest"
    for version in ("v1beta3", "v1beta4"):
        with discovery.build("sqladmin", version, credentials=to_google_auth(user),
                             discoveryServiceUrl=url, cache_discovery=False) as service:
            reply = service.instances().list(project="p").execute()
        assert f"/sql/{version}/projects/p/" in reply["items"][0]["selfLink"]
    assert emu.counts["discovery"] == 2 and emu.counts["api"] == 2
    assert emu.quota_projects_seen[-2:] == ["user-billing", "user-billing"]
    assert emu.counts["token"] == 1  # a user credential: one token for both clients


def test_googleapiclient_given_gcauth_credentials_says_to_adapt_them(
        emu: Emulator, key: dict[str, str]) -> None:
    with pytest.raises(UsageError, match=r"to_google_auth\(credentials\)") as info:
        discovery.build("sqladmin", "v1beta4", credentials=sa(key, scopes=[CLOUD]),
                        client_options={"api_endpoint": emu.url})
    assert not isinstance(info.value, AttributeError)


def test_google_cloud_core_refuses_gcauth_credentials_the_adapter_is_the_way(
        key: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="google-auth-library-python"):
        storage.Client(project="p", credentials=sa(key))
    assert isinstance(to_google_auth(sa(key)), ga.Credentials)


# -- google-auth and gcauth files -------------------------------------------------------------
def test_google_auth_sends_user_refresh_tokens_to_google_whatever_the_file_says(
        emu: Emulator) -> None:
    info = emu.create_authorized_user()
    theirs = ga_user.Credentials.from_authorized_user_info(info)
    assert info["token_uri"] == emu.token_uri
    assert theirs.token_uri == "https://oauth2.googleapis.com/token"  # never refreshed here
    ours = to_google_auth(authorized_user.Credentials.from_authorized_user_info(info))
    ours.refresh(ga_requests.Request())
    assert ours.token is not None and emu.is_access_token_valid(ours.token)
    assert emu.counts["token_issued"] == 1


def test_the_quickstart_token_json_round_trip(emu: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    first = authorized_user.Credentials.from_authorized_user_info(emu.create_authorized_user())
    first.refresh()
    path.write_text(first.to_json())
    # the next run: the saved token is used, no login and no token request
    creds = authorized_user.Credentials.from_authorized_user_file(path)
    assert creds.valid and creds.token == first.token and emu.counts["token"] == 1
    # an hour later: the token reads as expired and is refreshed, not sent through login
    saved = json.loads(path.read_text())
    saved["expiry"] = (datetime.now(timezone.utc) - timedelta(minutes=5)).replace(
        tzinfo=None).isoformat() + "Z"
    path.write_text(json.dumps(saved))
    creds = authorized_user.Credentials.from_authorized_user_file(path)
    assert not creds.valid and creds.expired and creds.refresh_token
    creds.refresh(ga_requests.Request())  # the quickstart passes google-auth's Request
    assert creds.valid and creds.token != first.token and emu.counts["token"] == 2
    # google-auth reads the file gcauth writes (pointed at the emulator, as it never is
    # by itself), and refreshes through it
    path.write_text(creds.to_json())
    theirs = ga_user.Credentials.from_authorized_user_file(str(path)).with_token_uri(
        emu.token_uri)
    assert theirs.token == creds.token and theirs.valid
    theirs.refresh(ga_requests.Request())
    assert emu.is_access_token_valid(theirs.token) and emu.counts["token"] == 3


def test_google_auth_service_account_and_the_adapter_agree(
        emu: Emulator, key: dict[str, str], rest_api: FakeRestApi) -> None:
    native = ga_sa.Credentials.from_service_account_info(key)
    ours = to_google_auth(sa(key))
    assert isinstance(ours, ScopedCredentials)
    for credentials in (native, ours):
        client = _storage(rest_api, credentials)
        assert [b.name for b in client.list_buckets()] == ["b1"]
        client.close()
    tokens = bearer_tokens([s.headers for s in rest_api.seen])
    assert len(tokens) == 2 and all(emu.is_access_token_valid(t) for t in tokens)


# -- credentials shipped to worker processes --------------------------------------------------
def _token_in_worker(credentials: gcauth.credentials.Credentials) -> tuple[str, bool]:
    had = credentials.token is not None
    return credentials.get_token().access_token, had


def test_pickled_credentials_work_in_a_spawned_worker(emu: Emulator,
                                                      key: dict[str, str]) -> None:
    creds = sa(key, scopes=[CLOUD])
    creds.get_token()
    fresh = sa(key, scopes=[CLOUD])
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        carried = pool.submit(_token_in_worker, creds).result(timeout=120)
        fetched = pool.submit(_token_in_worker, fresh).result(timeout=120)
    assert carried == (creds.token, True)  # the token travelled: no request in the worker
    assert fetched[1] is False and emu.is_access_token_valid(fetched[0])
    assert emu.counts["token_issued"] == 2


def test_an_adapter_survives_pickle_with_its_own_cache(emu: Emulator,
                                                       key: dict[str, str]) -> None:
    import pickle

    g = to_google_auth(sa(key, scopes=[CLOUD])).with_quota_project("q")
    g.refresh(ga_requests.Request())
    twin = pickle.loads(pickle.dumps(g))
    assert twin.token == g.token and twin.quota_project_id == "q"
    twin.refresh(ga_requests.Request())
    assert twin.token != g.token and emu.is_access_token_valid(twin.token)
