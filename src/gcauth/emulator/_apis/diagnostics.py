"""``/ping`` and ``/echo``: liveness and header inspection; no auth, never faulted."""

from __future__ import annotations

from .._routing import Call
from .._wire import Reply, json_reply, text_reply

__all__ = ["echo", "ping"]


def ping(call: Call) -> Reply:
    """``ok``."""
    return text_reply(200, "ok")


def echo(call: Call) -> Reply:
    """The request headers (minus Authorization/Cookie) as JSON."""
    out: dict[str, str] = {}
    for name, value in call.req.headers.items():
        if name.lower() in ("authorization", "cookie"):
            continue
        out[name] = f"{out[name]}, {value}" if name in out else str(value)
    return json_reply(200, out)
