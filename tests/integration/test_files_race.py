"""``default()`` against a credential file that another process keeps swapping for a FIFO, a
directory or a device (issue 9, item 4): every call ends, with credentials or a gcauth error.

The race runs in a child process with a timeout, so a reader that blocks fails the test
instead of wedging the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")

CHILD = r"""
import json, os, sys, threading
path, rounds = sys.argv[1], int(sys.argv[2])
import gcauth
from gcauth.exceptions import GCAuthError
os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = path
good = json.dumps({"type": "authorized_user", "client_id": "cid", "client_secret": "cs",
                   "refresh_token": "1//r"})
stop = threading.Event()

def swapper():
    n = 0
    while not stop.is_set():
        n += 1
        tmp = f"{path}.{n}"
        kind = n % 4
        if kind == 0:
            with open(tmp, "w") as handle:
                handle.write(good)
        elif kind == 1:
            os.mkfifo(tmp)
        elif kind == 2:
            os.mkdir(tmp)
        else:
            os.symlink("/dev/zero" if os.path.exists("/dev/zero") else tmp + "x", tmp)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rename(path, path + ".old.%d" % n)
            os.replace(tmp, path)
        except OSError:
            pass

thread = threading.Thread(target=swapper, daemon=True)
thread.start()
outcome = {"ok": 0, "refused": 0}
for _ in range(rounds):
    try:
        gcauth.default()
        outcome["ok"] += 1
    except GCAuthError:
        outcome["refused"] += 1
stop.set()
thread.join(5)
print(json.dumps(outcome))
"""


def test_default_never_blocks_while_the_file_is_swapped(tmp_path: Path) -> None:
    path = tmp_path / "adc.json"
    env = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    env["NO_GCE_CHECK"] = "true"
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), "3000"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout)
    assert outcome["ok"] + outcome["refused"] == 3000
    assert outcome["refused"] > 0  # the swaps were seen...
    assert "Traceback" not in done.stderr  # ...and never as anything but a gcauth error
