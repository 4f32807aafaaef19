"""What the ``gcauth`` commands share: help formatting, the exit-code table, option parsing
and making untrusted text safe to print on a terminal."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import TextIO, cast

from .._checks import terminal_safe
from ..exceptions import FlowError, UsageError

__all__ = [
    "CLOUD_PLATFORM",
    "EXIT_CODES",
    "SCOPE_ALIASES",
    "BadScopes",
    "SafeText",
    "expand_scopes",
    "formatter",
    "parse_scopes",
    "seconds",
    "terminal_safe",
]

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_AUTH = "https://www.googleapis.com/auth/"

#: The short scope names gcloud accepts (``gcloud compute instances create --scopes``, plus
#: the ``userinfo.email`` spelling ``--help`` uses), and the scope each stands for.
SCOPE_ALIASES = {
    "bigquery": _AUTH + "bigquery",
    "cloud-platform": CLOUD_PLATFORM,
    "cloud-source-repos": _AUTH + "source.full_control",
    "cloud-source-repos-ro": _AUTH + "source.read_only",
    "compute-ro": _AUTH + "compute.readonly",
    "compute-rw": _AUTH + "compute",
    "datastore": _AUTH + "datastore",
    "logging-write": _AUTH + "logging.write",
    "monitoring": _AUTH + "monitoring",
    "monitoring-read": _AUTH + "monitoring.read",
    "monitoring-write": _AUTH + "monitoring.write",
    "pubsub": _AUTH + "pubsub",
    "service-control": _AUTH + "servicecontrol",
    "service-management": _AUTH + "service.management.readonly",
    "sql-admin": _AUTH + "sqlservice.admin",
    "storage-full": _AUTH + "devstorage.full_control",
    "storage-ro": _AUTH + "devstorage.read_only",
    "storage-rw": _AUTH + "devstorage.read_write",
    "taskqueue": _AUTH + "taskqueue",
    "trace": _AUTH + "trace.append",
    "userinfo-email": _AUTH + "userinfo.email",
    "userinfo.email": _AUTH + "userinfo.email",
}
#: OpenID Connect scope names, which Google takes as they are.
OIDC_SCOPES = ("openid", "email", "profile")

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


class BadScopes(FlowError, UsageError):
    """A ``--scopes`` value that cannot be used: bad command-line usage (exit code 2)."""


def parse_scopes(value: str | None, default: Sequence[str]) -> list[str]:
    """``--scopes a,b`` (commas or spaces) as a list; ``None`` means ``default``."""
    if value is None:
        return list(default)
    scopes = [scope for scope in value.replace(" ", ",").split(",") if scope]
    if not scopes:
        raise BadScopes("--scopes is empty. Fix: give at least one scope, e.g. "
                        f"--scopes={CLOUD_PLATFORM} (or its short name, cloud-platform)")
    return scopes


def expand_scopes(scopes: Sequence[str]) -> list[str]:
    """Full scope URLs for what a gcloud user types: short names (:data:`SCOPE_ALIASES`)
    are expanded, OpenID Connect names and URLs kept, duplicates dropped; any other name is
    refused here (:class:`BadScopes`), before a browser shows ``invalid_scope``."""
    out: list[str] = []
    unknown: list[str] = []
    for scope in scopes:
        if scope in OIDC_SCOPES or "://" in scope:
            full = scope
        elif scope in SCOPE_ALIASES:
            full = SCOPE_ALIASES[scope]
        else:
            unknown.append(scope)
            continue
        if full not in out:
            out.append(full)
    if unknown:
        shown = ", ".join(repr(terminal_safe(name)[:80]) for name in unknown[:5])
        guess = terminal_safe(unknown[0])[:80]
        raise BadScopes(
            f"--scopes: unknown scope name{'s' if len(unknown) > 1 else ''} {shown}. A scope "
            f"is a full URL such as {_AUTH}{guess}, or one of gcloud's short names: "
            f"{', '.join(sorted({*SCOPE_ALIASES, *OIDC_SCOPES}))}.\nFix: give the full URL "
            f"(e.g. --scopes={_AUTH}{guess}), or a short name from that list.")
    return out


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
