"""``python -m gcauth.emulator``: run the emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import sys

from ._main import main

if __name__ == "__main__":
    sys.exit(main())
