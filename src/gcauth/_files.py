"""Reading credential files defensively and writing them atomically with mode 0600."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ._json import loads as json_loads
from .exceptions import MalformedCredentialsError

__all__ = [
    "MAX_CREDENTIAL_FILE_BYTES",
    "check_link_inside",
    "make_private_dir",
    "read_bounded",
    "read_json_file",
    "remove_file_if",
    "remove_stale_temps",
    "write_private_json",
    "write_private_text",
]

#: A service-account key is ~2.4 KB; anything past this is not a credential file.
MAX_CREDENTIAL_FILE_BYTES = 256 * 1024


#: How credential files are opened: never blocking (a FIFO or a device swapped in after the
#: checks must not hang the reader), never becoming the controlling terminal, not inherited.
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


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

    Special files are refused twice: by the path before anything is opened (so a device is
    never opened at all), and by the opened descriptor, because the file can be replaced
    between the two (a FIFO swapped in then would otherwise block the reader for ever). The
    file is opened non-blocking and at most ``max_bytes`` + 1 bytes are read.

    ``inside``: when given and ``path`` is a symbolic link whose target lies outside that
    directory, refuse to follow it; the checked target is then opened without following a
    link, so a link swapped in after the check is refused too.
    """
    name = os.fspath(path)
    data = _read(name, what=what, fix=fix, max_bytes=max_bytes, inside=inside)
    return _parse_json(name, data, what=what, fix=fix)


def read_bounded(
    path: str | os.PathLike[str],
    *,
    what: str = "credential file",
    fix: str = "point it at a JSON credential file",
    max_bytes: int = MAX_CREDENTIAL_FILE_BYTES,
) -> bytes:
    """The bytes of the regular file ``path``, read with :func:`read_json_file`'s defences
    (special files refused by path and again by descriptor, a non-blocking open, at most
    ``max_bytes`` + 1 bytes read) but not parsed. Every failure, a missing file included, is
    a :class:`MalformedCredentialsError` naming the file and how to fix it."""
    return _read(os.fspath(path), what=what, fix=fix, max_bytes=max_bytes, inside=None)


def _read(name: str, *, what: str, fix: str, max_bytes: int,
          inside: str | os.PathLike[str] | None) -> bytes:
    """The checks by name, then the bounded read (see :func:`read_json_file`)."""
    if "\0" in name:
        raise MalformedCredentialsError(
            f"{what} path {name!r} contains a NUL byte, which no file name can hold; {fix}.",
            source=repr(name))
    _check_path(name, what, fix, max_bytes)
    target, flags = name, _OPEN_FLAGS
    if inside is not None:
        target = check_link_inside(name, inside, what=what) or name
        flags |= _NOFOLLOW
    return _read_bounded(name, target, flags, what=what, fix=fix, max_bytes=max_bytes)


def _refusal(name: str, mode: int, size: int, what: str, fix: str,
             max_bytes: int) -> MalformedCredentialsError | None:
    """Why a file with this ``stat`` is no credential file, or ``None`` if it may be one."""
    if stat.S_ISDIR(mode):
        return MalformedCredentialsError(
            f"{what} {name} is a directory, not a file; {fix}.", source=name)
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else
                "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        return MalformedCredentialsError(
            f"{what} {name} is {kind}, not a regular file; {fix}.", source=name)
    if size > max_bytes:
        return MalformedCredentialsError(
            f"{what} {name} is {size} bytes, more than a credential file can be "
            f"({max_bytes}); {fix}.", source=name)
    return None


def _check_path(name: str, what: str, fix: str, max_bytes: int) -> None:
    """The checks made by path, before anything is opened."""
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise MalformedCredentialsError(
            f"{what} {name} does not exist; {fix}.", source=name) from None
    except OSError as exc:
        raise MalformedCredentialsError(
            f"{what} {name} cannot be accessed ({exc.strerror}); {fix}.", source=name) from None
    refusal = _refusal(name, info.st_mode, info.st_size, what, fix, max_bytes)
    if refusal is not None:
        raise refusal


def _read_bounded(name: str, target: str, flags: int, *, what: str, fix: str,
                  max_bytes: int) -> bytes:
    """Open ``target`` with ``flags``, check the descriptor is still a regular file of at
    most ``max_bytes``, and read at most ``max_bytes`` + 1 bytes of it."""
    try:
        fd = os.open(target, flags)
    except FileNotFoundError:
        raise MalformedCredentialsError(
            f"{what} {name} does not exist (it was removed while being read); {fix}.",
            source=name) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and flags & _NOFOLLOW:
            raise MalformedCredentialsError(
                f"{what} {name} became a symbolic link while being read; refusing to follow "
                "it. Replace the link with the file itself.", source=name) from None
        raise MalformedCredentialsError(
            f"{what} {name} cannot be read ({exc.strerror}); check its permissions or {fix}.",
            source=name) from None
    try:
        info = os.fstat(fd)
        refusal = _refusal(name, info.st_mode, info.st_size, what, fix, max_bytes)
        if refusal is not None:
            raise refusal
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise MalformedCredentialsError(
            f"{what} {name} cannot be read ({exc.strerror}); check its permissions or {fix}.",
            source=name) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise MalformedCredentialsError(
            f"{what} {name} is larger than a credential file can be ({max_bytes} bytes); {fix}.",
            source=name)
    return data


def _parse_json(name: str, data: bytes, *, what: str, fix: str) -> dict[str, Any]:
    source = name
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
) -> str | None:
    """Refuse ``path`` if it is a symbolic link whose target lies outside ``root``.

    Returns the resolved target when ``path`` is a link (inside ``root``), else ``None``.
    """
    name = os.fspath(path)
    if not os.path.islink(name):
        return None
    try:
        base = Path(root).resolve()
        target = Path(name).resolve()
    except (OSError, ValueError, RuntimeError):  # a loop, a NUL byte...
        raise MalformedCredentialsError(
            f"{what} {name} is a symbolic link that cannot be resolved; replace the link with "
            "the file itself.", source=name) from None
    if base != target and base not in target.parents:
        raise MalformedCredentialsError(
            f"{what} {name} is a symbolic link to a file outside {base}; refusing to follow "
            "it. Replace the link with the file itself.", source=name)
    return str(target)


#: A temporary file left by a writer that died (``kill -9``, a crash, power loss) holds a
#: whole credential for ever; the next write removes it. A temporary file younger than this,
#: or one its writer still holds locked, belongs to a write in progress and is left alone.
STALE_TEMP_SECONDS = 2.0


def _temp_name_pattern(target: Path) -> re.Pattern[str]:
    """The names :func:`_new_temp` gives temporary files for ``target``."""
    return re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]+\.tmp\Z")


def _new_temp(target: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)


def _lock(fd: int) -> None:
    """Mark ``fd``'s file as in use (an advisory lock, released when the writer closes it or
    dies), so that :func:`remove_stale_temps` of another process leaves it alone."""
    try:
        import fcntl
    except ImportError:  # Windows: an open file cannot be deleted anyway
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pass  # a filesystem without locks: the age check still protects the write


def _remove_if_abandoned(path: str) -> None:
    """Delete the temporary file ``path`` unless a live writer holds it locked."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        try:
            import fcntl
        except ImportError:
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # its writer is alive
            except OSError:
                pass
        opened = os.fstat(fd)
        try:
            current = os.lstat(path)
        except OSError:
            return
        if (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino):
            os.close(fd)  # Windows cannot delete an open file
            fd = -1
            try:
                os.unlink(path)
            except OSError:
                pass
    finally:
        if fd >= 0:
            os.close(fd)


def remove_stale_temps(path: str | os.PathLike[str], *,
                       older_than: float | None = None) -> None:
    """Remove the temporary files an interrupted :func:`write_private_json` of ``path`` left
    behind: regular files named like its temporary files, unchanged for ``older_than``
    seconds (default :data:`STALE_TEMP_SECONDS`; both the content and the inode change time
    count, so a file just renamed into place is young) and not locked by a live writer.
    Errors are ignored: this is housekeeping."""
    import time

    if older_than is None:
        older_than = STALE_TEMP_SECONDS
    target = Path(path)
    pattern = _temp_name_pattern(target)
    now = time.time()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if now - max(info.st_mtime, info.st_ctime) < older_than:
            continue
        _remove_if_abandoned(entry.path)


def make_private_dir(directory: str | os.PathLike[str]) -> None:
    """Create ``directory`` (and missing parents) if needed; the directory itself is created
    with mode 0700 whatever the umask. An existing directory is left as it is."""
    path = Path(directory)
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if path.is_dir():
            return  # created meanwhile by someone else: theirs
        raise
    os.chmod(path, 0o700)  # mkdir's mode is reduced by the umask


def write_private_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically, readable by the owner only (0600).

    The parent directory is created 0700 if missing. A reader never sees a half-written file:
    the content goes to a temporary file in the same directory, is flushed, then renamed over
    ``path`` (a symbolic link there is replaced, not written through). Temporary files of
    earlier writes that were killed are removed first (:func:`remove_stale_temps`); the
    temporary file of this write is locked while it exists, so a concurrent writer does not
    take it for one of those. Failures (a read-only directory, a full disk...) raise
    :class:`OSError` and leave no temporary file behind.
    """
    write_private_text(path, json.dumps(dict(data), indent=2, sort_keys=True) + "\n")


def write_private_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` the way :func:`write_private_json` writes JSON:
    atomically, mode 0600, in a directory created 0700 if missing (gcloud's properties
    files, for instance)."""
    target = Path(path)
    make_private_dir(target.parent)
    remove_stale_temps(target)
    fd, tmp = _new_temp(target)
    try:
        _lock(fd)
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(tmp, target)  # while the lock is held
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_file_if(
    path: str | os.PathLike[str],
    holds: Callable[[dict[str, Any]], bool],
    *,
    what: str = "credential file",
) -> bool:
    """Delete the JSON file at ``path`` only if its content still satisfies ``holds``;
    returns whether it was deleted.

    A writer may replace the file at any moment (:func:`write_private_json` renames a new
    file over it), so the file is first renamed aside, atomically: the file checked is the
    file deleted. A file that fails the check is put back, unless a newer one has taken its
    place meanwhile (the newer one wins). A missing file is not deleted (``False``).
    """
    target = Path(path)
    fd, aside = _new_temp(target)
    os.close(fd)
    try:
        os.replace(target, aside)
    except BaseException:
        os.unlink(aside)
        if not target.exists() and not target.is_symlink():
            return False
        raise
    try:
        info: dict[str, Any] | None = read_json_file(aside, what=what, inside=target.parent)
    except MalformedCredentialsError:
        info = None
    if info is not None and holds(info):
        os.unlink(aside)
        return True
    try:
        os.link(aside, target, follow_symlinks=False)  # fails if a newer file is there
    except FileExistsError:
        pass
    except (NotImplementedError, OSError):
        if not target.exists() and not target.is_symlink():
            os.replace(aside, target)
            return False
    try:
        os.unlink(aside)
    except FileNotFoundError:
        pass
    return False
