"""Reading fields out of credential mappings with errors that name the source and field, and
the names every error message shares (the login command)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._checks import is_header_id
from .exceptions import MalformedCredentialsError

__all__ = ["LOGIN_COMMAND", "ID_RULE", "optional_id", "optional_str", "require_str",
           "require_type"]

#: How a project id must look, for error messages (never quote the value itself).
ID_RULE = "letters, digits and -._: only, at most 128 characters, no spaces or control characters"

#: The command every "log in (again)" hint names.
LOGIN_COMMAND = "gcauth auth application-default login"


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
