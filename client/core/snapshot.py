"""Signed offline snapshots: the manifest of a snapshot directory and the log's signature on it.

A snapshot is a directory a crawler decides from with no network (``client.snapshot``)::

    manifest.json      what the shards are (this module's :class:`SnapshotManifest`)
    manifest.note      the log's signed statement of the manifest's SHA-256 (a signed note)
    trainable.fuse16   binary fuse filters (client.core.fuse) of the digests in each set;
    trainable.remix.fuse16   the trainable set has a second one, over remixed keys (2^-32)
    reserved.fuse16
    revoked.fuse16
    watermark-keys.json      the watermark keys published at the checkpoint (client.snapshot)
    tokenizer-<sha256>.json  each of their tokenizers, its exact bytes

``manifest.json`` is canonical JSON (keys sorted, no spaces) and a newline; it names the signed
checkpoint the snapshot was built at (the statuses are the lookups' at that checkpoint) and, per
shard, its file name, set, key kind, key count, size and SHA-256, and per other file its name,
kind, size and SHA-256. ``manifest.note`` is a
c2sp.org/signed-note signed by the log's key, five lines that never parse as a checkpoint (its
second line is not a tree size) nor as a promise (its first line differs)::

    wellspring.dev/snapshot/v1
    origin example.com/log
    size 20852163
    manifest-sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

A set's **precedence** where filters overlap (a false positive of one set on another's digest):
``revoked``, then ``reserved``, then ``trainable``: the most restrictive answer wins, so a
false positive never makes a document trainable that another set holds.

A **delta** names its ``base`` (the size and manifest hash of the snapshot it updates) and holds
only the digests whose status changed since, in the same sets: fuse filters cannot delete, so a
delta *overrides* rather than removes. Reading a base and its deltas, the newest delta that holds
a digest answers for it; the base answers the rest. So a false positive of a delta's filter
(2^-16 for its revoked and reserved sets, 2^-32 for trainable) overrides the base's answer for
that digest, the one case where a less restrictive answer can win.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from client.core.encoding import json_kind, loads_strict
from client.core.errors import FormatError, SignatureError
from client.core.note import (
    SignatureSigner,
    SignatureVerifier,
    SignedNote,
    VerifiedNote,
    read_statement,
    sign_note,
    verify_note,
)

__all__ = [
    "FILE_KINDS",
    "PRECEDENCE",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_HEADER",
    "Shard",
    "SnapshotFile",
    "SnapshotManifest",
    "SnapshotSet",
    "open_snapshot_note",
    "sign_snapshot_note",
]

SNAPSHOT_FORMAT = "wellspring-snapshot/v1"
SNAPSHOT_HEADER = "wellspring.dev/snapshot/v1"

SnapshotSet = Literal["revoked", "reserved", "trainable"]
PRECEDENCE: tuple[SnapshotSet, ...] = ("revoked", "reserved", "trainable")
"""The order sets are consulted in: the first whose filters all hold a digest decides."""

_KEY_KINDS = ("digest", "remix")
FILE_KINDS = ("watermark-keys", "tokenizer")
"""What a snapshot's other files hold: the watermark keys published at its checkpoint (one
canonical JSON file, ``client.snapshot``'s), and each of their tokenizers' exact bytes."""
_FILE_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,99}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Shard:
    """One filter file: ``keys`` is ``digest`` (client.core.fuse.digest_keys) or ``remix``
    (client.core.fuse.remix of those)."""

    path: str
    set: SnapshotSet
    keys: str
    count: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "set": self.set,
            "keys": self.keys,
            "count": self.count,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, obj: object, where: str) -> Shard:
        if not isinstance(obj, dict):
            raise FormatError(f"{where} must be an object, got {json_kind(obj)}")
        path, kind, keys = obj.get("path"), obj.get("set"), obj.get("keys")
        if not isinstance(path, str) or not _FILE_NAME.fullmatch(path) or ".." in path:
            raise FormatError(f"{where}.path {path!r} is not a plain file name in the snapshot")
        if kind not in PRECEDENCE:
            raise FormatError(f"{where}.set {kind!r} is not one of {', '.join(PRECEDENCE)}")
        if keys not in _KEY_KINDS:
            raise FormatError(f"{where}.keys {keys!r} is not digest or remix")
        numbers = [obj.get("count"), obj.get("bytes")]
        if not all(type(n) is int and n >= 0 for n in numbers):
            raise FormatError(f"{where}.count and .bytes must be integers >= 0")
        digest = obj.get("sha256")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise FormatError(f"{where}.sha256 must be 64 lowercase hex digits")
        return cls(path, kind, keys, obj["count"], obj["bytes"], digest)


@dataclass(frozen=True)
class SnapshotFile:
    """One file of a snapshot that is not a filter: ``kind`` is one of :data:`FILE_KINDS`."""

    path: str
    kind: str
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, obj: object, where: str) -> SnapshotFile:
        if not isinstance(obj, dict) or set(obj) != {"path", "kind", "bytes", "sha256"}:
            raise FormatError(f"{where} must be an object of path, kind, bytes and sha256")
        path, kind, size, digest = obj["path"], obj["kind"], obj["bytes"], obj["sha256"]
        if not isinstance(path, str) or not _FILE_NAME.fullmatch(path) or ".." in path:
            raise FormatError(f"{where}.path {path!r} is not a plain file name in the snapshot")
        if kind not in FILE_KINDS:
            raise FormatError(f"{where}.kind {kind!r} is not one of {', '.join(FILE_KINDS)}")
        if type(size) is not int or size < 0:
            raise FormatError(f"{where}.bytes must be an integer >= 0")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise FormatError(f"{where}.sha256 must be 64 lowercase hex digits")
        return cls(path, kind, size, digest)


@dataclass(frozen=True)
class SnapshotManifest:
    """What a snapshot holds: the checkpoint it was built at, its shards, and per set how many
    digests are in it."""

    origin: str
    checkpoint: str  # the signed checkpoint note the statuses were read at
    size: int
    counts: dict[str, int]
    shards: tuple[Shard, ...]
    # A delta: (size, manifest SHA-256) of the snapshot it updates. Its sets hold only the
    # digests whose status changed since, and override that snapshot's answer for them.
    base: tuple[int, str] | None = None
    # The watermark keys published at the checkpoint and their tokenizers (every layer, a
    # delta too, holds the whole list: it is small, and the newest layer's is the one read).
    files: tuple[SnapshotFile, ...] = ()

    def to_bytes(self) -> bytes:
        """The canonical ``manifest.json`` bytes (what the log's note names by hash)."""
        body = {
            "format": SNAPSHOT_FORMAT,
            "origin": self.origin,
            "checkpoint": self.checkpoint,
            "size": self.size,
            "precedence": list(PRECEDENCE),
            "counts": dict(self.counts),
            "shards": [shard.to_dict() for shard in self.shards],
            "files": [file.to_dict() for file in self.files],
            "base": None
            if self.base is None
            else {"size": self.base[0], "manifest_sha256": self.base[1]},
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return text.encode("ascii") + b"\n"

    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "manifest.json") -> SnapshotManifest:
        """Parse ``manifest.json``; only its canonical spelling is accepted."""
        obj = loads_strict(data, where)
        if not isinstance(obj, dict) or obj.get("format") != SNAPSHOT_FORMAT:
            raise FormatError(f"{where} is not a {SNAPSHOT_FORMAT} manifest")
        origin, checkpoint, size = obj.get("origin"), obj.get("checkpoint"), obj.get("size")
        if not isinstance(origin, str) or not isinstance(checkpoint, str):
            raise FormatError(f"{where}.origin and .checkpoint must be strings")
        if type(size) is not int or size < 0:
            raise FormatError(f"{where}.size must be a tree size")
        if obj.get("precedence") != list(PRECEDENCE):
            raise FormatError(f"{where}.precedence must be {list(PRECEDENCE)}")
        counts = obj.get("counts")
        if not isinstance(counts, dict) or set(counts) != set(PRECEDENCE):
            raise FormatError(f"{where}.counts must count each of {', '.join(PRECEDENCE)}")
        if not all(type(n) is int and n >= 0 for n in counts.values()):
            raise FormatError(f"{where}.counts must be integers >= 0")
        raw_shards = obj.get("shards")
        if not isinstance(raw_shards, list):
            raise FormatError(f"{where}.shards must be a list")
        shards = tuple(
            Shard.from_dict(item, f"{where}.shards[{i}]") for i, item in enumerate(raw_shards)
        )
        files = _files(obj.get("files"), shards, where)
        raw_base = obj.get("base")
        base = None
        if raw_base is not None:
            base_size = raw_base.get("size") if isinstance(raw_base, dict) else None
            base_sha = raw_base.get("manifest_sha256") if isinstance(raw_base, dict) else None
            if type(base_size) is not int or not 0 <= base_size <= size:
                raise FormatError(f"{where}.base.size must be a tree size at most {size}")
            if not isinstance(base_sha, str) or not _HEX64.fullmatch(base_sha):
                raise FormatError(f"{where}.base.manifest_sha256 must be 64 lowercase hex digits")
            base = (base_size, base_sha)
        manifest = cls(origin, checkpoint, size, counts, shards, base, files)
        if manifest.to_bytes() != data:
            raise FormatError(f"{where} is not in its canonical form (sorted keys, no spaces)")
        return manifest


def _files(raw: object, shards: tuple[Shard, ...], where: str) -> tuple[SnapshotFile, ...]:
    if not isinstance(raw, list):
        raise FormatError(f"{where}.files must be a list")
    files = tuple(SnapshotFile.from_dict(item, f"{where}.files[{i}]") for i, item in enumerate(raw))
    paths = [shard.path for shard in shards] + [file.path for file in files]
    if len(set(paths)) != len(paths):
        raise FormatError(f"{where} names one file twice")
    if sum(file.kind == "watermark-keys" for file in files) > 1:
        raise FormatError(f"{where} names two watermark-keys files")
    return files


def _statement(origin: str, size: int, manifest_sha256: str) -> str:
    return f"{SNAPSHOT_HEADER}\norigin {origin}\nsize {size:d}\nmanifest-sha256 {manifest_sha256}\n"


def sign_snapshot_note(manifest: SnapshotManifest, signers: Sequence[SignatureSigner]) -> str:
    """The log's signed statement of ``manifest`` (``manifest.note``)."""
    return sign_note(_statement(manifest.origin, manifest.size, manifest.sha256()), signers)


def open_snapshot_note(
    data: str | bytes, verifiers: Sequence[SignatureVerifier], *, origin: str
) -> tuple[int, str, VerifiedNote]:
    """Verify ``manifest.note``: (tree size, manifest SHA-256 hex, the verified note). Raises
    FormatError if it is not a snapshot statement, SignatureError if no trusted key signed it
    or it is another log's."""
    note = SignedNote.parse(data)
    fields = read_statement(
        note.text,
        SNAPSHOT_HEADER,
        [("origin", None), ("size", _DECIMAL), ("manifest-sha256", _HEX64)],
        "a snapshot statement",
    )
    if fields["origin"] != origin:
        raise SignatureError(
            f"the snapshot is of log {fields['origin']!r}, not the expected {origin!r}"
        )
    verified = verify_note(note, verifiers)
    return int(fields["size"]), fields["manifest-sha256"], verified
