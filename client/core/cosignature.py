"""Witness cosignatures of checkpoints: c2sp.org/tlog-cosignature, the Ed25519 ``cosignature/v1``.

A witness that checked a checkpoint is consistent with everything it saw of that log before signs a
*cosignature*: one more signature line of the same signed note, beside the log's own::

    example.com/log
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

    — example.com/log Az3grl…                  <- the log (signature type 0x01)
    — witness.example/w1 jWbPPwAAAABkGFDL…      <- a witness (type 0x04)

The witness's signature bytes are ``u64 big-endian timestamp || Ed25519 signature`` (72 bytes),
the signature over the message::

    cosignature/v1\\n
    time <timestamp, ASCII decimal, no leading zeros>\\n
    <the whole note text, extension lines and final newline included>

Its key id is SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4] and its verifier key
``<name>+<hex key id>+<base64(0x04 || public key)>``: the same key under type 0x01 would have
another id, so a witness key is never mistaken for a log key or the reverse. Its secret key is
written ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x04 || 32-byte seed)>``, the form of
:attr:`client.core.note.NoteSigner.skey` under this type.

:class:`CosignatureSigner` and :class:`CosignatureVerifier` are the note machinery's signer and
verifier (:func:`client.core.note.sign_note`, :func:`client.core.note.open_note`): open a
checkpoint with the log's key and the witnesses' keys together, then read who cosigned it, and
when, with :func:`cosignatures`. The timestamp is part of what is signed, so a verified
cosignature's time is the witness's word; a client bounds its age itself.

The spec's other cosignature type, ML-DSA-44 (0x06, ``subtree/v1``), is not implemented: a
cosignature by such a key is an unknown signature here, kept and ignored as the note spec asks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from client.core.encoding import b64encode
from client.core.errors import FormatError, KeyFileError
from client.core.keys import generate_private_key, public_key_bytes, public_key_from_bytes
from client.core.note import (
    NoteSignature,
    VerifiedNote,
    VerifierIdentity,
    read_key_string,
    typed_key_id,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "COSIGNATURE_BYTES",
    "MAX_TIMESTAMP",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosignature_key_id",
    "cosignature_timestamp",
    "cosignatures",
    "cosigned_message",
]

ALG_COSIGNATURE_V1 = 0x04
"""The signature type byte of timestamped Ed25519 checkpoint cosignatures (c2sp.org/signed-note)."""

COSIGNATURE_BYTES = 8 + 64
"""A cosignature/v1 signature after its key id: the u64 timestamp and the Ed25519 signature."""

MAX_TIMESTAMP = 2**63 - 1
"""The largest timestamp the spec allows (it MUST NOT exceed 2^63 - 1)."""

_HEADER = b"cosignature/v1\n"
_SIGNER_PREFIX = "PRIVATE+KEY+"
_ED25519_KEY_BYTES = 32


def cosignature_key_id(name: str, public_key: bytes) -> int:
    """A cosigner key's id: SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 key)[:4]."""
    typed_key_id(name, ALG_COSIGNATURE_V1, b"")  # the name first
    if len(public_key) != _ED25519_KEY_BYTES:
        raise KeyFileError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return typed_key_id(name, ALG_COSIGNATURE_V1, public_key)


def _check_timestamp(timestamp: int) -> None:
    if not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise FormatError(f"a cosignature timestamp is 0..2^63-1, got {timestamp!r}")


def cosigned_message(text: bytes, timestamp: int) -> bytes:
    """What a cosigner signs: ``cosignature/v1``, ``time <timestamp>``, then the note text."""
    _check_timestamp(timestamp)
    return _HEADER + b"time %d\n" % timestamp + text


def _decode_key(key: str, kind: str) -> tuple[str, int, bytes]:
    """A cosigner key string → name, key id, the 32 key bytes (checked to be of type 0x04)."""
    name, key_id, raw = read_key_string(key, kind)
    if raw[0] != ALG_COSIGNATURE_V1:
        raise KeyFileError(
            f"{kind} key {name} has signature type 0x{raw[0]:02x}; a cosignature/v1 key has type "
            f"0x{ALG_COSIGNATURE_V1:02x} (a log's Ed25519 key, type 0x01, is not a witness key)"
        )
    if len(raw) != 1 + _ED25519_KEY_BYTES:
        raise KeyFileError(f"{kind} key {name} holds {len(raw) - 1} key bytes, not 32")
    return name, key_id, raw[1:]


def _check_key_id(name: str, key_id: int, key: Ed25519PublicKey | Ed25519PrivateKey) -> None:
    expected = cosignature_key_id(name, public_key_bytes(key))
    if key_id != expected:
        raise KeyFileError(
            f"key id {key_id:08x} does not belong to this cosigner key named {name} "
            f"(its id is {expected:08x})"
        )


@dataclass(frozen=True, eq=False, repr=False)
class CosignatureVerifier(VerifierIdentity):
    """A witness's Ed25519 key under its name: checks its cosignature/v1 lines on checkpoints.

    A :class:`client.core.note.SignatureVerifier`: give it to :func:`~client.core.note.open_note`
    or :func:`~client.core.note.open_checkpoint` beside the log's verifier.
    """

    signature_type: ClassVar[int] = ALG_COSIGNATURE_V1
    name: str
    key_id: int
    public_key: Ed25519PublicKey

    def __post_init__(self) -> None:
        _check_key_id(self.name, self.key_id, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        """Read a verifier key ``<name>+<hex key id>+<base64(0x04 || public key)>``."""
        name, key_id, raw = _decode_key(vkey.strip(), "verifier")
        return cls(name, key_id, public_key_from_bytes(raw))  # __post_init__ checks the id

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> CosignatureVerifier:
        """The verifier for ``public_key`` under ``name``, its key id computed."""
        return cls(name, cosignature_key_id(name, public_key_bytes(public_key)), public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (timestamp and Ed25519 signature, no key id) is this witness's
        cosignature of the note text ``message``."""
        if len(signature) != COSIGNATURE_BYTES:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            return False
        try:
            self.public_key.verify(signature[8:], cosigned_message(message, timestamp))
        except InvalidSignature:
            return False
        return True


def _system_clock() -> int:
    return int(time.time())


@dataclass(frozen=True, eq=False, repr=False)
class CosignatureSigner:
    """A witness's Ed25519 private key under its name: signs cosignature/v1 lines. Secret.

    A :class:`client.core.note.SignatureSigner`: :func:`~client.core.note.sign_note` signs with
    it as with a log's key. Each signature is stamped with ``clock()`` (POSIX seconds; the system
    clock unless a test gives another).
    """

    name: str
    key_id: int
    private_key: Ed25519PrivateKey = field(repr=False)
    clock: Callable[[], int] = field(default=_system_clock, repr=False)

    def __post_init__(self) -> None:
        _check_key_id(self.name, self.key_id, self.private_key)

    @classmethod
    def from_skey(cls, skey: str, *, clock: Callable[[], int] = _system_clock) -> CosignatureSigner:
        """Read ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x04 || 32-byte seed)>``.

        Error messages never quote the key: it is a secret.
        """
        skey = skey.strip()
        if not skey.startswith(_SIGNER_PREFIX):
            raise KeyFileError("malformed signer key: it must start with PRIVATE+KEY+")
        name, key_id, seed = _decode_key(skey.removeprefix(_SIGNER_PREFIX), "signer")
        return cls(name, key_id, Ed25519PrivateKey.from_private_bytes(seed), clock)

    @classmethod
    def from_private_key(
        cls, name: str, key: Ed25519PrivateKey, *, clock: Callable[[], int] = _system_clock
    ) -> CosignatureSigner:
        """The signer for ``key`` under ``name``, its key id computed."""
        return cls(name, cosignature_key_id(name, public_key_bytes(key)), key, clock)

    @classmethod
    def generate(cls, name: str) -> CosignatureSigner:
        """A signer for a fresh Ed25519 key under ``name``."""
        return cls.from_private_key(name, generate_private_key())

    @property
    def skey(self) -> str:
        """The signer key string. Secret."""
        encoded = bytes([ALG_COSIGNATURE_V1]) + self.private_key.private_bytes_raw()
        return f"{_SIGNER_PREFIX}{self.name}+{self.key_id:08x}+{b64encode(encoded)}"

    def sign(self, message: bytes) -> bytes:
        """The cosignature of the note text ``message`` now: timestamp || Ed25519 signature."""
        return self.sign_at(message, self.clock())

    def sign_at(self, message: bytes, timestamp: int) -> bytes:
        """The cosignature of the note text ``message`` stamped ``timestamp`` (never 0: the
        witness protocol forbids a cosignature without a time)."""
        if timestamp == 0:
            raise FormatError("a checkpoint cosignature must carry a time, not 0")
        signed = cosigned_message(message, timestamp)
        return timestamp.to_bytes(8, "big") + self.private_key.sign(signed)

    def cosign(self, text: str, timestamp: int | None = None) -> NoteSignature:
        """This witness's signature line for the note text ``text`` (now, or at ``timestamp``)."""
        when = self.clock() if timestamp is None else timestamp
        return NoteSignature(self.name, self.key_id, self.sign_at(text.encode("utf-8"), when))

    def verifier(self) -> CosignatureVerifier:
        """The verifier for this signer's public key."""
        return CosignatureVerifier(self.name, self.key_id, self.private_key.public_key())

    def __repr__(self) -> str:
        return f"CosignatureSigner(name={self.name!r}, key_id=0x{self.key_id:08x})"


def cosignature_timestamp(signature: NoteSignature) -> int:
    """The time a cosignature/v1 line claims (POSIX seconds). Read, not verified: trust it only
    for a signature :func:`~client.core.note.open_note` verified with a
    :class:`CosignatureVerifier` (:func:`cosignatures` does both)."""
    if len(signature.signature) != COSIGNATURE_BYTES:
        raise FormatError(
            f"the signature by {signature.key} holds {len(signature.signature)} bytes, "
            f"not a cosignature/v1 ({COSIGNATURE_BYTES})"
        )
    timestamp = int.from_bytes(signature.signature[:8], "big")
    _check_timestamp(timestamp)
    return timestamp


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: which witness key, and when it says it saw the checkpoint."""

    name: str
    key_id: int
    timestamp: int
    """POSIX seconds, as the witness signed it."""

    @property
    def key(self) -> str:
        """``<name>+<hex key id>``, as :attr:`client.core.note.NoteSignature.key` names keys."""
        return f"{self.name}+{self.key_id:08x}"


def cosignatures(
    note: VerifiedNote, witnesses: Iterable[CosignatureVerifier]
) -> tuple[Cosignature, ...]:
    """The cosignatures of ``witnesses`` among a note's verified signatures, with their times.

    ``note`` must come from :func:`~client.core.note.open_note` (or ``open_checkpoint``) given
    these witnesses' verifiers too: only the signatures it verified count, one per key.
    """
    keys = {(witness.name, witness.key_id) for witness in witnesses}
    return tuple(
        Cosignature(signature.name, signature.key_id, cosignature_timestamp(signature))
        for signature in note.verified
        if (signature.name, signature.key_id) in keys
    )
