"""Executable-sourced credentials: running the program a credential configuration names.

Google's contract ("Using executable-sourced credentials with OIDC and SAML", workload and
workforce identity federation; google-auth's ``google.auth.pluggable``):

* A configuration's ``credential_source.executable`` names a ``command`` (split like a shell
  would, never run by one), a ``timeout_millis`` (default 30000, 5000 to 120000), an optional
  ``output_file`` and, for interactive runs, an ``interactive_timeout_millis`` (30000 to
  1800000).
* Executables run only when ``GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1``
  (:func:`check_allowed`): the configuration file decides which program runs.
* The program gets ``GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE``, ``..._TOKEN_TYPE``,
  ``..._INTERACTIVE`` and, when they apply, ``..._IMPERSONATED_EMAIL`` and ``..._OUTPUT_FILE``
  (:func:`child_environment`) and prints one JSON response on stdout (:func:`parse_response`)::

      {"version": 1, "success": true,
       "token_type": "urn:ietf:params:oauth:token-type:id_token",
       "id_token": "HEADER.PAYLOAD.SIGNATURE", "expiration_time": 1620433341}
      {"version": 1, "success": true, "token_type": "urn:ietf:params:oauth:token-type:saml2",
       "saml_response": "...", "expiration_time": 1620433341}
      {"version": 1, "success": false, "code": "401", "message": "Error message."}

  ``token_type`` ``urn:ietf:params:oauth:token-type:jwt`` is OIDC too (field ``id_token``).
  ``expiration_time`` (seconds since the epoch) is required when an output file is
  configured.
* With an ``output_file``, the program also writes its response there, and the file is read
  as a cache before the program is run again (:func:`load_output_file`).

This module is the support layer's part: no credentials, no HTTP. The credential (the lead's
``gcauth.pluggable``) strings these together: ``check_allowed``, ``load_output_file``,
``child_environment``, ``run``, ``parse_response``. Messages name the ``origin`` the caller
passes (``"the executable `cmd` configured in /path/file.json"``) and never contain a token.
"""

from __future__ import annotations

import math
import os
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ._checks import terminal_safe
from ._files import read_bounded
from ._json import loads as json_loads
from ._value import Value
from .exceptions import MalformedCredentialsError, RefreshError, UsageError

__all__ = [
    "ALLOW_VARIABLE",
    "DEFAULT_TIMEOUT_MILLIS",
    "MAX_OUTPUT_BYTES",
    "SUPPORTED_VERSION",
    "TOKEN_TYPE_ID_TOKEN",
    "TOKEN_TYPE_JWT",
    "TOKEN_TYPE_SAML2",
    "WITHHELD_PREFIXES",
    "WITHHELD_VARIABLES",
    "ExecutableResponse",
    "check_allowed",
    "check_interactive_timeout_millis",
    "check_timeout_millis",
    "child_environment",
    "load_output_file",
    "parse_response",
    "run",
]

#: The variable that must be ``1`` for any executable to run.
ALLOW_VARIABLE = "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"
#: The only response ``version`` Google has defined.
SUPPORTED_VERSION = 1
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
TOKEN_TYPE_SAML2 = "urn:ietf:params:oauth:token-type:saml2"
#: Which response field holds the token, per token type.
_TOKEN_FIELDS = {TOKEN_TYPE_JWT: "id_token", TOKEN_TYPE_ID_TOKEN: "id_token",
                 TOKEN_TYPE_SAML2: "saml_response"}

#: Google's limits (milliseconds).
DEFAULT_TIMEOUT_MILLIS = 30_000
TIMEOUT_MILLIS_RANGE = (5_000, 120_000)
INTERACTIVE_TIMEOUT_MILLIS_RANGE = (30_000, 1_800_000)

#: The most stdout an executable may print (and the largest output file read): a SAML
#: response is a few tens of KiB, an ID token a few KiB.
MAX_OUTPUT_BYTES = 1024 * 1024
#: How much of stderr is kept (its end), and how much of that an error message shows.
_STDERR_KEPT = 16 * 1024
_STDERR_SHOWN = 400
#: How much of an error response's ``message`` (and ``code``) a RefreshError shows.
_MESSAGE_SHOWN = 300
#: After a timeout: how long the process group has between SIGTERM and SIGKILL (seconds).
TERM_GRACE = 0.5
#: After the executable exits: how long processes it left behind may keep its output pipes
#: open before they are killed (seconds).
DRAIN_GRACE = 0.5
_POLL = 0.02

#: Variables never passed to the executable (unless named in ``pass_through``): those that
#: name or hold Google credentials, so that a program run to fetch a third-party token neither
#: sees the user's Google credentials nor, if it uses a Google library itself, loads the very
#: configuration that runs it (``GOOGLE_APPLICATION_CREDENTIALS``, and the permission to run
#: executables, would make it run itself again). Identity-provider variables (GitHub's
#: ``ACTIONS_ID_TOKEN_REQUEST_*``, ``AWS_*``, ``AZURE_*``, ...) pass unchanged.
WITHHELD_VARIABLES = frozenset({
    "GOOGLE_APPLICATION_CREDENTIALS",      # ADC file (may be this configuration)
    ALLOW_VARIABLE,                         # permission to run executables
    "GOOGLE_OAUTH_ACCESS_TOKEN",           # an access token (Terraform's provider)
    "GOOGLE_CREDENTIALS",                  # a key or its path (Terraform's provider)
    "GOOGLE_CLOUD_KEYFILE_JSON",           # the same, older names
    "GCLOUD_KEYFILE_JSON",
    "GOOGLE_GHA_CREDS_PATH",               # google-github-actions/auth's credential file
    "GOOGLE_API_KEY",                      # an API key
    "CLOUDSDK_CONFIG",                     # gcloud's configuration directory (its tokens)
})
#: Prefixes of withheld variables: all of gcloud's ``auth/*`` properties
#: (``CLOUDSDK_AUTH_ACCESS_TOKEN_FILE``, ``CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE``, ...) and
#: every ``GOOGLE_EXTERNAL_ACCOUNT_*`` inherited from an outer run (the ones that apply are
#: set afresh by :func:`child_environment`).
WITHHELD_PREFIXES = ("CLOUDSDK_AUTH_", "GOOGLE_EXTERNAL_ACCOUNT_")


class ExecutableResponse(Value):
    """A successful executable response: its ``version``, ``token_type``, the
    ``subject_token`` (the ``id_token`` or ``saml_response``; hidden from ``repr``) and its
    ``expiration_time`` in seconds since the epoch, if given."""

    __slots__ = ("version", "token_type", "subject_token", "expiration_time")
    _hidden = frozenset({"subject_token"})
    version: int
    token_type: str
    subject_token: str
    expiration_time: int | None

    def __init__(self, version: int, token_type: str, subject_token: str,
                 expiration_time: int | None = None):
        self._init(version=version, token_type=token_type, subject_token=subject_token,
                   expiration_time=expiration_time)


# --- the response ---------------------------------------------------------------------------

_RESPONSE_FORMAT = ('{"version": 1, "success": true, "token_type": '
                    '"urn:ietf:params:oauth:token-type:id_token", "id_token": "...", '
                    '"expiration_time": <seconds since the epoch>}')


class _Stale(Exception):
    """A well-formed response that is not usable now: Google's output-file cache ignores
    these and runs the executable again (an error response, an unsupported version or token
    type, an expired or undated response)."""

    def __init__(self, error: RefreshError):
        super().__init__(str(error))
        self.error = error


def _safe(text: str, limit: int) -> str:
    text = terminal_safe(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _field_error(where: str, field: str, problem: str) -> RefreshError:
    return RefreshError(f"{where}: field {field!r} {problem}. The executable must print (and "
                        f"write to its output file) a JSON object like {_RESPONSE_FORMAT}.")


def _interpret(data: bytes | str, where: str, now: float,
               require_expiration: bool) -> ExecutableResponse:
    """Parse a response; raise :class:`RefreshError` for a malformed one and :class:`_Stale`
    (wrapping the RefreshError to raise) for a well-formed one that cannot be used now."""
    try:
        parsed: Any = json_loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except UnicodeDecodeError:
        raise RefreshError(f"{where}: the response is not UTF-8 text; the executable must "
                           f"print a JSON object like {_RESPONSE_FORMAT}.") from None
    except ValueError as exc:
        line = getattr(exc, "lineno", "?")
        raise RefreshError(f"{where}: the response is not valid JSON (line {line}); the "
                           f"executable must print a JSON object like "
                           f"{_RESPONSE_FORMAT}.") from None
    if not isinstance(parsed, dict):
        raise RefreshError(f"{where}: the response is JSON {type(parsed).__name__}, not an "
                           f"object; the executable must print a JSON object like "
                           f"{_RESPONSE_FORMAT}.")
    version = parsed.get("version")
    if version is None:
        raise _field_error(where, "version", "is missing")
    if isinstance(version, bool) or not isinstance(version, int):
        raise _field_error(where, "version", f"must be the number {SUPPORTED_VERSION}, not "
                           f"{_json_kind(version)}")
    success = parsed.get("success")
    if not isinstance(success, bool):
        raise _field_error(where, "success", "is missing" if success is None else
                           f"must be true or false, not {_json_kind(success)}")
    if version != SUPPORTED_VERSION:
        raise _Stale(RefreshError(
            f"{where}: response version {version} is not supported (gcauth supports version "
            f"{SUPPORTED_VERSION}); update the executable or make it print version "
            f"{SUPPORTED_VERSION}."))
    if not success:
        code, message = parsed.get("code"), parsed.get("message")
        for field, value in (("code", code), ("message", message)):
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise _field_error(where, field, "is required in an error response (success "
                                   "false) and must be a string" if value is None else
                                   f"must be a string, not {_json_kind(value)}")
        raise _Stale(RefreshError(
            f"{where}: the executable reported an error: code {_safe(str(code), 40)}, "
            f"message {_safe(str(message), _MESSAGE_SHOWN)!r}. Fix what it reports (run the "
            "command by hand to see more).", error=_safe(str(code), 40)))
    expiration = parsed.get("expiration_time")
    if expiration is not None:
        if (isinstance(expiration, bool) or not isinstance(expiration, (int, float))
                or not math.isfinite(expiration)):
            raise _field_error(where, "expiration_time", "must be a number of seconds since "
                               f"the epoch, not {_json_kind(expiration)}")
        expiration = int(expiration)
    token_type = parsed.get("token_type")
    if not isinstance(token_type, str) or not token_type:
        raise _field_error(where, "token_type", "is missing" if token_type is None else
                           f"must be a string, not {_json_kind(token_type)}")
    if expiration is None and require_expiration:
        raise _Stale(_field_error(
            where, "expiration_time", "is missing; it is required when the credential "
            "configuration names an output_file"))
    if expiration is not None and expiration < now:
        raise _Stale(RefreshError(
            f"{where}: the response expired at {expiration} (now {int(now)}); the executable "
            "must return a token that is still valid, with its expiration_time."))
    token_field = _TOKEN_FIELDS.get(token_type)
    if token_field is None:
        raise _Stale(RefreshError(
            f"{where}: token_type {_safe(token_type, 80)!r} is not supported; use "
            f"{TOKEN_TYPE_ID_TOKEN}, {TOKEN_TYPE_JWT} (field id_token) or {TOKEN_TYPE_SAML2} "
            "(field saml_response)."))
    token = parsed.get(token_field)
    if not isinstance(token, str) or not token:
        raise _field_error(where, token_field, f"is required with token_type {token_type} and "
                           "must be a non-empty string" if token is None else
                           f"must be a non-empty string, not {_json_kind(token)}")
    return ExecutableResponse(version, token_type, token, expiration)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    return "an array" if isinstance(value, list) else "an object"


def parse_response(data: bytes | str, *, origin: str, now: float,
                   require_expiration: bool) -> ExecutableResponse:
    """The response an executable printed, checked against Google's format.

    ``now`` (seconds since the epoch) decides expiry: a response whose ``expiration_time`` is
    before it is refused. ``require_expiration`` (set when the configuration names an
    ``output_file``) makes a missing ``expiration_time`` an error. Every problem raises
    :class:`~gcauth.exceptions.RefreshError` naming ``origin`` and the field, and saying how
    to fix it: malformed JSON, not an object, missing or wrongly typed fields, a ``version``
    other than 1, ``success: false`` (with the executable's ``code`` and ``message``,
    terminal-safe and truncated; ``error`` is the code), an expired response, an unknown
    ``token_type``. No message contains the token.
    """
    try:
        return _interpret(data, f"{terminal_safe(origin)} printed a bad response", now,
                          require_expiration)
    except _Stale as stale:
        raise stale.error from None


def load_output_file(path: str, *, origin: str, now: float) -> ExecutableResponse | None:
    """The cached response in the executable's ``output_file``, or ``None`` when the
    executable must be run (again).

    This follows google-auth (``google.auth.pluggable``) case by case:

    * ``None`` when the file is missing or empty, when it cannot be read or is not JSON
      (google-auth ignores any error opening or parsing it), and when it is a well-formed
      response that cannot be used now: expired, without ``expiration_time`` (treated as
      expired), ``success: false``, another ``version`` or an unknown ``token_type``
      (google-auth ignores these and runs the executable again).
    * A :class:`~gcauth.exceptions.RefreshError` when it is JSON but not a well-formed
      response: not an object, ``version`` or ``success`` missing or of the wrong type,
      ``success: false`` without ``code``/``message``, no ``token_type``, no token (google-auth
      raises for these too: the executable writes a broken file, and running it again would
      only overwrite the evidence).

    Read with :func:`gcauth._files.read_bounded` (regular files only, opened non-blocking, at
    most :data:`MAX_OUTPUT_BYTES`): a FIFO or a device in its place is never opened
    blocking, and counts as unreadable.
    """
    where = f"the output file {terminal_safe(path)} of {terminal_safe(origin)}"
    try:
        os.stat(path)
    except (OSError, ValueError):
        return None
    try:
        data = read_bounded(path, what="output file", fix="remove it",
                            max_bytes=MAX_OUTPUT_BYTES)
    except MalformedCredentialsError:
        return None
    if not data.strip():
        return None
    try:
        json_loads(data.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        return None
    try:
        return _interpret(data, where, now, True)
    except _Stale:
        return None


# --- the environment ------------------------------------------------------------------------

def _withheld(name: str) -> bool:
    return name in WITHHELD_VARIABLES or name.startswith(WITHHELD_PREFIXES)


def child_environment(
    parent: Mapping[str, str],
    *,
    audience: str,
    token_type: str,
    impersonated_email: str | None,
    output_file: str | None,
    interactive: bool = False,
    pass_through: Iterable[str] = (),
) -> dict[str, str]:
    """The environment to run an executable in: ``parent`` (usually ``os.environ``) without
    :data:`WITHHELD_VARIABLES` and variables starting with :data:`WITHHELD_PREFIXES` (unless
    named in ``pass_through``), plus ``GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE``, ``..._TOKEN_TYPE``,
    ``..._INTERACTIVE`` (``"1"``/``"0"``) and, only when given, ``..._IMPERSONATED_EMAIL`` and
    ``..._OUTPUT_FILE``. Those five are always set from the arguments (or left out), whatever
    ``pass_through`` says. A value holding a NUL byte (no environment can) raises
    :class:`~gcauth.exceptions.UsageError`.
    """
    keep = set(pass_through)
    env = {name: value for name, value in parent.items()
           if not _withheld(name) or name in keep}
    for name in ("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL",
                 "GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE"):
        env.pop(name, None)
    added = {"GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE": audience,
             "GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE": token_type,
             "GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE": "1" if interactive else "0"}
    if impersonated_email is not None:
        added["GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL"] = impersonated_email
    if output_file is not None:
        added["GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE"] = output_file
    for name, value in added.items():
        if not isinstance(value, str) or "\0" in value:
            raise UsageError(f"{name} must be a string without NUL bytes, not "
                             f"{type(value).__name__}")
    env.update(added)
    return env


# --- the checks -----------------------------------------------------------------------------

def check_allowed(environ: Mapping[str, str], *, origin: str) -> None:
    """Refuse to run any executable unless ``GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1``
    in ``environ``: :class:`~gcauth.exceptions.RefreshError` saying so, and why."""
    if environ.get(ALLOW_VARIABLE) != "1":
        raise RefreshError(
            f"{terminal_safe(origin)} was not run: executables run only when "
            f"{ALLOW_VARIABLE}=1 is set in the environment, because the credential "
            "configuration file decides which program runs with your privileges. If you "
            f"trust that file, set {ALLOW_VARIABLE}=1 (as Google's libraries require too).")


def _millis(value: object, field: str, origin: str, bounds: tuple[int, int]) -> float:
    low, high = bounds
    source = terminal_safe(origin)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        kind = repr(value) if isinstance(value, float) else _json_kind(value)
        raise MalformedCredentialsError(
            f"{source}: field {field!r} must be a finite number of milliseconds from {low} "
            f"to {high}, not {kind}. Fix the credential configuration.", source=source,
            field=field)
    if not low <= value <= high:
        raise MalformedCredentialsError(
            f"{source}: field {field!r} is {value:g} ms, outside the allowed {low} to {high} "
            f"({low // 1000} s to {high // 1000} s). Fix the credential configuration.",
            source=source, field=field)
    return float(value) / 1000.0


def check_timeout_millis(value: object, *, field: str = "timeout_millis",
                         origin: str) -> float:
    """The executable's timeout **in seconds** (for :func:`run`) from the configuration's
    ``timeout_millis``: :data:`DEFAULT_TIMEOUT_MILLIS` (30 s) when absent (``None``) or 0, as
    google-auth does; else a number from 5000 to 120000 (Google's limits), or
    :class:`~gcauth.exceptions.MalformedCredentialsError` naming ``field``."""
    if value is None or (value == 0 and not isinstance(value, bool)):
        return DEFAULT_TIMEOUT_MILLIS / 1000.0
    return _millis(value, field, origin, TIMEOUT_MILLIS_RANGE)


def check_interactive_timeout_millis(value: object, *,
                                     field: str = "interactive_timeout_millis",
                                     origin: str) -> float | None:
    """The interactive timeout **in seconds** from ``interactive_timeout_millis``, or ``None``
    when absent (``None``) or 0 (google-auth: interactive runs then refuse to start); else a
    number from 30000 to 1800000 (30 s to 30 min, Google's limits), or
    :class:`~gcauth.exceptions.MalformedCredentialsError` naming ``field``."""
    if value is None or (value == 0 and not isinstance(value, bool)):
        return None
    return _millis(value, field, origin, INTERACTIVE_TIMEOUT_MILLIS_RANGE)


# --- running --------------------------------------------------------------------------------

_POSIX = os.name == "posix"


def _argv(command: str, where: str) -> list[str]:
    if not isinstance(command, str):
        raise UsageError(f"the command must be a string, not {type(command).__name__}")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise RefreshError(f"{where}: its command cannot be split into arguments ({exc}); "
                           "fix the quoting of `command` in the credential "
                           "configuration.") from None
    if not argv:
        raise RefreshError(f"{where}: its command is empty; set `command` in the credential "
                           "configuration.")
    return argv


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the child has exited, without reaping it (so its process group id cannot be
    reused before the group is killed)."""
    if proc.returncode is not None:
        return True
    if hasattr(os, "waitid"):
        try:
            return os.waitid(os.P_PID, proc.pid,
                             os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return proc.poll() is not None
    return proc.poll() is not None


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        if _POSIX:
            os.killpg(proc.pid, sig)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    """Stop the child's whole process group: SIGTERM, up to ``grace`` seconds for the child
    to exit, then SIGKILL (always: members that ignored SIGTERM, or outlived the child);
    then reap the child."""
    if grace > 0 and not _exited(proc):
        _signal_group(proc, signal.SIGTERM)
        end = time.monotonic() + grace
        while not _exited(proc) and time.monotonic() < end:
            time.sleep(_POLL)
    _signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:  # stuck in the kernel: nothing more can be done
        pass


def _tail(err: bytes | bytearray) -> str:
    text = terminal_safe(bytes(err).decode("utf-8", "replace")).strip()
    if not text:
        return "it wrote nothing on stderr"
    if len(text) > _STDERR_SHOWN:
        text = "..." + text[-_STDERR_SHOWN:]
    return f"the end of its stderr: {text!r}"


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def run(command: str, *, timeout: float, env: Mapping[str, str], origin: str) -> bytes:
    """Run ``command`` and return what it printed on stdout (possibly empty: with an
    ``output_file``, google-auth then reads the response from that file).

    The command is split with :func:`shlex.split` and run without a shell, with stdin
    connected to ``/dev/null``, exactly the environment ``env`` (see
    :func:`child_environment`) and, on POSIX, in a new session (its own process group).
    stdout is kept up to :data:`MAX_OUTPUT_BYTES`; stderr is read and only its end kept, and
    only a short terminal-safe tail of it ever appears, in an error message.

    Never hangs: after ``timeout`` seconds the whole process group gets SIGTERM, then
    SIGKILL :data:`TERM_GRACE` later, and is reaped. Once the executable exits, if processes
    it left behind still hold its stdout/stderr open after :data:`DRAIN_GRACE` seconds, its
    process group gets SIGKILL (background processes that let go of the pipes are left
    alone) and what it printed is used.

    Every failure is a :class:`~gcauth.exceptions.RefreshError` naming ``origin``: the
    command cannot be split, is not found or not executable; it timed out (naming
    ``timeout_millis``); it printed more than :data:`MAX_OUTPUT_BYTES` (it is killed); it
    exited non-zero or was killed by a signal (with its stderr's tail).
    """
    where = terminal_safe(origin)
    argv = _argv(command, where)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or \
            not 0 < timeout <= 86400:
        raise UsageError(f"the executable timeout must be a positive number of seconds (at "
                         f"most a day), not {timeout!r}")
    child_env = dict(env)
    program = terminal_safe(argv[0])
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=child_env, close_fds=True,
                                start_new_session=_POSIX)
    except FileNotFoundError:
        raise RefreshError(f"{where}: the program {program!r} was not found; check `command` "
                           "in the credential configuration (use an absolute path, or make "
                           "sure the program is on PATH).") from None
    except PermissionError:
        raise RefreshError(f"{where}: the program {program!r} cannot be run (permission "
                           "denied: is it executable, chmod +x?); check `command` in the "
                           "credential configuration.") from None
    except OSError as exc:
        raise RefreshError(f"{where}: the program {program!r} cannot be run "
                           f"({exc.strerror or exc}); check `command` in the credential "
                           "configuration.") from None
    except (ValueError, TypeError) as exc:  # a NUL byte in an argument or the environment
        raise RefreshError(f"{where}: the command or its environment cannot be passed to a "
                           f"program ({exc}).") from None
    try:
        out = _collect(proc, timeout, where)
    finally:
        if proc.returncode is None:
            _stop(proc, grace=0)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return out


def _collect(proc: subprocess.Popen[bytes], timeout: float, where: str) -> bytes:
    assert proc.stdout is not None and proc.stderr is not None
    if not _POSIX:  # pragma: no cover - Windows: pipes cannot be polled
        return _collect_windows(proc, timeout, where)
    deadline = time.monotonic() + timeout
    out = bytearray()
    err = bytearray()
    stdout_fd, stderr_fd = proc.stdout.fileno(), proc.stderr.fileno()
    with selectors.DefaultSelector() as selector:
        for fd in (stdout_fd, stderr_fd):
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        exited_at: float | None = None
        holders = False
        while True:
            now = time.monotonic()
            if exited_at is None and _exited(proc):
                exited_at = now
            if exited_at is not None and not selector.get_map():
                break
            if now >= deadline:
                _stop(proc, grace=TERM_GRACE)
                raise RefreshError(
                    f"{where}: it timed out after {timeout:g} s and was stopped. If it needs "
                    f"longer, raise `timeout_millis` in the credential configuration (at "
                    f"most {TIMEOUT_MILLIS_RANGE[1]}); {_tail(err)}.")
            if exited_at is not None and now >= exited_at + DRAIN_GRACE:
                holders = True  # left-behind processes hold the pipes: killed below
                break
            wait = min(deadline - now, _POLL if exited_at is None else
                       exited_at + DRAIN_GRACE - now)
            if not selector.get_map():
                time.sleep(max(0.0, min(wait, _POLL)))
                continue
            for key, _ in selector.select(max(0.0, min(wait, 0.1))):
                fd = key.fd
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(fd)
                elif fd == stdout_fd:
                    out += chunk
                    if len(out) > MAX_OUTPUT_BYTES:
                        _stop(proc, grace=0)
                        raise RefreshError(
                            f"{where}: it printed more than {MAX_OUTPUT_BYTES} bytes on "
                            "stdout and was stopped; an executable prints one JSON "
                            "response (a few KiB).")
                else:
                    err += chunk
                    del err[:-_STDERR_KEPT]
    # the child has exited: kill what it left behind in its group holding the pipes (other
    # processes it started are its business), then reap it
    if holders:
        _stop(proc, grace=0)
    else:
        proc.wait()
    code = proc.returncode
    if code != 0:
        raise RefreshError(f"{where}: it {_exit_text(code if code is not None else -9)}; "
                           f"{_tail(err)}. Run the command by hand to see why.")
    return bytes(out)


def _collect_windows(proc: subprocess.Popen[bytes], timeout: float,
                     where: str) -> bytes:  # pragma: no cover - exercised on Windows only
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RefreshError(
            f"{where}: it timed out after {timeout:g} s and was stopped. If it needs longer, "
            f"raise `timeout_millis` in the credential configuration (at most "
            f"{TIMEOUT_MILLIS_RANGE[1]}).") from None
    if len(out) > MAX_OUTPUT_BYTES:
        raise RefreshError(f"{where}: it printed more than {MAX_OUTPUT_BYTES} bytes on stdout; "
                           "an executable prints one JSON response (a few KiB).")
    if proc.returncode != 0:
        raise RefreshError(f"{where}: it {_exit_text(proc.returncode)}; "
                           f"{_tail(err[-_STDERR_KEPT:])}. Run the command by hand to see why.")
    return out
