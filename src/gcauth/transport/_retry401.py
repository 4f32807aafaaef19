"""The one refresh-on-401 rule every adapter applies.

A request is retried at most once, with a new token, when the API answers a refresh status
(401 by default) *and* its body can be sent again (none, bytes or str; never a stream).
The rejected token is invalidated only if it is still the cached one, so a burst of 401s on
the same token still makes a single token request; and the resend waits for a *fresh* token
(``get_token(..., fresh=True)``) rather than taking one that is itself about to expire.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["DEFAULT_REFRESH_STATUS_CODES", "replayable"]

DEFAULT_REFRESH_STATUS_CODES: Collection[int] = (401,)


def replayable(body: object) -> bool:
    return body is None or isinstance(body, (bytes, bytearray, str))
