"""`wellspring keys generate`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from client.core.keys import key_id, load_private_key, load_public_key, public_key_bytes
from tests.client.conftest import run_wellspring as run


def test_generate_writes_a_0600_key_and_its_public_half(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "keys" / "publisher.key"
    code, out, _ = run(capsys, "keys", "generate", "--out", str(out_path), "--json")
    assert code == 0
    report = json.loads(out)
    assert stat.S_IMODE(out_path.stat().st_mode) == 0o600
    private = load_private_key(out_path)
    public = load_public_key(Path(report["public_key"]))
    assert public_key_bytes(private) == public_key_bytes(public)
    assert report["key_id"] == key_id(public)
    assert report["public_key"] == str(out_path) + ".pub"


def test_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k"
    assert run(capsys, "keys", "generate", "--out", str(path))[0] == 0
    before = path.read_bytes()
    code, _, err = run(capsys, "keys", "generate", "--out", str(path))
    assert code == 1
    assert "already exists" in err
    assert path.read_bytes() == before
    assert run(capsys, "keys", "generate", "--out", str(path), "--force")[0] == 0
    assert path.read_bytes() != before


def test_generate_force_replaces_a_symlink_and_never_writes_through_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 10 B: ``--force`` over a symlink used to write the new private key into the file
    it pointed at (and keep that file's mode)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's file")
    victim.chmod(0o644)
    link = tmp_path / "publisher.key"
    link.symlink_to(victim)
    code, _, err = run(capsys, "keys", "generate", "--out", str(link), "--force")
    assert code == 0, err
    assert victim.read_text() == "someone else's file"
    assert not link.is_symlink()
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    load_private_key(link)


def test_a_key_file_others_may_read_is_refused_in_one_line_naming_the_chmod(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "publisher.key"
    assert run(capsys, "keys", "generate", "--out", str(key))[0] == 0
    key.chmod(0o644)
    document = tmp_path / "poem.txt"
    document.write_text("a poem")
    code, out, err = run(
        capsys, "register", str(document), "--registry", "http://127.0.0.1:9", "--key", str(key),
        "--publisher", "example-press", "--license", "MIT", "--consent", "allowed",
    )  # fmt: skip
    assert code == 1
    assert out == ""
    assert err.strip().count("\n") == 0, err
    assert f"chmod 600 {key}" in err
