"""JSON parsing whose every failure is a ``ValueError``.

``json.loads`` raises ``RecursionError`` on deeply nested input (``[[[[...``), which is not a
``ValueError``; parsers of untrusted replies and files use :func:`loads` so that hostile input
always ends in the caller's named gcauth error.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]


def loads(data: str | bytes | bytearray) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON is nested too deeply") from None
