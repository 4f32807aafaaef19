"""A shared credential against the emulator under abuse: ``fork``, event loops that die
mid-refresh, a blocking call on the refreshing loop, Ctrl-C and no threads to be had.

Proven by the emulator: which account each token belongs to and how many token requests it
saw. Whatever could wedge the test process (fork, signals, thread exhaustion) runs in a child
process with a timeout (``tests.kit.child``); in-process waits have deadlines.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import threading
import time
from typing import Any

import pytest

from gcauth import service_account
from gcauth.credentials import Credentials
from gcauth.exceptions import GCAuthError, RefreshDeadlockError
from gcauth.tokens import Token
from gcauth.transport import aiohttp as gaiohttp
from gcauth.transport import httpx as ghttpx
from gcauth.transport import urllib3 as gurllib3
from tests.kit.child import run_child

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
BOUND = 30.0
# Closing a loop with a refresh pending leaves that loop's HTTP connection open and its task
# and coroutine for the garbage collector, which is what these tests do on purpose: the
# warnings are about the abandoned loop, and each test collects its garbage before it ends so
# they cannot surface in a later test.
ABANDONS_LOOPS = pytest.mark.filterwarnings("ignore::ResourceWarning",
                                            "ignore::pytest.PytestUnraisableExceptionWarning")

EMULATOR_CHILD = """
from gcauth import service_account
from gcauth.emulator import Emulator
from gcauth.transport import urllib3 as gurllib3
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]

def who(emu, value):
    if not isinstance(value, str):
        return value
    info = emu.access_token_info(value)
    return None if info is None else info.email.split("@")[0]
"""


def make_credentials(emu: Any, name: str = "abuse") -> Credentials:
    info = emu.create_service_account(name=name, project_id="abuse")
    return service_account.Credentials.from_service_account_info(info, scopes=SCOPES,
                                                                 timeout=10)


# -- fork ---------------------------------------------------------------------------------------
def test_forked_child_with_a_refresh_in_flight_gets_its_own_token() -> None:
    """The parent's refresh is stalled at the emulator when it forks: the child does not wait
    for it (it would for ever) but makes its own request, for its own account."""
    result = run_child(setup=EMULATOR_CHILD, code="""
        with Emulator() as emu:
            info = emu.create_service_account(name="alice")
            creds = service_account.Credentials.from_service_account_info(
                info, scopes=SCOPES, timeout=10)
            emu.faults.add("token", kind="stall", seconds=2)
            parent = []
            owner = threading.Thread(target=lambda: parent.append(
                creds.get_token(gurllib3.Request()).access_token))
            owner.start()
            deadline = time.monotonic() + 10
            while emu.counts["token"] < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert creds._cache._inflight is not None
            how, child = fork_and_wait(
                lambda: creds.get_token(gurllib3.Request()).access_token)
            owner.join(15)
            child_token = child.get("ok") if child else None
            report(how=how, error=child and child.get("error"),
                   child=who(emu, child_token), parent=who(emu, parent[0] if parent else None),
                   different=child_token != (parent[0] if parent else None),
                   requests=emu.counts["token"])
    """)
    assert result["how"] == "exited" and result["error"] is None, result
    assert result["child"] == "alice" and result["parent"] == "alice"
    assert result["different"]  # the child's own token, not a share of the parent's refresh
    assert result["requests"] == 2


def test_forked_processes_never_get_each_others_tokens_through_the_default_pool() -> None:
    """Parent and child refresh different accounts at the same moment through the default
    transport (``request=None``). Sharing the parent's pooled keep-alive connection, they
    read each other's replies; with their own connections each gets its own account."""
    result = run_child(setup=EMULATOR_CHILD, code="""
        with Emulator() as emu:
            infos = {name: emu.create_service_account(name=name)
                     for name in ("primer", "alice", "bob")}
            def fresh(name):
                return service_account.Credentials.from_service_account_info(
                    infos[name], scopes=SCOPES, timeout=5)
            rounds = []
            for _ in range(8):
                fresh("primer").get_token()  # leaves a keep-alive connection in the pool
                alice, bob = fresh("alice"), fresh("bob")
                emu.faults.add("token", kind="stall", seconds=0.5)  # replies arrive together
                def child():
                    return bob.get_token().access_token
                box = []
                forked = threading.Thread(target=lambda: box.append(fork_and_wait(child, 10)))
                forked.start()
                time.sleep(0.15)  # the child's request is at the emulator
                try:
                    mine = who(emu, alice.get_token().access_token)
                except Exception as exc:
                    mine = type(exc).__name__
                forked.join(15)
                how, got = box[0] if box else ("hung", None)
                theirs = who(emu, got.get("ok")) if got and "ok" in got else (
                    got.get("error") if got else how)
                rounds.append([mine, theirs])
            report(rounds=rounds)
    """, timeout=180)
    assert result["rounds"] == [["alice", "bob"]] * 8


# -- event loops that die mid-refresh ------------------------------------------------------------
@ABANDONS_LOOPS
def test_loop_closed_while_its_refresh_is_at_the_emulator(fresh_emulator: Any) -> None:
    emu = fresh_emulator
    creds = make_credentials(emu)
    emu.faults.add("token", kind="stall", seconds=3)

    async def start() -> None:
        owner = asyncio.ensure_future(creds.aget_token(ghttpx.AsyncRequest()))
        deadline = time.monotonic() + BOUND
        while emu.counts["token"] < 1:  # the refresh is stalled at the emulator
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(owner, 0.01)  # the owner gives up; its refresh is pending

    loop = asyncio.new_event_loop()
    loop.run_until_complete(start())
    loop.close()
    request = gurllib3.Request()
    try:
        box: list[Token] = []
        caller = threading.Thread(target=lambda: box.append(creds.get_token(request)),
                                  daemon=True)
        caller.start()
        caller.join(BOUND)
        assert box, "a later sync caller waited for the closed loop's refresh"
        assert emu.access_token_info(box[0].access_token).email.startswith("abuse@")
        assert emu.counts["token"] == 2  # the abandoned request and the one that replaced it

        async def again() -> Token:
            return await creds.aget_token(ghttpx.AsyncRequest())

        assert asyncio.run(again()) == box[0]  # fresh: no third request
        assert emu.counts["token"] == 2
    finally:
        request.http.clear()
        gc.collect()


def test_threads_waiting_on_a_loop_when_asyncio_run_ends_get_valid_tokens(
        fresh_emulator: Any) -> None:
    emu = fresh_emulator
    creds = make_credentials(emu)
    emu.faults.add("token", kind="stall", seconds=3)
    request = gurllib3.Request()
    seen: list[Any] = []
    lock = threading.Lock()

    def waiter() -> None:
        try:
            result: Any = creds.get_token(request)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            result = exc
        with lock:
            seen.append(result)

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(16)]

    async def main() -> None:
        asyncio.get_running_loop().create_task(creds.aget_token(gaiohttp.AsyncRequest()))
        deadline = time.monotonic() + BOUND
        while emu.counts["token"] < 1:  # the loop's request is stalled at the emulator
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        for thread in threads:
            thread.start()
        await asyncio.sleep(0.3)
        # returning ends asyncio.run(), which cancels the refresh the threads wait for

    try:
        asyncio.run(main())
        for thread in threads:
            thread.join(BOUND)
        assert len(seen) == 16
        assert all(isinstance(t, Token) for t in seen), {type(t).__name__ for t in seen}
        assert len({t.access_token for t in seen}) == 1
        assert emu.is_access_token_valid(seen[0].access_token)
        assert emu.counts["token"] == 2  # one thread took over for all
    finally:
        request.http.clear()


def test_blocking_get_token_from_a_coroutine_on_the_refreshing_loop(fresh_emulator: Any) -> None:
    emu = fresh_emulator
    creds = make_credentials(emu)
    emu.faults.add("token", kind="stall", seconds=0.5)

    async def main() -> tuple[str, Token]:
        refresh = asyncio.ensure_future(creds.aget_token(ghttpx.AsyncRequest()))
        while emu.counts["token"] < 1:
            await asyncio.sleep(0.01)
        try:
            creds.get_token()  # a blocking call on the loop that runs the refresh
            blocked = "returned"
        except RefreshDeadlockError as exc:
            blocked = str(exc)
        return blocked, await refresh

    blocked, token = asyncio.run(asyncio.wait_for(main(), BOUND))
    assert "aget_token" in blocked
    assert emu.is_access_token_valid(token.access_token)
    assert emu.counts["token"] == 1


@ABANDONS_LOOPS
def test_event_loop_churn_with_cancelled_owners_never_hangs_or_fails(
        fresh_emulator: Any) -> None:
    """Threads each run short-lived event loops whose callers are cancelled by wait_for at
    random moments, or whose loops are closed with a refresh pending, while plain threads call
    get_token; tokens live 1 s, so refreshes are always starting and being abandoned."""
    emu = fresh_emulator
    emu.set_token_lifetime(1)
    creds = make_credentials(emu)
    stop = time.monotonic() + 3
    outcomes: list[str] = []
    lock = threading.Lock()
    rng = random.Random(9)

    def keep(outcome: str) -> None:
        with lock:
            outcomes.append(outcome)

    def check(token: Token) -> None:
        keep("token" if token.access_token else "empty")

    async def loop_body(seed: int) -> None:
        local = random.Random(seed)
        request = ghttpx.AsyncRequest() if seed % 2 else gaiohttp.AsyncRequest()
        for _ in range(local.randint(1, 4)):
            try:
                check(await asyncio.wait_for(creds.aget_token(request),
                                             local.choice([0.001, 0.01, 0.05, BOUND])))
            except asyncio.TimeoutError:
                keep("timeout")  # this caller's own wait_for: the refresh goes on
            except GCAuthError as exc:
                keep(type(exc).__name__)

    def churner(seed: int) -> None:
        local = random.Random(seed)
        while time.monotonic() < stop:
            if local.random() < 0.3:  # close the loop without letting tasks finish
                loop = asyncio.new_event_loop()
                try:
                    loop.run_until_complete(loop_body(local.randrange(1 << 30)))
                finally:
                    loop.close()
            else:
                asyncio.run(loop_body(local.randrange(1 << 30)))

    sync_request = gurllib3.Request()

    def sync_caller() -> None:
        while time.monotonic() < stop:
            try:
                check(creds.get_token(sync_request))
            except GCAuthError as exc:
                keep(type(exc).__name__)
            time.sleep(0.005)

    workers = [threading.Thread(target=churner, args=(rng.randrange(1 << 30),), daemon=True)
               for _ in range(4)]
    workers += [threading.Thread(target=sync_caller, daemon=True) for _ in range(2)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(BOUND)
        assert not any(w.is_alive() for w in workers), "a caller hung"
        assert outcomes.count("token") > 50
        assert set(outcomes) <= {"token", "timeout"}, sorted(set(outcomes))
        # ~3 lifetimes, refreshes restarted whenever their loop died: bounded, no herd
        assert emu.counts["token"] <= 40, emu.counts["token"]
        after = creds.get_token(sync_request)  # and the credential still works
        assert emu.is_access_token_valid(after.access_token)
    finally:
        sync_request.http.clear()
        gc.collect()


# -- Ctrl-C and thread exhaustion, in a child process ------------------------------------------
def test_ctrl_c_while_refreshing_against_the_emulator() -> None:
    result = run_child(setup=EMULATOR_CHILD, code="""
        with Emulator() as emu:
            info = emu.create_service_account(name="alice")
            creds = service_account.Credentials.from_service_account_info(
                info, scopes=SCOPES, timeout=10)
            emu.faults.add("token", kind="stall", seconds=5)
            request = gurllib3.Request()
            seen = []

            def waiter():
                try:
                    seen.append(who(emu, creds.get_token(request).access_token))
                except BaseException as exc:
                    seen.append(type(exc).__name__)

            def interrupt():
                deadline = time.monotonic() + 10
                while emu.counts["token"] < 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
                waiters = [threading.Thread(target=waiter) for _ in range(8)]
                for w in waiters:
                    w.start()
                time.sleep(0.3)
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: lands in the main thread
                for w in waiters:
                    w.join(15)

            helper = threading.Thread(target=interrupt)
            helper.start()
            try:
                creds.get_token(gurllib3.Request())
                main = "returned"
            except KeyboardInterrupt:
                main = "KeyboardInterrupt"
            helper.join(20)
            report(main=main, waiters=seen, requests=emu.counts["token"])
    """)
    assert result["main"] == "KeyboardInterrupt"
    assert result["waiters"] == ["alice"] * 8
    assert result["requests"] == 2


def test_thread_exhaustion_with_stale_and_expired_tokens(fresh_emulator: Any) -> None:
    """No thread can be started: stale tokens refresh in the foreground, expired ones too,
    and no caller gets RuntimeError or hangs."""
    emu = fresh_emulator
    emu.set_token_lifetime(1)
    info = emu.create_service_account(name="exhausted")
    result = run_child("""
        import resource
        from gcauth import service_account
        from gcauth.transport import urllib3 as gurllib3
        info = json.loads(sys.stdin.read())
        creds = service_account.Credentials.from_service_account_info(
            info, scopes=["https://www.googleapis.com/auth/cloud-platform"], timeout=10)
        request = gurllib3.Request()
        creds.get_token(request)

        def vm_bytes():
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")

        threading.stack_size(256 * 1024 * 1024)
        resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + 96 * 1024 * 1024,
                                                resource.getrlimit(resource.RLIMIT_AS)[1]))
        try:
            threading.Thread(target=lambda: None).start()
            exhausted = False
        except RuntimeError:
            exhausted = True
        outcomes = {}
        tokens = set()
        stop = time.monotonic() + 3
        while time.monotonic() < stop:
            try:
                tokens.add(creds.get_token(request).access_token)
                key = "token"
            except BaseException as exc:
                key = type(exc).__name__
            outcomes[key] = outcomes.get(key, 0) + 1
            time.sleep(0.01)
        report(exhausted=exhausted, outcomes=outcomes, distinct=len(tokens),
               inflight=creds._cache._inflight is None)
    """, stdin=json.dumps(info))
    assert result["exhausted"], "the child could not exhaust threads; the test proves nothing"
    assert set(result["outcomes"]) == {"token"}, result["outcomes"]
    assert result["distinct"] >= 3  # refreshed each ~1 s lifetime, in the foreground
    assert emu.counts["token"] <= result["distinct"] + 2
    assert result["inflight"]


def test_a_child_forked_while_httpx_state_is_locked_gets_its_own() -> None:
    """The httpx transport's module lock and shared client are reset in a forked child: a
    child forked while a parent thread holds the lock does not hang, and it builds its own
    client instead of sharing the parent's pool."""
    result = run_child(code="""
        from gcauth.transport import httpx as ghttpx
        parent_client = ghttpx._default_request().client
        ghttpx._ssl_lock.acquire()  # as if a parent thread were inside it at fork time
        def child():
            request = ghttpx._default_request()  # takes the lock: hangs without the reset
            return {"own_client": request.client is not parent_client}
        how, value = fork_and_wait(child, timeout=10)
        ghttpx._ssl_lock.release()
        report(how=how, value=value)
    """)
    assert result["how"] == "exited" and result["value"] == {"ok": {"own_client": True}}, result
