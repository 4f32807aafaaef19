"""Errors a handler raises; :class:`~._routing.App` turns each into its reply in one place.

A handler never returns an error reply itself: it raises the exception of its API's error
shape and the router writes it.  Messages are public text sent to the client, so they
must never contain a token, code or secret (they are not logged either).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import _pages
from ._wire import Reply, api_error, html_reply, oauth_error, text_reply

__all__ = ["GoogleError", "HtmlError", "HttpError", "OAuthError", "TextError", "page_error"]

Headers = Sequence[tuple[str, str]]


class HttpError(Exception):
    """Base class: an error that is answered with :meth:`reply`."""

    status: int

    def reply(self) -> Reply:
        raise NotImplementedError


class OAuthError(HttpError):
    """RFC 6749 §5.2 error: ``{"error": error, "error_description": description}``."""

    def __init__(self, status: int, error: str, description: str, headers: Headers = ()) -> None:
        super().__init__(f"{status} {error}")
        self.status, self.error, self.description = status, error, description
        self.headers = list(headers)

    def reply(self) -> Reply:
        return oauth_error(self.status, self.error, self.description, self.headers)


class GoogleError(HttpError):
    """Google API error: ``{"error": {"code", "message", "status"[, "details"]}}``.

    ``status_name`` overrides the google.rpc code derived from the HTTP status.
    """

    def __init__(self, status: int, message: str, headers: Headers = (), *,
                 details: Sequence[Mapping[str, Any]] = (),
                 status_name: str | None = None) -> None:
        super().__init__(f"{status} {status_name or ''}".strip())
        self.status, self.message = status, message
        self.headers, self.details, self.status_name = list(headers), list(details), status_name

    def reply(self) -> Reply:
        return api_error(self.status, self.message, self.headers, self.details or None,
                         self.status_name)


class TextError(HttpError):
    """A plain-text error (the metadata server's style)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(str(status))
        self.status, self.text = status, text

    def reply(self) -> Reply:
        return text_reply(self.status, self.text)


class HtmlError(HttpError):
    """An HTML page with an error status (browser-facing endpoints)."""

    def __init__(self, status: int, html: str) -> None:
        super().__init__(str(status))
        self.status, self.html = status, html

    def reply(self) -> Reply:
        return html_reply(self.status, self.html)


def page_error(error: str, description: str, status: int = 400) -> HtmlError:
    """Google's "Access blocked: Authorization Error" page (never a redirect)."""
    return HtmlError(status, _pages.error_page(error, description))
