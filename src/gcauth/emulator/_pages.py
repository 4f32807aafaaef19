"""Plain HTML pages for the emulator's browser-facing endpoints.

Every reflected value goes through :func:`html.escape`.
"""

from __future__ import annotations

from html import escape

from .._loopback import PAGE_STYLE

__all__ = ["consent_page", "device_entry_page", "error_page", "message_page", "scope_description"]

_SCOPE_WORDS = {
    "https://www.googleapis.com/auth/cloud-platform": (
        "See, edit, configure, and delete your Google Cloud data and see the email address "
        "for your Google Account."
    ),
    "https://www.googleapis.com/auth/cloud-platform.read-only": (
        "View your data across Google Cloud services and see the email address of your "
        "Google Account."
    ),
    "openid": "Associate you with your personal info on Google.",
    "https://www.googleapis.com/auth/userinfo.email": (
        "See your primary Google Account email address."
    ),
    "https://www.googleapis.com/auth/userinfo.profile": (
        "See your personal info, including any personal info you've made publicly available."
    ),
    "https://www.googleapis.com/auth/sqlservice.admin": (
        "Manage your Google SQL Service instances."
    ),
}

#: gcauth's one look for browser pages (the CLI's sign-in pages use it too).
_STYLE = PAGE_STYLE


def scope_description(scope: str) -> str:
    """Human wording for ``scope``; unknown scopes fall back to the raw scope string."""
    return _SCOPE_WORDS.get(scope, scope)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><div class=\"badge\">gcauth emulator &mdash; not Google</div>{body}"
        "</main></body></html>\n"
    )


def error_page(error: str, description: str) -> str:
    """Google-style authorization error page (no redirect happens)."""
    return _page(
        "Authorization Error",
        "<h1>Access blocked: Authorization Error</h1>"
        f"<p class=\"error\" id=\"error\">Error 400: {escape(error)}</p>"
        f"<p id=\"error-description\">{escape(description)}</p>",
    )


def message_page(title: str, message: str, element_id: str = "message") -> str:
    """A simple informational page."""
    return _page(
        title,
        f"<h1>{escape(title)}</h1><p id=\"{escape(element_id)}\">{escape(message)}</p>",
    )


def consent_page(
    *,
    pending_id: str,
    client_label: str,
    client_id: str = "",
    scopes: tuple[str, ...],
    accounts: list[str],
    selected: str,
    action: str = "/o/oauth2/approve",
) -> str:
    """The consent screen: account picker, scopes in words, Allow/Deny."""
    radios = "".join(
        f"<label><input type=\"radio\" name=\"account\" value=\"{escape(a)}\""
        f"{' checked' if a == selected else ''}> {escape(a)}</label>"
        for a in accounts
    )
    items = "".join(
        f"<li>{escape(scope_description(s))}"
        + (f"<br><code>{escape(s)}</code>" if scope_description(s) != s else "")
        + "</li>"
        for s in scopes
    )
    details = (f"<details class=\"client\"><summary>App details</summary>OAuth client "
               f"<code id=\"client-id\">{escape(client_id)}</code></details>"
               if client_id else "")
    return _page(
        f"Sign in - {client_label}",
        f"<h1><span id=\"app-name\">{escape(client_label)}</span> wants to access your "
        "Google Account</h1>"
        f"{details}"
        f"<form method=\"post\" action=\"{escape(action)}\">"
        f"<input type=\"hidden\" name=\"pending\" value=\"{escape(pending_id)}\">"
        f"<fieldset><legend>Choose an account</legend>{radios}</fieldset>"
        "<p>This will allow the app to:</p>"
        f"<ul class=\"scopes\">{items}</ul>"
        "<div class=\"buttons\">"
        "<button id=\"deny\" name=\"decision\" value=\"deny\" type=\"submit\">Deny</button>"
        "<button id=\"allow\" name=\"decision\" value=\"allow\" type=\"submit\">Allow</button>"
        "</div></form>",
    )


def device_entry_page(error: str | None = None) -> str:
    """The ``/device`` page where the user types the code shown on the device."""
    err = f"<p class=\"error\" id=\"error\">{escape(error)}</p>" if error else ""
    return _page(
        "Connect a device",
        "<h1>Connect a device</h1>"
        "<p>Enter the code displayed on your device.</p>"
        f"{err}"
        "<form method=\"post\" action=\"/device\">"
        "<input type=\"text\" id=\"user_code\" name=\"user_code\" autocomplete=\"off\" "
        "autofocus required placeholder=\"XXXX-XXXX\">"
        "<div class=\"buttons\"><button id=\"next\" type=\"submit\">Next</button></div>"
        "</form>",
    )
