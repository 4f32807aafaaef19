"""The core's default sender: flow requests over a ``urllib3.PoolManager``.

Knows nothing about credentials (those are one layer up, in :mod:`gcauth.transport.urllib3`);
every credential, ADC and login flow is sent through :class:`Request` unless the caller passes
another transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import urllib3
import urllib3.exceptions

from ._http import (
    CHUNK,
    Attempt,
    BodyReader,
    HttpRequest,
    HttpResponse,
    callable_compat,
    failed,
    send_within_deadline,
    timed_out,
)
from ._http import Headers as _Headers

__all__ = ["Request"]


class Request:
    """Sends flow requests through a ``urllib3.PoolManager`` (no retries, no redirects)."""

    def __init__(self, http: urllib3.PoolManager | None = None):
        self.http = http if http is not None else urllib3.PoolManager()

    def send(self, request: HttpRequest) -> HttpResponse:
        return send_within_deadline(request, self._send)

    def _send(self, attempt: Attempt) -> HttpResponse:
        request = attempt.request
        try:
            reply = self.http.request(
                request.method, request.url, body=request.body, headers=request.wire_headers(),
                timeout=urllib3.Timeout(connect=request.timeout, read=request.timeout),
                retries=False, redirect=False, preload_content=False, decode_content=False)
        except urllib3.exceptions.NewConnectionError as exc:
            # checked first: urllib3 derives it from ConnectTimeoutError, but it means refused,
            # unreachable or unresolvable, not a timeout
            raise failed(request, _reason(exc)) from None
        except urllib3.exceptions.TimeoutError:
            raise timed_out(request) from None
        except urllib3.exceptions.HTTPError as exc:
            raise failed(request, _reason(exc)) from None
        try:
            body = read_body(reply, attempt, reply.headers.get("content-encoding"))
        except BaseException:
            reply.close()  # a connection with unread data never goes back to the pool
            raise
        reply.release_conn()
        return HttpResponse(reply.status, _Headers(dict(reply.headers)), body)

    def __call__(self, url: str, method: str = "GET", body: Any = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None,
                 **kwargs: Any) -> HttpResponse:
        return callable_compat(self.send, url, method, body, headers, timeout)


def read_body(raw: Any, attempt: Attempt, content_encoding: str | None) -> bytes:
    """Read a urllib3 response's body undecoded, within the attempt's size cap and deadline
    (gcauth decodes it: :class:`~gcauth._http.BodyReader`); a file-like body of another
    requests adapter is read the same way. Shared by this sender and requests'."""
    request = attempt.request
    attempt.on_abort(lambda: shutdown(raw))
    reader = BodyReader(request, content_encoding, attempt)
    if hasattr(raw, "stream"):
        chunks = raw.stream(CHUNK, decode_content=False)
    else:
        chunks = iter(lambda: raw.read(CHUNK), b"")
    try:
        for chunk in chunks:
            reader.feed(chunk)
        return reader.body()
    except urllib3.exceptions.TimeoutError:
        raise timed_out(request) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise failed(request, _reason(exc)) from None


def shutdown(raw: Any) -> None:
    """End any read blocked on a response's socket (urllib3 2.3+), else close it."""
    stop = getattr(raw, "shutdown", None)
    (stop or raw.close)()


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    inner = reason if isinstance(reason, BaseException) else exc
    text = type(inner).__name__
    detail = str(inner).split(": ", 1)[-1]
    return f"{text} ({detail[:200]})" if detail else text
