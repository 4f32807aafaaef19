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

See soak/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
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
    ok: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    by_session: Counter[str] = field(default_factory=Counter)

    def take(self) -> bool:
        """A ticket for one more call, while calls and time remain."""
        if time.monotonic() > self.deadline:
            return False
        with self.tickets.get_lock():
            if self.tickets.value >= self.total:
                return False
            self.tickets.value += 1
            return True

    def done(self, session: str, error: str | None) -> None:
        with self.lock:
            self.by_session[session] += 1
            if error is None:
                self.ok += 1
            else:
                self.failed += 1
                self.errors[f"{session}: {error}"] += 1

    @property
    def finished(self) -> int:
        with self.lock:
            return self.ok + self.failed


# -- workers ------------------------------------------------------------------------------
def thread_worker(index: int, creds: list[Any], url: str, tally: Tally) -> None:
    import httpx

    from gcauth.transport import httpx as gc_httpx
    from gcauth.transport import requests as gc_requests
    from gcauth.transport import urllib3 as gc_urllib3

    credentials = creds[(index + index // 3) % len(creds)]
    kind = ("requests", "urllib3", "httpx")[index % 3]
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
        return _soak(args, info, parent)
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
    from gcauth import authorized_user, compute_engine, service_account

    creds: list[Any] = [
        service_account.Credentials.from_service_account_info(
            info["service_account"], scopes=[CLOUD]),
        authorized_user.Credentials.from_authorized_user_info(info["authorized_user"]),
        compute_engine.Credentials(),
    ]
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


if __name__ == "__main__":
    sys.exit(main())
