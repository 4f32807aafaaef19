"""Run the gcauth vs google-auth benchmarks, print the table, write BENCHMARKS.md.

    python -m benchmarks [--quick] [--only NAME ...] [--output PATH | --no-write]

(``./dev bench`` installs the ``bench`` extra first, then runs this.)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version

from . import _guard
from ._suite import (
    BENCHMARKS,
    Context,
    Row,
    isolate_environment,
    redirect_google_auth_rab,
    start_emulator,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.3f} s" if value < 1 else f"{value:.2f} s"
    if unit == "µs":
        return f"{value:.1f} µs"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "requests":
        return f"{value:g}"
    if unit == "%":
        return f"{value:+.1f} %"
    if unit == "×":
        return f"{value:.2f}×"
    return f"{value:g} {unit}"


def ratio(row: Row) -> str:
    if row.unit in ("%", "×") or row.ratio is None:
        return "—"
    return f"{row.ratio:.2f}×"


def verdict(row: Row) -> str:
    if row.met is None:
        return ""
    return "met" if row.met else "MISSED"


def table(rows: list[Row]) -> list[str]:
    head = ["benchmark", "gcauth", "google-auth", "gcauth / google-auth", "target", ""]
    body = [[r.name, fmt(r.gcauth, r.unit), fmt(r.google, r.unit), ratio(r), r.target,
             verdict(r)] for r in rows]
    widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(len(head))]
    out = [" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    for line in body:
        out.append(" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    return out


def markdown(rows: list[Row], ctx: Context, started: datetime, elapsed: float,
             command: str) -> str:
    lines = [
        "# Benchmarks: gcauth vs google-auth",
        "",
        "Written by the benchmark run; do not edit by hand. Regenerate with "
        "`./dev bench` (see [benchmarks/README.md](benchmarks/README.md)).",
        "",
        f"- run: {started:%Y-%m-%d %H:%M} UTC, {elapsed:.0f} s, `{command}`"
        + (" (**quick mode**: fewer repetitions)" if ctx.quick else ""),
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}",
        f"- versions: gcauth {version('gcauth')}, google-auth {version('google-auth')}, "
        f"requests {version('requests')}, httpx {version('httpx')}, urllib3 "
        f"{version('urllib3')}, cryptography {version('cryptography')}",
        f"- load average (1 min) at start / end: {ctx.load[0]:.2f} / {ctx.load[1]:.2f} "
        "(other work on the machine shows up as noise in every figure)",
        f"- network guard: every non-loopback connect and name lookup refused "
        f"({len(_guard.refused)} attempts refused during this run"
        + (f": {', '.join(sorted(set(_guard.refused)))}" if _guard.refused else "") + ")",
        "",
        "Medians of interleaved runs. Ratio = gcauth ÷ google-auth (below 1 = gcauth smaller).",
        "",
        "| benchmark | gcauth | google-auth | gcauth / google-auth | target | |",
        "|---|---|---|---|---|---|",
    ]
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            lines.append(f"| **{section}** | | | | | |")
        name = r.name.strip().replace("|", "\\|")
        lines.append(f"| {name} | {fmt(r.gcauth, r.unit)} | {fmt(r.google, r.unit)} | "
                     f"{ratio(r)} | {r.target} | {verdict(r)} |")
    notes = [r for r in rows if r.note]
    if notes:
        lines += ["", "## Details", ""]
        lines += [f"- **{r.name.strip()}**: {r.note}" for r in notes]
    lines += ["", "## How each figure is made", "", HOW, ""]
    return "\n".join(lines)


HOW = """\
- **import**: wall time of `python -c '<network guard>; import …'` as a whole process
  (`import gcauth`, `from gcauth import service_account`, `import gcauth.transport.<t>` vs
  `import google.auth`, `from google.oauth2 import service_account`,
  `import google.auth.transport.<t>`); "python alone" is the guard prelude with no import.
  Both libraries are byte-compiled first, as pip does at install time: an editable checkout
  under `PYTHONDONTWRITEBYTECODE=1` would otherwise recompile gcauth on every import.
- **default()**: an empty HOME, no `GOOGLE_*` variables, and `GCE_METADATA_HOST` /
  `GCE_METADATA_IP` (both libraries read both) pointed at a closed loopback port, or at a
  loopback listener that accepts connections and never answers.
- **service account**: the key is one the emulator created; `default()` reads it through
  `GOOGLE_APPLICATION_CREDENTIALS` and fetches a token from the emulator (each library
  reuses one transport across runs). google-auth's regional-access-boundary lookup is
  redirected to the emulator.
- **signing**: complete JWT-bearer assertions (claims, JSON, base64url, RS256) per second,
  next to bare `cryptography` RSA-2048 PKCS#1 v1.5 signing of an input of the same size.
- **herd**: N threads released by a barrier on a fresh credential; gcauth calls
  `get_token()`, google-auth `before_request()` (what its sessions call); the emulator
  counts token requests.
- **overhead**: a keep-alive loopback server that answers in one write with Nagle off;
  the ratio of per-request times of the authorized session and the bare client, paired by
  round, median over rounds.
- **tail latency**: 4 threads, each with its own authorized requests session sharing one
  credential, call the emulator's sample API back to back; "expiring" makes each library
  refresh every few seconds (gcauth: 4 s tokens, refreshed in the background once stale;
  google-auth: 229 s tokens, refreshed blocking once under its 3 min 45 s threshold).
- **impersonation**: 32 threads released by a barrier on fresh impersonated credentials
  (a service-account key as the source, a keyless target, the emulator's IAM Credentials API
  through `iam_endpoint_override`); gcauth calls `get_token()`, google-auth
  `before_request()`; the emulator counts `/token` (source) and `generateAccessToken`
  requests.
- **verify**: 1,000 distinct ID tokens signed by the emulator's key, verified against its
  `{kid: PEM}` certificates (gcauth `verify_oauth2_token` with a fresh `CertCache` per run, so
  its one fetch is included; google-auth `verify_token`); the floor is bare `cryptography`
  RSA-2048 PKCS#1 v1.5 verification of the same signing inputs, measured in the same rounds.
- **google libraries**: google-cloud-storage against the trivial loopback server, built on
  `to_google_auth(gcauth service account)` or on google-auth's own service-account
  credential (tokens from the emulator). Herd: 32 threads released by a barrier call
  `list_buckets()` on one fresh client; the emulator counts token requests. Per call: the
  whole `list_buckets()` and the credential's `before_request()` alone (token cached),
  interleaved rounds, ratio paired by round.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only these: {', '.join(BENCHMARKS)}")
    parser.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"),
                        help="where to write the results (default: BENCHMARKS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    try:
        import google.auth  # noqa: F401
    except ImportError:
        print("google-auth is not installed: run `./dev bench`, which installs "
              "the bench extra (pip install -e '.[bench]')", file=sys.stderr)
        return 2

    isolate_environment()
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    ctx = Context(quick=args.quick)
    ctx.load = [os.getloadavg()[0], 0.0]
    ctx.emulator = start_emulator()
    redirect_google_auth_rab(ctx.emulator)
    try:
        for name, bench in BENCHMARKS.items():
            if args.only and name not in args.only:
                continue
            print(f"running {name} ...", file=sys.stderr, flush=True)
            before = len(ctx.rows)
            bench(ctx)
            for line in table(ctx.rows[before:])[2:]:
                print("   " + line, file=sys.stderr, flush=True)
    finally:
        ctx.emulator.stop()
    elapsed = time.perf_counter() - t0
    ctx.load[1] = os.getloadavg()[0]
    print()
    print("\n".join(table(ctx.rows)))
    if _guard.refused:
        print(f"\nnetwork guard refused {len(_guard.refused)} non-loopback attempts: "
              f"{sorted(set(_guard.refused))}")
    if not args.no_write:
        command = "python -m benchmarks" + (" --quick" if args.quick else "") + (
            f" --only {' '.join(args.only)}" if args.only else "")
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(markdown(ctx.rows, ctx, started, elapsed, command))
        print(f"\nwrote {os.path.relpath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
