"""Discovery documents for the sample API and its v1beta3 endpoint, over raw HTTP."""

from __future__ import annotations

import pytest

from gcauth.emulator import Emulator
from tests.kit.emu import CLOUD, Kit

SQLADMIN = "https://www.googleapis.com/auth/sqlservice.admin"


@pytest.mark.parametrize("version", ["v1beta4", "v1beta3"])
def test_a_document_per_implemented_version_rooted_at_the_emulator(
        kit: Kit, emu: Emulator, version: str) -> None:
    reply = kit.get(f"/discovery/v1/apis/sqladmin/{version}/rest")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/json")
    doc = reply.json()
    assert doc["kind"] == "discovery#restDescription" and doc["version"] == version
    assert doc["name"] == "sqladmin" and doc["rootUrl"] == emu.url + "/"
    assert doc["servicePath"] == ""
    method = doc["resources"]["instances"]["methods"]["list"]
    assert method["path"] == f"sql/{version}/projects/{{project}}/instances"
    assert method["httpMethod"] == "GET" and method["parameterOrder"] == ["project"]
    assert set(doc["auth"]["oauth2"]["scopes"]) == {CLOUD, SQLADMIN}
    assert method["response"]["$ref"] in doc["schemas"]
    assert emu.counts["discovery"] == 1


@pytest.mark.parametrize("path", ["/discovery/v1/apis/sqladmin/v1/rest",
                                  "/discovery/v1/apis/storage/v1/rest"])
def test_other_apis_and_versions_are_not_found(kit: Kit, path: str) -> None:
    reply = kit.get(path)
    assert reply.status == 404
    assert reply.json()["error"]["status"] == "NOT_FOUND"


def test_only_get(kit: Kit) -> None:
    reply = kit.request("POST", "/discovery/v1/apis/sqladmin/v1beta4/rest", b"{}",
                        {"Content-Type": "application/json"})
    assert reply.status == 405 and reply.headers["Allow"] == "GET"


def test_the_v1beta3_endpoint_answers_like_v1beta4(kit: Kit, emu: Emulator,
                                                   sa: dict[str, str]) -> None:
    token = kit.sa_token(sa)
    reply = kit.get("/sql/v1beta3/projects/p3/instances",
                    {"Authorization": f"Bearer {token}", "X-Goog-User-Project": "qp"})
    assert reply.status == 200
    item = reply.json()["items"][0]
    assert item["instance"] == item["name"] == "emu-instance-1" and item["project"] == "p3"
    assert "/sql/v1beta3/projects/p3/" in item["selfLink"]
    assert emu.quota_projects_seen[-1] == "qp"
    assert kit.get("/sql/v1beta3/projects/p3/instances").status == 401
    assert emu.counts["api"] == 2
