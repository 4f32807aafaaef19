"""Every shell and Python snippet in README.md and docs/*.md runs as shown, against the
emulator (issue 13, "Done when").

How a page is run, as a reader follows it from the top:

* in one fresh working directory, with its own ``HOME`` (so ``~/.config/gcloud`` is the
  page's own), no ``GOOGLE_*``/``CLOUDSDK_*`` variables and metadata detection pointed at a
  closed loopback port, like the rest of the suite; the virtual environment's ``gcauth``
  and ``python`` first on ``PATH``;
* the reader's "browser" is :mod:`tests.kit.robot_browser` (``BROWSER``): it chooses
  Allow on the emulator's consent page, so a ``login`` in the default mode completes;
* the working directory holds ``key.json`` (a service-account key), ``adc.json`` (an ADC
  user file) and ``client_secrets.json`` of an emulator the test runs, for snippets that
  name such files;
* ``bash``/``sh``/``shell`` blocks run as scripts (``set -e``), ``console`` blocks run their
  ``$ `` lines (output lines are not compared), ``python`` blocks run as files; variables a
  shell snippet exports stay set for the page's later snippets, as in one terminal;
* a ``gcauth emulator ...`` (or ``python -m gcauth.emulator ...``) command, which serves until
  stopped, is started in the background, as in a second terminal, once it has written its
  files; the page's emulators are stopped when the page ends;
* the emulator port the documents use, 8089, is replaced by a free port.

A snippet that cannot run this way (it needs a real Google host, a human, a package install,
or is illustrative) says so right before its fence: ``<!-- not-run: reason -->``. An
unmarked snippet that fails fails the test; each page reports how many snippets ran.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kit import robot_browser
from tests.kit.network import CLOSED_METADATA

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = ("bash", "sh", "shell")
LANGUAGES = (*SHELL, "console", "python", "py")
DOC_PORT = "8089"
FENCE = re.compile(r"^(\s*)(```+)\s*([\w-]*)")
MARK = re.compile(r"^\s*<!--\s*not-run:\s*(.*?)\s*-->\s*$")
SNIPPET_TIMEOUT = 120

#: Sourced before every shell snippet: long-running servers go to the background.
PRELUDE = r"""
__docs_background() {
  local out="$DOCS_DIR/server.$RANDOM.out" state="" previous=""
  for arg in "$@"; do
    if [ "$previous" = "--state-dir" ]; then state="$arg"; fi
    case "$arg" in --state-dir=*) state="${arg#--state-dir=}" ;; esac
    previous="$arg"
  done
  "$@" > "$out" 2>&1 &
  echo $! >> "$DOCS_DIR/server.pids"
  for _ in $(seq 300); do
    if grep -q '^export GCE_METADATA_IP=' "$out" 2>/dev/null \
        && { [ -z "$state" ] || [ -s "$state/authorized-user.json" ]; }; then
      cat "$out"; return 0
    fi
    if ! kill -0 "$!" 2>/dev/null; then cat "$out" >&2; return 1; fi
    sleep 0.1
  done
  cat "$out" >&2; return 1
}
gcauth() {
  if [ "${1:-}" = emulator ]; then __docs_background command gcauth "$@"
  else command gcauth "$@"; fi
}
python() {
  if [ "${1:-}" = -m ] && [ "${2:-}" = gcauth.emulator ]; then
    __docs_background command python "$@"
  else command python "$@"; fi
}
"""


@dataclass
class Snippet:
    page: Path
    line: int
    language: str
    text: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.page.name}:{self.line}"


def snippets(page: Path) -> list[Snippet]:
    """The fenced shell and Python blocks of ``page``, with their not-run marks."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Snippet] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence, language = match.groups()
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if language in LANGUAGES:
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                    for line in lines[index + 1:end]]
            before = index - 1
            while before >= 0 and not lines[before].strip():
                before -= 1
            mark = MARK.match(lines[before]) if before >= 0 else None
            found.append(Snippet(page, index + 1, language, "\n".join(body) + "\n",
                                 mark.group(1) if mark else None))
        index = end + 1
    return found


def console_commands(text: str) -> str:
    """The commands of a ``console`` block: its ``$ `` lines, with continuation lines."""
    commands: list[str] = []
    continuing = False
    for line in text.splitlines():
        if continuing:
            commands[-1] += "\n" + line
            continuing = line.rstrip().endswith("\\")
        elif line.startswith("$ "):
            commands.append(line[2:])
            continuing = line.rstrip().endswith("\\")
    return "\n".join(commands) + ("\n" if commands else "")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Reader:
    """One page's reader: a working directory, a shell's exported variables, background
    servers."""

    def __init__(self, work: Path, emulator: Any):
        self.work = work
        self.home = work / "home"
        self.home.mkdir(parents=True)
        self.port = str(free_port())
        self.state = work / ".exported"
        bin_dir = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GOOGLE_", "CLOUDSDK_", "GCE_", "GCLOUD_"))
               and k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "NO_GCE_CHECK")}
        env.update({"HOME": str(self.home), "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
                    "GCE_METADATA_HOST": CLOSED_METADATA, "GCE_METADATA_IP": CLOSED_METADATA,
                    "PYTHONUNBUFFERED": "1", "DOCS_DIR": str(work),
                    "PYTHONPATH": str(ROOT)})
        env.update(robot_browser.install(work, log=work / ".robot.jsonl"))
        self.env = env
        (work / "key.json").write_text(json.dumps(emulator.create_service_account()))
        (work / "adc.json").write_text(json.dumps(emulator.create_authorized_user()))
        (work / "client_secrets.json").write_text(json.dumps(
            emulator.create_oauth_client(name="gcauth docs")))

    def run(self, snippet: Snippet) -> subprocess.CompletedProcess[str]:
        text = re.sub(rf"\b{DOC_PORT}\b", self.port, snippet.text)
        if snippet.language in ("python", "py"):
            script = self.work / f".snippet_{snippet.line}.py"
            script.write_text(text)
            command = ["bash", "-c", f'set -a; [ -f "{self.state}" ] && . "{self.state}"; '
                                     f'set +a; exec python "{script}"']
        else:
            body = console_commands(text) if snippet.language == "console" else text
            script = self.work / f".snippet_{snippet.line}.sh"
            script.write_text(f"{PRELUDE}\n[ -f '{self.state}' ] && . '{self.state}'\n"
                              f"set -e\n{body}\nexport -p > '{self.state}'\n")
            command = ["bash", str(script)]
        return subprocess.run(command, cwd=self.work, env=self.env, capture_output=True,
                              text=True, timeout=SNIPPET_TIMEOUT, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        pids = self.work / "server.pids"
        if pids.exists():
            for line in pids.read_text().split():
                try:
                    os.kill(int(line), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        for record in robot_browser.records(self.work / ".robot.jsonl"):
            pid = record.get("pid")
            if isinstance(pid, int):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture
def reader(tmp_path: Path, emulator: Any) -> Iterator[Reader]:
    reading = Reader(tmp_path / "work", emulator)
    try:
        yield reading
    finally:
        reading.stop()


def test_the_snippet_finder_sees_marks_and_console_commands(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("text\n\n<!-- not-run: needs a human -->\n```bash\nsleep 1\n```\n\n"
                    "```python\nprint(1)\n```\n\n  ```console\n  $ echo a \\\n    b\n  a b\n"
                    "  ```\n```json\n{}\n```\n")
    found = snippets(page)
    assert [(s.language, s.not_run) for s in found] == [
        ("bash", "needs a human"), ("python", None), ("console", None)]
    assert console_commands(found[2].text) == "echo a \\\n  b\n"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_snippet_runs_as_shown(page: Path, reader: Reader,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[str] = []
    skipped: list[str] = []
    failures: list[str] = []
    for snippet in snippets(page):
        if snippet.not_run is not None:
            assert snippet.not_run, f"{snippet.where}: a not-run mark needs a reason"
            skipped.append(snippet.where)
            continue
        if snippet.language == "console" and not console_commands(snippet.text).strip():
            failures.append(f"{snippet.where}: a console block without `$ ` commands (only "
                            "output): mark it <!-- not-run: reason -->")
            continue
        done = reader.run(snippet)
        ran.append(snippet.where)
        if done.returncode != 0:
            failures.append(f"{snippet.where} ({snippet.language}) exited {done.returncode}:\n"
                            f"{snippet.text}--- stdout\n{done.stdout[-2000:]}--- stderr\n"
                            f"{done.stderr[-3000:]}")
    summary = (f"docs snippets in {page.name}: {len(ran)} ran, {len(skipped)} marked "
               f"not-run, {len(failures)} failed")
    with capsys.disabled():  # reported whatever pytest's -q/-s say
        print(f"\n{summary}", flush=True)
    assert not failures, summary + "\n\n" + "\n\n".join(failures)
