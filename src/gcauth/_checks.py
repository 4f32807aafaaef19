"""Syntax rules for values that end up in HTTP headers, checked where they are read.

A token or id that came from a server, a file or the environment is checked once, when it is
parsed, so a hostile value can never reach an HTTP library (which would quote it in its own
error, send a NUL raw, or split a header on CR/LF). Error messages built from these checks
name where the value came from and never quote it.
"""

from __future__ import annotations

import re

__all__ = ["is_b64token", "is_header_id", "is_token_type", "terminal_safe"]

#: RFC 6750 §2.1: ``b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="``.
#: Google's access tokens, self-signed JWTs and ID tokens all have this form. Bounded at
#: 16 KiB: no real token comes close, and a header of megabytes is refused by every server.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]{1,16384}=*")

#: Project ids and numbers as Google allows them (``my-project-123``, the domain-scoped
#: ``example.com:my-project``, ``123456789012``), a little more liberally (upper case,
#: underscores), and at most 128 characters: nothing that could split or smuggle a header.
_HEADER_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._:\-]{0,126}[A-Za-z0-9])?")

#: RFC 9110 §5.6.2 ``token`` (the syntax of an auth scheme such as ``Bearer``).
_TOKEN68_SCHEME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z\-]{1,32}")


def is_b64token(value: object) -> bool:
    """Whether ``value`` may be sent as ``Authorization: Bearer <value>``."""
    return isinstance(value, str) and _B64TOKEN.fullmatch(value) is not None


def is_header_id(value: object) -> bool:
    """Whether ``value`` is a project id or number safe for ``X-Goog-User-Project``."""
    return isinstance(value, str) and _HEADER_ID.fullmatch(value) is not None


def is_token_type(value: object) -> bool:
    """Whether ``value`` is a syntactically valid auth scheme (``Bearer``)."""
    return isinstance(value, str) and _TOKEN68_SCHEME.fullmatch(value) is not None


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
