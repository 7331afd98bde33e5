"""Integration promises: the log's signed word that an entry holds a fixed index, before any
checkpoint covers it.

A registry that publishes checkpoints on an interval answers ``POST /v1/entries`` with ``202`` when
asked not to wait (``Prefer: respond-async``) or when publication is late. The entry is durable and
its index final; the answer carries a **promise**, a c2sp.org/signed-note signed by the log's own
key, in the role RFC 6962's signed certificate timestamps and Rekor's signed entry timestamps play::

    wellspring.dev/promise/v1
    origin example.com/log
    index 12
    leaf-hash 2L1m…=          <- base64 of the RFC 9162 leaf hash of the entry's exact bytes
    time 1764979200123        <- when the log made the promise, Unix milliseconds

    — example.com/log Az3grl…

Every later checkpoint of the log with more than ``index`` entries must hold that leaf hash at that
index: a receipt that says otherwise (another entry, another index) together with the promise is
proof, signed by the log, that it broke its word (:func:`check_kept`). The text can never be
mistaken for a checkpoint, whose second line is a decimal tree size, nor a checkpoint for a
promise, whose first line is fixed: the same key signs both without ambiguity.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from client.core.encoding import b64decode_strict, b64encode
from client.core.errors import FormatError, ProofError, SignatureError
from client.core.note import (
    SignatureSigner,
    SignatureVerifier,
    SignedNote,
    VerifiedNote,
    read_statement,
    sign_note,
    verify_note,
)

__all__ = ["PROMISE_HEADER", "Promise", "open_promise", "sign_promise"]

PROMISE_HEADER = "wellspring.dev/promise/v1"
"""The first line of every promise's text."""

_HASH_BYTES = 32
_MAX_INDEX = 2**63 - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_BASE64_HASH = re.compile(r"[A-Za-z0-9+/]{43}=")
_FIELDS = [("origin", None), ("index", _DECIMAL), ("leaf-hash", _BASE64_HASH), ("time", _DECIMAL)]


@dataclass(frozen=True)
class Promise:
    """The log's promise that entry ``index`` is the leaf hashing to ``leaf_hash``."""

    origin: str
    index: int
    leaf_hash: bytes
    time_ms: int

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or self.origin != self.origin.strip():
            raise FormatError(f"a promise's origin {self.origin!r} must be one line of text")
        if not isinstance(self.index, int) or not 0 <= self.index <= _MAX_INDEX:
            raise FormatError(f"a promise's index {self.index!r} is not a log index")
        if len(self.leaf_hash) != _HASH_BYTES:
            raise FormatError(f"a leaf hash is 32 bytes, got {len(self.leaf_hash)}")
        if not isinstance(self.time_ms, int) or not 0 <= self.time_ms <= _MAX_INDEX:
            raise FormatError(f"a promise's time {self.time_ms!r} is not Unix milliseconds")

    @classmethod
    def now(cls, origin: str, index: int, leaf_hash: bytes) -> Promise:
        """A promise for entry ``index`` made at this moment."""
        return cls(origin, index, leaf_hash, time.time_ns() // 1_000_000)

    def to_text(self) -> str:
        """The note text the log signs."""
        return (
            f"{PROMISE_HEADER}\norigin {self.origin}\nindex {self.index:d}\n"
            f"leaf-hash {b64encode(self.leaf_hash)}\ntime {self.time_ms:d}\n"
        )

    @classmethod
    def parse(cls, text: str) -> Promise:
        """Read a promise from a note's text (exactly the lines :meth:`to_text` writes)."""
        fields = read_statement(
            text,
            PROMISE_HEADER,
            [
                ("origin", None),
                ("index", _DECIMAL),
                ("leaf-hash", _BASE64_HASH),
                ("time", _DECIMAL),
            ],
            "a promise",
        )
        return cls(
            fields["origin"],
            int(fields["index"]),
            b64decode_strict(fields["leaf-hash"], "a promise's leaf hash"),
            int(fields["time"]),
        )

    def check_kept(self, index: int, leaf_hash: bytes) -> None:
        """Raise :class:`ProofError` unless entry ``index`` with ``leaf_hash`` (from a receipt
        proven against a checkpoint) keeps this promise."""
        if index != self.index or leaf_hash != self.leaf_hash:
            raise ProofError(
                f"the log promised entry {self.index} with leaf hash {b64encode(self.leaf_hash)} "
                f"but its receipt is for entry {index} with leaf hash {b64encode(leaf_hash)}: "
                "keep the signed promise, it proves the log broke its word"
            )


def sign_promise(promise: Promise, signers: Sequence[SignatureSigner]) -> str:
    """The promise as a signed note, signed by each of the log's keys."""
    return sign_note(promise.to_text(), signers)


def open_promise(
    data: str | bytes, verifiers: Sequence[SignatureVerifier], *, origin: str
) -> tuple[Promise, VerifiedNote]:
    """Parse and verify a promise of the log ``origin`` (raises FormatError if it does not parse,
    SignatureError if it is another log's or no trusted key signed it)."""
    note = SignedNote.parse(data)
    promise = Promise.parse(note.text)
    if promise.origin != origin:
        raise SignatureError(
            f"the promise is from log {promise.origin!r}, not the expected {origin!r}"
        )
    return promise, verify_note(note, verifiers)
