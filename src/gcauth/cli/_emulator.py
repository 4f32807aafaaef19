"""``gcauth emulator``: serve the local Google stand-in until stopped."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "emulator", help="run the local OAuth/metadata/API emulator",
        description="Serve the gcauth emulator on loopback until interrupted, printing the "
                    "`export` lines that point a shell at it.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--state-dir", default=None,
                        help="write a demo service-account key and client_secrets.json here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..emulator import serve_forever

    serve_forever(args.host, args.port, state_dir=args.state_dir)
    return 0
