"""Every error gcauth raises, under one root.

::

    GCAuthError                      root: ``except gcauth.exceptions.GCAuthError`` catches all
    ├── DefaultCredentialsError      ADC found nothing usable (lists every source tried)
    │   └── MalformedCredentialsError  bad credential file or dict (names file + field)
    │       └── UnsafeEndpointError    an endpoint gcauth will not send secrets to
    ├── RefreshError                 the token endpoint refused or failed (RFC 6749 error fields)
    │   └── RefreshAbandonedError    refreshes a caller waited for were abandoned (loop closed,
    │                                task cancelled, thread interrupted), several in a row
    ├── RefreshDeadlockError         a blocking call would wait for a refresh its own loop runs
    ├── TransportError               the request never got a reply (connect failure, timeout, reset)
    ├── FlowError                    a user login flow failed (denied, state mismatch, timeout)
    ├── SigningError                 signing bytes failed
    ├── InvalidTokenError            an ID token failed verification (also a ValueError)
    └── UsageError                   an argument gcauth cannot use (also a TypeError/ValueError)

Messages never contain a token, refresh token, private key, client secret or authorization code.
"""

from __future__ import annotations

__all__ = [
    "DefaultCredentialsError",
    "FlowError",
    "GCAuthError",
    "InvalidTokenError",
    "MalformedCredentialsError",
    "RefreshAbandonedError",
    "RefreshDeadlockError",
    "RefreshError",
    "SigningError",
    "TransportError",
    "UnsafeEndpointError",
    "UsageError",
]


class GCAuthError(Exception):
    """Root of every gcauth error."""


class DefaultCredentialsError(GCAuthError):
    """Application Default Credentials could not be found or loaded."""


class MalformedCredentialsError(DefaultCredentialsError):
    """A credential file or mapping is not valid.

    ``source`` names the file (or ``"<dict>"``) and ``field`` the offending key, when known.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        super().__init__(message)
        self.source = source
        self.field = field


class UnsafeEndpointError(MalformedCredentialsError):
    """A credential names a token/auth/revoke endpoint that is neither Google's nor loopback."""


class RefreshError(GCAuthError):
    """A token request failed.

    Carries the RFC 6749 §5.2 fields when the server sent them, the HTTP ``status``, the
    ``endpoint`` (URL without query), whether retrying may help (``retryable``) and the
    server's ``Retry-After`` in seconds (``retry_after``).
    """

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        error_uri: str | None = None,
        status: int | None = None,
        endpoint: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.error = error
        self.error_description = error_description
        self.error_uri = error_uri
        self.status = status
        self.endpoint = endpoint
        self.retryable = retryable
        self.retry_after = retry_after


class RefreshAbandonedError(RefreshError):
    """The token refresh a caller was waiting for will never finish.

    Its owner went away: the event loop running it closed or stopped, its task was cancelled
    (``asyncio.run()`` ending, ``wait_for``), or the refreshing thread was interrupted
    (Ctrl-C). Waiters take such a refresh over themselves; this error reaches a caller only
    when several refreshes in a row were abandoned. ``retryable`` is true: the next call
    starts a new refresh.
    """

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


class RefreshDeadlockError(GCAuthError):
    """A blocking ``get_token()`` would wait for a refresh only its own thread can finish.

    Raised when a coroutine calls the blocking API while a refresh runs as a task on that same
    event loop: blocking the loop would stop the refresh for ever. Use ``await
    credentials.aget_token(request)`` in coroutines.
    """


class TransportError(GCAuthError):
    """An HTTP request got no usable reply: refused, reset, timed out, or not HTTP at all."""

    def __init__(self, message: str, *, url: str | None = None, timeout: bool = False):
        super().__init__(message)
        self.url = url
        self.timeout = timeout
        self.retryable = True


class FlowError(GCAuthError):
    """A user login flow failed: access denied, state mismatch, timeout, bad redirect."""

    def __init__(self, message: str, *, error: str | None = None):
        super().__init__(message)
        self.error = error


class SigningError(GCAuthError):
    """Signing with a credential's key failed."""


class InvalidTokenError(GCAuthError, ValueError):
    """An ID token did not verify: malformed, bad signature, unknown key, wrong issuer or
    audience, expired or not yet valid. ``reason`` is one of ``"malformed"``,
    ``"signature"``, ``"unknown_key"``, ``"issuer"``, ``"audience"``, ``"expired"``,
    ``"not_yet_valid"``. Also a ``ValueError``, as google-auth's verifiers raise."""

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


class UsageError(GCAuthError, TypeError, ValueError):
    """gcauth was called with an argument it cannot use: the wrong kind of object (a
    ``requests.Session`` where a gcauth ``Request`` belongs) or an impossible value (a ``nan``
    or negative timeout). Also a ``TypeError`` and a ``ValueError``, so code that catches the
    builtin a Python API would raise keeps working."""
