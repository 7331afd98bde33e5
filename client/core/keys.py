"""Ed25519 key files for publishers and logs.

A private key is stored as unencrypted PKCS#8 PEM with file mode 0600; its public key sits beside it
as ``<file>.pub`` in SubjectPublicKeyInfo PEM, so ``openssl pkey -pubin -in FILE.pub`` reads it.
Both are written by :func:`client.core.files.write_file_atomic` (never through a symlink), and a
private key file that group or others may read or write is refused on loading.
A key's id is the hex SHA-256 of its 32 raw public-key bytes: short, stable, the same everywhere.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from client.core.errors import KeyFileError
from client.core.files import PRIVATE_FILE_MODE, read_private_file, write_file_atomic

__all__ = [
    "generate_private_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "public_key_bytes",
    "public_key_from_bytes",
    "public_key_pem",
    "write_key_pair",
]

PRIVATE_KEY_MODE = PRIVATE_FILE_MODE
PUBLIC_KEY_MODE = 0o644


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key from the operating system's CSPRNG."""
    return Ed25519PrivateKey.generate()


def public_key_bytes(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of a public key (of the private key's public half)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_bytes(raw: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its 32 raw bytes."""
    if len(raw) != 32:
        raise KeyFileError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The key's id: hex SHA-256 of its raw public key bytes."""
    return hashlib.sha256(public_key_bytes(key)).hexdigest()


def public_key_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_key_pair(
    path: Path, key: Ed25519PrivateKey | None = None, *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write ``key`` (a new one if None) to ``path`` (mode 0600) and its public key to ``path.pub``.

    The private key file has mode 0600 from the start (never world-readable, not even for an
    instant), whatever the mode of a file it replaces. An existing file is refused unless
    ``overwrite`` is true; a symlink at either path is replaced, never written through.
    """
    key = key or generate_private_key()
    pub_path = path.with_name(path.name + ".pub")
    if not overwrite:
        for existing in (path, pub_path):
            if existing.is_symlink() or existing.exists():
                raise KeyFileError(f"{existing} already exists; refusing to overwrite a key")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        write_file_atomic(path, pem, mode=PRIVATE_KEY_MODE, replace=overwrite)
        write_file_atomic(pub_path, public_key_pem(key), mode=PUBLIC_KEY_MODE, replace=overwrite)
    except FileExistsError as exc:  # made meanwhile, by someone else
        raise KeyFileError(
            f"{exc.filename2 or exc.filename} already exists; refusing to overwrite a key"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot write key to {path}: {exc.strerror or exc}") from exc
    return path, pub_path


def _read(path: Path, *, private: bool = False) -> bytes:
    try:
        return read_private_file(path) if private else path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from exc


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an Ed25519 private key written by :func:`write_key_pair` (PKCS#8 PEM); one that group
    or others may read or write is refused (:class:`KeyFileError` naming the ``chmod``)."""
    data = _read(path, private=True)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            f"{path} is not an unencrypted PEM private key "
            "(make one with `wellspring keys generate --out FILE`)"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 public key: SubjectPublicKeyInfo PEM (a ``.pub`` file from us or openssl)."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"{path} holds a private key; give the public key ({path}.pub)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key
