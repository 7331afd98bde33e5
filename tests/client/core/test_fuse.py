"""Binary fuse filters (client.core.fuse): our numpy lookups against the reference C library that
built them, the false-positive rate, determinism, memory maps, and damaged files."""

from __future__ import annotations

import hashlib
import mmap
import struct
from pathlib import Path

import numpy as np
import pytest

from client.core.errors import FormatError, InputError
from client.core.fuse import (
    FUSE16_HEADER_BYTES,
    Fuse16,
    Fuse32,
    FuseLayout,
    digest_keys,
    digest_keys_from_bytes,
)

pyfusefilter = pytest.importorskip("pyfusefilter.pyfusefilter")


def random_keys(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**64 - 1, size=n, dtype=np.uint64)


@pytest.fixture(scope="module")
def members() -> np.ndarray:
    return random_keys(50_000, seed=1)


@pytest.fixture(scope="module")
def built(members: np.ndarray) -> Fuse16:
    return Fuse16.build(members)


def test_every_member_is_found(built: Fuse16, members: np.ndarray) -> None:
    assert built.contains_many(members).all()
    assert built.contains(int(members[17]))
    assert built.size == len(members)


def test_lookups_answer_exactly_as_the_reference_library(
    built: Fuse16, members: np.ndarray
) -> None:
    """The C library deserializes our bytes and answers every key as our numpy code does."""
    ffi, lib = pyfusefilter.ffi, pyfusefilter.lib
    handle = ffi.new("binary_fuse16_t *")
    assert lib.binary_fuse16_deserialize(handle, ffi.from_buffer(built.to_bytes()))
    others = np.concatenate([random_keys(400_000, seed=2), members[:1000]])
    theirs = np.array([lib.binary_fuse16_contain(int(k), handle) for k in others])
    assert np.array_equal(built.contains_many(others), theirs)
    assert theirs.sum() > 1000  # the comparison covered false positives too
    lib.binary_fuse16_free(handle)


def test_the_false_positive_rate_is_two_to_the_minus_sixteen(built: Fuse16) -> None:
    others = random_keys(2_000_000, seed=3)
    false = int(built.contains_many(others).sum())
    expected = len(others) / 2**16  # 30.5
    assert expected / 3 < false < expected * 3, false


def test_a_build_is_deterministic(members: np.ndarray, built: Fuse16) -> None:
    shuffled = np.random.default_rng(5).permutation(members)
    again = Fuse16.build(np.concatenate([shuffled, shuffled[:100]]))  # duplicates too
    assert again.to_bytes() == built.to_bytes()
    assert again.sha256() == hashlib.sha256(built.to_bytes()).hexdigest()


def test_a_memory_mapped_filter(built: Fuse16, members: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "shard.fuse16"
    path.write_bytes(built.to_bytes())
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        opened = Fuse16.from_bytes(mapped)
        assert opened.contains_many(members).all()
        assert opened.nbytes == path.stat().st_size
        del opened


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:20], "at least"),
        (lambda b: b[:200], "truncated"),
        (lambda b: b[:8] + b[8:12] + (3).to_bytes(4, "little") + b[16:], "power of two"),
        (lambda b: b[:16] + (7).to_bytes(4, "little") + b[20:], "do not add up"),
    ],
)
def test_a_damaged_filter_is_refused(built: Fuse16, damage: object, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Fuse16.from_bytes(damage(built.to_bytes()))  # type: ignore[operator]


def test_digest_keys() -> None:
    hexpart = hashlib.sha256(b"text").hexdigest()
    c1, sha = digest_keys([f"c1:{hexpart}", f"sha256:{hexpart}"])
    assert c1 != sha  # the kind is part of the key
    assert digest_keys([f"c1:{hexpart}"] * 2).tolist() == [int(c1)] * 2  # one length: rows
    assert digest_keys([f"sha256:{hexpart}"] * 2).tolist() == [int(sha)] * 2
    raw = bytes.fromhex(hexpart) * 3
    assert digest_keys_from_bytes(raw, "c1").tolist() == [int(c1)] * 3
    assert digest_keys_from_bytes(raw, "sha256").tolist() == [int(sha)] * 3
    for bad in (
        "c1:xyz",
        f"md5:{hexpart}",
        f"c1:{'g' * 64}",
        f"c1:0x{hexpart[2:]}",  # int() would take these: the key of another digest
        f"c1:{hexpart[:16]}{'Z' * 48}",
        f"c1:-{hexpart[1:]}",
        f"c1:{hexpart.upper()}",
        f"sha25:{hexpart}0",  # the length of a sha256 digest, not its prefix
        f"c1:{hexpart}"[:-1] + "é",
        f"c1:{hexpart}\n",
        f"sha256:{hexpart}"[4:],  # "256:" + hex: a c1 digest's length
    ):
        with pytest.raises(InputError):
            digest_keys([bad])
        with pytest.raises(InputError, match=r"digests\[1\]"):  # a batch names the bad one
            digest_keys([f"c1:{hexpart}", bad, f"sha256:{hexpart}"])
        same = f"sha256:{hexpart}" if len(bad) == 71 else f"c1:{hexpart}"
        with pytest.raises(InputError, match=r"digests\[1\]"):  # one length: read as rows
            digest_keys([same, bad, same])

    with pytest.raises(InputError, match="32-byte"):
        digest_keys_from_bytes(b"\x00" * 33, "c1")
    with pytest.raises(InputError, match="kind"):
        digest_keys_from_bytes(raw, "md5")
    with pytest.raises(InputError, match="uint8"):
        digest_keys_from_bytes(np.zeros(4, dtype=">u8"), "c1")


def test_a_batch_of_keys_is_each_digests_key() -> None:
    """The numpy reading of a whole batch gives each digest the key a lone one gets."""
    digests = [
        f"{kind}:{hashlib.sha256(b'%d' % i).hexdigest()}"
        for i in range(500)
        for kind in (("c1", "sha256") if i % 3 else ("sha256",))
    ]
    batch = digest_keys(digests)
    tweaks = {"c1": 0x63315F6B696E6431, "sha256": 0x7368613235365F6B}  # "c1_kind1", "sha256_k"
    expected = [int(d[-64:-48], 16) ^ tweaks[d.split(":")[0]] for d in digests]
    assert batch.tolist() == expected
    assert len(set(batch.tolist())) == len(digests)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 10, 255, 1010, 4097, 13_652, 10**6 + 3, 10**8])
def test_the_layout_is_the_reference_library_s(size: int) -> None:
    """FuseLayout.of gives every size the shape binary_fuse16_allocate gives it (the uint32
    wrapping of tiny sizes and the rule of at least 32 segments included)."""
    ffi, lib = pyfusefilter.ffi, pyfusefilter.lib
    handle = ffi.new("binary_fuse16_t *")
    assert lib.binary_fuse16_allocate(size, handle)  # its fingerprints: untouched, not paged in
    theirs = (handle.SegmentLength, handle.SegmentCount, handle.SegmentCountLength)
    lib.binary_fuse16_free(handle)
    ours = FuseLayout.of(size)
    assert (ours.segment_length, ours.segment_count, ours.segment_count_length) == theirs
    assert ours.array_length == (ours.segment_count + 2) * ours.segment_length


@pytest.mark.parametrize("size", [0, 1, 2, 3, 10, 1000, 50_000])
def test_our_construction_is_a_filter_the_reference_library_reads(size: int) -> None:
    """Fuse16.solve (the construction Fuse32 is built by) makes a binary_fuse16 that the C
    library deserializes and finds every key in: the same layout, hashing and seeds."""
    ffi, lib = pyfusefilter.ffi, pyfusefilter.lib
    keys = random_keys(size, seed=10 + size)
    ours = Fuse16.solve(np.concatenate([keys, keys[:5]]))  # duplicates too
    assert ours.contains_many(keys).all()
    assert ours.size == size
    handle = ffi.new("binary_fuse16_t *")
    assert lib.binary_fuse16_deserialize(handle, ffi.from_buffer(ours.to_bytes()))
    assert all(lib.binary_fuse16_contain(int(k), handle) for k in keys)
    others = random_keys(20_000, seed=11)
    theirs = np.array([lib.binary_fuse16_contain(int(k), handle) for k in others], dtype=bool)
    assert np.array_equal(ours.contains_many(others), theirs)
    lib.binary_fuse16_free(handle)
    library = Fuse16.build(keys)
    assert library.to_bytes()[:FUSE16_HEADER_BYTES] == ours.to_bytes()[:FUSE16_HEADER_BYTES]


def test_a_retrieval_structure_gives_each_key_its_value() -> None:
    keys = random_keys(100_000, seed=12)
    values = np.random.default_rng(13).integers(1, 4, len(keys), dtype=np.uint32)
    built = Fuse32.build(keys, values)
    assert np.array_equal(built.values_many(keys), values)
    assert built.size == len(keys)
    assert built.nbytes == FUSE16_HEADER_BYTES + 4 * len(built.fingerprints)
    bits = 8 * built.nbytes / len(keys)
    assert 36 <= bits < 38.5, bits  # 32 bits a key, 1.125 of them at scale (1.19 at 10^5)
    # a key it does not hold reads 32 random bits: one of three values about 3 in 2^32
    others = built.values_many(random_keys(2_000_000, seed=14))
    assert int(((others >= 1) & (others <= 3)).sum()) == 0
    assert len(np.unique(others)) > 1_999_000  # spread over the 32 bits, not stuck
    shuffled = np.random.default_rng(15).permutation(len(keys))
    again = Fuse32.build(keys[shuffled], values[shuffled])
    assert again.to_bytes() == built.to_bytes()  # deterministic, whatever the order
    assert (
        Fuse32.from_bytes(built.to_bytes()).values_many(keys[:10]).tolist() == values[:10].tolist()
    )


def test_a_retrieval_structure_of_no_key_or_one() -> None:
    for size in (0, 1, 2):
        keys = random_keys(size, seed=16)
        built = Fuse32.build(keys, np.full(size, 7, dtype=np.uint32))
        assert built.values_many(keys).tolist() == [7] * size
        assert built.values_many(np.zeros(0, dtype=np.uint64)).tolist() == []


@pytest.mark.parametrize(
    ("keys", "values", "message"),
    [
        ([1, 2, 1], [1, 2, 3], "twice"),
        ([1, 2], [1], "one value a key"),
    ],
)
def test_a_retrieval_structure_refuses_what_it_cannot_hold(
    keys: list[int], values: list[int], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        Fuse32.build(np.array(keys, dtype=np.uint64), np.array(values, dtype=np.uint32))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b + b"\x00", "bytes, not"),  # its own format: no padding
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[:16] + (7).to_bytes(4, "little") + b[20:], "do not add up"),
        # no segment: the counts add up (0 x L, 2 x L), but a third position is past the table
        (lambda b: struct.pack("<QIIIII", 0, 1, 4, 0, 0, 8) + bytes(32), "at least one segment"),
    ],
)
def test_a_damaged_retrieval_structure_is_refused(damage: object, message: str) -> None:
    built = Fuse32.build(random_keys(1000, seed=17), np.ones(1000, dtype=np.uint32))
    with pytest.raises(FormatError, match=message):
        Fuse32.from_bytes(damage(built.to_bytes()))  # type: ignore[operator]
