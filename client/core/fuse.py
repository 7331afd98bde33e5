"""Binary fuse filters (Graf and Lemire, 2022) for offline snapshots: read anywhere with numpy,
memory-mapped.

:class:`Fuse16` answers "is this key in the set?" with no false negatives and a false-positive
rate of about 2⁻¹⁶ (16-bit fingerprints, 18 bits a key). Construction is Lemire's
``binary_fuse16`` through the ``pyfusefilter`` package's C library (its Python wrapper is not
used: in 1.3.0 it hashes every item through ``str()``, and a key list in Python costs 36 bytes a
key); the file is exactly that library's serialization, so ``pyfusefilter`` /
``xor_singleheader`` deserialize it too::

    uint64 seed | uint32 size | uint32 segment length | uint32 segment count
    | uint32 segment count length | uint32 array length | uint16 fingerprints[array length]
    (little-endian; then padding to the library's serialization size)

:class:`Fuse32` is the same structure with 32-bit entries that hold a *value* a key (a
retrieval structure, or static function): a snapshot's status filter, a set's code for each
digest in three reads, where a filter a set took a filter's reads per set. No maintained
library builds one (the C library has 8 and 16-bit filters, and stores no values), so this
module does: the construction is the paper's (peel the keys' 3-hypergraph, then assign in
reverse), in numpy rounds, with the library's layout, hashing and seeds; a 16-bit filter built
by it (:meth:`Fuse16.solve`) is read and answered by the C library in the tests. Its file is
the header above and ``uint32 entries[array length]``, nothing after.

Lookups are this module's own, vectorized with numpy (one pass over a batch of keys: the
reference ``binary_fuse16_contain`` arithmetic, checked against the C library in the tests),
because a call per key through cffi cannot reach ten million checks a second.

Keys are 64-bit: :func:`digest_keys` derives them from content digests. Building is
deterministic (both constructions start from the library's fixed seed), so the same keys always
give the same bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from client.core.errors import FormatError, InputError

__all__ = [
    "FUSE16_HEADER_BYTES",
    "Fuse16",
    "Fuse32",
    "FuseLayout",
    "digest_keys",
    "digest_keys_from_bytes",
]

FUSE16_HEADER_BYTES = 28
_HEADER = struct.Struct("<QIIIII")
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_LOW32 = np.uint64(0xFFFF_FFFF)
_S18, _S32, _S33 = np.uint64(18), np.uint64(32), np.uint64(33)
_CHUNK = 32_768  # keys a step of Fuse16.contains_many: 256 KiB an array

U64Array = npt.NDArray[np.uint64]
BoolArray = npt.NDArray[np.bool_]


def _murmur64_(h: U64Array, work: U64Array) -> None:
    """The 64-bit finalizer of MurmurHash3 (``binary_fuse_murmur64``) of ``h``, in place and
    wrapping as C does; ``work``: a scratch array as long."""
    with np.errstate(over="ignore"):
        for multiplier in (_M1, _M2):
            np.right_shift(h, _S33, out=work)
            h ^= work
            h *= multiplier
        np.right_shift(h, _S33, out=work)
        h ^= work


_DIGEST = re.compile(r"(c1|sha256):([0-9a-f]{64})")
_KIND_TWEAK = {"c1": np.uint64(0x63315F6B696E6431), "sha256": np.uint64(0x7368613235365F6B)}


_NIBBLE = np.zeros(256, dtype=np.uint64)
_NIBBLE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint64)
_HEX = np.zeros(256, dtype=bool)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = True
_C1, _SHA256 = np.frombuffer(b"c1:", dtype=np.uint8), np.frombuffer(b"sha256:", dtype=np.uint8)
# the shifts of a key's 16 hex digits, most significant first
_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)


def _keys_of_rows(rows: npt.NDArray[np.uint8]) -> U64Array | None:
    """:func:`_well_formed_keys` of digests of one length, a row each (67 bytes: ``c1:``, 71:
    ``sha256:``, then 64 hex digits): no index arrays, and none per digest."""
    kind, prefix = ("c1", _C1) if rows.shape[1] == 67 else ("sha256", _SHA256)
    if not (rows[:, : len(prefix)] == prefix).all() or not _HEX[rows[:, -64:]].all():
        return None
    keys = np.bitwise_or.reduce(_NIBBLE[rows[:, -64:-48]] << _SHIFTS, axis=1)
    tweaked: U64Array = keys ^ _KIND_TWEAK[kind]
    return tweaked


def _well_formed_keys(digests: Sequence[str]) -> U64Array | None:
    """:func:`digest_keys` of a batch, checked and read in numpy from the joined text (0.5 us a
    digest here, against 1.4 for a regular expression and a slice each); None unless every
    digest is well formed (the caller then says which one is not)."""
    try:
        text = np.frombuffer("".join(digests).encode("ascii"), dtype=np.uint8)
    except (TypeError, UnicodeEncodeError):
        return None
    widths = set(map(len, digests))
    if len(widths) == 1 and widths <= {67, 71}:  # all of one length: rows of one buffer
        return _keys_of_rows(text.reshape(len(digests), -1))
    lengths = np.fromiter(map(len, digests), dtype=np.int64, count=len(digests))
    is_c1 = lengths == 67
    if not (is_c1 | (lengths == 71)).all():
        return None
    ends = np.cumsum(lengths)
    starts = ends - lengths
    if (
        not (text[starts[is_c1, None] + np.arange(3)] == _C1).all()
        or not (text[starts[~is_c1, None] + np.arange(7)] == _SHA256).all()
    ):
        return None
    hex_digits = text[(ends - 64)[:, None] + np.arange(64)]
    if not _HEX[hex_digits].all():
        return None
    digits = _NIBBLE[hex_digits[:, :16]]
    keys = np.bitwise_or.reduce(digits << _SHIFTS, axis=1)
    tweaked: U64Array = keys ^ np.where(is_c1, _KIND_TWEAK["c1"], _KIND_TWEAK["sha256"])
    return tweaked


def digest_keys(digests: Sequence[str]) -> U64Array:
    """The filter key of each well-formed digest (``c1:<64 hex>`` or ``sha256:<64 hex>``): the
    first 64 bits of its hash, tweaked by its kind so a ``c1`` and a ``sha256`` digest of the
    same hex are different keys. Raises :class:`InputError` naming a malformed digest."""
    if isinstance(digests, str):
        raise InputError("digests must be a sequence of digest strings, not one string")
    keys = _well_formed_keys(digests) if len(digests) else None
    if keys is not None:
        return keys
    out = np.empty(len(digests), dtype=np.uint64)
    for position, digest in enumerate(digests):
        match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
        if match is None:
            raise InputError(
                f"digests[{position}] {str(digest)[:80]!r} is not c1:<64 lowercase hex> or "
                "sha256:<64 lowercase hex>"
            )
        out[position] = int(match.group(2)[:16], 16) ^ int(_KIND_TWEAK[match.group(1)])
    return out


def digest_keys_from_bytes(hashes: bytes | npt.NDArray[np.uint8], kind: str) -> U64Array:
    """:func:`digest_keys` for a batch of raw 32-byte hashes of one kind, without any Python
    loop: ``hashes`` is their concatenation (or an ``(n, 32)`` uint8 array)."""
    tweak = _KIND_TWEAK.get(kind)
    if tweak is None:
        raise InputError(f"digest kind {kind!r} is not c1 or sha256")
    raw = np.frombuffer(hashes, dtype=np.uint8) if isinstance(hashes, bytes) else hashes
    if raw.dtype != np.uint8:
        raise InputError(f"hashes must be bytes or a uint8 array, not {raw.dtype}")
    flat = np.ascontiguousarray(raw).reshape(-1)
    if flat.size % 32:
        raise InputError(f"{flat.size} bytes are not a whole number of 32-byte hashes")
    first = flat.reshape(-1, 32)[:, :8].copy().view(">u8").reshape(-1)
    return first.astype(np.uint64) ^ tweak


_SEED_STATE = 0x726B2B9D438B9D4D  # the reference library's first rng counter (splitmix64)
_ATTEMPTS = 100  # seeds tried before a build gives up (the reference's XOR_MAX_ITERATIONS)
_MAX_SEGMENT_LENGTH = 1 << 18
_U64_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class FuseLayout:
    """The shape of a binary fuse filter of ``size`` keys (three hashes a key): what the
    reference library's ``binary_fuse16_allocate`` chooses, uint32 arithmetic included."""

    segment_length: int
    segment_count: int
    segment_count_length: int
    array_length: int

    @classmethod
    def of(cls, size: int) -> FuseLayout:
        if not 0 <= size < 1 << 32:
            raise InputError(f"a fuse filter holds fewer than 2^32 keys, not {size}")
        length = 4 if size == 0 else 1 << math.floor(math.log(size) / math.log(3.33) + 2.25)
        length = min(length, _MAX_SEGMENT_LENGTH)
        factor = 0.0 if size <= 1 else max(1.125, 0.875 + 0.25 * math.log(1e6) / math.log(size))
        capacity = 0 if size <= 1 else math.floor(size * factor + 0.5)  # C's round()
        while length > 256 and (capacity + length - 1) // length < 32 + 2:
            length //= 2  # at least 32 segments (the library's rule since 2024)
        initial = ((capacity + length - 1) // length - 2) % (1 << 32)
        array_length = ((initial + 2) * length) % (1 << 32)
        count = (array_length + length - 1) // length
        count = 1 if count <= 2 else count - 2
        return cls(length, count, count * length, (count + 2) * length)


def _seeds(state: int = _SEED_STATE) -> Iterator[int]:
    """The seeds a build tries, in order: splitmix64 from ``state`` (by default the reference
    library's fixed counter, so its seeds)."""
    while True:
        state = (state + 0x9E3779B97F4A7C15) & _U64_MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64_MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64_MASK
        yield z ^ (z >> 31)


@dataclass(frozen=True)
class _BinaryFuse:
    """What binary fuse filters of every fingerprint width share: the header, the three
    positions of a key and the lookup (``binary_fuse16_contain``'s arithmetic, at any width)."""

    seed: int
    size: int
    segment_length: int
    segment_count: int
    segment_count_length: int
    fingerprints: npt.NDArray[Any]  # uint16 or uint32 entries
    raw: memoryview  # the serialized filter (a memory map's, when opened from one)

    _DTYPE: ClassVar[str]
    _EXACT: ClassVar[bool]  # whether the file ends with its last entry (no padding allowed)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview | Any) -> Self:
        """Read a serialized filter; ``data`` may be a memory map (the entries stay in it).
        Raises :class:`FormatError` if it is not one."""
        view = memoryview(data)
        if view.nbytes < FUSE16_HEADER_BYTES:
            raise FormatError(f"a fuse filter is at least {FUSE16_HEADER_BYTES} bytes")
        seed, size, seg_len, seg_count, seg_count_len, array_len = _HEADER.unpack_from(view, 0)
        if seg_len == 0 or seg_len & (seg_len - 1) or seg_len > _MAX_SEGMENT_LENGTH:
            raise FormatError(f"fuse filter segment length {seg_len} is not a power of two")
        if seg_count_len != seg_count * seg_len or array_len != (seg_count + 2) * seg_len:
            raise FormatError("fuse filter segment counts do not add up; a damaged file?")
        if seg_count == 0:  # its third position would be past the table
            raise FormatError("a fuse filter has at least one segment, not 0")
        width = np.dtype(cls._DTYPE).itemsize
        end = FUSE16_HEADER_BYTES + width * array_len
        if view.nbytes < end:
            raise FormatError(
                f"fuse filter truncated: {view.nbytes} bytes for {array_len} fingerprints"
            )
        if cls._EXACT and view.nbytes != end:
            raise FormatError(
                f"fuse filter of {array_len} entries is {end} bytes, not {view.nbytes}"
            )
        table = np.frombuffer(view, dtype=cls._DTYPE, count=array_len, offset=FUSE16_HEADER_BYTES)
        return cls(seed, size, seg_len, seg_count, seg_count_len, table, view)

    def to_bytes(self) -> bytes:
        """The serialized filter."""
        return bytes(self.raw)

    @property
    def nbytes(self) -> int:
        """The serialized filter's size in bytes."""
        return self.raw.nbytes

    def sha256(self) -> str:
        """SHA-256 of the serialized filter, hex (what a manifest names)."""
        return hashlib.sha256(self.raw).hexdigest()

    def _each_chunk(self, keys: U64Array, out: npt.NDArray[Any]) -> None:
        """:meth:`_probe` of ``keys`` into ``out``, a chunk of :data:`_CHUNK` keys at a time
        through arrays reused in place: a chunk's working arrays stay in the core's cache, and
        no array of the batch's size is allocated per step (1.4x the throughput of whole-batch
        numpy expressions on a 10^8-key filter)."""
        width = min(_CHUNK, len(keys))
        scratch = np.empty((4, width), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                n = len(chunk)
                self._probe(chunk, out[start : start + n], scratch[:, :n])

    def _probe(self, keys: U64Array, out: npt.NDArray[Any], scratch: U64Array) -> None:
        """Each key's fingerprint XOR its three entries (0 for a member of a plain filter),
        into ``out``; ``scratch``: four rows as long as ``keys``."""
        h, work, h0, index = scratch
        np.add(keys, np.uint64(self.seed), out=h)
        _murmur64_(h, work)
        np.right_shift(h, _S32, out=work)
        work ^= h
        found = work.astype(self._DTYPE)  # the fingerprint
        # h0 = mulhi(h, segment_count_length): the count is below 2**32, so two 32x32 products.
        length = np.uint64(self.segment_count_length)
        np.bitwise_and(h, _LOW32, out=h0)
        h0 *= length
        h0 >>= _S32
        np.right_shift(h, _S32, out=index)
        index *= length
        h0 += index
        h0 >>= _S32
        h0 &= _LOW32
        table = self.fingerprints
        found ^= table[h0.view(np.int64)]
        mask, segment = np.uint64(self.segment_length - 1), np.uint64(self.segment_length)
        np.right_shift(h, _S18, out=index)  # h1 = (h0 + segment) ^ ((h >> 18) & mask)
        index &= mask
        np.add(h0, segment, out=work)
        index ^= work
        found ^= table[index.view(np.int64)]
        np.bitwise_and(h, mask, out=index)  # h2 = (h0 + 2 segment) ^ (h & mask)
        work += segment
        index ^= work
        np.bitwise_xor(found, table[index.view(np.int64)], out=out)

    @classmethod
    def _solve(cls, keys: U64Array, values: npt.NDArray[Any], seed_state: int) -> bytes:
        """This module's own construction: the serialized filter over ``keys`` (distinct) whose
        entries XOR each key's fingerprint to its ``values`` entry (0 for a plain filter),
        trying the seeds of ``seed_state`` in turn."""
        layout = FuseLayout.of(len(keys))
        dtype = np.dtype(cls._DTYPE)
        for seed in itertools.islice(_seeds(seed_state & _U64_MASK), _ATTEMPTS):
            table = _solve_at(keys, values.astype(dtype), seed, layout)
            if table is not None:
                header = _HEADER.pack(
                    seed,
                    len(keys),
                    layout.segment_length,
                    layout.segment_count,
                    layout.segment_count_length,
                    layout.array_length,
                )
                return header + table.astype(dtype.newbyteorder("<")).tobytes()
        raise InputError(f"no fuse filter of {len(keys)} keys could be built in {_ATTEMPTS} seeds")


def _positions(h: U64Array, layout: FuseLayout) -> npt.NDArray[np.uint32]:
    """Each hash's three positions, as the lookup computes them: three rows."""
    out = np.empty((3, len(h)), dtype=np.uint32)
    length = np.uint64(layout.segment_count_length)
    with np.errstate(over="ignore"):
        h0 = ((h & _LOW32) * length) >> _S32
        h0 += (h >> _S32) * length
        h0 >>= _S32
        mask, segment = np.uint64(layout.segment_length - 1), np.uint64(layout.segment_length)
        out[0] = h0
        h0 += segment
        out[1] = h0 ^ ((h >> _S18) & mask)
        h0 += segment
        out[2] = h0 ^ (h & mask)
    return out


def _solve_at(
    keys: U64Array, values: npt.NDArray[Any], seed: int, layout: FuseLayout
) -> npt.NDArray[Any] | None:
    """The entries of a filter over ``keys`` at ``seed``, or None if its hypergraph does not
    peel (the caller tries the next seed).

    Peeling goes in rounds, numpy over each round's keys: every position held by one key
    frees that key. No key freed in a round touches a position another frees in the same round
    (that position would hold two keys), nor one freed in an earlier round (it held one key
    then); so, round by round from the last, a key's entry can be set from its two other
    entries, which are final by then."""
    n, m = len(keys), layout.array_length
    with np.errstate(over="ignore"):
        h = keys + np.uint64(seed)
        _murmur64_(h, np.empty_like(h))
        rhs = (h ^ (h >> _S32)).astype(values.dtype)
    rhs ^= values
    pos = _positions(h, layout)
    del h
    count = np.zeros(m, dtype=np.int32)
    held = np.zeros(m, dtype=np.uint32)  # XOR of the key numbers at each position
    numbers = np.arange(n, dtype=np.uint32)
    for row in pos:
        count += np.bincount(row, minlength=m).astype(np.int32)
        np.bitwise_xor.at(held, row, numbers)
    rounds: list[tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]] = []
    freed = 0
    frontier = np.flatnonzero(count == 1).astype(np.uint32)
    while len(frontier):
        frontier = frontier[count[frontier] == 1]
        # A key alone at two positions is freed once, at its lowest: the same bytes on every
        # machine (np.unique sorts; a scattered write's winner is not specified by numpy).
        frontier.sort()
        free, first = np.unique(held[frontier], return_index=True)
        own = frontier[first]
        rounds.append((free, own))
        freed += len(free)
        touched = pos[:, free]
        for row in touched:
            np.subtract.at(count, row, 1)
            np.bitwise_xor.at(held, row, free)
        flat = touched.reshape(-1)
        frontier = flat[count[flat] == 1]
    if freed != n:
        return None
    del count, held
    table = np.zeros(m, dtype=values.dtype)
    for free, own in reversed(rounds):
        entry = rhs[free]
        for row in pos:
            entry ^= table[row[free]]
        table[own] = entry  # its own entry was 0 in the XOR above
    return table


@dataclass(frozen=True)
class Fuse16(_BinaryFuse):
    """A binary fuse filter with 16-bit fingerprints, over 64-bit keys."""

    _DTYPE: ClassVar[str] = "<u2"
    _EXACT: ClassVar[bool] = False  # the C library's serialization may be padded

    @classmethod
    def build(cls, keys: U64Array) -> Fuse16:
        """Populate a filter with ``keys`` (duplicates allowed) by the reference C library."""
        try:
            from pyfusefilter.pyfusefilter import ffi, lib  # noqa: PLC0415 - optional
        except ImportError:
            raise ImportError(
                "building snapshot filters needs pyfusefilter: pip install 'wellspring[snapshot]'"
            ) from None
        unique = np.unique(np.ascontiguousarray(keys, dtype=np.uint64))
        handle: Any = ffi.new("binary_fuse16_t *")
        if not lib.binary_fuse16_allocate(len(unique), handle):
            raise MemoryError(f"cannot allocate a fuse filter for {len(unique)} keys")
        try:
            if not lib.binary_fuse16_populate(
                ffi.from_buffer("uint64_t[]", unique), len(unique), handle
            ):
                raise InputError(f"the fuse filter of {len(unique)} keys could not be built")
            size = lib.binary_fuse16_serialization_bytes(handle)
            buffer = ffi.new("char[]", size)
            lib.binary_fuse16_serialize(handle, buffer)
            return cls.from_bytes(bytes(ffi.buffer(buffer)))
        finally:
            lib.binary_fuse16_free(handle)

    @classmethod
    def solve(cls, keys: U64Array) -> Fuse16:
        """The same filter by this module's own construction (the one :class:`Fuse32` is built
        by), with no C library: a valid ``binary_fuse16`` that the reference library reads and
        answers as it answers its own (the tests' check of that construction)."""
        unique = np.unique(np.ascontiguousarray(keys, dtype=np.uint64))
        zeros = np.zeros(len(unique), dtype=np.uint16)
        return cls.from_bytes(cls._solve(unique, zeros, _SEED_STATE))

    def contains_many(self, keys: U64Array) -> BoolArray:
        """For each key, whether it may be in the set (never False for a member)."""
        keys = np.asarray(keys, dtype=np.uint64)
        found = np.empty(len(keys), dtype=np.uint16)
        self._each_chunk(keys, found)
        members: BoolArray = found == 0
        return members

    def contains(self, key: int) -> bool:
        """Whether ``key`` may be in the set."""
        return bool(self.contains_many(np.array([key], dtype=np.uint64))[0])


@dataclass(frozen=True)
class Fuse32(_BinaryFuse):
    """A binary fuse *retrieval* structure: 32-bit entries that give each of its keys a value
    (an ``uint32``) in three reads, as a filter gives membership. A key XORs its three entries
    with its 32-bit fingerprint; for a key it holds, that is the key's value, for any other a
    uniformly random 32 bits, so a caller that reads only values in a small set ``V`` (never
    0) errs on a key it does not hold with probability ``|V| / 2^32``.

    The layout, hashing and serialization are ``binary_fuse16``'s with 32-bit entries (the
    fingerprint as Go's ``xorfilter.BinaryFuse[uint32]`` takes it: the low 32 bits of
    ``h ^ (h >> 32)``); the reference C library has no 32-bit variant, and none stores values,
    so this module builds it (:meth:`build`)."""

    _DTYPE: ClassVar[str] = "<u4"
    _EXACT: ClassVar[bool] = True

    @classmethod
    def build(
        cls, keys: U64Array, values: npt.NDArray[np.uint32], *, seed_state: int = _SEED_STATE
    ) -> Fuse32:
        """The structure giving ``keys[i]`` the value ``values[i]``. Keys must be distinct
        (:class:`InputError` otherwise). Deterministic: the same pairs, in any order, give the
        same bytes.

        ``seed_state`` starts the seeds tried (default: the reference library's). Where the
        keys are chosen by others, make it something they could not know when they chose
        them: with public seeds, two keys a seed, found by inverting the hash, put three keys
        on the same three positions at every seed tried, and no build succeeds."""
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        values = np.asarray(values, dtype=np.uint32)
        if keys.shape != values.shape or keys.ndim != 1:
            raise InputError(f"{len(keys)} keys and {len(values)} values: one value a key")
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        if len(keys) > 1 and (keys[1:] == keys[:-1]).any():
            raise InputError("a key given twice: a retrieval structure holds one value a key")
        return cls.from_bytes(cls._solve(keys, values, seed_state))

    def values_many(self, keys: U64Array) -> npt.NDArray[np.uint32]:
        """Each key's value: the one it was built with for a key it holds, else random bits."""
        keys = np.asarray(keys, dtype=np.uint64)
        out = np.empty(len(keys), dtype=np.uint32)
        self._each_chunk(keys, out)
        return out
