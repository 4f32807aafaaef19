"""Reading credential files cannot block or be tricked (issue 9, item 4): the opened
descriptor is checked, not only the path, because the file can be replaced in between."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import gcauth
from gcauth import _files
from gcauth.authorized_user import Credentials as UserCredentials
from gcauth.exceptions import MalformedCredentialsError
from gcauth.flow import ClientConfig

USER = {"type": "authorized_user", "client_id": "cid", "client_secret": "csecret",
        "refresh_token": "1//refresh"}


@pytest.fixture
def adc(tmp_path: Path) -> Path:
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(USER))
    return path


def swap_after_check(monkeypatch: pytest.MonkeyPatch, swap: Callable[[str], None]) -> None:
    """Make the file change right after the path checks passed, before it is opened: the
    window a racing process hits."""
    real = _files._check_path

    def check_then_swap(name: str, *args: Any) -> None:
        real(name, *args)
        swap(name)

    monkeypatch.setattr(_files, "_check_path", check_then_swap)


@pytest.fixture
def unblocker() -> Iterator[list[str]]:
    """A safety net: if a reader ever blocks opening a FIFO, open its write end after a few
    seconds so the test fails (``unblocked`` is not empty) instead of hanging."""
    fifos: list[str] = []
    unblocked: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 5
        while not stop.wait(0.05):
            if time.monotonic() < deadline:
                continue
            for fifo in fifos:
                try:
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue  # ENXIO: nobody is blocked reading it
                unblocked.append(fifo)
                os.close(fd)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    yield fifos
    stop.set()
    thread.join(5)
    assert not unblocked, "a reader blocked on a FIFO"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_swapped_in_after_the_check_is_refused_without_blocking(
        adc: Path, monkeypatch: pytest.MonkeyPatch, unblocker: list[str]) -> None:
    def to_fifo(name: str) -> None:
        os.unlink(name)
        os.mkfifo(name)
        unblocker.append(name)

    swap_after_check(monkeypatch, to_fifo)
    with pytest.raises(MalformedCredentialsError, match="FIFO") as info:
        _files.read_json_file(adc)
    assert str(adc) in str(info.value) and info.value.source == str(adc)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_default_with_a_fifo_swapped_in_is_a_gcauth_error(
        adc: Path, monkeypatch: pytest.MonkeyPatch, unblocker: list[str]) -> None:
    def to_fifo(name: str) -> None:
        os.unlink(name)
        os.mkfifo(name)
        unblocker.append(name)

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    swap_after_check(monkeypatch, to_fifo)
    with pytest.raises(gcauth.DefaultCredentialsError, match="FIFO"):
        gcauth.default()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_a_device_swapped_in_after_the_check_is_refused(adc: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def to_device(name: str) -> None:
        os.unlink(name)
        os.symlink("/dev/zero", name)

    swap_after_check(monkeypatch, to_device)
    with pytest.raises(MalformedCredentialsError, match="a device"):
        _files.read_json_file(adc)


def test_a_directory_swapped_in_after_the_check_is_refused(
        adc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def to_directory(name: str) -> None:
        os.unlink(name)
        os.mkdir(name)

    swap_after_check(monkeypatch, to_directory)
    with pytest.raises(MalformedCredentialsError, match="directory"):
        _files.read_json_file(adc)


def test_a_file_grown_after_the_check_is_refused_by_its_descriptor(
        adc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def grow(name: str) -> None:
        Path(name).write_bytes(b" " * (_files.MAX_CREDENTIAL_FILE_BYTES + 10))

    swap_after_check(monkeypatch, grow)
    with pytest.raises(MalformedCredentialsError, match="bytes"):
        _files.read_json_file(adc)


def test_a_file_removed_after_the_check_is_a_gcauth_error(
        adc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    swap_after_check(monkeypatch, os.unlink)
    with pytest.raises(MalformedCredentialsError, match="does not exist"):
        _files.read_json_file(adc)


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="no O_NOFOLLOW here")
def test_a_link_out_swapped_in_after_the_link_check_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gcloud"
    config.mkdir()
    adc = config / "adc.json"
    adc.write_text(json.dumps(USER))
    outside = tmp_path / "other.json"
    outside.write_text(json.dumps({**USER, "refresh_token": "1//someone-else"}))
    real = _files.check_link_inside

    def check_then_swap(name: Any, root: Any, **kwargs: Any) -> str | None:
        result = real(name, root, **kwargs)
        os.unlink(name)
        os.symlink(outside, name)
        return result

    monkeypatch.setattr(_files, "check_link_inside", check_then_swap)
    with pytest.raises(MalformedCredentialsError, match="symbolic link") as info:
        _files.read_json_file(adc, inside=config)
    assert "someone-else" not in str(info.value)


def test_links_are_followed_inside_and_refused_out_of_the_directory(tmp_path: Path) -> None:
    config = tmp_path / "gcloud"
    config.mkdir()
    real = config / "real.json"
    real.write_text(json.dumps(USER))
    inner = config / "adc.json"
    inner.symlink_to(real)
    assert _files.read_json_file(inner, inside=config) == USER
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(USER))
    inner.unlink()
    inner.symlink_to(outside)
    with pytest.raises(MalformedCredentialsError, match="outside"):
        _files.read_json_file(inner, inside=config)
    inner.unlink()
    inner.symlink_to(inner)  # a loop
    with pytest.raises(MalformedCredentialsError):
        _files.read_json_file(inner, inside=config)


@pytest.mark.parametrize("path", ["adc\0.json", "/tmp/\0", "\0"])
def test_a_nul_byte_in_the_path_is_a_gcauth_error_for_every_loader(path: str) -> None:
    loaders: list[Callable[[], object]] = [
        lambda: _files.read_json_file(path),
        lambda: gcauth.load_credentials_from_file(path),
        lambda: ClientConfig.from_file(path),
        lambda: UserCredentials.from_authorized_user_file(path),
    ]
    for load in loaders:
        with pytest.raises(MalformedCredentialsError, match="NUL byte") as info:
            load()
        assert repr(path) in str(info.value)


def test_a_nul_byte_in_google_application_credentials_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the environment cannot hold a NUL, but a caller's own lookup function can pass one
    with pytest.raises(gcauth.DefaultCredentialsError, match="NUL"):
        gcauth.load_credentials_from_file(Path("a\0b"))


def test_the_bounded_read_stops_one_byte_past_the_limit(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps(USER))
    asked: list[int] = []
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        asked.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", read)
    assert _files.read_json_file(path, max_bytes=1000) == USER
    assert asked and asked[0] == 1001 and sum(asked) <= 1001 + len(asked) * 1001
    assert all(n <= 1001 for n in asked)


def test_unreadable_descriptor_errors_are_gcauth_errors(adc: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_read(fd: int, n: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "read", failing_read)
    with pytest.raises(MalformedCredentialsError, match="Input/output error"):
        _files.read_json_file(adc)
