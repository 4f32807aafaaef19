"""Reading fields out of credential mappings with errors that name the source and field, and
the names every error message shares (the login command)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._checks import is_header_id
from .exceptions import MalformedCredentialsError, TransportError

__all__ = ["LIMITED_INPUT", "LOGIN_COMMAND", "ID_RULE", "WELL_KNOWN", "credential_origin",
           "optional_id", "optional_str", "relogin_fix", "require_str", "require_type",
           "unreachable", "unreachable_fix"]

#: How a project id must look, for error messages (never quote the value itself).
ID_RULE = "letters, digits and -._: only, at most 128 characters, no spaces or control characters"

#: The command every "log in (again)" hint names.
LOGIN_COMMAND = "gcauth auth application-default login"

#: The OAuth client type Google requires for the device flow (the Cloud console's wording).
LIMITED_INPUT = "TVs and Limited Input devices"


def require_type(info: Mapping[str, Any], expected: str, source: str, fix: str) -> None:
    kind = info.get("type")
    if kind != expected:
        got = "no 'type' field" if kind is None else f"type {kind!r}"
        raise MalformedCredentialsError(
            f"{source}: expected a credential of type {expected!r}, got {got}. {fix}",
            source=source, field="type")


def require_str(info: Mapping[str, Any], field: str, source: str, fix: str) -> str:
    value = info.get(field)
    if value is None:
        raise MalformedCredentialsError(
            f"{source}: required field {field!r} is missing. {fix}", source=source, field=field)
    if not isinstance(value, str) or not value:
        raise MalformedCredentialsError(
            f"{source}: field {field!r} must be a non-empty string. {fix}",
            source=source, field=field)
    return value


def optional_id(info: Mapping[str, Any], field: str, source: str) -> str | None:
    """An optional project id or number (``project_id``, ``quota_project_id``), checked."""
    value = optional_str(info, field, source)
    if value is not None and not is_header_id(value):
        raise MalformedCredentialsError(
            f"{source}: field {field!r} is not a project id ({ID_RULE}). Fix the file, or "
            "write it again with the tool that made it.", source=source, field=field)
    return value


def optional_str(info: Mapping[str, Any], field: str, source: str) -> str | None:
    value = info.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedCredentialsError(
            f"{source}: field {field!r} must be a string.", source=source, field=field)
    return value


# -- hints that name the source that failed ------------------------------------------------
#: The variable that names a credential file (spelled here: ``_default`` is a layer above).
_ENV_CREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS"
#: How ``_default`` marks a credential read from the gcloud well-known file.
WELL_KNOWN = "gcloud ADC file"


def credential_origin(source_file: str | None, via: str | None) -> str:
    """Where a credential came from, for messages: ``" (from /x.json, named by
    GOOGLE_APPLICATION_CREDENTIALS)"``, ``" (from the gcloud ADC file /x.json)"``,
    ``" (from /x.json)"`` or ``""``."""
    if not source_file:
        return ""
    if via == _ENV_CREDENTIALS:
        return f" (from {source_file}, named by {_ENV_CREDENTIALS})"
    if via == WELL_KNOWN:
        return f" (from the gcloud ADC file {source_file})"
    return f" (from {source_file})"


def relogin_fix(source_file: str | None, via: str | None) -> str:
    """How to replace a user login that the server refused: a new login writes the gcloud
    ADC file, which is no fix while ``GOOGLE_APPLICATION_CREDENTIALS`` names another one."""
    if via == _ENV_CREDENTIALS and source_file:
        return (f"{_ENV_CREDENTIALS} names {source_file}, so ADC keeps using that file whatever "
                f"a new login writes: point {_ENV_CREDENTIALS} at a working credential file, or "
                f"unset it and run `{LOGIN_COMMAND}` to log in again")
    if source_file and via != WELL_KNOWN:
        return (f"replace {source_file} with a new login: run `{LOGIN_COMMAND}` to log in "
                "again, and use the ADC file it writes")
    return f"run `{LOGIN_COMMAND}` to log in again"


def unreachable_fix(endpoint: str) -> str:
    """What to check when nothing answered at ``endpoint``."""
    from urllib.parse import urlsplit

    from ._endpoints import is_loopback_host

    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    where = parts.netloc if parts is not None else endpoint
    if host and is_loopback_host(host):
        return (f"nothing answers at {where}, an address on this machine. Files written against "
                "the gcauth emulator point at the port that emulator listened on: it is not "
                "running there any more. Start `gcauth emulator` again and write the file anew "
                "(the emulator keeps its logins and keys in memory only), or use credentials "
                "for Google")
    return (f"check that {where} can be reached from this machine (network connection, proxy "
            "settings such as HTTPS_PROXY, firewall), then try again")


def unreachable(exc: TransportError, what: str, source_file: str | None,
                via: str | None) -> TransportError:
    """``exc`` (no reply from ``what``, e.g. "the token endpoint") with the credential it
    served and the fix: a new :class:`TransportError` with the same fields."""
    origin = credential_origin(source_file, via)
    endpoint = exc.url or ""
    detail = f" This is {what} of the credential{origin}." if origin else ""
    error = TransportError(f"{exc}.{detail} Fix: {unreachable_fix(endpoint)}.",
                           url=exc.url, timeout=exc.timeout)
    error.retryable = exc.retryable
    return error
