"""Writing and deleting credential files (issue 9, item 5), without a CLI: the config directory
is created 0700, temporary files of killed writes are cleaned up without touching those of
live writes, and a conditional delete removes only the file that was checked."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from gcauth import _files

fcntl = pytest.importorskip("fcntl")


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Temporary files count as stale at once (the grace period is for writes in progress)."""
    monkeypatch.setattr(_files, "STALE_TEMP_SECONDS", 0.0)


# -- the directory ------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o277])
def test_the_config_directory_is_created_0700_whatever_the_umask(tmp_path: Path,
                                                                 umask: int) -> None:
    old = os.umask(umask)
    try:
        target = tmp_path / "home" / ".config" / "gcloud" / "adc.json"
        _files.write_private_json(target, {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o750)
    _files.write_private_json(shared / "adc.json", {"a": 1})
    assert stat.S_IMODE(shared.stat().st_mode) == 0o750


def test_a_path_under_a_file_is_an_oserror_and_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        _files.write_private_json(blocker / "gcloud" / "adc.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "adc.json"

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        _files.write_private_json(target, {"refresh_token": "1//x"})
    assert list(tmp_path.iterdir()) == []


# -- stale temporary files ----------------------------------------------------------------
def plant(directory: Path, name: str, content: str = '{"refresh_token": "1//left"}') -> Path:
    path = directory / name
    path.write_text(content)
    return path


def test_stale_temporary_files_are_removed_by_the_next_write(tmp_path: Path,
                                                             no_grace: None) -> None:
    target = tmp_path / "adc.json"
    plant(tmp_path, ".adc.json.k1ll3d_9.tmp")
    plant(tmp_path, ".adc.json.abcdefgh.tmp")
    _files.write_private_json(target, {"refresh_token": "1//new"})
    assert temps(tmp_path) == []
    assert json.loads(target.read_text()) == {"refresh_token": "1//new"}


def test_other_files_are_never_touched(tmp_path: Path, no_grace: None) -> None:
    keep = [plant(tmp_path, name) for name in (
        "adc.json.tmp", ".adc.json.tmp", ".other.json.abcdefgh.tmp", ".adc.json.a-b.tmp",
        ".adc.json.abcdefgh.tmp.bak", "x.adc.json.abcdefgh.tmp")]
    outside = plant(tmp_path, "outside.json")
    link = tmp_path / ".adc.json.linkname.tmp"
    link.symlink_to(outside)  # named like a temporary file, but a link: not ours
    (tmp_path / ".adc.json.dirname1.tmp").mkdir()
    _files.write_private_json(tmp_path / "adc.json", {"a": 1})
    assert all(path.exists() for path in keep)
    assert link.is_symlink() and outside.exists()
    assert (tmp_path / ".adc.json.dirname1.tmp").is_dir()


def test_a_young_temporary_file_is_left_alone(tmp_path: Path) -> None:
    young = plant(tmp_path, ".adc.json.inflight.tmp")
    _files.write_private_json(tmp_path / "adc.json", {"a": 1})
    assert young.exists()  # it may belong to a write happening right now


def test_a_temporary_file_locked_by_a_live_writer_is_left_alone(tmp_path: Path,
                                                                no_grace: None) -> None:
    busy = plant(tmp_path, ".adc.json.busy0001.tmp")
    with open(busy, "rb") as holder:  # a writer in progress holds its file locked
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        _files.write_private_json(tmp_path / "adc.json", {"a": 1})
        assert busy.exists()
    _files.write_private_json(tmp_path / "adc.json", {"a": 2})  # its writer is gone now
    assert not busy.exists()


def test_a_write_holds_its_own_temporary_file_locked(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """While one write is between creating and renaming its file, another process's cleanup
    cannot take that file for an abandoned one."""
    seen: list[bool] = []
    real_fsync = os.fsync

    def fsync_and_probe(fd: int) -> None:
        real_fsync(fd)
        (tmp_name,) = temps(tmp_path)
        probe = os.open(tmp_path / tmp_name, os.O_RDONLY)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append(False)
        except BlockingIOError:
            seen.append(True)
        finally:
            os.close(probe)

    monkeypatch.setattr(os, "fsync", fsync_and_probe)
    _files.write_private_json(tmp_path / "adc.json", {"a": 1})
    assert seen == [True]


def test_the_grace_period_counts_from_the_last_change(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    old = plant(tmp_path, ".adc.json.oldmtime.tmp")
    past = time.time() - 3600
    os.utime(old, (past, past))  # an old mtime alone (a rename keeps it) is not enough
    _files.remove_stale_temps(tmp_path / "adc.json")
    assert old.exists()
    monkeypatch.setattr(_files, "STALE_TEMP_SECONDS", 0.0)
    _files.remove_stale_temps(tmp_path / "adc.json")
    assert not old.exists()


# -- deleting only the file that was checked -----------------------------------------------
def write(path: Path, token: str) -> None:
    _files.write_private_json(path, {"type": "authorized_user", "refresh_token": token})


def holds(token: str) -> Any:
    return lambda info: info.get("refresh_token") == token


def test_remove_file_if_deletes_a_file_that_still_holds_the_token(tmp_path: Path) -> None:
    target = tmp_path / "adc.json"
    write(target, "1//old")
    assert _files.remove_file_if(target, holds("1//old")) is True
    assert list(tmp_path.iterdir()) == []


def test_remove_file_if_keeps_a_file_with_another_token(tmp_path: Path) -> None:
    target = tmp_path / "adc.json"
    write(target, "1//new")
    inode = target.stat().st_ino
    assert _files.remove_file_if(target, holds("1//old")) is False
    assert json.loads(target.read_text())["refresh_token"] == "1//new"
    assert target.stat().st_ino == inode and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert temps(tmp_path) == []


def test_remove_file_if_on_a_missing_file(tmp_path: Path) -> None:
    assert _files.remove_file_if(tmp_path / "adc.json", holds("1//old")) is False
    assert list(tmp_path.iterdir()) == []


def test_a_login_written_during_the_check_survives(tmp_path: Path) -> None:
    """The file checked is the file deleted: a new login renamed into place while the old
    file is being checked is not the one deleted."""
    target = tmp_path / "adc.json"
    write(target, "1//old")

    def check_while_a_login_lands(info: dict[str, Any]) -> bool:
        write(target, "1//new")  # a concurrent login finishes now
        return bool(info.get("refresh_token") == "1//old")

    assert _files.remove_file_if(target, check_while_a_login_lands) is True
    assert json.loads(target.read_text())["refresh_token"] == "1//new"


def test_a_newer_file_that_lands_while_another_is_put_back_wins(tmp_path: Path) -> None:
    target = tmp_path / "adc.json"
    write(target, "1//newer")

    def check_while_the_newest_lands(info: dict[str, Any]) -> bool:
        write(target, "1//newest")
        return False  # "1//newer" is not the revoked token: it would be put back...

    assert _files.remove_file_if(target, check_while_the_newest_lands) is False
    assert json.loads(target.read_text())["refresh_token"] == "1//newest"  # ...but not over this
    assert temps(tmp_path) == []


def test_an_unreadable_file_is_put_back(tmp_path: Path) -> None:
    target = tmp_path / "adc.json"
    target.write_text("not json")
    assert _files.remove_file_if(target, holds("1//old")) is False
    assert target.read_text() == "not json"
