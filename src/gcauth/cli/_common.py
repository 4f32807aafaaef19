"""What the ``gcauth`` commands share: help formatting, the exit-code table, option parsing
and making untrusted text safe to print on a terminal."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import TextIO, cast

from .._checks import terminal_safe
from ..exceptions import FlowError

__all__ = [
    "CLOUD_PLATFORM",
    "EXIT_CODES",
    "SafeText",
    "formatter",
    "parse_scopes",
    "seconds",
    "terminal_safe",
]

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"

#: The exit-code table every command's ``--help`` ends with (see gcauth.cli).
EXIT_CODES = """\
exit codes:
  0    success
  1    a gcauth error (denied, timed out, no credentials, server refused...):
       one line on stderr, plus a hint
  2    bad command-line usage
  130  interrupted (Ctrl-C)"""


def formatter(prog: str) -> argparse.HelpFormatter:
    """The help formatter of every command: descriptions keep their line breaks."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def parse_scopes(value: str | None, default: Sequence[str]) -> list[str]:
    """``--scopes a,b`` (commas or spaces) as a list; ``None`` means ``default``."""
    if value is None:
        return list(default)
    scopes = [scope for scope in value.replace(" ", ",").split(",") if scope]
    if not scopes:
        raise FlowError("--scopes is empty. Fix: give at least one scope, e.g. "
                        f"--scopes={CLOUD_PLATFORM}")
    return scopes


def seconds(value: str) -> float:
    """An ``argparse`` type: a finite, positive number of seconds (``nan``, ``inf``, zero and
    negative values are usage errors)."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not math.isfinite(number) or number <= 0:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a positive, finite number of seconds")
    return number


class SafeText:
    """A text stream that writes everything through :func:`terminal_safe` (line breaks
    kept): for the output of a login flow, which shows URLs and codes a server chose."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(terminal_safe(text, multiline=True))

    def flush(self) -> None:
        self._stream.flush()

    def stream(self) -> TextIO:
        """This wrapper, typed as what the flows accept (they only write and flush)."""
        return cast(TextIO, self)
