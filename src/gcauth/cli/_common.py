"""What the ``gcauth`` commands share: help formatting, the exit-code table, option parsing
and making untrusted text safe to print on a terminal."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import TextIO, cast

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


#: Characters that reorder text on display (Unicode bidirectional controls).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                  "\u2066\u2067\u2068\u2069")


def terminal_safe(text: str, *, multiline: bool = False) -> str:
    """``text`` with terminal control characters removed, for printing what a server or a
    file said (an ``error_description``, an ``account``...).

    C0 and C1 control characters (``ESC`` starts terminal escape sequences; ``CR`` and
    backspace overwrite what is shown), ``DEL`` and bidirectional overrides are dropped.
    Tabs become spaces. Line breaks are kept with ``multiline``, else they become spaces, so
    a one-line value cannot print a second, forged line.
    """
    out = []
    for char in text:
        code = ord(char)
        if char == "\n" and multiline:
            out.append(char)
        elif char in "\t\n\r\v\f\x85\u2028\u2029":
            out.append(" " if char != "\r" else "")
        elif code < 0x20 or 0x7f <= code <= 0x9f or char in _BIDI:
            continue
        else:
            out.append(char)
    return "".join(out)


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
