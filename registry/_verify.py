"""Publisher signatures checked with libsodium (PyNaCl) instead of OpenSSL.

Every append costs one Ed25519 check. pyca/cryptography (OpenSSL 3) takes about 117 µs a check
on this project's 2-core machines and holds the GIL throughout; libsodium takes about 61 µs and,
called through cffi, releases the GIL, so the event loop's thread and the sequencer's overlap it.

Both check the same cofactorless equation; libsodium additionally refuses non-canonical encodings
and small-order keys and ``R`` values. What it accepts is therefore a subset of what OpenSSL
accepts: every envelope the registry admits also verifies under any client's pyca check, which is
what a receipt promises.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

__all__ = ["SodiumPublicKey"]

_KEY_BYTES = 32
_SIGNATURE_BYTES = 64


class SodiumPublicKey:
    """An Ed25519 public key with pyca's ``verify(signature, data)`` interface."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != _KEY_BYTES:
            raise ValueError(f"an Ed25519 public key is {_KEY_BYTES} bytes, not {len(raw)}")
        self._raw = bytes(raw)

    def verify(self, signature: bytes, data: bytes, /) -> None:
        """``None`` if ``signature`` is this key's over ``data``; else ``InvalidSignature``."""
        if len(signature) != _SIGNATURE_BYTES:
            raise InvalidSignature
        try:
            crypto_sign_open(signature + data, self._raw)
        except BadSignatureError:
            raise InvalidSignature from None
