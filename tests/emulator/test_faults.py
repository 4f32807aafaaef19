"""Fault injection: every kind, rates, counters and the HTTP control endpoint."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from gcauth.emulator import Emulator
from tests.kit.emu import Kit

MD_TOKEN = "instance/service-accounts/default/token"


def test_status_fault_with_retry_after(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    emu.faults.add("token", kind="status", status=503, count=2, retry_after=1)
    for _ in range(2):
        r = kit.jwt_grant(sa)
        assert r.status == 503 and r.headers["Retry-After"] == "1"
        assert r.json()["error"] == "temporarily_unavailable"
    assert kit.jwt_grant(sa).status == 200
    assert emu.counts["token"] == 3 and emu.counts["token_issued"] == 1
    assert emu.faults.injected["status"] == 2
    assert emu.faults.injected_by_group["token"] == 2


def test_status_fault_on_metadata_and_api(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    emu.faults.add("metadata", kind="status", status=500)
    r = kit.md(MD_TOKEN)
    assert r.status == 500 and r.headers["Metadata-Flavor"] == "Google"
    assert emu.counts["metadata_token"] == 1 and emu.counts["metadata_token_issued"] == 0
    assert kit.md(MD_TOKEN).status == 200
    tok = kit.sa_token(sa)
    emu.faults.add("api", kind="status", status=429)
    r = kit.api(tok)
    assert r.status == 429 and r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert kit.api(tok).status == 200


def test_faults_are_per_group(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    emu.faults.add("revoke", kind="status", status=500)
    assert kit.jwt_grant(sa).status == 200
    assert kit.post("/revoke", {"token": "x"}).status == 500


def test_stall_exceeds_client_timeout(kit: Kit, emu: Emulator) -> None:
    emu.faults.add("metadata", kind="stall", seconds=0.6)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        kit.request("GET", "/computeMetadata/v1/project/project-id",
                    headers={"Metadata-Flavor": "Google"}, timeout=0.2)
    assert time.monotonic() - t0 < 0.5
    assert kit.md("project/project-id").status == 200


def test_stall_then_normal_reply(kit: Kit, emu: Emulator) -> None:
    emu.faults.add("metadata", kind="stall", seconds=0.2)
    t0 = time.monotonic()
    assert kit.md("project/project-id").text == "emu-project"
    assert time.monotonic() - t0 >= 0.2


def test_reset(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    emu.faults.add("token", kind="reset")
    with pytest.raises(ConnectionResetError):
        kit.jwt_grant(sa)
    assert kit.jwt_grant(sa).status == 200
    assert emu.counts["token_issued"] == 1 and emu.faults.injected["reset"] == 1


def test_truncated_body(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    emu.faults.add("token", kind="truncate")
    with pytest.raises(http.client.IncompleteRead):
        kit.jwt_grant(sa)
    assert emu.counts["token_issued"] == 0


def test_non_json(kit: Kit, emu: Emulator) -> None:
    emu.faults.add("metadata", kind="non_json")
    r = kit.md(MD_TOKEN)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        r.json()
    assert emu.counts["metadata_token_issued"] == 0


def test_invalid_grant(kit: Kit, emu: Emulator) -> None:
    user = emu.create_authorized_user()
    emu.faults.add("token", kind="invalid_grant")
    r = kit.post("/token", {"grant_type": "refresh_token", "refresh_token": user["refresh_token"],
                            "client_id": user["client_id"],
                            "client_secret": user["client_secret"]})
    assert r.status == 400 and r.json()["error"] == "invalid_grant"
    assert "error_description" in r.json()


def test_expired_on_arrival(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    emu.faults.add("token", kind="expired")
    body = kit.jwt_grant(sa).json()
    assert body["expires_in"] == 0
    assert not emu.is_access_token_valid(body["access_token"])
    assert kit.api(body["access_token"]).status == 401
    emu.faults.add("metadata", kind="expired")
    assert kit.md(MD_TOKEN).json()["expires_in"] == 0


def test_clock_skew_fault(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    emu.faults.add("token", kind="skew", seconds=4000)  # server clock an hour+ ahead
    r = kit.jwt_grant(sa)
    assert r.status == 400 and "exp" in r.json()["error_description"]
    emu.faults.add("token", kind="skew", seconds=-400)  # behind: iat looks future
    r = kit.jwt_grant(sa)
    assert r.status == 400 and "iat" in r.json()["error_description"]
    assert kit.jwt_grant(sa).status == 200
    assert emu.faults.injected["skew"] == 2


def test_random_rate_is_seeded(emu: Emulator) -> None:
    def sequence() -> list[str | None]:
        emu.faults.set_rate("api", 0.3, kinds=["status", "reset", "non_json"], seed=7)
        out = [getattr(emu.faults.take("api"), "kind", None) for _ in range(200)]
        emu.faults.clear("api")
        return out

    first = sequence()
    assert first == sequence()
    hits = [k for k in first if k is not None]
    assert 30 <= len(hits) <= 90 and set(hits) == {"status", "reset", "non_json"}


def test_rate_over_http(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    tok = kit.sa_token(sa)
    emu.faults.set_rate("api", 0.5, kinds=["status"], seed=3, status=500)
    statuses = [kit.api(tok).status for _ in range(40)]
    assert set(statuses) == {200, 500}
    assert statuses.count(500) == emu.faults.injected["status"]
    emu.faults.set_rate("api", 0)
    assert all(kit.api(tok).status == 200 for _ in range(5))


def test_queue_order_and_pending(emu: Emulator) -> None:
    emu.faults.add("token", "status", status=500)
    emu.faults.add("token", "reset", count=2)
    assert emu.faults.pending()["token"][1]["count"] == 2
    kinds = [emu.faults.take("token") for _ in range(4)]
    assert [getattr(f, "kind", None) for f in kinds] == ["status", "reset", "reset", None]


def test_invalid_fault_arguments(emu: Emulator) -> None:
    with pytest.raises(ValueError):
        emu.faults.add("nope", "status")
    with pytest.raises(ValueError):
        emu.faults.add("token", "explode")
    with pytest.raises(ValueError):
        emu.faults.add("token", "status", status=200)
    with pytest.raises(ValueError):
        emu.faults.add("token", "stall")
    with pytest.raises(ValueError):
        emu.faults.set_rate("token", 1.5)


def test_http_control_endpoint(kit: Kit, emu: Emulator, sa: dict[str, str]) -> None:
    cmd = {"action": "add", "group": "token", "kind": "status", "status": 503, "count": 1,
           "retry_after": 2}
    r = kit.request("POST", "/_emulator/faults", json.dumps(cmd).encode(),
                    {"Content-Type": "application/json"})
    assert r.status == 200 and r.json()["pending"]["token"][0]["count"] == 1
    resp = kit.jwt_grant(sa)
    assert resp.status == 503 and resp.headers["Retry-After"] == "2"
    status = kit.get("/_emulator/faults").json()
    assert status["injected"] == {"status": 1}
    bad = kit.request("POST", "/_emulator/faults", b'{"action": "add", "group": "x"}',
                      {"Content-Type": "application/json"})
    assert bad.status == 400
    form = kit.post("/_emulator/faults", {"action": "clear"})  # not JSON: refused
    assert form.status == 400
    clear = kit.request("POST", "/_emulator/faults", b'{"action": "clear"}',
                        {"Content-Type": "application/json"})
    assert clear.status == 200 and clear.json()["pending"] == {}


def test_control_endpoint_disabled_by_default() -> None:
    with Emulator() as emu:
        kit = Kit(emu)
        r = kit.request("POST", "/_emulator/faults",
                        b'{"action": "add", "group": "token", "kind": "reset"}',
                        {"Content-Type": "application/json"})
        assert r.status == 404
        assert emu.faults.pending() == {}


def test_stop_interrupts_stall() -> None:
    emu = Emulator().start()
    emu.faults.add("metadata", kind="stall", seconds=30)
    sock = socket.create_connection((emu.host, emu.port))
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nMetadata-Flavor: Google\r\n\r\n")
        time.sleep(0.1)
        t0 = time.monotonic()
        emu.stop()
        assert time.monotonic() - t0 < 3
