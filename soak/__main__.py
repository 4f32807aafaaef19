"""``python -m soak``: run the soak test (see soak/soak.py)."""

import sys

from soak.soak import main

sys.exit(main())
