"""``/_emulator/...``: the HTTP fault-control API (only with ``control=True``; loopback
``Host`` only; commands must be JSON so that no cross-site form can send one)."""

from __future__ import annotations

import json

from .._errors import GoogleError
from .._routing import Call
from .._wire import Reply, json_reply

__all__ = ["counts", "fault_command", "fault_status", "unknown"]


def counts(call: Call) -> Reply:
    """``GET /_emulator/counts``: the request counters."""
    return json_reply(200, dict(call.state.counts))


def fault_status(call: Call) -> Reply:
    """``GET /_emulator/faults``: pending faults, rates and injected counters."""
    return json_reply(200, call.faults.status())


def fault_command(call: Call) -> Reply:
    """``POST /_emulator/faults``: one JSON command (see ``FaultInjector.apply_command``)."""
    ctype = (call.req.header("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise GoogleError(400, "Content-Type must be application/json.")
    try:
        command = json.loads(call.req.body)
        if not isinstance(command, dict):
            raise TypeError("command must be a JSON object")
        return json_reply(200, call.faults.apply_command(command))
    except (ValueError, TypeError, KeyError) as exc:
        raise GoogleError(400, f"Bad fault command: {exc}") from exc


def unknown(call: Call) -> Reply:
    """Any other ``/_emulator/...`` path."""
    raise GoogleError(404, "Unknown control endpoint.")
