# mypy: disable-error-code="no-untyped-call"
"""The benchmarks: each runs gcauth and google-auth side by side and returns result rows.

Every figure is a median over repeated, interleaved runs (gcauth, google-auth, gcauth, ...),
so drift of the machine hits both libraries alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from ._guard import PRELUDE
from ._servers import Blackhole, TrivialServer, closed_port

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


@dataclass
class Row:
    """One line of the result table. ``lower_is_better`` decides how the ratio reads."""

    section: str
    name: str
    gcauth: float | None
    google: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.gcauth is None or self.google is None or self.google == 0:
            return None
        return self.gcauth / self.google


@dataclass
class Context:
    quick: bool
    emulator: Any = None
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=lambda: [0.0, 0.0])

    def reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


# -- environment --------------------------------------------------------------------------------
_CLEAR_PREFIXES = ("GOOGLE_", "CLOUDSDK_", "GCE_", "GCLOUD_")
_CLEAR_NAMES = ("NO_GCE_CHECK", "K_SERVICE", "FUNCTION_TARGET", "GAE_APPLICATION",
                "CLOUD_RUN_JOB")


def isolate_environment() -> str:
    """A private HOME, no Google variables, metadata pointed at a closed loopback port."""
    for name in list(os.environ):
        if name.startswith(_CLEAR_PREFIXES) or name in _CLEAR_NAMES:
            del os.environ[name]
    home = tempfile.mkdtemp(prefix="gcauth-bench-home-")
    os.environ["HOME"] = home
    point_metadata_at(f"127.0.0.1:{closed_port()}")
    return home


def point_metadata_at(host: str) -> None:
    # both libraries read both variables: neither may ever try 169.254.169.254
    os.environ["GCE_METADATA_HOST"] = host
    os.environ["GCE_METADATA_IP"] = host


def start_emulator() -> Any:
    from gcauth.emulator import Emulator
    from gcauth.emulator import _server as emulator_server

    # The emulator's ThreadingHTTPServer keeps socketserver's listen backlog of 5: a herd of
    # concurrent connects overflows it and waits out SYN retransmits (1 s, 3 s, ...). Raise it
    # here until the emulator does (fix proposed in the issue-4 report).
    if getattr(emulator_server._Server, "request_queue_size", 5) < 1024:
        emulator_server._Server.request_queue_size = 1024
    return Emulator().start()


def redirect_google_auth_rab(emulator: Any) -> None:
    """google-auth 2.62 starts a regional-access-boundary lookup to iamcredentials on first
    use of service-account credentials: send it to the emulator (it answers 404)."""
    from google.auth import _regional_access_boundary_utils as rab

    def endpoint(service_account_email: str) -> str:
        return (f"{emulator.url}/v1/projects/-/serviceAccounts/{service_account_email}"
                "/allowedLocations")

    rab.get_service_account_rab_endpoint = endpoint
    for name in ("get_workforce_pool_rab_endpoint", "get_workload_identity_pool_rab_endpoint"):
        if hasattr(rab, name):  # the pools' lookups: the emulator answers 404 there too
            setattr(rab, name, lambda *args, _n=name: f"{emulator.url}/rab/{_n}")


# -- 1. import time ------------------------------------------------------------------------------
IMPORTS = {
    "requests": (
        "import gcauth\nfrom gcauth import service_account\nimport gcauth.transport.requests",
        "import google.auth\nfrom google.oauth2 import service_account\n"
        "import google.auth.transport.requests",
    ),
    "urllib3": (
        "import gcauth\nfrom gcauth import service_account\nimport gcauth.transport.urllib3",
        "import google.auth\nfrom google.oauth2 import service_account\n"
        "import google.auth.transport.urllib3",
    ),
}


def _process_seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", PRELUDE + "\n" + code], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _byte_compile() -> None:
    """Give both libraries their bytecode, as an installed package has it.

    pip compiles a package's ``.pyc`` files when it installs it; an editable checkout does not,
    and where ``PYTHONDONTWRITEBYTECODE=1`` is set (it is on this machine) Python never writes
    them either, so every import of gcauth's sources would compile them again, a cost no user
    of an installed gcauth pays. Compile both sides once, explicitly, so the comparison is fair.
    """
    import compileall
    import os

    import google.auth
    import google.oauth2

    import gcauth

    for package in (gcauth, google.auth, google.oauth2):
        assert package.__file__ is not None
        compileall.compile_dir(os.path.dirname(package.__file__), quiet=1)


def bench_import(ctx: Context) -> None:
    reps = ctx.reps(21, 7)
    base: list[float] = []
    times: dict[tuple[str, int], list[float]] = {}
    _byte_compile()
    for flavour in IMPORTS:
        _process_seconds(IMPORTS[flavour][0])  # warm the file cache and .pyc files
        _process_seconds(IMPORTS[flavour][1])
    for _ in range(reps):
        base.append(_process_seconds("pass"))
        for flavour, pair in IMPORTS.items():
            for which, code in enumerate(pair):
                times.setdefault((flavour, which), []).append(_process_seconds(code))
            # the floor: the HTTP library alone, which both sides import
            times.setdefault((flavour, 2), []).append(_process_seconds(f"import {flavour}"))
    python_alone = median(base) * 1000
    for flavour in IMPORTS:
        ours = median(times[(flavour, 0)]) * 1000
        theirs = median(times[(flavour, 1)]) * 1000
        floor = median(times[(flavour, 2)]) * 1000
        ctx.rows.append(Row(
            "import", f"default + service account + {flavour} transport (whole process)",
            ours, theirs, "ms", "≤ 0.5×", ours <= 0.5 * theirs,
            note=f"python + `import {flavour}` alone takes {floor:.1f} ms = "
                 f"{floor / theirs:.2f}× google-auth's figure: the lowest ratio any library "
                 f"that imports {flavour} can reach here; gcauth adds {ours - floor:.1f} ms "
                 f"to it, google-auth {theirs - floor:.1f} ms"))
        net_ours, net_theirs = ours - python_alone, theirs - python_alone
        ctx.rows.append(Row(
            "import", f"  same, minus python alone ({python_alone:.1f} ms)", net_ours,
            net_theirs, "ms", "≤ 0.5×", net_ours <= 0.5 * net_theirs))


# -- 2. default() with no credentials ------------------------------------------------------------
def _gcauth_default() -> None:
    import gcauth

    try:
        gcauth.default()
    except gcauth.DefaultCredentialsError:
        return
    raise AssertionError("gcauth.default() found credentials in an empty environment")


def _google_default() -> None:
    import google.auth
    import google.auth.exceptions

    try:
        google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError:
        return
    raise AssertionError("google.auth.default() found credentials in an empty environment")


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def bench_default_no_credentials(ctx: Context) -> None:
    ours_reps, theirs_reps = ctx.reps(15, 5), ctx.reps(3, 1)
    with Blackhole() as hole:
        cases = [("metadata port closed", f"127.0.0.1:{closed_port()}", 0.05),
                 ("metadata blackholed", f"127.0.0.1:{hole.port}", 1.0)]
        for label, host, limit in cases:
            point_metadata_at(host)
            _gcauth_default()  # first call pays lazy imports
            ours = median([_seconds(_gcauth_default) for _ in range(ours_reps)])
            theirs = median([_seconds(_google_default) for _ in range(theirs_reps)])
            ctx.rows.append(Row("default()", f"no credentials, {label}", ours, theirs, "s",
                                f"≤ {limit:g} s", ours <= limit))
    point_metadata_at(f"127.0.0.1:{closed_port()}")


# -- 3. service-account key: load, default() + first token -------------------------------------
def bench_service_account(ctx: Context) -> None:
    import google.auth
    import google.auth.transport.requests
    import google.oauth2.service_account as google_sa

    import gcauth
    from gcauth import service_account as gcauth_sa

    emu = ctx.emulator
    info = emu.create_service_account(project_id="bench")
    reps = ctx.reps(31, 9)
    ours_load, theirs_load = [], []
    for _ in range(reps):
        ours_load.append(_seconds(
            lambda: gcauth_sa.Credentials.from_service_account_info(info, scopes=SCOPES)))
        theirs_load.append(_seconds(
            lambda: google_sa.Credentials.from_service_account_info(info, scopes=SCOPES)))
    ours, theirs = median(ours_load) * 1000, median(theirs_load) * 1000
    ctx.rows.append(Row("service account", "load a key (from_service_account_info)", ours,
                        theirs, "ms", "≤ 0.1×", ours <= 0.1 * theirs))

    import json

    key_dir = tempfile.mkdtemp(prefix="gcauth-bench-key-")
    path = os.path.join(key_dir, "key.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(info, handle)
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = path
    google_request = google.auth.transport.requests.Request()

    def ours_first_token() -> None:
        creds, _ = gcauth.default(scopes=SCOPES)
        creds.get_token()

    def theirs_first_token() -> None:
        creds, _ = google.auth.default(scopes=SCOPES)
        creds.refresh(google_request)

    try:
        ours_first_token()
        theirs_first_token()
        ours_runs, theirs_runs = [], []
        for _ in range(ctx.reps(21, 7)):
            ours_runs.append(_seconds(ours_first_token))
            theirs_runs.append(_seconds(theirs_first_token))
    finally:
        del os.environ["GOOGLE_APPLICATION_CREDENTIALS"]
    ours, theirs = median(ours_runs) * 1000, median(theirs_runs) * 1000
    ctx.rows.append(Row("service account", "default() + first token (key file, emulator)",
                        ours, theirs, "ms", "faster", ours < theirs))


# -- 4. JWT assertion signing ------------------------------------------------------------------
def _rate(call: Callable[[], object], seconds: float) -> float:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            call()
        count += 20
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def bench_signing(ctx: Context) -> None:
    import google.oauth2.service_account as google_sa
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from gcauth import service_account as gcauth_sa
    from gcauth._protocol.rfc7523 import bearer_assertion

    info = ctx.emulator.create_service_account(project_id="bench")
    ours_creds = gcauth_sa.Credentials.from_service_account_info(info, scopes=SCOPES)
    theirs_creds = google_sa.Credentials.from_service_account_info(info, scopes=SCOPES)
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    # a signing input of the size of a real assertion
    sample = theirs_creds._make_authorization_grant_assertion()
    signing_input = (sample if isinstance(sample, bytes) else sample.encode()).rsplit(b".", 1)[0]
    signer, header = ours_creds.signer, ours_creds._jwt_header

    def raw() -> None:
        key.sign(signing_input, pkcs1, sha256)

    def ours() -> None:
        bearer_assertion(signer, issuer=info["client_email"], audience=info["token_uri"],
                         now=datetime.now(timezone.utc), scopes=SCOPES, header=header)

    def theirs() -> None:
        theirs_creds._make_authorization_grant_assertion()

    # short windows, the order rotated each round, each library compared with the raw floor
    # measured in the same round: load from other processes cancels out of the ratios
    window = 0.2 if ctx.quick else 0.3
    calls = {"raw": raw, "ours": ours, "theirs": theirs}
    rates: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for index in range(ctx.reps(15, 5)):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            rates[name].append(_rate(calls[name], window))
    floor = median(rates["raw"])
    ours_rate, theirs_rate = median(rates["ours"]), median(rates["theirs"])
    ours_vs_floor = median([o / r for o, r in zip(rates["ours"], rates["raw"], strict=True)])
    theirs_vs_floor = median([t / r for t, r in zip(rates["theirs"], rates["raw"], strict=True)])
    ctx.rows.append(Row("signing", f"JWT assertions per second (raw RSA floor {floor:,.0f}/s)",
                        ours_rate, theirs_rate, "/s", "≥ 0.95× floor", ours_vs_floor >= 0.95,
                        note=f"paired with the floor measured in the same round: gcauth = "
                             f"{ours_vs_floor:.3f}× floor, google-auth = "
                             f"{theirs_vs_floor:.3f}× floor"))


# -- 5. thundering herd -----------------------------------------------------------------------
def _herd(n: int, call: Callable[[], object]) -> None:
    barrier = threading.Barrier(n)

    def one(_: int) -> None:
        barrier.wait()
        call()

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))


def bench_herd(ctx: Context) -> None:
    import google.auth.transport.requests
    import google.oauth2.service_account as google_sa

    from gcauth import service_account as gcauth_sa
    from gcauth.transport.requests import Request as GcauthRequest

    emu = ctx.emulator
    info = emu.create_service_account(project_id="bench")
    url = f"{emu.api_url}/sql/v1beta4/projects/bench/instances"
    google_request = google.auth.transport.requests.Request()
    ours_request = GcauthRequest()
    for n in (32, 256):
        seen: dict[str, list[int]] = {"ours": [], "theirs": []}
        for _ in range(ctx.reps(5, 2)):
            ours_creds = gcauth_sa.Credentials.from_service_account_info(info, scopes=SCOPES)
            emu.reset_counts()
            _herd(n, partial(ours_creds.get_token, ours_request))
            seen["ours"].append(emu.counts["token"])

            theirs_creds = google_sa.Credentials.from_service_account_info(info, scopes=SCOPES)
            emu.reset_counts()
            _herd(n, partial(theirs_creds.before_request, google_request, "GET", url, {}))
            seen["theirs"].append(emu.counts["token"])
        ctx.rows.append(Row(
            "herd", f"token requests, {n} concurrent first callers (median)",
            median([float(v) for v in seen["ours"]]), median([float(v) for v in seen["theirs"]]),
            "requests", "exactly 1", all(v == 1 for v in seen["ours"]),
            note=f"gcauth per trial {seen['ours']}, google-auth per trial {seen['theirs']}"))


# -- 6. per-request overhead --------------------------------------------------------------------
def _per_request(call: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - start) / count


def bench_overhead(ctx: Context) -> None:
    import google.auth.transport.requests as google_requests
    import google.oauth2.service_account as google_sa
    import httpx
    import requests

    from gcauth import service_account as gcauth_sa
    from gcauth.transport.httpx import Auth as HttpxAuth
    from gcauth.transport.requests import AuthorizedSession

    emu = ctx.emulator
    info = emu.create_service_account(project_id="bench")
    ours_creds = gcauth_sa.Credentials.from_service_account_info(info, scopes=SCOPES)
    ours_creds.get_token()
    theirs_creds = google_sa.Credentials.from_service_account_info(info, scopes=SCOPES)
    theirs_creds.refresh(google_requests.Request())

    # many short rounds, the order rotated each round, compared pairwise: on a busy machine
    # this keeps drift and bursts of load out of the ratios
    per_round = ctx.reps(150, 80)
    rounds = ctx.reps(41, 11)
    with TrivialServer() as server:
        url = server.url + "/v1/resource"
        bare_requests = requests.Session()
        ours_requests = AuthorizedSession(ours_creds)
        theirs_requests = google_requests.AuthorizedSession(theirs_creds)
        bare_httpx = httpx.Client()
        ours_httpx = httpx.Client(auth=HttpxAuth(ours_creds))
        variants: dict[str, Callable[[], object]] = {
            "requests bare": lambda: bare_requests.get(url),
            "requests gcauth": lambda: ours_requests.get(url),
            "requests google": lambda: theirs_requests.get(url),
            "httpx bare": lambda: bare_httpx.get(url),
            "httpx gcauth": lambda: ours_httpx.get(url),
        }
        for call in variants.values():  # connect and warm up
            for _ in range(50):
                call()
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(_per_request(variants[name], per_round))
        for session in (bare_requests, ours_requests, theirs_requests):
            session.close()
        bare_httpx.close()
        ours_httpx.close()

    def overhead(name: str, bare: str) -> float:
        # paired by round: each ratio compares runs made moments apart
        return median([a / b - 1 for a, b in zip(times[name], times[bare], strict=True)]) * 100

    bare_us = median(times["requests bare"]) * 1e6
    ours, theirs = overhead("requests gcauth", "requests bare"), overhead(
        "requests google", "requests bare")
    ctx.rows.append(Row("overhead", f"requests: authorized session over bare ({bare_us:.0f} µs)",
                        ours, theirs, "%", "≤ 5 %", ours <= 5,
                        note=f"per request: bare {bare_us:.0f} µs, gcauth "
                             f"{median(times['requests gcauth']) * 1e6:.0f} µs, google-auth "
                             f"{median(times['requests google']) * 1e6:.0f} µs"))
    bare_us = median(times["httpx bare"]) * 1e6
    ours = overhead("httpx gcauth", "httpx bare")
    ctx.rows.append(Row("overhead", f"httpx: Client(auth=Auth) over bare ({bare_us:.0f} µs)",
                        ours, None, "%", "≤ 5 %", ours <= 5,
                        note="google-auth has no httpx transport"))


# -- 7. tail latency while tokens expire -----------------------------------------------------
@contextmanager
def _token_lifetime(emu: Any, seconds: float) -> Iterator[None]:
    emu.set_token_lifetime(seconds)
    try:
        yield
    finally:
        emu.set_token_lifetime(3599)


def _latencies(make_session: Callable[[], Any], url: str, seconds: float,
               threads: int) -> list[float]:
    samples: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def worker(index: int) -> None:
        session = make_session()
        mine = samples[index]
        barrier.wait()
        deadline = time.perf_counter() + seconds
        while True:
            start = time.perf_counter()
            response = session.get(url)
            end = time.perf_counter()
            if response.status_code != 200:
                raise AssertionError(f"API call failed: HTTP {response.status_code}")
            mine.append(end - start)
            if end >= deadline:
                break
        session.close()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return [s for chunk in samples for s in chunk]


def bench_tail_latency(ctx: Context) -> None:
    import google.auth.transport.requests as google_requests
    import google.oauth2.service_account as google_sa

    from gcauth import service_account as gcauth_sa
    from gcauth.transport.requests import AuthorizedSession

    emu = ctx.emulator
    info = emu.create_service_account(project_id="bench")
    url = f"{emu.api_url}/sql/v1beta4/projects/bench/instances"
    seconds = 3.0 if ctx.quick else 9.0
    threads = 4
    # gcauth: 4 s tokens turn stale after 3 s and are refreshed in the background.
    # google-auth refreshes (blocking) once under 3 min 45 s remain: 229 s tokens make it
    # refresh ~4 s after each issue, the same cadence.
    configs = [
        ("gcauth", "steady", 3599.0), ("gcauth", "expiring", 4.0),
        ("google-auth", "steady", 3599.0), ("google-auth", "expiring", 229.0),
    ]
    results: dict[tuple[str, str], tuple[list[float], int]] = {}
    for lib, mode, lifetime in configs:
        with _token_lifetime(emu, lifetime):
            if lib == "gcauth":
                creds: Any = gcauth_sa.Credentials.from_service_account_info(info, scopes=SCOPES)

                def make(creds: Any = creds) -> Any:
                    return AuthorizedSession(creds)
            else:
                creds = google_sa.Credentials.from_service_account_info(info, scopes=SCOPES)

                def make(creds: Any = creds) -> Any:
                    return google_requests.AuthorizedSession(creds)
            _latencies(make, url, 0.3, threads)  # first token, connections
            emu.reset_counts()
            samples = _latencies(make, url, seconds, threads)
            results[(lib, mode)] = (samples, emu.counts["token"])

    def p99(lib: str, mode: str) -> float:
        return percentile(results[(lib, mode)][0], 99) * 1000

    for mode in ("steady", "expiring"):
        ours, theirs = p99("gcauth", mode), p99("google-auth", mode)
        o_samples, o_tokens = results[("gcauth", mode)]
        t_samples, t_tokens = results[("google-auth", mode)]
        ctx.rows.append(Row(
            "tail latency", f"p99 of API calls, {mode} "
            f"({'refresh every ~3-4 s' if mode == 'expiring' else 'no refresh'})",
            ours, theirs, "ms", "", None,
            note=f"{threads} threads × {seconds:g} s; gcauth p50 "
                 f"{percentile(o_samples, 50) * 1000:.2f} / p99.9 "
                 f"{percentile(o_samples, 99.9) * 1000:.2f} / max {max(o_samples) * 1000:.1f} ms,"
                 f" {len(o_samples)} calls, {o_tokens} token requests; google-auth p50 "
                 f"{percentile(t_samples, 50) * 1000:.2f} / p99.9 "
                 f"{percentile(t_samples, 99.9) * 1000:.2f} / max {max(t_samples) * 1000:.1f} ms,"
                 f" {len(t_samples)} calls, {t_tokens} token requests"))
    ours_ratio = p99("gcauth", "expiring") / p99("gcauth", "steady")
    theirs_ratio = p99("google-auth", "expiring") / p99("google-auth", "steady")
    ctx.rows.append(Row("tail latency", "p99 while expiring ÷ steady-state p99", ours_ratio,
                        theirs_ratio, "×", "≤ 2×", ours_ratio <= 2))


# -- 8. two-step herds: impersonation, workload identity federation --------------------------------
def _two_step_herd(ctx: Context, name: str, counters: tuple[str, str], labels: tuple[str, str],
                   ours: Callable[[], Any], theirs: Callable[[], Any]) -> None:
    """32 concurrent first callers of one fresh credential per trial, gcauth's then
    google-auth's: the emulator's two ``counters`` per trial, a row for each."""
    import google.auth.transport.requests

    from gcauth.transport.requests import Request as GcauthRequest

    emu = ctx.emulator
    url = f"{emu.api_url}/sql/v1beta4/projects/bench/instances"
    google_request = google.auth.transport.requests.Request()
    ours_request = GcauthRequest()
    n = 32
    seen: dict[str, list[tuple[int, int]]] = {"ours": [], "theirs": []}
    for _ in range(ctx.reps(5, 2)):
        mine = ours()
        emu.reset_counts()
        _herd(n, partial(mine.get_token, ours_request))
        seen["ours"].append((emu.counts[counters[0]], emu.counts[counters[1]]))

        peer = theirs()
        emu.reset_counts()
        _herd(n, partial(peer.before_request, google_request, "GET", url, {}))
        seen["theirs"].append((emu.counts[counters[0]], emu.counts[counters[1]]))
    for index, what in enumerate(labels):
        ours_counts = [trial[index] for trial in seen["ours"]]
        theirs_counts = [trial[index] for trial in seen["theirs"]]
        ctx.rows.append(Row(
            name, f"{what} requests, {n} concurrent first callers (median)",
            median([float(v) for v in ours_counts]), median([float(v) for v in theirs_counts]),
            "requests", "exactly 1", all(v == 1 for v in ours_counts),
            note=f"gcauth per trial {ours_counts}, google-auth per trial {theirs_counts}"))


def bench_impersonated_herd(ctx: Context) -> None:
    import google.oauth2.service_account as google_sa
    from google.auth import impersonated_credentials as google_impersonated

    from gcauth import impersonated_credentials as gcauth_impersonated
    from gcauth import service_account as gcauth_sa

    emu = ctx.emulator
    key = emu.create_service_account(project_id="bench", name="herd-source")
    target = emu.create_service_account(project_id="bench", name="herd-target",
                                        with_key=False)["client_email"]
    emu.grant_token_creator("serviceAccount:" + key["client_email"], target)
    override = (f"{emu.iam_endpoint}/v1/projects/-/serviceAccounts/{target}"
                ":generateAccessToken")
    _two_step_herd(
        ctx, "impersonation", ("token", "generateAccessToken"),
        ("source-token", "generateAccessToken"),
        lambda: gcauth_impersonated.Credentials(
            gcauth_sa.Credentials.from_service_account_info(key), target, SCOPES,
            iam_endpoint_override=emu.iam_endpoint),
        lambda: google_impersonated.Credentials(
            source_credentials=google_sa.Credentials.from_service_account_info(key),
            target_principal=target, target_scopes=SCOPES, iam_endpoint_override=override))


def bench_federation_herd(ctx: Context) -> None:
    """One external_account credential (an OIDC token file, impersonating a service
    account): STS exchanges and generateAccessToken calls."""
    from google.auth import identity_pool as google_pool

    from gcauth import identity_pool as gcauth_pool

    emu = ctx.emulator
    target = emu.create_service_account(project_id="bench", name="wif-target",
                                        with_key=False)["client_email"]
    config = emu.create_workload_identity_pool("oidc", service_account=target)
    token = emu.issue_oidc_token(subject="repo:bench/app:ref:refs/heads/main",
                                 audience=config["audience"])
    Path(config["credential_source"]["file"]).write_text(token)
    _two_step_herd(
        ctx, "federation", ("sts", "generateAccessToken"),
        ("STS exchange", "generateAccessToken"),
        lambda: gcauth_pool.Credentials.from_info(config, scopes=SCOPES),
        lambda: google_pool.Credentials.from_info(config, scopes=SCOPES))


# -- 9. ID-token verification -------------------------------------------------------------------
def bench_verify(ctx: Context) -> None:
    import google.auth.transport.requests
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from google.oauth2 import id_token as google_id_token

    from gcauth import id_token
    from gcauth._protocol.jwt import b64url_decode
    from gcauth.transport.requests import Request as GcauthRequest

    emu = ctx.emulator
    audience = "https://bench.run.app"
    state = emu._state  # 1,000 distinct tokens signed by the emulator's ID-token key
    tokens = [state.id_token(now=state.now(), aud=audience, azp="1", sub="1",
                             email="bench@bench.iam.gserviceaccount.com", extra={"jti": i})
              for i in range(1000)]
    certs_url = emu.pem_certs_uri
    public_key = state.signing_key.public_key
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    split = [(t.rsplit(".", 1)[0].encode("ascii"), b64url_decode(t.rsplit(".", 1)[1]))
             for t in tokens]
    ours_request = GcauthRequest()
    google_request = google.auth.transport.requests.Request()

    def floor() -> None:
        for signing_input, signature in split:
            public_key.verify(signature, signing_input, pkcs1, sha256)

    fetches: dict[str, list[int]] = {"ours": [], "theirs": []}

    def ours() -> None:  # a fresh cache each time: the one certificate fetch is included
        cache = id_token.CertCache()
        emu.reset_counts()
        for token in tokens:
            id_token.verify_oauth2_token(token, ours_request, audience, certs_url=certs_url,
                                         cache=cache)
        fetches["ours"].append(emu.counts["certs"])

    warm_cache = id_token.CertCache()

    def ours_warm() -> None:
        for token in tokens:
            id_token.verify_oauth2_token(token, ours_request, audience, certs_url=certs_url,
                                         cache=warm_cache)

    def theirs() -> None:
        emu.reset_counts()
        for token in tokens:
            google_id_token.verify_token(token, google_request, audience=audience,
                                         certs_url=certs_url)
        fetches["theirs"].append(emu.counts["certs"])

    calls = {"floor": floor, "ours": ours, "warm": ours_warm}
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    ours_warm()
    for index in range(ctx.reps(15, 5)):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_seconds(calls[name]))
    theirs_times = [_seconds(theirs) for _ in range(ctx.reps(3, 1))]
    rate = {name: 1000 / median(values) for name, values in times.items()}
    ours_vs_floor = median([f / o for f, o in zip(times["floor"], times["ours"], strict=True)])
    warm_vs_floor = median([f / o for f, o in zip(times["floor"], times["warm"], strict=True)])
    theirs_rate = 1000 / median(theirs_times)
    ctx.rows.append(Row(
        "ID-token verification", "certificate fetches for 1,000 ID tokens (median)",
        median([float(v) for v in fetches["ours"]]), median([float(v) for v in fetches["theirs"]]),
        "requests", "exactly 1", all(v == 1 for v in fetches["ours"]),
        note=f"gcauth per run {sorted(set(fetches['ours']))}, google-auth per run "
             f"{sorted(set(fetches['theirs']))} (it fetches the certificates on every call)"))
    ctx.rows.append(Row(
        "ID-token verification",
        f"ID tokens verified per second (raw RSA-verify floor {rate['floor']:,.0f}/s)",
        rate["ours"], theirs_rate, "/s", "≥ 0.9× floor", ours_vs_floor >= 0.9,
        note=f"paired with the floor measured in the same round: gcauth = {ours_vs_floor:.3f}× "
             f"floor with its one certificate fetch, {warm_vs_floor:.3f}× with the "
             f"certificates already cached ({rate['warm']:,.0f}/s); google-auth = "
             f"{theirs_rate / rate['floor']:.3f}× floor (verify_token, PEM certificates)"))


# -- 8. Google's client libraries on gcauth credentials ------------------------------------------
def bench_google_libraries(ctx: Context) -> None:
    """google-cloud-storage on ``to_google_auth(gcauth credential)`` vs on google-auth's own
    service-account credential: a 32-thread herd on one client, and the per-call cost."""
    import google.auth.transport.requests as google_requests
    import google.oauth2.service_account as google_sa
    from google.cloud import storage

    from gcauth import service_account as gcauth_sa
    from gcauth.compat.google_auth import to_google_auth

    emu = ctx.emulator
    info = emu.create_service_account(project_id="bench")
    with TrivialServer() as server:
        options = {"api_endpoint": server.url}

        def client(credentials: Any) -> Any:
            return storage.Client(project="bench", credentials=credentials,
                                  client_options=options)

        def listing(c: Any) -> Callable[[], object]:
            return lambda: list(c.list_buckets())  # the server answers an empty listing

        seen: dict[str, list[int]] = {"ours": [], "theirs": []}
        for _ in range(ctx.reps(5, 2)):
            ours = client(to_google_auth(gcauth_sa.Credentials.from_service_account_info(info)))
            emu.reset_counts()
            _herd(32, listing(ours))
            seen["ours"].append(emu.counts["token"])
            ours.close()
            theirs = client(google_sa.Credentials.from_service_account_info(info))
            emu.reset_counts()
            _herd(32, listing(theirs))
            seen["theirs"].append(emu.counts["token"])
            theirs.close()
        ctx.rows.append(Row(
            "google libraries", "storage: token requests, 32 threads on one client (median)",
            median([float(v) for v in seen["ours"]]), median([float(v) for v in seen["theirs"]]),
            "requests", "exactly 1", all(v == 1 for v in seen["ours"]),
            note=f"storage.Client(credentials=to_google_auth(gcauth sa)) vs google-auth's "
                 f"service_account.Credentials; gcauth per trial {seen['ours']}, google-auth "
                 f"per trial {seen['theirs']}"))

        # per call: the whole library call, and the credential hook alone
        adapted = to_google_auth(gcauth_sa.Credentials.from_service_account_info(info))
        native = google_sa.Credentials.from_service_account_info(info)
        ours, theirs = client(adapted), client(native)
        ours_hook, theirs_hook = ours._credentials, theirs._credentials  # the scoped copies
        request = google_requests.Request()
        url = server.url + "/storage/v1/b"
        variants: dict[str, Callable[[], object]] = {
            "call ours": listing(ours), "call theirs": listing(theirs),
            "hook ours": lambda: ours_hook.before_request(request, "GET", url, {}),
            "hook theirs": lambda: theirs_hook.before_request(request, "GET", url, {}),
        }
        for call in variants.values():  # first tokens, connections, warm-up
            for _ in range(50):
                call()
        per_round = {"call": ctx.reps(100, 50), "hook": ctx.reps(5000, 2000)}
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for index in range(ctx.reps(31, 9)):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(_per_request(variants[name], per_round[name.split()[0]]))
        ours.close()
        theirs.close()

    def paired(a: str, b: str) -> float:
        return median([x / y for x, y in zip(times[a], times[b], strict=True)])

    call_ratio, hook_ratio = paired("call ours", "call theirs"), paired("hook ours", "hook theirs")
    # the whole call is requests + urllib3 + storage: the same code on both sides, whose
    # run-to-run noise (±5 % on a loaded 2-core machine) is larger than the auth difference,
    # so it is shown, not judged; the hook row below is the adapter's own cost
    ctx.rows.append(Row(
        "google libraries", "storage: list_buckets() per call (trivial server)",
        median(times["call ours"]) * 1e6, median(times["call theirs"]) * 1e6, "µs",
        "", None,
        note=f"paired by round: gcauth ÷ google-auth = {call_ratio:.3f}; the same requests/"
             "urllib3/storage code runs on both sides, so this is noise around the hook's "
             "difference"))
    ctx.rows.append(Row(
        "google libraries", "credential before_request() per call (token cached)",
        median(times["hook ours"]) * 1e6, median(times["hook theirs"]) * 1e6, "µs",
        "no slower", hook_ratio <= 1.0,
        note=f"what every library call pays for auth; paired by round: gcauth ÷ google-auth "
             f"= {hook_ratio:.3f}"))


BENCHMARKS: dict[str, Callable[[Context], None]] = {
    "import": bench_import,
    "default": bench_default_no_credentials,
    "service-account": bench_service_account,
    "signing": bench_signing,
    "herd": bench_herd,
    "overhead": bench_overhead,
    "latency": bench_tail_latency,
    "impersonation": bench_impersonated_herd,
    "federation": bench_federation_herd,
    "verify": bench_verify,
    "google-libraries": bench_google_libraries,
}
