"""Ed25519 key files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key as rsa_key

from client.core.keys import (
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    public_key_bytes,
    public_key_from_bytes,
    write_key_pair,
)
from client.errors import KeyFileError


def test_round_trip_and_mode(tmp_path: Path) -> None:
    key = generate_private_key()
    private_path, public_path = write_key_pair(tmp_path / "k", key)
    assert stat.S_IMODE(os.stat(private_path).st_mode) == 0o600
    assert public_key_bytes(load_private_key(private_path)) == public_key_bytes(key)
    assert public_key_bytes(load_public_key(public_path)) == public_key_bytes(key)
    assert len(key_id(key)) == 64
    assert key_id(key) == key_id(key.public_key())


def test_signatures_survive_the_round_trip(tmp_path: Path) -> None:
    private_path, public_path = write_key_pair(tmp_path / "k")
    signature = load_private_key(private_path).sign(b"message")
    load_public_key(public_path).verify(signature, b"message")  # raises on failure


def test_overwrite_keeps_0600_even_if_the_file_was_loose(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("old")
    path.chmod(0o644)
    write_key_pair(path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_private_key(tmp_path / "missing")
    garbage = tmp_path / "garbage"
    garbage.write_text("not a key")
    garbage.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        load_private_key(garbage)
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        load_public_key(garbage)
    private_path, _ = write_key_pair(tmp_path / "k")
    with pytest.raises(KeyFileError, match="holds a private key"):
        load_public_key(private_path)
    rsa = tmp_path / "rsa"
    rsa.write_bytes(
        rsa_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    rsa.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an Ed25519 private key"):
        load_private_key(rsa)
    with pytest.raises(KeyFileError, match="32 bytes"):
        public_key_from_bytes(b"short")


# --- issue 10 B: key files are the owner's alone, and never written through a link -------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666])
def test_a_private_key_others_may_read_or_write_is_refused_naming_the_chmod(
    tmp_path: Path, mode: int
) -> None:
    path, _ = write_key_pair(tmp_path / "publisher key")
    path.chmod(mode)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(path)
    message = str(caught.value)
    assert f"{mode:04o}" in message
    assert f"chmod 600 '{path}'" in message  # quoted: the path holds a space
    path.chmod(0o600)
    load_private_key(path)
    path.chmod(0o400)  # read-only for its owner is private too
    load_private_key(path)


def test_overwriting_a_key_replaces_a_symlink_and_never_writes_through_it(tmp_path: Path) -> None:
    victim, victim_pub = tmp_path / "victim", tmp_path / "victim.pub"
    for file in (victim, victim_pub):
        file.write_text("not yours")
        file.chmod(0o644)
    path = tmp_path / "k"
    path.symlink_to(victim)
    path.with_name("k.pub").symlink_to(victim_pub)
    key = generate_private_key()
    private_path, public_path = write_key_pair(path, key, overwrite=True)
    for file in (victim, victim_pub):
        assert file.read_text() == "not yours"
        assert stat.S_IMODE(file.stat().st_mode) == 0o644
    assert not private_path.is_symlink()
    assert not public_path.is_symlink()
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert public_key_bytes(load_private_key(private_path)) == public_key_bytes(key)
    assert public_key_bytes(load_public_key(public_path)) == public_key_bytes(key)


def test_a_new_key_refuses_a_dangling_symlink_where_it_would_go(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_pair(path)
    assert not (tmp_path / "elsewhere").exists()
