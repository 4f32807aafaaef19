"""What a new user meets before any code runs: the wheel (metadata, LICENSE, no empty extra),
installing it, and the ``./dev`` entry point saying what it does at every step.

Nothing here uses the network: the wheel is built with ``--no-build-isolation --no-index``
(hatchling comes with the dev extra) and installed with ``--no-index``; ``./dev`` runs
against a stub virtual environment whose ``pip`` only records its arguments.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [built] = out.glob("gcauth-*.whl")
    return built


def test_the_wheel_carries_the_license_urls_and_classifiers(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [metadata_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
        [license_name] = [n for n in names if n.endswith("/licenses/LICENSE")]
        license_text = archive.read(license_name).decode()
    assert metadata["License-Expression"] == "Apache-2.0"
    assert license_text == (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    urls = dict(value.split(", ", 1) for value in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(urls)
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3.10" in classifiers
    # every extra pulls in something: no empty 'emulator' extra that installs nothing
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert "emulator" not in extras
    requirements = metadata.get_all("Requires-Dist") or []
    for extra in extras:
        assert any(f"extra == '{extra}'" in r for r in requirements), extra
    assert any(n == "gcauth/py.typed" for n in names)


def test_the_wheel_installs_and_its_cli_runs(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
         "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import gcauth; print(gcauth.__file__)"],
                           env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(target)), where.stderr
    version = subprocess.run([sys.executable, "-m", "gcauth.cli", "--version"], env=env,
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("gcauth "), version.stderr
    script = target / "bin" / "gcauth"
    assert script.exists()  # the console script a `pip install dist/gcauth-*.whl` puts on PATH


def test_the_readme_labels_published_name_installs(tmp_path: Path) -> None:
    """``pip install gcauth`` does not work until the name is published: every such line sits
    under a heading or sentence that says so, and the checkout/wheel lines come first."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        for number, line in enumerate(text.splitlines(), 1):
            by_name = "pip install gcauth" in line or "pip install 'gcauth[" in line
            if by_name and "@ file:" not in line:  # a checkout named by path is fine
                before = text.splitlines()[max(0, number - 8):number]
                assert any("published" in b.lower() or "pypi" in b.lower() for b in before), (
                    f"{page.name}:{number}: an install line by published name, unlabelled")
    readme = (ROOT / "README.md").read_text()
    assert readme.index("pip install .") < readme.index("pip install 'gcauth")
    assert "dist/gcauth-" in readme


# -- ./dev ---------------------------------------------------------------------------------
STUB = """#!/bin/sh
echo "[{name}] $*"
"""
FAKE_PYTHON = """#!/bin/sh
# python3 -m venv DIR: make a stub virtual environment
echo "[python] $*"
mkdir -p "$3/bin"
for tool in python pip gcauth ruff mypy pytest; do
  printf '#!/bin/sh\\necho "[%s] $*"\\n' "$tool" > "$3/bin/$tool"
  chmod +x "$3/bin/$tool"
done
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _dev(args: list[str], tmp: Path) -> list[str]:
    stubs = tmp / "stubs"
    stubs.mkdir(exist_ok=True)
    _executable(stubs / "fake-python", FAKE_PYTHON)
    for tool in ("apt-get", "sudo"):  # never install anything for real
        _executable(stubs / tool, STUB.format(name=tool))
    env = {**os.environ, "GCAUTH_VENV": str(tmp / "venv"), "PYTHON": str(stubs / "fake-python"),
           "PATH": f"{stubs}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(ROOT / "dev"), *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)
    assert done.returncode == 0, done.stdout
    return done.stdout.splitlines()


def _before(lines: list[str], step: str, tool_output: str) -> None:
    """The ./dev step line that contains ``step`` comes right before the tool runs."""
    steps = [i for i, line in enumerate(lines) if line.startswith("./dev: ") and step in line]
    runs = [i for i, line in enumerate(lines) if line.startswith(tool_output)]
    assert steps and runs, lines
    assert steps[0] < runs[0], lines


def test_dev_demo_says_what_it_does_at_every_step(tmp_path: Path) -> None:
    lines = _dev(["demo"], tmp_path)
    _before(lines, "creating the virtual environment", "[python] -m venv")
    _before(lines, "installing gcauth", "[pip] install")
    _before(lines, "running the offline demo", "[gcauth] demo")
    # a second run reuses the environment and says so
    again = _dev(["demo"], tmp_path)
    assert any(line.startswith("./dev: using the virtual environment") for line in again)
    assert not any(line.startswith("[python]") for line in again)


def test_dev_test_says_what_it_does_at_every_step(tmp_path: Path) -> None:
    lines = _dev(["test", "-q", "tests/unit"], tmp_path)
    _before(lines, "installing gcauth and its test dependencies", "[pip] install")
    assert any(line.startswith("./dev: ") and "chromium" in line for line in lines), lines
    _before(lines, "ruff", "[ruff] check src tests")
    _before(lines, "mypy", "[mypy]")
    _before(lines, "pytest -q tests/unit", "[pytest] -q tests/unit")
    pip = next(line for line in lines if line.startswith("[pip]"))
    assert "-e .[dev]" in pip
