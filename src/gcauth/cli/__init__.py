"""The ``gcauth`` command.

Exit codes (documented in the README):

* 0 -- success
* 1 -- a gcauth error (no credentials, refused refresh, denied login...): one line + a hint
* 2 -- bad command-line usage (argparse's errors, and option values gcauth cannot use:
  :class:`~gcauth.exceptions.UsageError`)
* 130 -- interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..exceptions import GCAuthError

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    from . import _auth, _config, _demo, _emulator, _explain

    parser = argparse.ArgumentParser(
        prog="gcauth",
        description="Authenticate to Google Cloud-style APIs: log in, inspect ADC, run the "
                    "offline emulator and demo.")
    parser.add_argument("--version", action="version", version=f"gcauth {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    _auth.register(commands)
    _explain.register(commands)
    _config.register(commands)
    _emulator.register(commands)
    _demo.register(commands)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except GCAuthError as exc:
        from ..exceptions import UsageError
        from ._common import terminal_safe

        # messages quote servers and files (error_description, account...)
        first, _, rest = terminal_safe(str(exc), multiline=True).partition("\n")
        print(f"gcauth: error: {first}", file=sys.stderr)
        if rest:
            print(rest, file=sys.stderr)
        # an option value that cannot be used (a non-loopback --host, an unknown scope
        # name...) is bad usage, like argparse's own errors
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR
    except KeyboardInterrupt:
        print("gcauth: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
