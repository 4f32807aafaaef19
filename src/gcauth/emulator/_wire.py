"""The emulator's wire types: a parsed :class:`Request`, a :class:`Reply` written in one
piece, and the reply builders every API module uses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "JSON_TYPE",
    "STATUS_NAMES",
    "BadParams",
    "Reply",
    "Request",
    "api_error",
    "form_pairs",
    "html_reply",
    "json_reply",
    "oauth_error",
    "parse_params",
    "text_reply",
    "with_query",
]

JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Request:
    """One parsed HTTP request.  ``query`` keeps repeated parameters."""

    method: str
    path: str
    query: list[tuple[str, str]] = field(repr=False)
    headers: Message = field(repr=False)
    body: bytes = field(repr=False)

    def header(self, name: str) -> str | None:
        """A request header value (case-insensitive), or None."""
        value = self.headers.get(name)
        return None if value is None else str(value)

    def is_form(self) -> bool:
        """Whether the body is ``application/x-www-form-urlencoded``."""
        ctype = (self.header("content-type") or "").split(";", 1)[0].strip().lower()
        return ctype == "application/x-www-form-urlencoded"


@dataclass
class Reply:
    """An HTTP reply to be written in one piece."""

    status: int
    body: bytes = field(default=b"", repr=False)
    content_type: str = JSON_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list, repr=False)
    #: close the connection after this reply (errors that leave the request stream unusable)
    close: bool = False


class BadParams(ValueError):
    """Parameters could not be parsed (repeated or undecodable)."""


def parse_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Turn decoded pairs into a dict; a repeated parameter is an RFC 6749 error."""
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise BadParams(f"Duplicate parameter: {key}")
        out[key] = value
    return out


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """Decode an urlencoded body; raise :class:`BadParams` when it is not UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadParams("Request body is not valid UTF-8.") from exc
    return parse_qsl(text, keep_blank_values=True)


def json_reply(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    """A JSON reply."""
    body = json.dumps(payload, indent=None, separators=(", ", ": ")).encode("utf-8")
    return Reply(status, body, JSON_TYPE, list(headers or []))


def text_reply(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Reply:
    """A plain-text reply."""
    return Reply(status, text.encode("utf-8"), content_type)


def html_reply(status: int, html: str) -> Reply:
    """An HTML page with defensive headers (no framing, no referrer, no caching)."""
    return Reply(
        status,
        html.encode("utf-8"),
        "text/html; charset=utf-8",
        [
            ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
            ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", "no-store"),
        ],
    )


def oauth_error(status: int, error: str, description: str,
                headers: list[tuple[str, str]] | None = None) -> Reply:
    """An RFC 6749 §5.2 error reply: ``{"error": ..., "error_description": ...}``."""
    return json_reply(
        status,
        {"error": error, "error_description": description},
        [("Cache-Control", "no-store"), ("Pragma", "no-cache"), *(headers or [])],
    )


#: google.rpc.Code names Google APIs put in ``error.status`` for each HTTP status.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "DEADLINE_EXCEEDED",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def api_error(status: int, message: str, headers: list[tuple[str, str]] | None = None,
              details: list[Mapping[str, Any]] | None = None,
              status_name: str | None = None) -> Reply:
    """A Google API error: ``{"error": {"code", "message", "status"[, "details"]}}``.

    ``status_name`` overrides the google.rpc code derived from ``status`` (for example
    ``FAILED_PRECONDITION`` on a 400).
    """
    err: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": status_name or STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        err["details"] = list(details)
    return json_reply(status, {"error": err}, headers)


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """Append ``params`` (skipping None values) to ``uri``'s query string."""
    parts = urlsplit(uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
