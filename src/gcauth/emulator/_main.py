"""Running the emulator as a foreground process (``python -m gcauth.emulator``)."""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from .._files import write_private_json
from ..exceptions import GCAuthError, UsageError
from ._emulator import Emulator, _check_loopback

__all__ = ["main", "serve_forever"]


#: The application name of the clients ``--state-dir`` writes (shown on the consent page).
STATE_DIR_APP = "gcauth CLI (emulator)"


def _write_state(emu: Emulator, state_dir: Path) -> dict[str, Path]:
    files = {
        "service account key": state_dir / "service-account.json",
        "client secrets": state_dir / "client_secrets.json",
        "device client secrets": state_dir / "device_client_secrets.json",
        "authorized user": state_dir / "authorized-user.json",
    }
    write_private_json(files["service account key"], emu.create_service_account(name="demo"))
    write_private_json(files["client secrets"],
                       emu.create_oauth_client("installed", name=STATE_DIR_APP))
    write_private_json(files["device client secrets"],
                       emu.create_oauth_client("limited-input", name=STATE_DIR_APP))
    write_private_json(files["authorized user"], emu.create_authorized_user())
    return files


#: ``--workload-identity-pool`` kinds: an OIDC workload pool, an AWS one, a workforce pool.
POOL_KINDS = ("oidc", "aws", "workforce")
#: How often the subject-token files of ``--workload-identity-pool`` are re-minted (their
#: tokens live an hour).
TOKEN_REFRESH_SECONDS = 1800.0


def _write_pools(emu: Emulator, state_dir: Path, kinds: Sequence[str],
                 ) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """Write one credential configuration per kind (``external-account-<kind>.json``); the
    OIDC ones read their subject token from ``<kind>-subject-token.txt`` beside it."""
    files: dict[str, Path] = {}
    refresh: list[dict[str, Any]] = []
    for kind in dict.fromkeys(kinds):
        path = state_dir / f"external-account-{kind}.json"
        if kind == "aws":
            config = emu.create_workload_identity_pool("aws")
        else:
            token = (state_dir / f"{kind}-subject-token.txt").resolve()
            config = emu.create_workload_identity_pool(
                workforce=kind == "workforce",
                credential_source={"file": str(token), "format": {"type": "text"}})
            emu.write_subject_token(config)
            refresh.append(config)
            files[f"{kind} subject token (re-minted every 30 minutes)"] = token
        write_private_json(path, config)
        files[f"{kind} workload identity pool configuration"] = path
    return files, refresh


def check_address(host: str, port: object) -> None:
    """Refuse, before binding, what the emulator can never listen on: a port outside
    0-65535 or a host that is not a loopback address. Raises
    :class:`~gcauth.exceptions.UsageError` (a ``ValueError``) whose message is one line of
    what is wrong and one line of how to fix it."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a port number (0 to 65535).\n"
                         "Fix: give a port such as 8089, or --port 0 (the default) for any "
                         "free one.")
    try:
        _check_loopback(host)
    except ValueError:
        raise UsageError(
            f"--host {host} is not a loopback address: the emulator hands out credentials, so "
            "it only listens on this machine.\nFix: use --host 127.0.0.1 (the default), ::1 "
            "or localhost.") from None


def bind_error(exc: OSError, host: str, port: int) -> GCAuthError:
    """What a failed bind means, in one line plus a hint line."""
    where = f"{host} port {port}"
    if exc.errno == errno.EADDRINUSE:
        return GCAuthError(
            f"{where} is already in use (another emulator, or another program, is listening "
            f"there).\nFix: stop that program, or choose another port with --port (--port 0 "
            "picks any free one).")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return GCAuthError(
            f"not allowed to listen on {where} ({exc.strerror}): ports below 1024 need "
            "administrator rights.\nFix: choose a port above 1024, or --port 0 for any free one.")
    if exc.errno == errno.EADDRNOTAVAIL:
        return GCAuthError(
            f"{host} is not an address of this machine ({exc.strerror}).\nFix: use --host "
            "127.0.0.1 (the default).")
    return GCAuthError(f"cannot listen on {where}: {exc.strerror or exc}.\nFix: choose another "
                       "port, or --port 0 for any free one.")


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 0,
    out: TextIO | None = None,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    control: bool = True,
    verbose: bool = False,
    stop_event: threading.Event | None = None,
    workload_identity_pools: Sequence[str] = (),
) -> int:
    """Start an emulator, print ``export`` lines for it and serve until SIGINT/SIGTERM.

    With ``state_dir``, demo credential files are written there and an
    ``export CLOUDSDK_CONFIG=<state_dir>/gcloud`` line is printed too, so that a login run
    from that shell writes its ADC file beside them, not into the user's real gcloud
    directory.

    ``workload_identity_pools`` (kinds of :data:`POOL_KINDS`; needs ``state_dir``) writes an
    ``external_account`` credential configuration per kind into ``state_dir``; the OIDC
    ones read a subject-token file there that is re-minted every 30 minutes while serving.

    ``stop_event`` (for embedding/tests) stops it as a signal would.  The fault
    control endpoint is enabled (``control=True``) by default here.  Returns 0.
    """
    bad = [k for k in workload_identity_pools if k not in POOL_KINDS]
    if bad:
        raise UsageError(f"--workload-identity-pool {bad[0]} is not one of "
                         f"{', '.join(POOL_KINDS)}.\nFix: pass oidc, aws or workforce.")
    if workload_identity_pools and state_dir is None:
        raise UsageError("--workload-identity-pool writes its credential configuration into "
                         "--state-dir.\nFix: add --state-dir DIR.")
    out = out if out is not None else sys.stdout
    stop = stop_event if stop_event is not None else threading.Event()
    emu = Emulator(host, port, control=control, verbose=verbose)
    try:
        emu.start()
    except OSError as exc:
        raise bind_error(exc, host, port) from None
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        out.write(f"# gcauth emulator listening on {emu.url} (Ctrl-C to stop)\n")
        out.write(f"# token URI: {emu.token_uri}\n")
        for name, value in emu.env().items():
            out.write(f"export {name}={value}\n")
        if state_dir is not None:
            # an offline login then writes here, never to the user's real gcloud directory
            gcloud = Path(state_dir).resolve() / "gcloud"
            out.write(f"export CLOUDSDK_CONFIG={shlex.quote(str(gcloud))}\n")
            for label, path in _write_state(emu, Path(state_dir)).items():
                out.write(f"# {label}: {path}\n")
        refresh: list[dict[str, Any]] = []
        if workload_identity_pools and state_dir is not None:
            files, refresh = _write_pools(emu, Path(state_dir), workload_identity_pools)
            for label, path in files.items():
                out.write(f"# {label}: {path}\n")
        out.flush()
        minted = time.monotonic()
        while not stop.wait(0.2):
            if refresh and time.monotonic() - minted >= TOKEN_REFRESH_SECONDS:
                for config in refresh:
                    emu.write_subject_token(config)
                minted = time.monotonic()
    finally:
        emu.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m gcauth.emulator",
        description="Run the offline gcauth emulator (OAuth 2.0 server, metadata server, "
        "sample API) on a loopback address.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0: pick a free one)")
    parser.add_argument("--state-dir", help="write demo credentials (mode 0600) here")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    parser.add_argument("--workload-identity-pool", action="append", default=[],
                        metavar="KIND", help="with --state-dir: write an external_account "
                        "configuration for a new pool of KIND (oidc, aws, workforce); "
                        "repeatable")
    args = parser.parse_args(argv)
    try:
        check_address(args.host, args.port)
        return serve_forever(args.host, args.port, state_dir=args.state_dir,
                             verbose=args.verbose,
                             workload_identity_pools=args.workload_identity_pool)
    except GCAuthError as exc:  # UsageError (exit 2) or a failed bind (exit 1)
        first, _, rest = str(exc).partition("\n")
        sys.stderr.write(f"{parser.prog}: error: {first}\n" + (f"{rest}\n" if rest else ""))
        return 2 if isinstance(exc, UsageError) else 1
