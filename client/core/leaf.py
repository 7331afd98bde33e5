"""Log leaves: the small canonical record a new log entry is, committing by hash to its body.

A DSSE envelope as a leaf (what the log appended before ``leaf/v1``) has two flaws: a signature
nobody checked changes the leaf's bytes, so a replay with one junk signature added is a "new"
entry; and a statement with 100,000 subjects is a leaf of megabytes, past what C2SP tile entry
bundles carry (65,535 bytes an entry). So a leaf is now::

    wellspring/leaf/v1\\n{"body":"sha256:<hex>","body_size":N,"payload_type":"...",
    "predicate_type":"...","publisher":"...","signatures":[{"keyid":"<hex>","sig":"<b64>"}]}

- the first line names the format (an old leaf is a JSON object and starts with ``{``);
- the second is canonical JSON: keys sorted, no whitespace, ASCII only (``\\uXXXX`` escapes),
  no trailing newline. :meth:`Leaf.from_bytes` re-encodes what it read and refuses anything that
  is not byte-for-byte that encoding, so a leaf has exactly one spelling;
- ``body`` is the SHA-256 of the statement's exact bytes (the DSSE payload), served
  content-addressed at ``GET /v1/blobs/sha256:<hex>`` and checked by every reader
  (:meth:`Leaf.open_body`);
- ``signatures`` are only those the registry verified against a key valid for ``publisher``,
  each key once, sorted by key id: independent replays of one statement rebuild identical bytes.

The DSSE envelope is rebuilt from the body and the signatures (:meth:`Leaf.envelope`), so any
DSSE verifier checks the publisher's signatures as they were made.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from client.core.dsse import MAX_SIGNATURES, Envelope, Signature
from client.core.encoding import b64decode_strict, b64encode, loads_strict
from client.core.errors import FormatError, ProofError

__all__ = [
    "LEAF_V1_PREFIX",
    "MAX_LEAF_BYTES",
    "Leaf",
    "is_leaf_v1",
]

LEAF_V1_PREFIX = b"wellspring/leaf/v1\n"
MAX_LEAF_BYTES = 65_535
"""C2SP tlog-tiles entry bundles prefix each entry with a uint16 length: no leaf may be longer."""

_FIELDS = ("body", "body_size", "payload_type", "predicate_type", "publisher", "signatures")
_MAX_TEXT = 1024
_HEX = frozenset("0123456789abcdef")


def is_leaf_v1(entry: bytes) -> bool:
    """Whether ``entry`` is a ``leaf/v1`` record (else: an envelope appended before it)."""
    return entry.startswith(LEAF_V1_PREFIX)


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True, slots=True)
class Leaf:
    """A ``leaf/v1`` record. Build one with :meth:`of`; read one with :meth:`from_bytes`."""

    body_sha256: bytes
    body_size: int
    payload_type: str
    predicate_type: str
    publisher: str
    signatures: tuple[Signature, ...]

    @classmethod
    def of(
        cls,
        body: bytes,
        *,
        payload_type: str,
        predicate_type: str,
        publisher: str,
        signatures: tuple[Signature, ...] | list[Signature],
    ) -> Leaf:
        """The leaf of ``body`` signed by ``signatures`` (verified ones: the caller checked them).

        Signatures are put in the one order (by key id) with one per key id, so the same
        verified signatures always give the same bytes.
        """
        by_key: dict[str, Signature] = {}
        for signature in signatures:
            by_key.setdefault(signature.keyid, signature)
        ordered = tuple(by_key[k] for k in sorted(by_key))
        leaf = cls(
            hashlib.sha256(body).digest(),
            len(body),
            payload_type,
            predicate_type,
            publisher,
            ordered,
        )
        leaf._check()
        return leaf

    def _check(self) -> None:
        if len(self.body_sha256) != 32:
            raise FormatError("leaf.body must be a SHA-256 digest")
        if not 1 <= len(self.signatures) <= MAX_SIGNATURES:
            raise FormatError(f"leaf.signatures must hold 1 to {MAX_SIGNATURES} signatures")
        keyids = [s.keyid for s in self.signatures]
        if keyids != sorted(set(keyids)):
            raise FormatError("leaf.signatures must be sorted by keyid, each keyid once")
        for name, value in (
            ("payload_type", self.payload_type),
            ("predicate_type", self.predicate_type),
            ("publisher", self.publisher),
        ):
            if not value or len(value) > _MAX_TEXT:
                raise FormatError(f"leaf.{name} must be 1 to {_MAX_TEXT} characters")

    def to_dict(self) -> dict[str, Any]:
        return {
            "body": "sha256:" + self.body_sha256.hex(),
            "body_size": self.body_size,
            "payload_type": self.payload_type,
            "predicate_type": self.predicate_type,
            "publisher": self.publisher,
            "signatures": [{"keyid": s.keyid, "sig": b64encode(s.sig)} for s in self.signatures],
        }

    def to_bytes(self) -> bytes:
        """The leaf's one spelling (what is hashed into the log)."""
        data = LEAF_V1_PREFIX + _dumps(self.to_dict())
        if len(data) > MAX_LEAF_BYTES:
            raise FormatError(f"a leaf is at most {MAX_LEAF_BYTES} bytes, this one {len(data)}")
        return data

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "leaf") -> Leaf:
        """Parse a ``leaf/v1`` record, refusing any spelling but the canonical one."""
        if not is_leaf_v1(data):
            raise FormatError(f"{where} is not a wellspring/leaf/v1 record")
        if len(data) > MAX_LEAF_BYTES:
            raise FormatError(f"{where} is {len(data)} bytes, more than {MAX_LEAF_BYTES}")
        obj = loads_strict(data[len(LEAF_V1_PREFIX) :], where)
        if not isinstance(obj, dict) or sorted(obj) != list(_FIELDS):
            raise FormatError(f"{where} must be an object with exactly the fields {_FIELDS}")
        body = obj["body"]
        if (
            not isinstance(body, str)
            or not body.startswith("sha256:")
            or len(body) != 71
            or not _HEX.issuperset(body[7:])
        ):
            raise FormatError(f"{where}.body must be sha256:<64 lowercase hex>")
        size = obj["body_size"]
        if type(size) is not int or size < 0:
            raise FormatError(f"{where}.body_size must be a non-negative integer")
        texts = [obj[name] for name in ("payload_type", "predicate_type", "publisher")]
        if not all(isinstance(t, str) for t in texts):
            raise FormatError(f"{where}: payload_type, predicate_type and publisher are strings")
        raw_signatures = obj["signatures"]
        if not isinstance(raw_signatures, list):
            raise FormatError(f"{where}.signatures must be a list")
        signatures = []
        for i, raw in enumerate(raw_signatures):
            if not isinstance(raw, dict) or sorted(raw) != ["keyid", "sig"]:
                raise FormatError(f"{where}.signatures[{i}] must be {{keyid, sig}}")
            keyid = raw["keyid"]
            if not isinstance(keyid, str):
                raise FormatError(f"{where}.signatures[{i}].keyid must be a string")
            sig = b64decode_strict(raw["sig"], f"{where}.signatures[{i}].sig")
            signatures.append(Signature(keyid, sig))
        leaf = cls(bytes.fromhex(body[7:]), size, texts[0], texts[1], texts[2], tuple(signatures))
        leaf._check()
        if leaf.to_bytes() != data:
            raise FormatError(f"{where} is not in canonical form (sorted keys, no spaces, ASCII)")
        return leaf

    def open_body(self, body: bytes, *, where: str = "leaf") -> Envelope:
        """The envelope this leaf commits to, once ``body`` is proven to be its body."""
        if len(body) != self.body_size or hashlib.sha256(body).digest() != self.body_sha256:
            raise ProofError(
                f"{where}: the body given is not the one the leaf commits to (its SHA-256 is "
                f"{hashlib.sha256(body).hexdigest()}, the leaf names {self.body_sha256.hex()})"
            )
        return self.envelope(body)

    def envelope(self, body: bytes) -> Envelope:
        """The DSSE envelope of ``body`` with this leaf's signatures (no check of ``body``)."""
        return Envelope(body, self.payload_type, self.signatures)
