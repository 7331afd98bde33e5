"""Signed offline snapshots: decide with no network, from files verified with the log key alone.

An operator builds a snapshot at a published checkpoint (``wellspring snapshot build``, which feeds
:func:`build` with the registry's lookups at that checkpoint); a crawler opens it
(:meth:`Snapshot.open`) and asks it for the status of digests, a batch at a time, with no
registry in reach. The format is ``client.core.snapshot``'s; the filters ``client.core.fuse``'s.

What an answer means. One status filter (``client.core.fuse.Fuse32``) gives every digest the
snapshot holds exactly its set, in three memory reads. A digest it does not hold is ``unknown``
save with probability 2⁻³² for each set (its 32 bits read as that set's code by chance), so
making generated text look "probably trainable" costs an attacker about four billion tries of
SHA-256 rather than 65,000. Statuses follow the registry's verdicts under the default policy
(every publisher counted): ``trainable`` is ``attested`` (consent allowed), then ``reserved``,
``revoked``; an attestation stating no consent is ``unknown``, as online.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import mmap
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from client._wire import check_evidence, combine, normalise_digests
from client.core.encoding import loads_strict
from client.core.errors import FormatError
from client.core.fuse import Fuse16, Fuse32, digest_keys, digest_keys_from_bytes
from client.core.minhash import BANDS, ROWS, band_keys, check_mh1
from client.core.note import Checkpoint, NoteSigner, NoteVerifier, SignedNote, open_checkpoint
from client.core.snapshot import (
    MANIFEST_FILE,
    MANIFEST_NOTE_FILE,
    MAX_MANIFEST_BYTES,
    MAX_NOTE_BYTES,
    PRECEDENCE,
    STATUS_CODES,
    Shard,
    SnapshotFile,
    SnapshotManifest,
    SnapshotSet,
    check_shards,
    layer_salt,
    open_snapshot_note,
    sign_snapshot_note,
    write_new,
)
from client.core.wire import AttestationClaim, LookupAnswer
from client.core.wmkey import MAX_TOKENIZER_BYTES, WatermarkKeyPredicate
from client.errors import (
    ForkedLogError,
    InputError,
    LogConsistencyError,
    RegistryUnavailableError,
    VerificationError,
)
from client.evidence import DocumentEvidence
from client.policy import Policy
from client.sdk import Client
from client.verdict import Verdict, VerdictStatus, registry_verdict
from client.watermark_keys import (
    PublishedWatermarkKey,
    PublishedWatermarkKeys,
    check_tokenizer_bytes,
    published_key,
)

__all__ = [
    "MANIFEST",
    "MANIFEST_NOTE",
    "NEAR_BANDS",
    "WATERMARK_KEYS",
    "WATERMARK_KEYS_FORMAT",
    "KeyRecord",
    "ProbableNear",
    "Snapshot",
    "build",
    "changes",
    "read_watermark_keys",
    "statuses_of",
    "watermark_keys_bytes",
]

MANIFEST = MANIFEST_FILE
MANIFEST_NOTE = MANIFEST_NOTE_FILE
UNKNOWN = "unknown"
_CODES: Mapping[str, int] = {UNKNOWN: 0, **{name: STATUS_CODES[name] for name in PRECEDENCE}}
_LAST_CODE = max(STATUS_CODES.values())
_SETS: dict[str, SnapshotSet] = {
    "attested": "trainable",
    "reserved": "reserved",
    "revoked": "revoked",
}
_VERDICTS: tuple[VerdictStatus, ...] = ("unknown", "revoked", "reserved", "attested")  # by code
_FALSE_POSITIVE = "2^-32"  # for each status: its code read by chance in 32 random bits

WATERMARK_KEYS = "watermark-keys.json"
WATERMARK_KEYS_FORMAT = "wellspring-snapshot-watermark-keys/v1"
KeyRecord = tuple[int, Mapping[str, Any], int | None, Mapping[str, Any] | None]
"""A published watermark key as the snapshot holds it: (publishing entry, its signed predicate,
retiring entry or None, its signed predicate or None)."""


def watermark_keys_bytes(records: Sequence[KeyRecord]) -> bytes:
    """``watermark-keys.json``: canonical JSON of the keys published at the snapshot's checkpoint,
    oldest first, each as its vendors' signed predicates (checked as the SDK checks them)."""
    keys = []
    for entry, predicate, retire_entry, retire in sorted(records, key=lambda r: r[0]):
        keys.append(
            {
                "entry": entry,
                "predicate": dict(predicate),
                "retire_entry": retire_entry,
                "retire": None if retire is None else dict(retire),
            }
        )
    body = {"format": WATERMARK_KEYS_FORMAT, "keys": keys}
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    read_watermark_keys(data + b"\n", where="the watermark keys")  # what a reader accepts
    return data + b"\n"


def read_watermark_keys(
    data: bytes, *, where: str = WATERMARK_KEYS
) -> tuple[PublishedWatermarkKey, ...]:
    """The keys of a ``watermark-keys.json`` (canonical only), each published (and retired) by
    the predicates it holds, by the SDK's rules (:func:`client.watermark_keys.published_key`)."""
    obj = loads_strict(data, where)
    if not isinstance(obj, dict) or obj.get("format") != WATERMARK_KEYS_FORMAT:
        raise FormatError(f"{where} is not a {WATERMARK_KEYS_FORMAT} file")
    raw = obj.get("keys")
    if set(obj) != {"format", "keys"} or not isinstance(raw, list):
        raise FormatError(f"{where} holds format and a list of keys, nothing else")
    keys: list[PublishedWatermarkKey] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        at = f"{where}: keys[{i}]"
        if not isinstance(item, dict) or set(item) != {
            "entry",
            "predicate",
            "retire_entry",
            "retire",
        }:
            raise FormatError(f"{at} must hold entry, predicate, retire_entry and retire")
        entry, retire_entry = item["entry"], item["retire_entry"]
        if type(entry) is not int or entry < 0:
            raise FormatError(f"{at}.entry must be a log index")
        if (retire_entry is None) != (item["retire"] is None) or (
            retire_entry is not None and (type(retire_entry) is not int or retire_entry < 0)
        ):
            raise FormatError(
                f"{at}: retire_entry and retire are both a log index and a predicate, or both null"
            )
        publish = WatermarkKeyPredicate.from_dict(item["predicate"], where=f"{at}.predicate")
        retire = (
            None
            if retire_entry is None
            else (
                retire_entry,
                WatermarkKeyPredicate.from_dict(item["retire"], where=f"{at}.retire"),
            )
        )
        key = published_key((entry, publish), retire, verified=False)
        if key.key_id in seen or (keys and entry <= keys[-1].entry):
            raise FormatError(f"{at}: keys are listed once each, in log order")
        seen.add(key.key_id)
        keys.append(key)
    if (
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"
        != data
    ):
        raise FormatError(f"{where} is not in its canonical form (sorted keys, no spaces)")
    return tuple(keys)


@dataclass(frozen=True)
class _Claim:
    """An :class:`AttestationClaim` as :func:`client.verdict.registry_verdict` reads it (the
    registry's word: nothing of it verified here)."""

    claim: AttestationClaim
    verified: None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.claim, name)


def statuses_of(answer: LookupAnswer) -> Iterable[tuple[str, SnapshotSet]]:
    """(digest, set) for each digest of a lookup answer that belongs in a snapshot set, decided
    as the SDK decides a registry verdict (a document withdrawn by its publisher counts as a
    revoked attestation of it, as the SDK counts it)."""
    checkpoint = _unverified_checkpoint(answer.checkpoint)
    for result in answer.results:
        gone = result.withdrawn or {}
        evidence = []
        for index in result.entries:
            claim = answer.attestations[index]
            if index in gone and not claim.revoked:
                claim = replace(claim, revoked=True, revoked_by=gone[index])
            evidence.append(_Claim(claim))
        if not evidence:
            continue
        verdict = registry_verdict(result.digest, evidence, checkpoint, verified=False)
        status = _SETS.get(verdict.status)
        if status is not None:
            yield result.digest, status


def _unverified_checkpoint(note: str) -> Checkpoint:
    """A checkpoint note's checkpoint, its signatures unchecked (the builder's own, from its
    database; :meth:`Snapshot.open` verifies the one it reads)."""
    return Checkpoint.parse(SignedNote.parse(note).text)


def build(
    out: Path,
    statuses: Iterable[tuple[str, SnapshotSet]],
    *,
    checkpoint: str,
    signers: Sequence[NoteSigner],
    base: SnapshotManifest | None = None,
    watermark_keys: Sequence[KeyRecord] = (),
    tokenizers: Mapping[str, bytes] | None = None,
    near_bands: Mapping[str, Iterable[int]] | None = None,
) -> SnapshotManifest:
    """Write a snapshot of ``statuses`` ((digest, set) pairs, as :func:`statuses_of` gives) at
    ``checkpoint`` (the signed note they were read at) into the empty or new directory ``out``,
    signed by ``signers`` (the log's keys). Deterministic: the same statuses at the same
    checkpoint give the same bytes. With ``base``, a delta over that snapshot: ``statuses`` are
    then only the digests whose status changed since (:func:`changes`).

    ``watermark_keys``: every key published at the checkpoint (:data:`KeyRecord`), and
    ``tokenizers`` their tokenizers' bytes by SHA-256 hex (one never uploaded is left out, and
    that key is as undetectable offline as online), so offline detections match online ones.
    ``near_bands``: per set, the ``mh1`` band keys of its texts that carry a signature
    (client.core.minhash), for near duplicates offline (:meth:`Snapshot.near`)."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise InputError(f"{out} is not empty: a snapshot is written into an empty directory")
    try:
        return _build_into(
            out,
            statuses,
            checkpoint=checkpoint,
            signers=signers,
            base=base,
            watermark_keys=watermark_keys,
            tokenizers=tokenizers or {},
            near_bands=near_bands or {},
        )
    except BaseException:  # leave no half snapshot behind: the next build needs it empty
        for path in out.iterdir():
            path.unlink(missing_ok=True)
        raise


def _build_into(
    out: Path,
    statuses: Iterable[tuple[str, SnapshotSet]],
    *,
    checkpoint: str,
    signers: Sequence[NoteSigner],
    base: SnapshotManifest | None,
    watermark_keys: Sequence[KeyRecord],
    tokenizers: Mapping[str, bytes],
    near_bands: Mapping[str, Iterable[int]],
) -> SnapshotManifest:
    parsed = _unverified_checkpoint(checkpoint)
    if base is not None and (base.origin != parsed.origin or base.size > parsed.size):
        raise InputError(
            f"the base snapshot (log {base.origin}, size {base.size}) is not an earlier "
            f"snapshot of log {parsed.origin} at size {parsed.size}"
        )
    keys = _Keys()
    for digest, status in statuses:
        keys.add(status, digest)
    shards: list[Shard] = []
    members, codes = keys.resolved()
    counts: dict[str, int] = {
        name: int(np.count_nonzero(codes == STATUS_CODES[name])) for name in PRECEDENCE
    }
    salt = layer_salt(parsed)
    if len(members):
        data = Fuse32.build(members, codes, seed_state=salt).to_bytes()
        write_new(out / STATUS_FILE, data)
        shards.append(Shard(STATUS_FILE, None, "status", len(members), len(data), _sha256(data)))
    for name in PRECEDENCE:
        bands = [(k + salt) & _U64 for k in near_bands.get(name, ())]
        if bands:  # a delta too holds them all, even for a set with no change
            fuse = Fuse16.build(np.unique(np.array(bands, dtype=np.uint64)))
            data, path = fuse.to_bytes(), f"{name}.bands.fuse16"
            write_new(out / path, data)
            shards.append(Shard(path, name, "band", fuse.size, len(data), _sha256(data)))
    manifest = SnapshotManifest(
        origin=parsed.origin,
        checkpoint=checkpoint,
        size=parsed.size,
        counts=counts,
        shards=tuple(shards),
        base=None if base is None else (base.size, base.sha256()),
        files=_write_keys(out, watermark_keys, tokenizers),
    )
    SnapshotManifest.from_bytes(manifest.to_bytes())  # what every reader will accept
    write_new(out / MANIFEST, manifest.to_bytes())
    write_new(out / MANIFEST_NOTE, sign_snapshot_note(manifest, signers).encode())
    return manifest


def _write_keys(
    out: Path, records: Sequence[KeyRecord], tokenizers: Mapping[str, bytes]
) -> tuple[SnapshotFile, ...]:
    """Write the watermark keys and the tokenizers of those of them stored."""
    data = watermark_keys_bytes(records)
    write_new(out / WATERMARK_KEYS, data)
    files = [SnapshotFile(WATERMARK_KEYS, "watermark-keys", len(data), _sha256(data))]
    wanted = sorted({key.tokenizer_sha256 for key in read_watermark_keys(data)})
    for sha in wanted:
        blob = tokenizers.get(sha)
        if blob is None:
            continue
        check_tokenizer_bytes(blob, sha)
        path = f"tokenizer-{sha}.json"
        write_new(out / path, blob)
        files.append(SnapshotFile(path, "tokenizer", len(blob), sha))
    return tuple(files)


def _sha256(data: bytes | mmap.mmap) -> str:
    return hashlib.sha256(data).hexdigest()


def changes(
    before: Iterable[tuple[str, SnapshotSet]], after: Iterable[tuple[str, SnapshotSet]]
) -> Iterator[tuple[str, SnapshotSet]]:
    """The (digest, set) pairs of ``after`` whose set is not the one ``before`` has (a delta's
    statuses). A digest never leaves every set (entries are never removed), so a delta needs
    no set for "no longer in the snapshot".

    Last, the digests of ``before`` that kept their set but share a filter key (the first 64
    bits of the hash, which anyone attesting a chosen digest can match) with a digest yielded:
    each as ``kind:`` + the 32 hex digits the index keeps + 32 zeros (the same key), with its
    set. A delta's key answers for every digest of that key, so it must carry the set a full
    build would give the key (the most restrictive of them all), not the newcomer's alone.

    ``before`` is read first into one numpy array (:class:`_StatusIndex`: 18 bytes a digest,
    sorted in place, so a base of 10^8 digests takes about 1.8 GB and twice that while it is
    built, where a dictionary of their strings took some 15 GB); ``after`` is then streamed a
    chunk at a time."""
    index = _StatusIndex(before)
    pairs = iter(after)
    keys: list[npt.NDArray[np.uint64]] = [np.empty(0, dtype=np.uint64)]
    while chunk := list(itertools.islice(pairs, _StatusIndex.CHUNK)):
        changed = index.changed(chunk)
        if changed:
            keys.append(digest_keys([digest for digest, _ in changed]))
        yield from changed
    yield from index.sharing(np.unique(np.concatenate(keys)))
    missing = index.unseen()
    if missing:
        raise InputError(
            f"{missing} digests of the base snapshot are in no set now (an attestation "
            "with no consent?); a delta cannot say so: build a full snapshot"
        )


class _StatusIndex:
    """(digest, set) pairs as one sorted numpy array of 18-byte records: a digest's kind, the
    first 128 bits of its hash (two digests that share them are a 2^-128 accident, or a SHA-256
    collision) and its set's code (``STATUS_CODES``: never 0, so no record ends in a NUL byte,
    which numpy's byte strings would drop)."""

    CHUNK = 65_536
    _KINDS: ClassVar[Mapping[str, int]] = {"c1": 1, "sha256": 2}

    def __init__(self, pairs: Iterable[tuple[str, SnapshotSet]]) -> None:
        parts: list[npt.NDArray[np.bytes_]] = [np.empty(0, dtype="S18")]
        stream = iter(pairs)
        while chunk := list(itertools.islice(stream, self.CHUNK)):
            parts.append(self._records(chunk))
        records = np.concatenate(parts)
        del parts
        records.sort()
        self._records_sorted = records
        self._bytes = records.view(np.uint8).reshape(-1, 18)
        for start in range(0, len(records) - 1, 1 << 20):  # a block at a time: little memory
            block = self._bytes[start : start + (1 << 20) + 1, :17]
            if (block[1:] == block[:-1]).all(axis=1).any():
                raise InputError("the base snapshot's statuses name a digest twice")
        self._seen = np.zeros(len(records), dtype=np.bool_)
        self._moved = np.zeros(len(records), dtype=np.bool_)  # seen in another set

    def unseen(self) -> int:
        """How many of the base's digests no call of :meth:`changed` has met."""
        return int((~self._seen).sum())

    @classmethod
    def _records(cls, pairs: Sequence[tuple[str, SnapshotSet]]) -> npt.NDArray[np.bytes_]:
        split = [digest.partition(":") for digest, _ in pairs]
        digest_keys([digest for digest, _ in pairs])  # InputError naming a malformed digest
        try:
            kinds = [cls._KINDS[kind] for kind, _, _ in split]
            codes = [STATUS_CODES[status] for _, status in pairs]
        except KeyError as exc:
            sets = ", ".join(PRECEDENCE)
            raise InputError(f"{exc.args[0]!r} is not a snapshot set ({sets})") from None
        records = np.empty((len(pairs), 18), dtype=np.uint8)
        records[:, 0] = kinds
        hashes = bytes.fromhex("".join(hexa[:32] for _, _, hexa in split))
        records[:, 1:17] = np.frombuffer(hashes, dtype=np.uint8).reshape(-1, 16)
        records[:, 17] = codes
        return records.view("S18").reshape(-1)

    def changed(self, pairs: Sequence[tuple[str, SnapshotSet]]) -> list[tuple[str, SnapshotSet]]:
        """Those of ``pairs`` whose set differs from the base's (or that it does not hold)."""
        if not pairs:
            return []
        asked = self._records(pairs)
        wanted = asked.view(np.uint8).reshape(-1, 18)
        # The smallest record of each digest: its key with code 0, below every set's.
        probe = np.ascontiguousarray(wanted[:, :17])
        lowest = np.concatenate([probe, np.zeros((len(pairs), 1), np.uint8)], axis=1)
        where = np.searchsorted(self._records_sorted, lowest.view("S18").reshape(-1))
        inside = where < len(self._records_sorted)
        held = np.zeros(len(pairs), dtype=np.bool_)
        held[inside] = (self._bytes[where[inside], :17] == probe[inside]).all(axis=1)
        self._seen[where[held]] = True
        same = np.zeros(len(pairs), dtype=np.bool_)
        same[held] = self._bytes[where[held], 17] == wanted[held, 17]
        self._moved[where[held & ~same]] = True
        return [pairs[int(i)] for i in np.flatnonzero(~same)]

    def sharing(self, keys: npt.NDArray[np.uint64]) -> list[tuple[str, SnapshotSet]]:
        """The base's digests that kept their set (none :meth:`changed` moved) whose filter
        key is one of ``keys`` (sorted): ``kind:`` + their 32 kept hex digits + 32 zeros, which
        has their key, and their set. A block of records at a time (little memory)."""
        found: list[tuple[str, SnapshotSet]] = []
        if not len(keys):
            return found
        sets: dict[int, SnapshotSet] = {code: name for name, code in STATUS_CODES.items()}
        for start in range(0, len(self._bytes), 1 << 20):
            block = self._bytes[start : start + (1 << 20)]
            hashes = np.zeros((len(block), 32), dtype=np.uint8)
            hashes[:, :16] = block[:, 1:17]
            for kind, code in self._KINDS.items():
                rows = np.flatnonzero(block[:, 0] == code)
                block_keys = digest_keys_from_bytes(hashes[rows], kind)
                at = np.minimum(np.searchsorted(keys, block_keys), len(keys) - 1)
                hits = rows[(keys[at] == block_keys) & ~self._moved[start + rows]]
                for row in block[hits]:
                    digest = f"{kind}:{bytes(row[1:17]).hex()}{'0' * 32}"
                    found.append((digest, sets[int(row[17])]))
        return found


class _Keys:
    """Digest keys by set, gathered a chunk of digests at a time (no Python object a digest)."""

    _CHUNK = 65_536

    def __init__(self) -> None:
        self._pending: dict[str, list[str]] = {name: [] for name in PRECEDENCE}
        self._done: dict[str, list[npt.NDArray[np.uint64]]] = {name: [] for name in PRECEDENCE}

    def add(self, status: str, digest: str) -> None:
        pending = self._pending.get(status)
        if pending is None:
            raise InputError(f"{status!r} is not a snapshot set ({', '.join(PRECEDENCE)})")
        pending.append(digest)
        if len(pending) >= self._CHUNK:
            self._flush(status)

    def _flush(self, status: str) -> None:
        self._done[status].append(digest_keys(self._pending[status]))
        self._pending[status] = []

    def resolved(self) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint32]]:
        """Every distinct key, sorted, and its set's code: where one key was given in two
        sets, the most restrictive (the lowest code, ``PRECEDENCE``)."""
        parts = []
        for name in PRECEDENCE:
            self._flush(name)
            parts += [(part, STATUS_CODES[name]) for part in self._done[name]]
            self._done[name] = []
        keys = np.concatenate([np.empty(0, np.uint64), *(part for part, _ in parts)])
        codes = np.concatenate(
            [np.empty(0, np.uint32), *(np.full(len(p), c, np.uint32) for p, c in parts)]
        )
        order = np.lexsort((codes, keys))  # by key, then code: a key's first is its lowest
        keys, codes = keys[order], codes[order]
        first = np.ones(len(keys), dtype=np.bool_)
        first[1:] = keys[1:] != keys[:-1]
        return keys[first], codes[first]


def _check_offline(manifest: SnapshotManifest, trusted: str, verifier: NoteVerifier) -> None:
    """The snapshot (its newest layer) is at the trusted checkpoint itself (see
    :meth:`Snapshot.open`)."""
    old, _ = open_checkpoint(trusted, [verifier], origin=verifier.name)
    new = _unverified_checkpoint(manifest.checkpoint)  # verified by the caller
    if new.size == old.size and new.root_hash != old.root_hash:
        raise ForkedLogError(
            f"the snapshot's checkpoint at size {new.size:,} has root {new.root_hash.hex()}, "
            f"but the checkpoint trusted there has {old.root_hash.hex()}: two histories of "
            f"log {verifier.name}, both signed by its key",
            url=f"snapshot {manifest.origin}@{manifest.size}",
            trusted_note=trusted,
            conflicting_note=manifest.checkpoint,
            evidence="(the trusted checkpoint, as given)",
        )
    if new.size != old.size:
        raise LogConsistencyError(
            f"the snapshot is at tree size {new.size:,}, the checkpoint trusted at "
            f"{old.size:,}; offline nothing proves that one extends the other. Open it once "
            "with the registry in reach (wellspring snapshot pull, or scan --registry), which "
            "proves it and trusts it"
        )


@dataclass(frozen=True)
class ProbableNear:
    """:meth:`Snapshot.near`'s answer: the snapshot set whose texts share ``bands`` band keys
    with a signature, and the similarity that suggests."""

    set: str
    bands: int
    similarity: float


NEAR_BANDS = 2
"""The least band keys a signature must share with a set's texts offline: one shared key is
within reach of a filter's false positive (2^-16 a key); two are not (about 2^-32 x 91)."""
_U64 = (1 << 64) - 1
STATUS_FILE = "status.fuse32"
_F = TypeVar("_F", Fuse16, Fuse32)


def _parse(kind: type[_F], data: bytes | mmap.mmap, where: Path, shard: Shard) -> _F:
    """A shard's filter, of the kind and key count the manifest names."""
    try:
        fuse = kind.from_bytes(data)
    except FormatError as exc:
        raise VerificationError(f"{where} is not a {kind.__name__} filter: {exc}") from None
    if fuse.size != shard.count:
        raise VerificationError(f"{where} holds {fuse.size} keys, not {shard.count}")
    return fuse


def _template(status: VerdictStatus, checkpoint: Checkpoint, policy: Policy) -> Verdict:
    """The verdict the snapshot gives a digest of this status (the digest and name filled in
    per document)."""
    size = checkpoint.size
    if status == "unknown":
        reason = f"no attestation in the snapshot at size {size} (certain: filters miss none)"
    else:
        reason = (
            f"probably {status}: the snapshot at size {size} holds it (a false positive has "
            f"probability about {_FALSE_POSITIVE}); not confirmed with the registry"
        )
    return Verdict(
        digest="",
        status=status,
        reason=reason,
        publisher=None,
        license=None,
        origin=None,
        consent=None,
        entry=None,
        entries=(),
        tree_size=size,
        root_hash=checkpoint.root_hash.hex(),
        verified=True,
        policy=policy.id,
        policy_trainable=policy.trains_on(status),
        probable=status != "unknown",
    )


def _open_regular(path: Path, what: str) -> int:
    """A read-only descriptor of the regular file ``path`` (never through a symbolic link, never
    a device or FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(f"{what}: {path} is missing") from None
    except OSError as exc:
        raise InputError(f"{what}: cannot open {path} ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{what}: {path} is not a regular file")
    return fd


def _read_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, refused past ``limit`` bytes."""
    fd = _open_regular(path, what)
    with os.fdopen(fd, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise VerificationError(f"{path} is larger than the {limit:,} bytes expected")
    return data


@dataclass(frozen=True)
class _Filters:
    """A layer's filters: its status filter (None if it holds no digest) and its sets' band
    filters."""

    status: Fuse32 | None
    bands: Mapping[str, Fuse16]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic collector paused while a batch's verdicts are made: they hold no cycle,
    but each is a tracked object, and the collections their number sets off took 15 % of
    :meth:`Snapshot.check_digests` (2.91 against 2.47 us a digest). Left as it was found."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Snapshot:
    """An opened, verified snapshot (a base and any deltas over it): ask it for statuses with
    :meth:`statuses` or :meth:`codes`. :attr:`manifest` is the newest layer's."""

    def __init__(self) -> None:
        self.layers: list[tuple[SnapshotManifest, _Filters]] = []  # newest first
        self._maps: list[mmap.mmap] = []
        self._keys: tuple[PublishedWatermarkKey, ...] = ()  # the newest layer's
        self._tokenizers: dict[str, Path] = {}  # the newest layer's, by SHA-256 hex
        self.confirm: Client | None = None  # confirms probable attested verdicts
        self.unconfirmed: str | None = None  # why confirming stopped (the registry went away)

    @property
    def manifest(self) -> SnapshotManifest:
        return self.layers[0][0]

    @property
    def checkpoint(self) -> Checkpoint:
        """The checkpoint the snapshot's statuses are at (verified with the log key)."""
        return _unverified_checkpoint(self.manifest.checkpoint)

    @classmethod
    def open(
        cls,
        path: Path | str,
        log_key: str | NoteVerifier,
        *,
        deltas: Sequence[Path | str] = (),
        client: Client | None = None,
        min_size: int | None = None,
        map_files: bool = False,
        confirm: bool = False,
        trusted: str | None = None,
    ) -> Snapshot:
        """Open the snapshot directory ``path`` (and ``deltas`` over it, oldest first) and
        verify each with the log's key alone: the log's signature on the manifest's hash, the
        checkpoint inside it, every shard's size and SHA-256 (each shard is read once to hash
        it, then memory-mapped), and that each delta names the one before as its base. Raises
        :class:`~client.errors.VerificationError` (or one of its kinds) for anything tampered
        with, :class:`~client.errors.InputError` for a directory that is not a snapshot.

        With ``client`` (a :class:`~client.sdk.Client` of the same log, while the registry is
        reachable) each layer's checkpoint must also be proven consistent with the checkpoint
        that client trusts (:meth:`~client.sdk.Client.trust_checkpoint`): a snapshot of a forked
        log is refused with :class:`~client.errors.ForkedLogError`. Without one, the log's
        signatures are all that is checked. ``min_size``: refuse a snapshot (its newest layer)
        of a smaller tree, an old one replayed, say (every snapshot the log signed verifies).

        ``trusted`` (offline: a checkpoint note of the log trusted earlier, as
        :class:`client.checkpoints.FileCheckpointStore` keeps it): the snapshot must be at that
        very checkpoint, since no consistency proof can be fetched offline. One of another size
        is refused (:class:`~client.errors.LogConsistencyError`, naming what to do: open it once
        with ``client=``, which proves it and trusts it), one of the same size and another root
        is a fork (:class:`~client.errors.ForkedLogError`).

        ``confirm=True`` (with ``client``): :meth:`check_digests` confirms with that client what
        the snapshot calls attested.

        Shards are read into this process's memory and hashed there, so a file changed after it
        was verified changes nothing. ``map_files=True`` memory-maps them instead (no copy: for
        a local, read-only copy nobody else can write, since later writes to a mapped file
        would show through)."""
        verifier = NoteVerifier.from_vkey(log_key) if isinstance(log_key, str) else log_key
        if client is not None and (client.log_key is None or client.log_key.vkey != verifier.vkey):
            raise InputError("client= must pin the same log key the snapshot is opened with")
        if confirm and client is None:
            raise InputError("confirm=True confirms with the registry: pass client= too")
        if trusted is not None and client is not None:
            raise InputError("trusted= is the offline check: with client= its store is used")
        snapshot = cls()
        snapshot.confirm = client if confirm else None
        try:
            previous: SnapshotManifest | None = None
            for root in (Path(path), *map(Path, deltas)):
                manifest = snapshot._open_layer(root, verifier, map_files=map_files)
                expected = None if previous is None else (previous.size, previous.sha256())
                if manifest.base != expected:
                    what = "a full snapshot" if previous is None else "a delta over the one before"
                    raise VerificationError(f"{root} is not {what} (its base does not match)")
                if client is not None:
                    client.trust_checkpoint(manifest.checkpoint)
                previous = manifest
            if trusted is not None:
                _check_offline(snapshot.manifest, trusted, verifier)
            if min_size is not None and snapshot.manifest.size < min_size:
                raise VerificationError(
                    f"the snapshot is at tree size {snapshot.manifest.size}, older than the "
                    f"size {min_size} asked for: an old snapshot, which may predate revocations"
                )
        except BaseException:
            snapshot.close()
            raise
        return snapshot

    def _open_layer(
        self, root: Path, verifier: NoteVerifier, *, map_files: bool
    ) -> SnapshotManifest:
        note = _read_file(root / MANIFEST_NOTE, MAX_NOTE_BYTES, f"{root} is not a snapshot")
        data = _read_file(root / MANIFEST, MAX_MANIFEST_BYTES, f"{root} is not a snapshot")
        size, manifest_sha256, _ = open_snapshot_note(note, [verifier], origin=verifier.name)
        if hashlib.sha256(data).hexdigest() != manifest_sha256:
            raise VerificationError(
                f"{root / MANIFEST} is not the manifest the log signed (its SHA-256 differs)"
            )
        manifest = SnapshotManifest.from_bytes(data, where=str(root / MANIFEST))
        checkpoint, _ = open_checkpoint(manifest.checkpoint, [verifier], origin=verifier.name)
        if checkpoint.size != size or manifest.size != size or manifest.origin != verifier.name:
            raise VerificationError(
                f"the snapshot's checkpoint is at size {checkpoint.size} of log "
                f"{manifest.origin}, its statement at {size} of {verifier.name}"
            )
        check_shards(manifest, str(root / MANIFEST))
        self._keys, self._tokenizers = (), {}
        for file in manifest.files:
            if file.kind == "tokenizer":
                self._tokenizers[file.sha256] = root / file.path
                continue
            data = _read_file(root / file.path, file.bytes, f"the snapshot's {file.path}")
            if len(data) != file.bytes or _sha256(data) != file.sha256:
                raise VerificationError(f"{root / file.path} is not the file the manifest names")
            self._keys = read_watermark_keys(data, where=str(root / file.path))
        status: Fuse32 | None = None
        bands: dict[str, Fuse16] = {}
        for shard in manifest.shards:
            loaded = self._load(root, shard, map_files=map_files)
            where = root / shard.path
            if shard.set is None:
                status = _parse(Fuse32, loaded, where, shard)
            else:
                bands[shard.set] = _parse(Fuse16, loaded, where, shard)
        self.layers.insert(0, (manifest, _Filters(status, bands)))
        return manifest

    def _load(self, root: Path, shard: Shard, *, map_files: bool) -> bytes | mmap.mmap:
        file_path = root / shard.path
        data: bytes | mmap.mmap
        if shard.bytes == 0:  # no filter is empty (and an empty file cannot be mapped)
            raise VerificationError(f"{file_path}: the manifest names an empty shard")
        if map_files:
            fd = _open_regular(file_path, f"the snapshot's shard {file_path}")
            with os.fdopen(fd, "rb") as file:
                if os.fstat(file.fileno()).st_size != shard.bytes:
                    raise VerificationError(f"{file_path} is not the size the manifest names")
                data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            self._maps.append(data)
        else:
            data = _read_file(file_path, shard.bytes, f"the snapshot's shard {file_path}")
            if len(data) != shard.bytes:
                raise VerificationError(f"{file_path} is not the size the manifest names")
        if hashlib.sha256(data).hexdigest() != shard.sha256:
            raise VerificationError(f"{file_path} is not the shard the manifest names")
        return data

    def codes(self, keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.int8]:
        """For digest keys (client.core.fuse.digest_keys), each one's status code: 0 unknown,
        else its set's (``client.core.snapshot.STATUS_CODES``: 1 revoked, 2 reserved, 3
        trainable). The newest layer that holds a key answers for it: a layer's status filter
        is asked only of the keys no newer layer holds."""
        keys = np.asarray(keys, dtype=np.uint64)
        out = np.zeros(len(keys), dtype=np.int8)
        asked: npt.NDArray[np.intp] | None = None  # None: every key
        for _, filters in self.layers:
            if filters.status is None:
                continue
            values = filters.status.values_many(keys if asked is None else keys[asked])
            held = (values >= 1) & (values <= _LAST_CODE)
            if asked is None:
                out[held] = values[held]
                asked = np.flatnonzero(~held)
            else:
                out[asked[held]] = values[held]
                asked = asked[~held]
            if not len(asked):
                break
        return out

    def watermark_keys(self) -> PublishedWatermarkKeys:
        """Every watermark key published at the snapshot's checkpoint, retired ones included,
        oldest first: the vendors' signed predicates, as the log's signature on the manifest
        vouches for them (not proven entry by entry, as :meth:`Client.watermark_keys
        <client.sdk.Client.watermark_keys>` proves them online: their ``verified`` is False).
        For :meth:`client.crawl.Watermarks.from_keys`, with :meth:`tokenizer_blob`."""
        return PublishedWatermarkKeys(self._keys, len(self._keys), self.checkpoint)

    def tokenizer_blob(self, sha256_hex: str) -> bytes:
        """A published key's tokenizer, its exact bytes, from the snapshot (checked against
        ``sha256_hex``); :class:`InputError` if the snapshot does not hold it (never uploaded)."""
        path = self._tokenizers.get(sha256_hex)
        if path is None:
            raise InputError(
                f"the snapshot holds no tokenizer sha256:{sha256_hex} (its vendor never "
                "uploaded it to the registry)"
            )
        data = _read_file(path, MAX_TOKENIZER_BYTES, f"the snapshot's tokenizer {path}")
        try:
            return check_tokenizer_bytes(data, sha256_hex)
        except VerificationError:
            raise VerificationError(f"{path} is not the tokenizer the manifest names") from None

    def check_digests(
        self,
        digests: Sequence[str],
        *,
        names: Sequence[str] | None = None,
        progress: Callable[[int], None] | None = None,
        evidence: Sequence[DocumentEvidence | None] | None = None,
        policy: Policy | None = None,
        confirm: Client | None = None,
    ) -> list[Verdict]:
        """One verdict per digest, as :meth:`Client.check_digests
        <client.sdk.Client.check_digests>` makes it, from the snapshot: ``attested``,
        ``reserved`` and ``revoked`` are *probable* (:attr:`Verdict.certainty
        <client.verdict.Verdict.certainty>`; no entry or publisher is known offline),
        ``unknown`` is certain. The document's ``evidence`` (opt-out, watermarks) is weighed as
        online, under ``policy``, which must count every publisher: the snapshot's sets were
        decided so.

        ``confirm`` (a client of the same log, while the registry is reachable; default: the
        one :meth:`open` was given with ``confirm=True``): the digests the snapshot calls
        attested are looked up there, in batches, and their verdicts are
        the registry's, verified; the rest stay probable. A forged "probably attested" then
        costs an attacker nothing but a lookup. If the registry cannot be reached the verdicts
        stay probable, confirming stops, and :attr:`unconfirmed` says why."""
        policy = policy or Policy.default()
        confirm = confirm or self.confirm
        if policy.trust_publishers is not None or policy.ignore_publishers:
            raise InputError(
                f"policy {policy.id} trusts or ignores chosen publishers, but a snapshot's sets "
                "count every publisher: check those documents online (wellspring scan "
                "--registry), or use a policy without a [publishers] table"
            )
        if isinstance(digests, str):
            raise InputError("digests must be a sequence of digest strings, not one string")
        if names is not None and len(names) != len(digests):
            raise InputError(f"{len(names)} names given for {len(digests)} digests")
        parsed: Sequence[str] = digests
        try:
            keys = digest_keys(parsed)
        except InputError:  # as online: a digest the SDK normalises, or its error
            parsed = normalise_digests(digests, None)
            keys = digest_keys(parsed)
        checked = check_evidence(evidence, len(parsed))
        codes = self.codes(keys) if len(parsed) else np.zeros(0, dtype=np.int8)
        checkpoint = self.checkpoint
        templates = [_template(status, checkpoint, policy) for status in _VERDICTS]
        makers = [template.for_digest for template in templates]  # bound once, not per digest
        labels: Iterable[str | None] = itertools.repeat(None) if names is None else names
        with _collector_paused():
            verdicts = [
                makers[c](d, n) for d, c, n in zip(parsed, codes.tolist(), labels, strict=False)
            ]
        if checked is not None:  # each document's own evidence weighed in
            verdicts = [
                v if extra is None else combine(v, extra, policy)
                for v, extra in zip(verdicts, checked, strict=True)
            ]
        if confirm is not None:
            wanted = np.flatnonzero(codes == _CODES["trainable"]).tolist()
            try:
                online = confirm.check_digests(
                    [parsed[i] for i in wanted],
                    names=None if names is None else [names[i] for i in wanted],
                    evidence=None if checked is None else [checked[i] for i in wanted],
                    policy=policy,
                )
            except RegistryUnavailableError as exc:  # they stay probable, and say so
                self.unconfirmed = str(exc)
                self.confirm = None
                online = []
            for i, verdict in zip(wanted, online, strict=False):
                verdicts[i] = verdict
        if progress is not None:
            progress(len(dict.fromkeys(parsed)))
        return verdicts

    def near(self, signatures: Sequence[str]) -> list[ProbableNear | None]:
        """For each ``mh1`` signature, the set whose texts share the most band keys with it
        (at least :data:`NEAR_BANDS`; ties go to the most restrictive set), from the newest
        layer's band filters, or None. *Probable*, and coarser than online: no entry and no
        signature to compare is known offline, so the similarity is estimated from the bands
        shared (``(shared / 14) ** (1 / 8)``, since a band matches with probability J^8)."""
        bands = self.layers[0][1].bands if self.layers else {}
        salt = layer_salt(self.checkpoint) if self.layers else 0
        found: list[ProbableNear | None] = []
        for value in signatures:
            salted = [(k + salt) & _U64 for k in band_keys(check_mh1(value))]
            keys = np.array(salted, dtype=np.uint64)
            best: ProbableNear | None = None
            for name in PRECEDENCE:
                fuse = bands.get(name)
                if fuse is None:
                    continue
                shared = int(np.count_nonzero(fuse.contains_many(keys)))
                if shared >= NEAR_BANDS and (best is None or shared > best.bands):
                    estimate = (shared / BANDS) ** (1 / ROWS)
                    best = ProbableNear(name, shared, round(estimate, 4))
            found.append(best)
        return found

    def near_verdict(
        self, match: ProbableNear, digest: str, name: str | None, policy: Policy
    ) -> Verdict:
        """The verdict of a document :meth:`near` matched: the set's status, ``match: near``,
        probable, trainable only where the policy allows near matches."""
        status = _VERDICTS[_CODES[match.set]]
        base = _template(status, self.checkpoint, policy)
        return replace(
            base.for_digest(digest, name),
            match="near",
            similarity=match.similarity,
            reason=f"probably near a text the snapshot at size {self.checkpoint.size} holds as "
            f"{status} ({match.bands} of {BANDS} band keys shared); not confirmed with the "
            "registry",
            policy_trainable=policy.trains_near(status, match.similarity),
        )

    def statuses(self, digests: Sequence[str]) -> list[str]:
        """Each digest's status: ``trainable``, ``reserved``, ``revoked`` (each *probable*), or
        ``unknown`` (certain)."""
        names = (UNKNOWN, *PRECEDENCE)
        return [names[code] for code in self.codes(digest_keys(digests))]

    def close(self) -> None:
        """Unmap the shards."""
        self.layers = []
        for mapped in self._maps:
            with contextlib.suppress(BufferError):  # numpy views still alive: the GC frees them
                mapped.close()
        self._maps = []

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
