"""Running the emulator as a foreground process (``python -m gcauth.emulator``)."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from .._files import write_private_json
from ._emulator import Emulator

__all__ = ["main", "serve_forever"]


def _write_state(emu: Emulator, state_dir: Path) -> dict[str, Path]:
    files = {
        "service account key": state_dir / "service-account.json",
        "client secrets": state_dir / "client_secrets.json",
        "authorized user": state_dir / "authorized-user.json",
    }
    write_private_json(files["service account key"], emu.create_service_account(name="demo"))
    write_private_json(files["client secrets"], emu.create_oauth_client("installed"))
    write_private_json(files["authorized user"], emu.create_authorized_user())
    return files


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 0,
    out: TextIO | None = None,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    control: bool = True,
    verbose: bool = False,
    stop_event: threading.Event | None = None,
) -> int:
    """Start an emulator, print ``export`` lines for it and serve until SIGINT/SIGTERM.

    With ``state_dir``, demo credential files are written there and an
    ``export CLOUDSDK_CONFIG=<state_dir>/gcloud`` line is printed too, so that a login run
    from that shell writes its ADC file beside them, not into the user's real gcloud
    directory.

    ``stop_event`` (for embedding/tests) stops it as a signal would.  The fault
    control endpoint is enabled (``control=True``) by default here.  Returns 0.
    """
    out = out if out is not None else sys.stdout
    stop = stop_event if stop_event is not None else threading.Event()
    emu = Emulator(host, port, control=control, verbose=verbose)
    emu.start()
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
        out.flush()
        while not stop.wait(0.2):
            pass
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
    args = parser.parse_args(argv)
    try:
        return serve_forever(args.host, args.port, state_dir=args.state_dir,
                             verbose=args.verbose)
    except (ValueError, OSError) as exc:
        parser.exit(2, f"error: {exc}\n")
