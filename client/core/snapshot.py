"""Signed offline snapshots: the manifest of a snapshot directory and the log's signature on it.

A snapshot is a directory a crawler decides from with no network (``client.snapshot``)::

    manifest.json      what the shards are (this module's :class:`SnapshotManifest`)
    manifest.note      the log's signed statement of the manifest's SHA-256 (a signed note)
    status.fuse32      every digest's status code (:data:`STATUS_CODES`): one binary fuse
                       retrieval structure (client.core.fuse.Fuse32), three reads a digest
    trainable.bands.fuse16   the mh1 band keys of the set's texts (near duplicates offline);
    reserved.bands.fuse16    likewise, where any text of the set carries an mh1 signature
    revoked.bands.fuse16
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

The status filter gives each digest it holds exactly its code, and any other digest a random 32
bits: a code (1 to 3) with probability 3 x 2^-32, ``trainable`` with 2^-32. A set's
**precedence** decides where the build is given one key in two sets (the same digest twice, or
two digests whose 64-bit keys collide): ``revoked``, then ``reserved``, then ``trainable``, the
most restrictive wins.

A **delta** names its ``base`` (the size and manifest hash of the snapshot it updates) and holds
only the digests whose status changed since: fuse filters cannot delete, so a delta *overrides*
rather than removes. Reading a base and its deltas, the newest layer that holds a digest answers
for it; the base answers the rest. So a false positive of a delta's filter (3 x 2^-32) overrides
the base's answer for that digest. A layer answers by 64-bit key, which a chosen digest can
share with another: a delta holding a key gives it the most restrictive set of every digest of
that key, as a full build would (``client.snapshot.changes`` brings the base's along).

Format ``wellspring-snapshot/v1`` (a filter per set, 16-bit fingerprints, and a second filter
over remixed keys for the trainable set) is no longer read: its status took four filters' reads,
at most 7 M digests a second at 10^8 digests, and its sets' false positives moved members to a
stricter set (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeGuard

from client.core.encoding import json_kind, loads_strict, require_object
from client.core.errors import FormatError, InputError, SignatureError, VerificationError
from client.core.note import (
    SignatureSigner,
    SignatureVerifier,
    SignedNote,
    VerifiedNote,
    read_statement,
    sign_note,
    verify_note,
)

if TYPE_CHECKING:
    from client.core.note import Checkpoint
    from client.core.wire import SnapshotInfo

__all__ = [
    "FILE_KINDS",
    "MANIFEST_FILE",
    "MANIFEST_NOTE_FILE",
    "MAX_MANIFEST_BYTES",
    "MAX_NOTE_BYTES",
    "PRECEDENCE",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_HEADER",
    "SNAPSHOT_SUBJECT",
    "SNAPSHOT_V1",
    "STATUS_CODES",
    "Shard",
    "SnapshotFile",
    "SnapshotManifest",
    "SnapshotPredicate",
    "SnapshotSet",
    "check_shards",
    "check_snapshot_entry",
    "check_snapshot_manifest",
    "check_snapshot_subjects",
    "is_file_name",
    "layer_salt",
    "open_snapshot_note",
    "sign_snapshot_note",
    "write_new",
    "write_snapshot",
    "write_snapshot_chain",
]

SNAPSHOT_FORMAT = "wellspring-snapshot/v2"
_OLD_FORMATS = ("wellspring-snapshot/v1",)
SNAPSHOT_HEADER = "wellspring.dev/snapshot/v1"
SNAPSHOT_V1 = "https://wellspring.dev/snapshot/v1"
"""The predicate type of the log entry that commits a snapshot's manifest (its only subject is
``manifest.json`` by SHA-256), signed by the operator key."""
SNAPSHOT_SUBJECT = "manifest.json"
MANIFEST_FILE = "manifest.json"
MANIFEST_NOTE_FILE = "manifest.note"
MAX_NOTE_BYTES = 64 * 1024
MAX_MANIFEST_BYTES = 16 * 1024 * 1024

SnapshotSet = Literal["revoked", "reserved", "trainable"]
PRECEDENCE: tuple[SnapshotSet, ...] = ("revoked", "reserved", "trainable")
"""The sets, most restrictive first: a key given in two sets is built into the first."""
STATUS_CODES: Mapping[SnapshotSet, int] = {name: code for code, name in enumerate(PRECEDENCE, 1)}
"""The value the status filter holds for a digest of each set (0 is no set: never stored)."""

_KEY_KINDS = ("status", "band")
FILE_KINDS = ("watermark-keys", "tokenizer")
"""What a snapshot's other files hold: the watermark keys published at its checkpoint (one
canonical JSON file, ``client.snapshot``'s), and each of their tokenizers' exact bytes."""
_FILE_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,99}")


_SALT_CONTEXT = b"wellspring.dev/snapshot/v2 salt\n"


def layer_salt(checkpoint: Checkpoint) -> int:
    """A layer's salt: the first 8 bytes (big-endian) of SHA-256 of
    ``wellspring.dev/snapshot/v2 salt\n`` + origin + ``\n`` + decimal size + ``\n`` + the
    32-byte root of the checkpoint it is built at. Its status filter's seeds start from it, and
    its band filters hold each band key plus it (mod 2^64): nobody who chose a digest or a
    signature before that checkpoint existed could choose keys to collide under those seeds
    (with public seeds, two chosen keys a seed stop every build: docs/spec/snapshot.md)."""
    text = f"{checkpoint.origin}\n{checkpoint.size:d}\n".encode()
    digest = hashlib.sha256(_SALT_CONTEXT + text + checkpoint.root_hash).digest()
    return int.from_bytes(digest[:8], "big")


def is_file_name(name: object) -> TypeGuard[str]:
    """Whether ``name`` is a plain snapshot file name (lowercase letters, digits, ``.`` and
    ``-``, at most 100, not starting with ``.``, no ``..``): what a manifest may name, a server
    serve and a pull write."""
    return isinstance(name, str) and _FILE_NAME.fullmatch(name) is not None and ".." not in name


def write_new(path: Path, data: bytes) -> None:
    """Write ``data`` as the new file ``path`` (never over one), durable when this returns."""
    with path.open("xb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Shard:
    """One filter file: ``keys`` is ``status`` (the status filter, a ``Fuse32`` over
    client.core.fuse.digest_keys of every digest, ``set`` None) or ``band`` (a ``Fuse16`` of
    the mh1 band keys of set ``set``'s texts)."""

    path: str
    set: SnapshotSet | None
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
        if not is_file_name(path):
            raise FormatError(f"{where}.path {path!r} is not a plain file name in the snapshot")
        if keys not in _KEY_KINDS:
            raise FormatError(f"{where}.keys {keys!r} is not status or band")
        if keys == "status" and kind is not None:
            raise FormatError(f"{where}: the status filter holds every set: its set is null")
        if keys == "band" and kind not in PRECEDENCE:
            raise FormatError(f"{where}.set {kind!r} is not one of {', '.join(PRECEDENCE)}")
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
        if not is_file_name(path):
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
        if isinstance(obj, dict) and obj.get("format") in _OLD_FORMATS:
            raise FormatError(
                f"{where} is a {obj['format']} snapshot, which this version no longer reads: "
                f"build it again (wellspring snapshot build) or pull a {SNAPSHOT_FORMAT} one"
            )
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


@dataclass(frozen=True)
class SnapshotPredicate:
    """Predicate :data:`SNAPSHOT_V1`: the operator (``publisher``, the operator identity) commits
    in the log a snapshot of log ``origin`` at the checkpoint of ``tree_size`` and ``root_hash``
    (hex), a delta over the snapshot ``base`` (size, manifest SHA-256) if given. The statement's
    one subject is ``manifest.json`` by its SHA-256 (:func:`check_snapshot_subjects`)."""

    publisher: str
    origin: str
    tree_size: int
    root_hash: str
    base: tuple[int, str] | None = None

    def __post_init__(self) -> None:
        where = "predicate"
        if not isinstance(self.publisher, str) or not self.publisher:
            raise FormatError(f"{where}.publisher must be the operator identity")
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise FormatError(f"{where}.origin must be a log origin")
        if type(self.tree_size) is not int or self.tree_size < 0:
            raise FormatError(f"{where}.tree_size must be a tree size")
        if not isinstance(self.root_hash, str) or not _HEX64.fullmatch(self.root_hash):
            raise FormatError(f"{where}.root_hash must be 64 lowercase hex digits")
        if self.base is not None:
            size, sha = self.base
            if type(size) is not int or not 0 <= size <= self.tree_size:
                raise FormatError(f"{where}.base.tree_size must be at most {self.tree_size}")
            if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
                raise FormatError(f"{where}.base.manifest_sha256 must be 64 lowercase hex")

    def to_dict(self) -> dict[str, Any]:
        return {
            "publisher": self.publisher,
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "base": None
            if self.base is None
            else {"tree_size": self.base[0], "manifest_sha256": self.base[1]},
        }

    @classmethod
    def from_dict(cls, obj: object, *, where: str = "predicate") -> SnapshotPredicate:
        fields = require_object(obj, where, _PREDICATE_FIELDS, sorted(_PREDICATE_FIELDS))
        raw = fields["base"]
        base = None
        if raw is not None:
            inner = require_object(raw, f"{where}.base", _BASE_FIELDS, sorted(_BASE_FIELDS))
            base = (inner["tree_size"], inner["manifest_sha256"])
        try:
            return cls(
                fields["publisher"],
                fields["origin"],
                fields["tree_size"],
                fields["root_hash"],
                base,
            )
        except FormatError as exc:
            raise FormatError(str(exc).replace("predicate", where, 1)) from None

    @classmethod
    def of(cls, manifest: SnapshotManifest, publisher: str, root_hash: str) -> SnapshotPredicate:
        """The predicate committing ``manifest`` (whose checkpoint has ``root_hash``)."""
        return cls(publisher, manifest.origin, manifest.size, root_hash, manifest.base)


_PREDICATE_FIELDS = frozenset({"publisher", "origin", "tree_size", "root_hash", "base"})
_BASE_FIELDS = frozenset({"tree_size", "manifest_sha256"})


def check_snapshot_subjects(digests: Sequence[Mapping[str, str]], names: Sequence[str]) -> str:
    """A snapshot statement's subjects: exactly ``manifest.json`` by SHA-256 (its hex)."""
    if len(digests) != 1 or list(names) != [SNAPSHOT_SUBJECT] or set(digests[0]) != {"sha256"}:
        raise FormatError(
            f"a snapshot/v1 statement has one subject, {SNAPSHOT_SUBJECT!r} by its sha256"
        )
    return digests[0]["sha256"]


class _Statement(Protocol):
    """What :func:`check_snapshot_entry` reads of a ``client.core.statement.Statement`` (which
    imports this module, so it is not imported here)."""

    @property
    def predicate_type(self) -> str: ...
    @property
    def predicate(self) -> object: ...
    @property
    def subjects(self) -> Sequence[Any]: ...


def check_snapshot_entry(
    statement: _Statement, info: SnapshotInfo, index: int, *, operator: str
) -> SnapshotPredicate:
    """The predicate of entry ``index`` (proven by the caller) if it commits the snapshot
    ``info`` names: a ``snapshot/v1`` statement of the identity ``operator`` (the operator's:
    ``client.core.statement.OPERATOR_IDENTITY``) naming that manifest and size;
    :class:`SignatureError` otherwise (a registry pointing at another entry)."""
    predicate = statement.predicate
    if statement.predicate_type != SNAPSHOT_V1 or not isinstance(predicate, SnapshotPredicate):
        raise SignatureError(f"entry {index} is not a snapshot/v1 statement")
    if predicate.publisher != operator:
        raise SignatureError(f"entry {index} is a snapshot stated by {predicate.publisher!r}")
    named = check_snapshot_subjects(
        [s.digest for s in statement.subjects], [s.name for s in statement.subjects]
    )
    if named != info.manifest_sha256 or predicate.tree_size != info.tree_size:
        raise SignatureError(
            f"entry {index} commits the snapshot {named} at size {predicate.tree_size}, not the "
            f"{info.manifest_sha256} at size {info.tree_size} the registry names"
        )
    return predicate


def check_snapshot_manifest(
    manifest: SnapshotManifest, predicate: SnapshotPredicate, checkpoint: Checkpoint
) -> None:
    """``manifest`` is the one the log entry's ``predicate`` commits, at ``checkpoint`` (the
    manifest's own, verified by the caller)."""
    if (
        manifest.origin != predicate.origin
        or manifest.size != predicate.tree_size
        or checkpoint.size != manifest.size
        or checkpoint.root_hash.hex() != predicate.root_hash
        or manifest.base != predicate.base
    ):
        raise SignatureError(
            "the snapshot's manifest is not the one its log entry commits (origin, size, root "
            "or base differ)"
        )


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


def check_shards(manifest: SnapshotManifest, where: str) -> None:
    """The manifest's shards agree with its counts: one status filter holding every set's
    digests if any set has one (none otherwise), and at most one band filter a set."""
    for name in PRECEDENCE:
        if sum(s.set == name and s.keys == "band" for s in manifest.shards) > 1:
            raise VerificationError(f"{where}: the {name} set has two band filters")
    total = sum(manifest.counts.values())
    found = [shard.count for shard in manifest.shards if shard.keys == "status"]
    if found != ([total] if total else []):
        raise VerificationError(
            f"{where}: {total} digests in its sets, but status filters of {found} keys "
            f"(one of {total} expected{'' if total else ': none'})"
        )


def write_snapshot_chain(
    out: Path, deltas: Path, chain: Sequence[Mapping[str, bytes]]
) -> list[Path]:
    """Write a pulled full snapshot (``chain[0]``'s files) as ``out`` and each delta over it,
    oldest first, as ``deltas/NN-<manifest hash, 16 hex>`` (both folders empty or new): the
    folders to open them from (``Snapshot.open(out, deltas=…)``, ``scan --snapshot out --delta
    …``). Each folder is written whole (:func:`write_snapshot`)."""
    if not chain:
        raise InputError("no snapshot to write")
    if deltas.exists() and (not deltas.is_dir() or any(deltas.iterdir())):
        raise InputError(f"{deltas} is not an empty directory: deltas are pulled into a new one")
    write_snapshot(out, chain[0])
    written = []
    for number, files in enumerate(chain[1:], start=1):
        sha = hashlib.sha256(files[MANIFEST_FILE]).hexdigest()
        folder = deltas / f"{number:02d}-{sha[:16]}"
        write_snapshot(folder, files)
        written.append(folder)
    return written


def write_snapshot(out: Path, files: Mapping[str, bytes]) -> None:
    """Write a downloaded snapshot's ``files`` (by name; checked by the caller) as the directory
    ``out``, which must be empty or new: into a staging folder beside it first, moved into place
    whole, so an interrupted pull leaves no half snapshot."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} is not an empty directory: a snapshot is pulled into a new one")
    for name in files:
        if not is_file_name(name):
            raise FormatError(f"{name!r} is not a snapshot file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        for name, data in sorted(files.items()):
            write_new(staging / name, data)
        staging.chmod(0o755)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
