"""gcauth soak test: many concurrent API calls through every authorized session while tokens
live 2 s and 5 % of token and metadata replies are faults.

Run (from the repository root, about a minute)::

    .venv/bin/python soak/soak.py            # or: .venv/bin/python -m soak

Loopback only: the emulator runs in a child process on 127.0.0.1 (so its memory is not
counted as ours); the 8 threads (requests, urllib3 and httpx sessions) run in one client
process and the 64 asyncio tasks in one process per async library (httpx, aiohttp), all
sharing one ticket counter of calls. Bounded by requests (``--calls``) and by time
(``--max-seconds``). Prints a summary table and exits 1 when a target is missed:

* calls failed: 0;
* token requests per token lifetime, per credential: ~1 (at most ``--max-per-lifetime``;
  a refresh starts when a quarter of the lifetime is left, so the steady state is ~4/3);
* memory: resident set size after warm-up grows by less than ``--max-growth-mib``.

A second phase (``--phases fork``, on by default) soaks the token cache itself: a client
process whose threads keep calling while others churn through short-lived event loops (callers
cancelled by ``wait_for``, loops closed with a refresh pending) and a forker thread forks
worker processes that inherit the credentials mid-refresh and call with them. Targets: no
failed call, no hung process or thread, token requests per lifetime as above, no memory
growth.

See soak/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import multiprocessing as mp
import os
import random
import resource
import select
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
API_PATH = "/sql/v1beta4/projects/emu-project/instances"
TOKEN_FAULTS = ("status", "reset", "truncate", "non_json")
# a reply without "Metadata-Flavor: Google" is refused by design (it is not a metadata
# server), so the metadata group gets the transport-level faults only
METADATA_FAULTS = ("status", "reset", "truncate")


# -- the emulator, in a child process -----------------------------------------------------
def _emulator_main(conn: Connection, lifetime: float, rate: float, seed: int) -> None:
    from gcauth.emulator import Emulator

    with Emulator() as emu:
        emu.set_token_lifetime(lifetime)
        info = {
            "url": emu.url,
            "metadata_host": emu.metadata_host,
            "service_account": emu.create_service_account(name="soak"),
            "authorized_user": emu.create_authorized_user(),
        }
        emu.faults.set_rate("token", rate, kinds=TOKEN_FAULTS, seed=seed)
        emu.faults.set_rate("metadata", rate, kinds=METADATA_FAULTS, seed=seed + 1)
        conn.send(info)
        while True:
            command = conn.recv()
            if command == "reset":
                emu.reset_counts()
                emu.faults.reset_counts()
                conn.send(time.time())
            elif command == "stats":
                by_source: Counter[str] = Counter()
                for token in emu.issued_access_tokens():
                    by_source[token.source] += 1
                conn.send({"counts": dict(emu.counts), "injected": dict(emu.faults.injected),
                           "injected_by_group": dict(emu.faults.injected_by_group),
                           "issued_by_source": dict(by_source), "time": time.time()})
            else:
                conn.send(None)
                return


# -- bookkeeping --------------------------------------------------------------------------
def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class Tally:
    total: int
    deadline: float
    tickets: Any  # a multiprocessing Value shared by the worker processes
    lock: threading.Lock = field(default_factory=threading.Lock)
    budget: int | None = None  # at most this many tickets for this process (forked workers)
    ok: int = 0
    failed: int = 0
    cancelled: int = 0  # calls the soak itself cancelled (wait_for): neither ok nor failed
    taken: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    by_session: Counter[str] = field(default_factory=Counter)

    def take(self) -> bool:
        """A ticket for one more call, while calls and time remain."""
        if time.monotonic() > self.deadline:
            return False
        with self.lock:
            if self.budget is not None and self.taken >= self.budget:
                return False
            self.taken += 1
        with self.tickets.get_lock():
            if self.tickets.value >= self.total:
                return False
            self.tickets.value += 1
            return True

    def take_peek(self) -> bool:
        """Whether calls and time remain (takes nothing)."""
        return time.monotonic() <= self.deadline and self.tickets.value < self.total

    def done(self, session: str, error: str | None) -> None:
        with self.lock:
            self.by_session[session] += 1
            if error is None:
                self.ok += 1
            else:
                self.failed += 1
                self.errors[f"{session}: {error}"] += 1

    def cancel(self, session: str) -> None:
        with self.lock:
            self.by_session[session] += 1
            self.cancelled += 1

    @property
    def finished(self) -> int:
        with self.lock:
            return self.ok + self.failed + self.cancelled


# -- workers ------------------------------------------------------------------------------
def thread_worker(index: int, creds: list[Any], url: str, tally: Tally,
                  kinds: tuple[str, ...] = ("requests", "urllib3", "httpx")) -> None:
    import httpx

    from gcauth.transport import httpx as gc_httpx
    from gcauth.transport import requests as gc_requests
    from gcauth.transport import urllib3 as gc_urllib3

    credentials = creds[(index + index // len(kinds)) % len(creds)]
    kind = kinds[index % len(kinds)]
    call: Callable[[], int]
    if kind == "requests":
        session = gc_requests.AuthorizedSession(credentials)
        call = lambda: session.get(url, timeout=30).status_code  # noqa: E731
        close: Callable[[], object] = session.close
    elif kind == "urllib3":
        http = gc_urllib3.AuthorizedHttp(credentials)
        call = lambda: http.request("GET", url, timeout=30).status  # noqa: E731
        close = http.http.clear
    else:
        client = httpx.Client(auth=gc_httpx.Auth(credentials), timeout=30)
        call = lambda: client.get(url).status_code  # noqa: E731
        close = client.close
    name = f"{kind}/{type(credentials).__module__.rsplit('.', 1)[-1]}"
    try:
        while tally.take():
            try:
                status = call()
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                tally.done(name, type(exc).__name__)
                continue
            tally.done(name, None if status == 200 else f"HTTP {status}")
    finally:
        close()


async def task_worker(index: int, kind: str, creds: list[Any], url: str, tally: Tally,
                      sessions: dict[str, Any]) -> None:
    credentials = creds[index % len(creds)]
    name = f"{kind}/{type(credentials).__module__.rsplit('.', 1)[-1]}"
    session = sessions[f"{kind}/{id(credentials)}"]
    while tally.take():
        try:
            if kind == "aiohttp":
                async with session.get(url) as response:
                    await response.read()
                    status = response.status
            else:
                status = (await session.get(url)).status_code
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            tally.done(name, type(exc).__name__)
            continue
        tally.done(name, None if status == 200 else f"HTTP {status}")


async def run_tasks(kind: str, count: int, creds: list[Any], url: str, tally: Tally) -> None:
    """``count`` tasks of one client library on this thread's event loop, sharing one
    authorized client per credential."""
    import httpx

    from gcauth.transport import httpx as gc_httpx

    sessions: dict[str, Any] = {}
    for credentials in creds:
        if kind == "aiohttp":
            from gcauth.transport import aiohttp as gc_aiohttp

            sessions[f"{kind}/{id(credentials)}"] = gc_aiohttp.AuthorizedSession(credentials)
        else:
            sessions[f"{kind}/{id(credentials)}"] = httpx.AsyncClient(
                auth=gc_httpx.Auth(credentials), timeout=30,
                limits=httpx.Limits(max_connections=count))
    try:
        await asyncio.gather(*(task_worker(i, kind, creds, url, tally, sessions)
                               for i in range(count)))
    finally:
        for session in sessions.values():
            await (session.close() if kind == "aiohttp" else session.aclose())


def task_kinds() -> list[str]:
    """One event loop per async client library (aiohttp only when its extra is installed)."""
    try:
        import gcauth.transport.aiohttp  # noqa: F401
    except ImportError:
        return ["httpx-async"]
    return ["httpx-async", "aiohttp"]


# -- main ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="API calls in total")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=64, help="asyncio tasks")
    parser.add_argument("--token-lifetime", type=float, default=2.0, help="seconds")
    parser.add_argument("--fault-rate", type=float, default=0.05,
                        help="fraction of token and metadata replies that are faults")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="time bound")
    parser.add_argument("--warmup", type=float, default=0.25,
                        help="fraction of calls after which memory is the baseline")
    parser.add_argument("--max-per-lifetime", type=float, default=1.5,
                        help="target: token requests per token lifetime, per credential")
    parser.add_argument("--max-growth-mib", type=float, default=16.0,
                        help="target: RSS growth after warm-up")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--phases", nargs="+", choices=("steady", "fork"),
                        default=["steady", "fork"], help="which phases to run, in order")
    parser.add_argument("--fork-calls", type=int, default=10_000,
                        help="fork phase: API calls in total")
    parser.add_argument("--fork-child-calls", type=int, default=200,
                        help="fork phase: calls each forked worker makes before it exits")
    parser.add_argument("--fork-children", type=int, default=2,
                        help="fork phase: forked workers alive at once")
    parser.add_argument("--churn-threads", type=int, default=2,
                        help="fork phase: threads churning through short-lived event loops")
    parser.add_argument("--fork-max-per-lifetime", type=float, default=2.0,
                        help="fork phase target: token requests per token lifetime (a worker "
                             "that inherits a stale token must refresh it itself)")
    parser.add_argument("--hang-seconds", type=float, default=60.0,
                        help="fork phase: a worker or thread not done this long is a hang")
    args = parser.parse_args(argv)

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_emulator_main, name="gcauth-soak-emulator", daemon=True,
                       args=(child, args.token_lifetime, args.fault_rate, args.seed))
    proc.start()
    try:
        if not parent.poll(60):
            print("emulator did not start", file=sys.stderr)
            return 2
        info = parent.recv()
        status = 0
        for phase in args.phases:
            result = (_soak if phase == "steady" else _fork_phase)(args, info, parent)
            if result == 2:
                return 2
            status = max(status, result)
            print()
        return status
    finally:
        try:
            parent.send("stop")
            parent.poll(10) and parent.recv()
        except (OSError, EOFError):
            pass
        proc.join(10)
        if proc.is_alive():
            proc.terminate()


def _worker_process(role: str, conn: Connection, info: dict[str, Any], args: argparse.Namespace,
                    tickets: Any) -> None:
    """One client process: ``threads`` (sync sessions) or an async library's tasks."""
    os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = info["metadata_host"]
    creds = _make_credentials(info)
    url = info["url"] + API_PATH
    conn.send("ready")
    conn.recv()  # go
    started = time.monotonic()
    tally = Tally(total=args.calls, deadline=started + args.max_seconds, tickets=tickets)
    samples: list[tuple[int, int]] = []  # (calls finished here, rss)
    stop = threading.Event()

    def monitor() -> None:
        while not stop.wait(0.2):
            samples.append((tally.finished, rss_bytes()))

    watcher = threading.Thread(target=monitor, name="soak-memory", daemon=True)
    watcher.start()
    threads: list[threading.Thread] = []
    if role == "threads":
        threads = [threading.Thread(target=thread_worker, args=(i, creds, url, tally),
                                    name=f"soak-{i}") for i in range(args.threads)]
    else:  # role is an async client library: its share of the tasks on one event loop
        kinds = task_kinds()
        share = args.tasks // len(kinds) + (1 if kinds.index(role) < args.tasks % len(kinds)
                                            else 0)
        threads = [threading.Thread(target=lambda: asyncio.run(
            run_tasks(role, share, creds, url, tally)), name=f"soak-loop-{role}")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    stop.set()
    watcher.join()
    samples.append((tally.finished, rss_bytes()))
    conn.send({"role": role, "ok": tally.ok, "failed": tally.failed, "elapsed": elapsed,
               "errors": dict(tally.errors), "by_session": dict(tally.by_session),
               "samples": samples})


def _soak(args: argparse.Namespace, info: dict[str, Any], conn: Connection) -> int:
    ctx = mp.get_context("spawn")
    tickets = ctx.Value("q", 0)
    # one process for the threads and one per async client library: tasks of two libraries
    # on one GIL starve httpx's event loop for seconds (longer than a 2 s token lives), which
    # measures the interpreter, not gcauth
    roles = (["threads"] if args.threads else []) + (task_kinds() if args.tasks else [])
    workers = []
    for role in roles:
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=_worker_process, name=f"gcauth-soak-{role}", daemon=True,
                           args=(role, theirs, info, args, tickets))
        proc.start()
        workers.append((proc, mine))
    for _, pipe in workers:
        if not pipe.poll(60):
            print("a worker process did not start", file=sys.stderr)
            return 2
        pipe.recv()
    conn.send("reset")
    conn.recv()
    started = time.monotonic()
    for _, pipe in workers:
        pipe.send("go")
    results = []
    for proc, pipe in workers:
        if not pipe.poll(args.max_seconds + 120):
            print("a worker process did not finish", file=sys.stderr)
            return 2
        results.append(pipe.recv())
        proc.join(10)
    elapsed = time.monotonic() - started
    conn.send("stats")
    stats = conn.recv()

    # -- figures --------------------------------------------------------------------------
    finished = sum(r["ok"] + r["failed"] for r in results)
    failed = sum(r["failed"] for r in results)
    errors: Counter[str] = Counter()
    by_session: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
        by_session.update(r["by_session"])
    # each process has its own token caches: a credential's tokens per lifetime, per process
    lifetimes = elapsed / args.token_lifetime * len(results)
    issued = stats["issued_by_source"]
    per_lifetime = {
        "service account": issued.get("service_account", 0) / lifetimes,
        "user": issued.get("user", 0) / lifetimes,
        "compute engine": issued.get("metadata", 0) / lifetimes,
    }
    counts = stats["counts"]
    injected = stats["injected_by_group"]
    mib = 1024 * 1024
    rows: list[tuple[str, str, str, bool | None]] = [
        ("API calls made", f"{finished}", f"{args.calls}", finished == args.calls),
        ("API calls failed", f"{failed}", "0", failed == 0),
        ("elapsed", f"{elapsed:.1f} s", f"<= {args.max_seconds:g} s",
         elapsed <= args.max_seconds + 5),
        ("throughput", f"{finished / elapsed:.0f} calls/s", "", None),
        ("token lifetimes elapsed", f"{elapsed / args.token_lifetime:.1f} x "
         f"{args.token_lifetime:g} s", "", None),
        ("token endpoint requests (faulted)",
         f"{counts.get('token', 0)} ({injected.get('token', 0)})", "", None),
        ("metadata token requests (faulted)",
         f"{counts.get('metadata_token', 0)} ({injected.get('metadata', 0)})", "", None),
        ("faults injected by kind", ", ".join(f"{k} {v}" for k, v in
                                              sorted(stats["injected"].items())), "", None),
    ]
    for name, value in per_lifetime.items():
        rows.append((f"tokens per lifetime: {name}", f"{value:.2f}",
                     f"~1 (<= {args.max_per_lifetime:g})", value <= args.max_per_lifetime))
    for r in results:
        samples = r["samples"]
        done = samples[-1][0]
        warm = [rss for n, rss in samples if n >= done * args.warmup] or [samples[-1][1]]
        growth = max(warm) - warm[0]
        rows += [
            (f"RSS {r['role']} process: after warm-up / peak",
             f"{warm[0] / mib:.1f} / {max(rss for _, rss in samples) / mib:.1f} MiB", "", None),
            (f"RSS {r['role']} process: growth after warm-up", f"{growth / mib:.1f} MiB",
             f"< {args.max_growth_mib:g} MiB", growth / mib < args.max_growth_mib),
        ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"gcauth soak: {args.threads} threads + {args.tasks} asyncio tasks "
          f"({len(results)} client processes), {args.calls} calls, "
          f"tokens live {args.token_lifetime:g} s, "
          f"{args.fault_rate:.0%} token/metadata faults (seed {args.seed})")
    print(f"{'metric':<{width}}  {'value':<{vwidth}}  target")
    for label, value, target, ok in rows:
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        print(f"{label:<{width}}  {value:<{vwidth}}  {target}{mark}")
    print("calls by session/credential: " + ", ".join(
        f"{k} {v}" for k, v in sorted(by_session.items())))
    if errors:
        print("failures:", file=sys.stderr)
        for error, count in errors.most_common(20):
            print(f"  {count:6d}  {error}", file=sys.stderr)
    missed = [r[0] for r in rows if r[3] is False]
    print("RESULT:", "PASS" if not missed else "FAIL (" + "; ".join(missed) + ")")
    return 1 if missed else 0

# -- fork phase: forked workers and event-loop churn ---------------------------------------
def _make_credentials(info: dict[str, Any]) -> list[Any]:
    from gcauth import authorized_user, compute_engine, service_account

    return [
        service_account.Credentials.from_service_account_info(
            info["service_account"], scopes=[CLOUD]),
        authorized_user.Credentials.from_authorized_user_info(info["authorized_user"]),
        compute_engine.Credentials(),
    ]


def _cred_name(credentials: Any) -> str:
    return str(type(credentials).__module__.rsplit(".", 1)[-1])


async def churn_loop(rng: random.Random, creds: list[Any], url: str, tally: Tally) -> None:
    """One short-lived event loop's worth of calls: a few calls on one new authorized
    client, some of them cancelled by ``wait_for`` (perhaps while they own a refresh)."""
    import httpx

    from gcauth.transport import httpx as gc_httpx

    credentials = rng.choice(creds)
    kind = rng.choice(task_kinds())
    name = f"churn-{kind}/{_cred_name(credentials)}"
    session: Any
    if kind == "aiohttp":
        from gcauth.transport import aiohttp as gc_aiohttp

        session = gc_aiohttp.AuthorizedSession(credentials)
    else:
        session = httpx.AsyncClient(auth=gc_httpx.Auth(credentials), timeout=30)

    async def call() -> int:
        if kind == "aiohttp":
            async with session.get(url) as response:
                await response.read()
                return int(response.status)
        return int((await session.get(url)).status_code)

    try:
        for _ in range(rng.randint(1, 6)):
            if not tally.take():
                return
            impatient = rng.random() < 0.15
            try:
                if impatient:
                    status = await asyncio.wait_for(call(), rng.choice([0.001, 0.005, 0.02]))
                else:
                    status = await call()
            except asyncio.TimeoutError:
                if impatient:
                    tally.cancel(name)
                else:
                    tally.done(name, "TimeoutError")
                continue
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                tally.done(name, type(exc).__name__)
                continue
            tally.done(name, None if status == 200 else f"HTTP {status}")
    finally:
        await (session.close() if kind == "aiohttp" else session.aclose())


def churn_worker(seed: int, creds: list[Any], url: str, tally: Tally,
                 loops: Counter[str]) -> None:
    """Runs event loops back to back: most end with ``asyncio.run`` (which cancels a refresh
    task still pending), a quarter are closed without letting pending tasks finish."""
    import warnings

    # an abandoned loop's pending refresh leaves its connection to the garbage collector
    warnings.simplefilter("ignore", ResourceWarning)
    rng = random.Random(seed)
    while tally.take_peek():
        if rng.random() < 0.25:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(churn_loop(rng, creds, url, tally))
            finally:
                loop.close()
            loops["closed with tasks pending"] += 1
        else:
            asyncio.run(churn_loop(rng, creds, url, tally))
            loops["asyncio.run"] += 1


def _forked_worker(creds: list[Any], url: str, tally: Tally, write_end: int,
                   hang_seconds: float) -> None:
    """Runs in a forked child: new sessions over the inherited credentials (whose caches may
    have had a refresh in flight, or their lock held, at the moment of the fork)."""
    signal.alarm(int(hang_seconds) + 30)  # never outlive the soak, whatever happens
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a hang prints its stacks
    started = time.monotonic()
    from gcauth.tokens import TokenState

    inherited_stale = sum(c.token_state is not TokenState.FRESH for c in creds)
    workers = [threading.Thread(target=thread_worker, args=(i, creds, url, tally),
                                kwargs={"kinds": ("requests", "urllib3")}) for i in range(2)]
    # aiohttp where installed: gcauth.transport.httpx keeps a module-level lock (shared SSL
    # context, default client) that a forked child can inherit held; the transport layer's
    # fork reset is to cover it
    kind = task_kinds()[-1]
    workers.append(threading.Thread(target=lambda: asyncio.run(
        run_tasks(kind, 4, creds, url, tally))))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(hang_seconds)
    result = {"ok": tally.ok, "failed": tally.failed, "errors": dict(tally.errors),
              "elapsed": time.monotonic() - started,
              "hung_threads": sum(w.is_alive() for w in workers),
              "inherited_stale": inherited_stale,
              "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    os.write(write_end, json.dumps(result).encode())


def forker(creds: list[Any], url: str, tally: Tally, args: argparse.Namespace,
           children: list[dict[str, Any]]) -> None:
    """Keeps ``--fork-children`` forked workers going until the calls run out."""
    running: dict[int, tuple[int, float, bytearray]] = {}  # pid -> (pipe, started, data)
    while True:
        while len(running) < args.fork_children and tally.take_peek():
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child
                status = 0
                try:
                    os.close(read_end)
                    child_tally = Tally(total=tally.total, deadline=tally.deadline,
                                        tickets=tally.tickets, budget=args.fork_child_calls)
                    _forked_worker(creds, url, child_tally, write_end, args.hang_seconds)
                except BaseException:  # noqa: BLE001 - reported by the missing result
                    status = 1
                finally:
                    os._exit(status)
            os.close(write_end)
            running[pid] = (read_end, time.monotonic(), bytearray())
        if not running:
            return
        ready, _, _ = select.select([r for r, _, _ in running.values()], [], [], 0.2)
        for pid, (read_end, started, data) in list(running.items()):
            if read_end in ready:
                chunk = os.read(read_end, 65536)
                if chunk:
                    data += chunk
                    continue
                os.close(read_end)
                _, status = os.waitpid(pid, 0)
                result = json.loads(data) if data else {"died": status}
                children.append(result)
                del running[pid]
            elif time.monotonic() - started > args.hang_seconds:
                os.kill(pid, signal.SIGUSR1)  # print its stacks, then kill it
                time.sleep(1)
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.close(read_end)
                children.append({"hung": True})
                del running[pid]


def _warm_up(creds: list[Any], url: str) -> None:
    """One call per client library and credential, before the phase's threads start."""
    import httpx

    from gcauth.transport import httpx as gc_httpx
    from gcauth.transport import requests as gc_requests
    from gcauth.transport import urllib3 as gc_urllib3

    for credentials in creds:
        with gc_requests.AuthorizedSession(credentials) as session:
            session.get(url, timeout=30)
        http = gc_urllib3.AuthorizedHttp(credentials)
        http.request("GET", url, timeout=30)
        http.http.clear()
        with httpx.Client(auth=gc_httpx.Auth(credentials), timeout=30) as client:
            client.get(url)

        async def calls(credentials: Any = credentials) -> None:
            async with httpx.AsyncClient(auth=gc_httpx.Auth(credentials), timeout=30) as client:
                await client.get(url)
            if "aiohttp" in task_kinds():
                from gcauth.transport import aiohttp as gc_aiohttp

                async with gc_aiohttp.AuthorizedSession(credentials) as session:
                    async with session.get(url) as response:
                        await response.read()

        asyncio.run(calls())


def _fork_client(conn: Connection, info: dict[str, Any], args: argparse.Namespace,
                 tickets: Any) -> None:
    """The fork phase's client process: calling threads, event-loop churn and a forker."""
    os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = info["metadata_host"]
    # Import everything before any thread starts: a child forked while another thread is
    # importing a module inherits that module half-initialised with its import lock held, and
    # hangs on its first import of it (a CPython limit, whatever the library).
    import httpx  # noqa: F401
    import requests  # noqa: F401

    import gcauth.transport.httpx
    import gcauth.transport.requests
    import gcauth.transport.urllib3  # noqa: F401

    task_kinds()  # imports aiohttp and its adapter when installed
    creds = _make_credentials(info)
    url = info["url"] + API_PATH
    _warm_up(creds, url)  # and whatever the client libraries import on first use
    conn.send("ready")
    conn.recv()  # go
    started = time.monotonic()
    tally = Tally(total=args.fork_calls, deadline=started + args.max_seconds, tickets=tickets)
    samples: list[tuple[int, int]] = []
    stop = threading.Event()

    def monitor() -> None:
        while not stop.wait(0.2):
            samples.append((tally.finished, rss_bytes()))

    watcher = threading.Thread(target=monitor, name="soak-memory", daemon=True)
    watcher.start()
    loops: Counter[str] = Counter()
    children: list[dict[str, Any]] = []
    threads = [threading.Thread(target=thread_worker, args=(i, creds, url, tally),
                                name=f"soak-fork-sync-{i}", daemon=True) for i in range(3)]
    threads += [threading.Thread(target=churn_worker, args=(args.seed + i, creds, url, tally,
                                                            loops),
                                 name=f"soak-churn-{i}", daemon=True)
                for i in range(args.churn_threads)]
    threads.append(threading.Thread(target=forker, args=(creds, url, tally, args, children),
                                    name="soak-forker", daemon=True))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + args.max_seconds + args.hang_seconds
    for thread in threads:
        thread.join(max(0.1, deadline - time.monotonic()))
    elapsed = time.monotonic() - started
    stop.set()
    watcher.join()
    samples.append((tally.finished, rss_bytes()))
    conn.send({"ok": tally.ok, "failed": tally.failed, "cancelled": tally.cancelled,
               "elapsed": elapsed, "errors": dict(tally.errors),
               "hung_threads": [t.name for t in threads if t.is_alive()],
               "loops": dict(loops), "children": children, "samples": samples})


def _fork_phase(args: argparse.Namespace, info: dict[str, Any], conn: Connection) -> int:
    ctx = mp.get_context("spawn")
    tickets = ctx.Value("q", 0)
    mine, theirs = ctx.Pipe()
    proc = ctx.Process(target=_fork_client, name="gcauth-soak-fork", daemon=True,
                       args=(theirs, info, args, tickets))
    proc.start()
    if not mine.poll(60):
        print("the fork-phase client did not start", file=sys.stderr)
        return 2
    mine.recv()
    conn.send("reset")
    conn.recv()
    conn.send("stats")  # the emulator's list of issued tokens is not reset: a baseline
    before = Counter(conn.recv()["issued_by_source"])
    started = time.monotonic()
    mine.send("go")
    if not mine.poll(args.max_seconds + 2 * args.hang_seconds + 60):
        print("the fork-phase client did not finish", file=sys.stderr)
        proc.kill()
        return 2
    r = mine.recv()
    proc.join(10)
    elapsed = time.monotonic() - started
    conn.send("stats")
    stats = conn.recv()

    children = r["children"]
    done = [c for c in children if "ok" in c]
    hung_children = sum(1 for c in children if c.get("hung"))
    died = sum(1 for c in children if "died" in c)
    hung_threads = len(r["hung_threads"]) + sum(c.get("hung_threads", 0) for c in done)
    ok = r["ok"] + sum(c["ok"] for c in done)
    failed = r["failed"] + sum(c["failed"] for c in done)
    cancelled = r["cancelled"]
    errors: Counter[str] = Counter(r["errors"])
    for c in done:
        errors.update(c["errors"])
    # every process has its own caches: token lifetimes summed over process lifetimes
    process_seconds = r["elapsed"] + sum(c["elapsed"] for c in done)
    lifetimes = process_seconds / args.token_lifetime
    issued = Counter(stats["issued_by_source"])
    issued.subtract(before)
    per_lifetime = {
        "service account": issued["service_account"] / lifetimes,
        "user": issued["user"] / lifetimes,
        "compute engine": issued["metadata"] / lifetimes,
    }
    samples = r["samples"]
    final = samples[-1][0]
    warm = [rss for n, rss in samples if n >= final * args.warmup] or [samples[-1][1]]
    growth = max(warm) - warm[0]
    peak_child = max((c["maxrss"] for c in done), default=0)
    mib = 1024 * 1024
    counts, injected = stats["counts"], stats["injected_by_group"]
    made = ok + failed + cancelled
    rows: list[tuple[str, str, str, bool | None]] = [
        ("API calls made", f"{made}", f"{args.fork_calls}", made == args.fork_calls),
        ("API calls failed", f"{failed}", "0", failed == 0),
        ("calls cancelled by the soak (wait_for)", f"{cancelled}", "", None),
        ("hangs: forked workers / threads", f"{hung_children} / {hung_threads}", "0 / 0",
         hung_children == 0 and hung_threads == 0),
        ("forked workers finished (died)", f"{len(done)} ({died})", "", died == 0),
        ("event loops: asyncio.run / closed with tasks pending",
         f"{r['loops'].get('asyncio.run', 0)} / "
         f"{r['loops'].get('closed with tasks pending', 0)}", "", None),
        ("elapsed", f"{elapsed:.1f} s", f"<= {args.max_seconds:g} s",
         elapsed <= args.max_seconds + args.hang_seconds),
        ("process lifetimes (all processes)", f"{process_seconds:.1f} s", "", None),
        ("token endpoint requests (faulted)",
         f"{counts.get('token', 0)} ({injected.get('token', 0)})", "", None),
        ("metadata token requests (faulted)",
         f"{counts.get('metadata_token', 0)} ({injected.get('metadata', 0)})", "", None),
    ]
    stale = sum(c.get("inherited_stale", 0) for c in done)
    rows.append(("forked workers' credentials inherited stale",
                 f"{stale} of {len(done) * 3}", "", None))
    for name, value in per_lifetime.items():
        rows.append((f"tokens per lifetime: {name}", f"{value:.2f}",
                     f"<= {args.fork_max_per_lifetime:g}", value <= args.fork_max_per_lifetime))
    rows += [
        ("RSS fork client: after warm-up / peak",
         f"{warm[0] / mib:.1f} / {max(rss for _, rss in samples) / mib:.1f} MiB", "", None),
        ("RSS fork client: growth after warm-up", f"{growth / mib:.1f} MiB",
         f"< {args.max_growth_mib:g} MiB", growth / mib < args.max_growth_mib),
        ("peak RSS of a forked worker", f"{peak_child / mib:.1f} MiB", "", None),
    ]
    print(f"gcauth soak, fork phase: 3 calling threads + {args.churn_threads} event-loop churn "
          f"threads + {args.fork_children} forked workers at a time "
          f"({args.fork_child_calls} calls each), {args.fork_calls} calls, tokens live "
          f"{args.token_lifetime:g} s, {args.fault_rate:.0%} token/metadata faults")
    return _print_rows(rows, errors)


def _print_rows(rows: list[tuple[str, str, str, bool | None]], errors: Counter[str]) -> int:
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'metric':<{width}}  {'value':<{vwidth}}  target")
    for label, value, target, ok in rows:
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        print(f"{label:<{width}}  {value:<{vwidth}}  {target}{mark}")
    if errors:
        print("failures:", file=sys.stderr)
        for error, count in errors.most_common(20):
            print(f"  {count:6d}  {error}", file=sys.stderr)
    missed = [r[0] for r in rows if r[3] is False]
    print("RESULT:", "PASS" if not missed else "FAIL (" + "; ".join(missed) + ")")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
