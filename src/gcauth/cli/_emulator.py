"""``gcauth emulator``: serve the local Google stand-in until stopped.

Start-up problems are one error line plus a hint line, never a traceback: a port out of
range or a host that is not loopback is bad usage (exit 2); a port already in use, or one
this user may not open, is exit 1.
"""

from __future__ import annotations

import argparse
from typing import Any


def _port(value: str) -> int:
    """An ``argparse`` type: any integer (the range is checked with the host, in one place)."""
    try:
        return int(value, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None


def register(commands: Any) -> None:
    from ._common import EXIT_CODES, formatter

    parser: argparse.ArgumentParser = commands.add_parser(
        "emulator", help="run the local OAuth/metadata/API emulator",
        formatter_class=formatter,
        description="Serve the gcauth emulator on loopback until interrupted, printing the "
                    "`export` lines that point a\nshell at it. With --state-dir, also write "
                    "credential files for it there: a service-account\nkey, a Desktop-app "
                    "client (client_secrets.json), a TVs-and-Limited-Input client for the\n"
                    "device flow (device_client_secrets.json) and an ADC user file.",
        epilog=EXIT_CODES + "\n  (2 for a --host that is not loopback or a --port out of "
                            "range; 1 for a port already in use)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="loopback address: 127.0.0.1 (default), ::1 or localhost")
    parser.add_argument("--port", type=_port, default=0,
                        help="port, 0 to 65535 (default 0: any free port)")
    parser.add_argument("--state-dir", default=None, metavar="DIR",
                        help="write credential files for this emulator into DIR (mode 0600)")
    parser.add_argument("--verbose", action="store_true",
                        help="log each request (method, path, status) to stderr")
    parser.add_argument("--workload-identity-pool", action="append", default=[],
                        metavar="KIND", dest="workload_identity_pools",
                        help="with --state-dir: create a workload identity pool of KIND "
                             "(oidc, aws or workforce) and write its external_account "
                             "credential configuration into DIR; repeatable")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..emulator import serve_forever
    from ..emulator._main import check_address

    check_address(args.host, args.port)
    return serve_forever(args.host, args.port, state_dir=args.state_dir, verbose=args.verbose,
                         workload_identity_pools=args.workload_identity_pools)
