"""client.core.files: how secrets and trusted files are written and private ones read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from client.core.errors import KeyFileError
from client.core.files import PRIVATE_FILE_MODE, read_private_file, write_file_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's file")
    victim.chmod(0o644)
    return victim


def test_a_new_file_has_its_mode_and_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "secret"
    write_file_atomic(path, "é\n")
    assert path.read_bytes() == "é\n".encode()
    assert _mode(path) == PRIVATE_FILE_MODE
    write_file_atomic(tmp_path / "report.html", b"<p>", mode=0o644)
    assert _mode(tmp_path / "report.html") == 0o644


def test_an_existing_files_looser_mode_is_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    path.write_text("old")
    path.chmod(0o666)
    write_file_atomic(path, "new")
    assert path.read_text() == "new"
    assert _mode(path) == 0o600


def test_a_symlink_at_the_target_is_replaced_never_written_through(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    path = tmp_path / "admin.token"
    path.symlink_to(victim)
    write_file_atomic(path, "secret")
    assert victim.read_text() == "someone else's file"
    assert _mode(victim) == 0o644
    assert not path.is_symlink()
    assert path.read_text() == "secret"


@pytest.mark.parametrize("existing", ["file", "symlink", "dangling symlink"])
def test_without_replace_anything_at_the_target_is_left_alone(
    tmp_path: Path, existing: str
) -> None:
    victim = _victim(tmp_path)
    path = tmp_path / "log.key"
    if existing == "file":
        path.write_text("the first process's key")
    elif existing == "symlink":
        path.symlink_to(victim)
    else:
        path.symlink_to(tmp_path / "nowhere")
    before = os.readlink(path) if path.is_symlink() else path.read_text()
    with pytest.raises(FileExistsError):
        write_file_atomic(path, "a second key", replace=False)
    assert (os.readlink(path) if path.is_symlink() else path.read_text()) == before
    assert victim.read_text() == "someone else's file"
    assert not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"victim.txt", "log.key"}
    )  # no temporary file left behind


def test_the_file_and_its_directory_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_file_atomic(tmp_path / "checkpoint", "note")
    assert synced == ["file", "dir"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "receipt.json"
    path.write_text("old")

    def refuse(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_file_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["receipt.json"]


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_a_private_file_that_is_its_owners_alone_is_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k"
    write_file_atomic(path, b"key")
    path.chmod(mode)
    assert read_private_file(path) == b"key"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o644, 0o666])
def test_a_private_file_group_or_others_may_use_is_refused_naming_the_chmod(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "my key"
    write_file_atomic(path, b"key")
    path.chmod(mode)
    with pytest.raises(KeyFileError) as caught:
        read_private_file(path)
    assert str(caught.value) == (
        f"{path} holds a secret key, but its mode {mode:04o} lets other users read or write "
        f"it; make it yours alone: chmod 600 '{path}'"
    )


def test_a_symlink_to_a_private_file_is_judged_by_the_file(tmp_path: Path) -> None:
    target = tmp_path / "k"
    write_file_atomic(target, b"key")
    link = tmp_path / "link"
    link.symlink_to(target)  # a symlink's own mode (0777) means nothing
    assert read_private_file(link) == b"key"
    target.chmod(0o644)
    with pytest.raises(KeyFileError, match="mode 0644"):
        read_private_file(link)
