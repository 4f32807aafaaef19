"""Reading credential files defensively and writing them atomically with mode 0600."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._json import loads as json_loads
from .exceptions import MalformedCredentialsError

__all__ = [
    "MAX_CREDENTIAL_FILE_BYTES",
    "check_link_inside",
    "read_json_file",
    "write_private_json",
]

#: A service-account key is ~2.4 KB; anything past this is not a credential file.
MAX_CREDENTIAL_FILE_BYTES = 256 * 1024


def read_json_file(
    path: str | os.PathLike[str],
    *,
    what: str = "credential file",
    fix: str = "point it at a JSON credential file",
    max_bytes: int = MAX_CREDENTIAL_FILE_BYTES,
    inside: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Read a JSON object from ``path``; every failure is a :class:`MalformedCredentialsError`
    naming the file and how to fix it.

    ``inside``: when given and ``path`` is a symbolic link whose target lies outside that
    directory, refuse to follow it.
    """
    name = os.fspath(path)
    source = name
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise MalformedCredentialsError(
            f"{what} {name} does not exist; {fix}.", source=source) from None
    except OSError as exc:
        raise MalformedCredentialsError(
            f"{what} {name} cannot be accessed ({exc.strerror}); {fix}.", source=source) from None
    if stat.S_ISDIR(info.st_mode):
        raise MalformedCredentialsError(
            f"{what} {name} is a directory, not a file; {fix}.", source=source)
    if not stat.S_ISREG(info.st_mode):
        raise MalformedCredentialsError(
            f"{what} {name} is not a regular file; {fix}.", source=source)
    if info.st_size > max_bytes:
        raise MalformedCredentialsError(
            f"{what} {name} is {info.st_size} bytes, more than a credential file can be "
            f"({max_bytes}); {fix}.", source=source)
    if inside is not None:
        check_link_inside(name, inside, what=what)
    try:
        with open(name, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise MalformedCredentialsError(
            f"{what} {name} cannot be read ({exc.strerror}); check its permissions or {fix}.",
            source=source) from None
    if len(data) > max_bytes:
        raise MalformedCredentialsError(
            f"{what} {name} is larger than a credential file can be ({max_bytes} bytes); {fix}.",
            source=source)
    if not data.strip():
        raise MalformedCredentialsError(f"{what} {name} is empty; {fix}.", source=source)
    try:
        parsed = json_loads(data)
    except UnicodeDecodeError:
        raise MalformedCredentialsError(
            f"{what} {name} is not UTF-8 text (a .p12/PKCS12 key?). gcauth reads JSON keys: "
            "create a JSON key for the service account and point at it instead.",
            source=source) from None
    except ValueError as exc:
        line = getattr(exc, "lineno", "?")
        raise MalformedCredentialsError(
            f"{what} {name} is not valid JSON (line {line}); {fix}.", source=source) from None
    if not isinstance(parsed, dict):
        raise MalformedCredentialsError(
            f"{what} {name} holds JSON {type(parsed).__name__}, not an object; {fix}.",
            source=source)
    return parsed


def check_link_inside(
    path: str | os.PathLike[str], root: str | os.PathLike[str], *, what: str = "credential file"
) -> None:
    """Refuse ``path`` if it is a symbolic link whose target lies outside ``root``."""
    name = os.fspath(path)
    if not os.path.islink(name):
        return
    base = Path(root).resolve()
    target = Path(name).resolve()
    if base != target and base not in target.parents:
        raise MalformedCredentialsError(
            f"{what} {name} is a symbolic link to a file outside {base}; refusing to follow "
            "it. Replace the link with the file itself.", source=name)


def write_private_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically, readable by the owner only (0600).

    The parent directory is created 0700 if missing. A reader never sees a half-written file:
    the content goes to a temporary file in the same directory, is flushed, then renamed.
    """
    import tempfile

    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(data), handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
