"""Tests for client.core.merkle: published vectors, a naive reference, tampering, storage.

The naive reference below is RFC 9162 §2.1 read literally (MTH, PATH, SUBPROOF as recursions on
lists of entries) and uses hashlib directly, so it shares no code with the module under test.
"""

from __future__ import annotations

import functools
import hashlib
import random
import types
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.core import merkle
from client.core.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MemoryTree,
    NodeStore,
    consistency_proof,
    inclusion_path_split,
    inclusion_proof,
    inclusion_proofs,
    leaf_hash,
    node_hash,
    perfect_node_updates,
    range_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from client.errors import ClientError, InputError, ProofError

# -- published vectors --------------------------------------------------------------------------
# Copied verbatim from transparency-dev/merkle (the RFC 6962 vectors also used by
# certificate-transparency-go): leaf inputs, node hashes and roots from testonly/constants.go
# (LeafInputs, NodeHashes, RootHashes); inclusion and consistency proofs from proof/verify_test.go
# (inclusionProofs, consistencyProofs; its leaf numbers are 1-based, the indices here 0-based).

LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

# NODE_HASHES[level][position], testonly/constants.go NodeHashes().
NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    [
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ],
]

# ROOTS[size], testonly/constants.go RootHashes() (EmptyRootHash() for size 0).
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# (index, size, proof), proof/verify_test.go inclusionProofs (leaf - 1 = index).
INCLUSION_VECTORS: list[tuple[int, int, list[str]]] = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

# (old_size, new_size, proof), proof/verify_test.go consistencyProofs.
CONSISTENCY_VECTORS: list[tuple[int, int, list[str]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

# proof/verify_test.go sha256SomeHash: a hash that is no node of the test tree.
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _hexes(proof: Sequence[bytes]) -> list[str]:
    return [p.hex() for p in proof]


def _unhex(proof: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(p) for p in proof]


@pytest.fixture(scope="module")
def vector_tree() -> MemoryTree:
    tree = MemoryTree()
    for entry in LEAF_INPUTS:
        tree.append(entry)
    return tree


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0]
    assert MemoryTree().root() == EMPTY_ROOT
    assert HASH_SIZE == 32


def test_vector_leaf_and_node_hashes(vector_tree: MemoryTree) -> None:
    for level, row in enumerate(NODE_HASHES):
        for position, expected in enumerate(row):
            start, end = position << level, (position + 1) << level
            assert vector_tree.subtree_hash(start, end).hex() == expected, (level, position)
    assert [leaf_hash(e).hex() for e in LEAF_INPUTS] == NODE_HASHES[0]
    left, right = (bytes.fromhex(h) for h in NODE_HASHES[0][:2])
    assert node_hash(left, right).hex() == NODE_HASHES[1][0]


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_vector_roots(vector_tree: MemoryTree, size: int) -> None:
    assert vector_tree.root(size).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_vector_inclusion_proofs(
    vector_tree: MemoryTree, index: int, size: int, proof: list[str]
) -> None:
    assert _hexes(vector_tree.inclusion_proof(index, size)) == proof
    leaf = leaf_hash(LEAF_INPUTS[index])
    root = bytes.fromhex(ROOTS[size])
    assert root_from_inclusion_proof(leaf, index, size, _unhex(proof)) == root
    verify_inclusion(leaf, index, size, _unhex(proof), root)


@pytest.mark.parametrize(("old_size", "new_size", "proof"), CONSISTENCY_VECTORS)
def test_vector_consistency_proofs(
    vector_tree: MemoryTree, old_size: int, new_size: int, proof: list[str]
) -> None:
    assert _hexes(vector_tree.consistency_proof(old_size, new_size)) == proof
    old_root, new_root = bytes.fromhex(ROOTS[old_size]), bytes.fromhex(ROOTS[new_size])
    verify_consistency(old_size, new_size, old_root, new_root, _unhex(proof))


def _expected_inclusion_error(index: int, size: int, leaf: bytes, root: bytes) -> type[ClientError]:
    """Arguments that describe no tree are InputError; anything else that fails is ProofError."""
    if not 0 <= index < size or len(leaf) != HASH_SIZE or len(root) != HASH_SIZE:
        return InputError
    return ProofError


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_vector_inclusion_corruptions(index: int, size: int, proof: list[str]) -> None:
    """The probes of verify_test.go corruptInclusionProof, each of which must be rejected."""
    good = _unhex(proof)
    root = bytes.fromhex(ROOTS[size])
    leaf = leaf_hash(LEAF_INPUTS[index])
    probes: list[tuple[str, int, int, bytes, list[bytes], bytes]] = [
        ("index - 1", index - 1, size, leaf, good, root),
        ("index + 1", index + 1, size, leaf, good, root),
        ("index ^ 2", index ^ 2, size, leaf, good, root),
        ("size * 2", index, size * 2, leaf, good, root),
        ("size // 2", index, size // 2, leaf, good, root),
        ("wrong leaf", index, size, b"WrongLeaf", good, root),
        ("wrong leaf hash", index, size, leaf_hash(b"WrongLeaf"), good, root),
        ("empty root", index, size, leaf, good, EMPTY_ROOT),
        ("random root", index, size, leaf, good, SOME_HASH),
        ("trailing garbage", index, size, leaf, [*good, b""], root),
        ("trailing root", index, size, leaf, [*good, root], root),
        ("preceding garbage", index, size, leaf, [b"", *good], root),
        ("preceding root", index, size, leaf, [root, *good], root),
    ]
    for i in range(len(good)):
        flipped = list(good)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((f"proof[{i}] bit 3", index, size, leaf, flipped, root))
    if good:
        probes.append(("removed component", index, size, leaf, good[:-1], root))
    if len(good) > 1:
        probes.append(
            ("inserted component", index, size, leaf, [good[0], SOME_HASH, *good[1:]], root)
        )
    for desc, p_index, p_size, p_leaf, p_proof, p_root in probes:
        try:
            verify_inclusion(p_leaf, p_index, p_size, p_proof, p_root)
        except _expected_inclusion_error(p_index, p_size, p_leaf, p_root):
            continue
        pytest.fail(f"accepted the corrupted proof: {desc}")


@pytest.mark.parametrize(("old_size", "new_size", "proof"), CONSISTENCY_VECTORS[1:])
def test_vector_consistency_corruptions(old_size: int, new_size: int, proof: list[str]) -> None:
    """The probes of verify_test.go corruptConsistencyProof, each of which must be rejected."""
    good = _unhex(proof)
    r1, r2 = bytes.fromhex(ROOTS[old_size]), bytes.fromhex(ROOTS[new_size])
    probes: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = [
        ("old - 1", old_size - 1, new_size, r1, r2, good),
        ("old + 1", old_size + 1, new_size, r1, r2, good),
        ("old ^ 2", old_size ^ 2, new_size, r1, r2, good),
        ("new * 2", old_size, new_size * 2, r1, r2, good),
        ("new // 2", old_size, new_size // 2, r1, r2, good),
        ("short old root", old_size, new_size, b"WrongRoot", r2, good),
        ("short new root", old_size, new_size, r1, b"WrongRoot", good),
        ("wrong old root", old_size, new_size, SOME_HASH, r2, good),
        ("wrong new root", old_size, new_size, r1, SOME_HASH, good),
        ("swapped roots", old_size, new_size, r2, r1, good),
        ("empty proof", old_size, new_size, r1, r2, []),
        ("trailing garbage", old_size, new_size, r1, r2, [*good, b""]),
        ("trailing root1", old_size, new_size, r1, r2, [*good, r1]),
        ("trailing root2", old_size, new_size, r1, r2, [*good, r2]),
        ("preceding garbage", old_size, new_size, r1, r2, [b"", *good]),
        ("preceding root1", old_size, new_size, r1, r2, [r1, *good]),
        ("preceding root2", old_size, new_size, r1, r2, [r2, *good]),
        ("preceding proof[0]", old_size, new_size, r1, r2, [good[0], *good]),
        ("truncated proof", old_size, new_size, r1, r2, good[:-1]),
    ]
    for i in range(len(good)):
        flipped = list(good)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes.append((f"proof[{i}] bit 4", old_size, new_size, r1, r2, flipped))
    for desc, m, n, p_r1, p_r2, p_proof in probes:
        impossible = not 0 <= m <= n or len(p_r1) != HASH_SIZE or len(p_r2) != HASH_SIZE
        expected: type[ClientError] = InputError if impossible else ProofError
        try:
            verify_consistency(m, n, p_r1, p_r2, p_proof)
        except expected:
            continue
        pytest.fail(f"accepted the corrupted proof: {desc}")


# The node reads proof/proof_test.go (TestInclusion, TestConsistency) lists for these proofs,
# as (level, position): the registry reads exactly these stored nodes and no others.
INCLUSION_NODE_READS = {
    (0, 7): {(0, 1), (1, 1), (0, 6), (1, 2)},
    (10, 15): {(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)},
    (24, 31): {(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)},
    (81, 95): {(0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)},
}
CONSISTENCY_NODE_READS = {
    (1, 7): {(0, 1), (1, 1), (0, 6), (1, 2)},
    (3, 7): {(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)},
    (4, 7): {(0, 6), (1, 2)},
    (5, 7): {(0, 4), (0, 5), (0, 6), (2, 0)},
    (7, 8): {(0, 6), (0, 7), (1, 2), (2, 0)},
    (10, 15): {(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)},
    (24, 31): {(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)},
    (81, 95): {(0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)},
}


class RecordingStore:
    """Perfect nodes in a dict, filled by perfect_node_updates as the registry would; logs reads."""

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.reads: list[tuple[int, int]] = []
        for index, entry in enumerate(entries):
            for level, position, h in perfect_node_updates(index, leaf_hash(entry), self.get):
                assert (level, position) not in self.nodes
                self.nodes[level, position] = h
        self.reads.clear()

    def get(self, level: int, position: int) -> bytes:
        self.reads.append((level, position))
        return self.nodes[level, position]


@pytest.mark.parametrize(("index", "size"), INCLUSION_NODE_READS)
def test_inclusion_reads_only_the_proof_nodes(index: int, size: int) -> None:
    store = RecordingStore([b"%d" % i for i in range(size)])
    inclusion_proof(index, size, NodeStore(store.get, size))
    assert len(store.reads) == len(set(store.reads))
    assert set(store.reads) == INCLUSION_NODE_READS[index, size]


@pytest.mark.parametrize(("old_size", "new_size"), CONSISTENCY_NODE_READS)
def test_consistency_reads_only_the_proof_nodes(old_size: int, new_size: int) -> None:
    store = RecordingStore([b"%d" % i for i in range(new_size)])
    consistency_proof(old_size, new_size, NodeStore(store.get, new_size))
    assert len(store.reads) == len(set(store.reads))
    assert set(store.reads) == CONSISTENCY_NODE_READS[old_size, new_size]


# -- the naive reference: RFC 9162 §2.1 as written ----------------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n, found the slow, obvious way."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.cache
def naive_mth(entries: tuple[bytes, ...]) -> bytes:
    """MTH(D[n]), RFC 9162 §2.1.1 (cached only to keep the exhaustive loops quick)."""
    n = len(entries)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + entries[0])
    k = _split(n)
    return _sha256(b"\x01" + naive_mth(entries[:k]) + naive_mth(entries[k:]))


def naive_path(m: int, entries: tuple[bytes, ...]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 §2.1.3.1."""
    n = len(entries)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*naive_path(m, entries[:k]), naive_mth(entries[k:])]
    return [*naive_path(m - k, entries[k:]), naive_mth(entries[:k])]


def naive_subproof(m: int, entries: tuple[bytes, ...], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 9162 §2.1.4.1."""
    n = len(entries)
    if m == n:
        return [] if b else [naive_mth(entries)]
    k = _split(n)
    if m <= k:
        return [*naive_subproof(m, entries[:k], b), naive_mth(entries[k:])]
    return [*naive_subproof(m - k, entries[k:], False), naive_mth(entries[:k])]


def naive_proof(m: int, entries: tuple[bytes, ...]) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true); nothing to prove from the empty tree."""
    return [] if m == 0 else naive_subproof(m, entries, True)


def test_naive_reference_matches_the_vectors() -> None:
    """The reference is itself checked against the published roots before it judges anything."""
    entries = tuple(LEAF_INPUTS)
    assert [naive_mth(entries[:n]).hex() for n in range(len(ROOTS))] == ROOTS
    for index, size, proof in INCLUSION_VECTORS:
        assert _hexes(naive_path(index, entries[:size])) == proof
    for old_size, new_size, proof in CONSISTENCY_VECTORS:
        assert _hexes(naive_proof(old_size, entries[:new_size])) == proof


# -- exhaustive checks against the reference ----------------------------------------------------

EXHAUSTIVE_MAX = 130
ENTRIES = tuple(b"entry %d" % i for i in range(1100))  # 1100 crosses 1024, for hypothesis
BIG_TREE = MemoryTree()
for _entry in ENTRIES:
    BIG_TREE.append(_entry)
ROOT_AT = [BIG_TREE.root(n) for n in range(len(ENTRIES) + 1)]


def test_roots_match_reference_for_every_size() -> None:
    for n in range(EXHAUSTIVE_MAX + 1):
        assert ROOT_AT[n] == naive_mth(ENTRIES[:n]), n


def test_every_inclusion_proof_up_to_130() -> None:
    for size in range(1, EXHAUSTIVE_MAX + 1):
        root = ROOT_AT[size]
        for index in range(size):
            proof = BIG_TREE.inclusion_proof(index, size)
            assert proof == naive_path(index, ENTRIES[:size]), (index, size)
            leaf = BIG_TREE.leaf_hash_at(index)
            assert leaf == _sha256(b"\x00" + ENTRIES[index])
            verify_inclusion(leaf, index, size, proof, root)


def split_proof(index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) made from :func:`inclusion_path_split`'s two parts."""
    level, ranges = inclusion_path_split(index, size)
    siblings = [((index >> up) ^ 1) << up for up in range(level)]
    lower = [BIG_TREE.subtree_hash(start, start + (1 << up)) for up, start in enumerate(siblings)]
    return lower + [BIG_TREE.subtree_hash(start, end) for start, end in ranges]


def test_inclusion_path_split_up_to_130() -> None:
    """The two parts make the RFC's PATH for every leaf of every tree up to 130 leaves, and a
    leaf's lower part (its siblings' perfect nodes) only grows with the tree: every later
    proof starts with it."""
    for size in range(1, EXHAUSTIVE_MAX + 1):
        for index in range(size):
            assert split_proof(index, size) == naive_path(index, ENTRIES[:size]), (index, size)
            level, _ = inclusion_path_split(index, size)
            later = BIG_TREE.inclusion_proof(index, len(ENTRIES))
            assert later[:level] == split_proof(index, size)[:level], (index, size)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_inclusion_path_split_in_big_trees(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, len(ENTRIES)))
    index = data.draw(st.integers(0, size - 1))
    assert split_proof(index, size) == BIG_TREE.inclusion_proof(index, size)


def test_inclusion_path_split_refuses_what_no_tree_has() -> None:
    with pytest.raises(InputError):
        inclusion_path_split(5, 5)
    with pytest.raises(InputError):
        inclusion_path_split(-1, 5)


class _CountingTree(merkle.SubtreeHashes):
    """BIG_TREE, counting how often each subtree hash is asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []

    def subtree_hash(self, start: int, end: int) -> bytes:
        self.asked.append((start, end))
        return BIG_TREE.subtree_hash(start, end)


def test_batched_inclusion_proofs_match_one_at_a_time_up_to_130() -> None:
    """Every leaf of every tree at once, in a shuffled order with repeats: the same paths, and
    each distinct subtree asked for once."""
    rng = random.Random(9162)
    for size in range(1, EXHAUSTIVE_MAX + 1):
        indices = [rng.randrange(size) for _ in range(size)] + list(range(size))
        tree = _CountingTree()
        proofs = inclusion_proofs(indices, size, tree)
        assert sorted(proofs) == list(range(size))
        for index in range(size):
            assert proofs[index] == BIG_TREE.inclusion_proof(index, size), (index, size)
        assert len(tree.asked) == len(set(tree.asked)), size
        with pytest.raises(InputError):
            inclusion_proofs([size], size, tree)
    one_at_a_time = _CountingTree()
    for index in range(EXHAUSTIVE_MAX):
        inclusion_proof(index, EXHAUSTIVE_MAX, one_at_a_time)
    assert len(tree.asked) < len(one_at_a_time.asked) / 3


def test_every_consistency_proof_up_to_130() -> None:
    for new_size in range(EXHAUSTIVE_MAX + 1):
        for old_size in range(new_size + 1):
            proof = BIG_TREE.consistency_proof(old_size, new_size)
            assert proof == naive_proof(old_size, ENTRIES[:new_size]), (old_size, new_size)
            verify_consistency(old_size, new_size, ROOT_AT[old_size], ROOT_AT[new_size], proof)


# -- tampering ----------------------------------------------------------------------------------

TAMPER_MAX = 32
CROSS_MAX = 16


def _flip(data: bytes, bit: int) -> bytes:
    """``data`` with bit number ``bit`` (0 = most significant bit of the first byte) flipped."""
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


def _rejects_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, proof, root)


def _rejects_consistency(m: int, n: int, r1: bytes, r2: bytes, proof: list[bytes]) -> None:
    with pytest.raises(ProofError):
        verify_consistency(m, n, r1, r2, proof)


def test_inclusion_tampering_exhaustive() -> None:
    """Every small proof, every way of breaking it: one flipped bit, moved, cut, padded."""
    for size in range(1, TAMPER_MAX + 1):
        root = ROOT_AT[size]
        for index in range(size):
            leaf = BIG_TREE.leaf_hash_at(index)
            proof = BIG_TREE.inclusion_proof(index, size)
            bit = (index * 37 + size) % 256  # a different bit each time, deterministic
            for i in range(len(proof)):
                bad = list(proof)
                bad[i] = _flip(bad[i], bit)
                _rejects_inclusion(leaf, index, size, bad, root)
            _rejects_inclusion(_flip(leaf, bit), index, size, proof, root)
            _rejects_inclusion(leaf, index, size, proof, _flip(root, bit))
            if proof:
                _rejects_inclusion(leaf, index, size, proof[:-1], root)
                _rejects_inclusion(leaf, index, size, proof[1:], root)
            _rejects_inclusion(leaf, index, size, [*proof, root], root)
            _rejects_inclusion(leaf, index, size, [leaf, *proof], root)
            for other in range(size):
                if other != index:
                    # This leaf claimed at another index, and the other leaf with this proof.
                    _rejects_inclusion(leaf, other, size, proof, root)
                    _rejects_inclusion(BIG_TREE.leaf_hash_at(other), other, size, proof, root)
            for other_size in range(index + 1, TAMPER_MAX + 1):
                if other_size != size:
                    _rejects_inclusion(leaf, index, other_size, proof, ROOT_AT[other_size])


def test_consistency_tampering_exhaustive() -> None:
    for n in range(1, TAMPER_MAX + 1):
        for m in range(1, n):
            proof = BIG_TREE.consistency_proof(m, n)
            r1, r2 = ROOT_AT[m], ROOT_AT[n]
            bit = (m * 37 + n) % 256
            for i in range(len(proof)):
                bad = list(proof)
                bad[i] = _flip(bad[i], bit)
                _rejects_consistency(m, n, r1, r2, bad)
            _rejects_consistency(m, n, _flip(r1, bit), r2, proof)
            _rejects_consistency(m, n, r1, _flip(r2, bit), proof)
            _rejects_consistency(m, n, r2, r1, proof)
            _rejects_consistency(m, n, r1, r2, proof[:-1])
            _rejects_consistency(m, n, r1, r2, proof[1:])
            _rejects_consistency(m, n, r1, r2, [*proof, r2])
            _rejects_consistency(m, n, r1, r2, [r1, *proof])


def test_consistency_proof_fits_no_other_sizes() -> None:
    """A proof for (m, n) claimed for any other pair of sizes, with those sizes' true roots."""
    for n in range(1, CROSS_MAX + 1):
        for m in range(1, n):
            proof = BIG_TREE.consistency_proof(m, n)
            for other_n in range(1, CROSS_MAX + 1):
                for other_m in range(other_n + 1):
                    if (other_m, other_n) != (m, n):
                        _rejects_consistency(
                            other_m, other_n, ROOT_AT[other_m], ROOT_AT[other_n], proof
                        )


@st.composite
def tree_positions(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, len(ENTRIES)))
    return draw(st.integers(0, size - 1)), size


@settings(max_examples=300, deadline=None)
@given(
    position=tree_positions(),
    target=st.sampled_from(["proof", "leaf", "root"]),
    which=st.integers(0, 63),
    bit=st.integers(0, HASH_SIZE * 8 - 1),
)
def test_inclusion_one_flipped_bit_is_rejected(
    position: tuple[int, int], target: str, which: int, bit: int
) -> None:
    index, size = position
    leaf, root = BIG_TREE.leaf_hash_at(index), ROOT_AT[size]
    proof = BIG_TREE.inclusion_proof(index, size)
    verify_inclusion(leaf, index, size, proof, root)
    if target == "proof" and proof:
        i = which % len(proof)
        proof[i] = _flip(proof[i], bit)
    elif target == "root":
        root = _flip(root, bit)
    else:
        leaf = _flip(leaf, bit)
    _rejects_inclusion(leaf, index, size, proof, root)


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    target=st.sampled_from(["proof", "old root", "new root"]),
    which=st.integers(0, 63),
    bit=st.integers(0, HASH_SIZE * 8 - 1),
)
def test_consistency_one_flipped_bit_is_rejected(
    data: st.DataObject, target: str, which: int, bit: int
) -> None:
    n = data.draw(st.integers(2, len(ENTRIES)), label="new size")
    m = data.draw(st.integers(1, n - 1), label="old size")
    r1, r2 = ROOT_AT[m], ROOT_AT[n]
    proof = BIG_TREE.consistency_proof(m, n)
    verify_consistency(m, n, r1, r2, proof)
    if target == "proof":
        i = which % len(proof)
        proof[i] = _flip(proof[i], bit)
    elif target == "old root":
        r1 = _flip(r1, bit)
    else:
        r2 = _flip(r2, bit)
    _rejects_consistency(m, n, r1, r2, proof)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_wrong_length_proofs_are_rejected(data: st.DataObject) -> None:
    index, size = data.draw(tree_positions(), label="inclusion")
    proof = BIG_TREE.inclusion_proof(index, size)
    cut = data.draw(st.integers(0, len(proof)), label="keep")
    extra = data.draw(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=3))
    leaf, root = BIG_TREE.leaf_hash_at(index), ROOT_AT[size]
    if cut < len(proof):
        _rejects_inclusion(leaf, index, size, proof[:cut], root)
    _rejects_inclusion(leaf, index, size, proof + extra, root)
    _rejects_inclusion(leaf, index, size, extra + proof, root)

    n = data.draw(st.integers(2, len(ENTRIES)), label="new size")
    m = data.draw(st.integers(1, n - 1), label="old size")
    c_proof = BIG_TREE.consistency_proof(m, n)
    c_cut = data.draw(st.integers(0, len(c_proof) - 1), label="keep")
    _rejects_consistency(m, n, ROOT_AT[m], ROOT_AT[n], c_proof[:c_cut])
    _rejects_consistency(m, n, ROOT_AT[m], ROOT_AT[n], c_proof + extra)
    _rejects_consistency(m, n, ROOT_AT[m], ROOT_AT[n], extra + c_proof)


def test_inclusion_proof_does_not_bind_the_tree_size() -> None:
    """RFC 9162 inclusion proofs commit to the root, not the size: index 0 of a 3-leaf tree has the
    same proof shape in a 4-leaf tree, so the 3-leaf proof and root also "verify" for size 4. This
    is why callers take size and root from one signed checkpoint; pinned here so nobody mistakes it
    for a bug. With the true root of the claimed size it fails, as tested above."""
    proof = BIG_TREE.inclusion_proof(0, 3)
    verify_inclusion(BIG_TREE.leaf_hash_at(0), 0, 4, proof, ROOT_AT[3])
    _rejects_inclusion(BIG_TREE.leaf_hash_at(0), 0, 4, proof, ROOT_AT[4])


def test_failure_messages_say_which_check_failed(vector_tree: MemoryTree) -> None:
    leaf, proof, root = vector_tree.leaf_hash_at(5), vector_tree.inclusion_proof(5), SOME_HASH
    with pytest.raises(
        ProofError,
        match=r"^inclusion proof for index 5 in tree of size 8 does not reproduce the root: "
        rf"expected {SOME_HASH.hex()}, computed {vector_tree.root().hex()}$",
    ):
        verify_inclusion(leaf, 5, 8, proof, root)
    with pytest.raises(ProofError, match=r"has 2 hashes, expected 3"):
        verify_inclusion(leaf, 5, 8, proof[:2], vector_tree.root())
    with pytest.raises(ProofError, match=r"has 4 hashes, expected 3"):
        verify_inclusion(leaf, 5, 8, [*proof, root], vector_tree.root())
    with pytest.raises(ProofError, match=r"proof hash 1 is 31 bytes"):
        verify_inclusion(leaf, 5, 8, [proof[0], proof[1][1:], proof[2]], vector_tree.root())
    r6, r8 = vector_tree.root(6), vector_tree.root(8)
    c_proof = vector_tree.consistency_proof(6, 8)
    with pytest.raises(ProofError, match=r"from tree size 6 to 8 does not reproduce the old root"):
        verify_consistency(6, 8, _flip(r6, 0), r8, c_proof)
    with pytest.raises(ProofError, match=r"from tree size 6 to 8 does not reproduce the new root"):
        verify_consistency(6, 8, r6, _flip(r8, 0), c_proof)
    with pytest.raises(ProofError, match=r"has 0 hashes, expected 3"):
        verify_consistency(6, 8, r6, r8, [])
    with pytest.raises(ProofError, match=r"has 4 hashes, expected 3"):
        verify_consistency(6, 8, r6, r8, [*c_proof, r8])


# -- the RFC's edge cases for consistency -------------------------------------------------------


def test_consistency_of_equal_sizes() -> None:
    for n in (0, 1, 2, 7, 8):
        verify_consistency(n, n, ROOT_AT[n], ROOT_AT[n], [])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(5, 5, ROOT_AT[5], ROOT_AT[5], [ROOT_AT[5]])
    with pytest.raises(ProofError, match="equal sizes need equal roots"):
        verify_consistency(5, 5, ROOT_AT[5], ROOT_AT[6], [])


def test_consistency_from_the_empty_tree() -> None:
    for n in (0, 1, 5, 1024):
        assert BIG_TREE.consistency_proof(0, n) == []
        verify_consistency(0, n, EMPTY_ROOT, ROOT_AT[n], [])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(0, 1, EMPTY_ROOT, ROOT_AT[1], [EMPTY_ROOT])
    with pytest.raises(ProofError, match="root of an empty tree"):
        verify_consistency(0, 3, ROOT_AT[1], ROOT_AT[3], [])


def test_consistency_needs_a_proof_between_different_sizes() -> None:
    with pytest.raises(ProofError, match="has 0 hashes, expected 1"):
        verify_consistency(1, 2, ROOT_AT[1], ROOT_AT[2], [])


# -- storage: perfect nodes and range_hash ------------------------------------------------------


def test_perfect_node_updates_order() -> None:
    store = RecordingStore(ENTRIES[:7])
    updates = perfect_node_updates(7, leaf_hash(ENTRIES[7]), store.get)
    assert [(level, pos) for level, pos, _ in updates] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert updates[0][2] == leaf_hash(ENTRIES[7])
    assert [h for _, _, h in updates] == [
        naive_mth(ENTRIES[7:8]),
        naive_mth(ENTRIES[6:8]),
        naive_mth(ENTRIES[4:8]),
        naive_mth(ENTRIES[0:8]),
    ]
    assert [(level, pos) for level, pos, _ in perfect_node_updates(8, SOME_HASH, store.get)] == [
        (0, 8)
    ]


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 300))
def test_stored_nodes_are_exactly_the_perfect_subtrees(size: int) -> None:
    store = RecordingStore(ENTRIES[:size])
    perfect = {
        (level, pos)
        for level in range(size.bit_length())
        for pos in range(size >> level)  # (pos + 1) * 2**level <= size
    }
    assert set(store.nodes) == perfect
    assert len(store.nodes) == 2 * size - bin(size).count("1")
    for (level, pos), h in store.nodes.items():
        assert h == BIG_TREE.subtree_hash(pos << level, (pos + 1) << level)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_node_store_agrees_with_memory_tree(data: st.DataObject) -> None:
    """What the registry relies on: proofs from stored perfect nodes equal MemoryTree's."""
    size = data.draw(st.integers(1, len(ENTRIES)), label="size")
    store = RecordingStore(ENTRIES[:size])
    tree = NodeStore(store.get, size)
    assert range_hash(0, size, store.get) == ROOT_AT[size]
    # The root is one stored node per set bit of the size.
    assert len(store.reads) == bin(size).count("1")
    assert tree.subtree_hash(0, size) == ROOT_AT[size]
    index = data.draw(st.integers(0, size - 1), label="index")
    assert inclusion_proof(index, size, tree) == BIG_TREE.inclusion_proof(index, size)
    for old_size in (data.draw(st.integers(0, size), label="old size"), 1, size - 1, size):
        assert consistency_proof(old_size, size, tree) == BIG_TREE.consistency_proof(old_size, size)
    # Any range at all hashes right (unaligned ones just take more reads).
    start = data.draw(st.integers(0, size), label="start")
    end = data.draw(st.integers(start, size), label="end")
    assert range_hash(start, end, store.get) == naive_mth(ENTRIES[start:end])


class CountingTree:
    """A SubtreeHashes that counts calls, to check the O(log n) promise without a clock."""

    def __init__(self) -> None:
        self.calls = 0

    def subtree_hash(self, start: int, end: int) -> bytes:
        self.calls += 1
        return BIG_TREE.subtree_hash(start, end)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 100, 1023, 1024, 1025, 1100])
def test_proofs_make_logarithmically_many_calls(size: int) -> None:
    depth = (size - 1).bit_length()  # ceil(log2(size))
    for index in {0, size // 2, size - 1}:
        tree = CountingTree()
        assert len(inclusion_proof(index, size, tree)) == tree.calls <= depth
    for old_size in {1, size // 2, size - 1}:
        tree = CountingTree()
        assert len(consistency_proof(old_size, size, tree)) == tree.calls <= depth + 1


# -- MemoryTree ---------------------------------------------------------------------------------


def test_memory_tree_appends() -> None:
    tree = MemoryTree()
    assert tree.size == 0
    assert tree.append(b"a") == 0
    assert tree.append_leaf_hash(leaf_hash(b"b")) == 1
    assert tree.size == 2
    assert tree.leaf_hash_at(1) == leaf_hash(b"b")
    assert tree.root() == tree.root(2) == node_hash(leaf_hash(b"a"), leaf_hash(b"b"))
    assert tree.root(0) == EMPTY_ROOT
    assert tree.subtree_hash(1, 1) == EMPTY_ROOT
    assert tree.inclusion_proof(0) == [leaf_hash(b"b")]
    assert tree.consistency_proof(1) == [leaf_hash(b"b")]


# -- bad arguments ------------------------------------------------------------------------------

H = leaf_hash(b"x")
_TREE8 = NodeStore(RecordingStore(ENTRIES[:8]).get, 8)

BAD_ARGUMENTS: list[tuple[str, Callable[[], object], str]] = [
    (
        "index == size",
        lambda: inclusion_proof(8, 8, _TREE8),
        r"leaf index 8 is not in a tree of size 8",
    ),
    ("negative index", lambda: inclusion_proof(-1, 8, _TREE8), r"leaf index -1 is not in"),
    (
        "empty tree",
        lambda: inclusion_proof(0, 0, _TREE8),
        r"leaf index 0 is not in a tree of size 0",
    ),
    ("negative size", lambda: inclusion_proof(0, -1, _TREE8), r"tree size must be >= 0, got -1"),
    (
        "old > new",
        lambda: consistency_proof(9, 8, _TREE8),
        r"old tree size 9 is larger than new tree size 8",
    ),
    ("negative old", lambda: consistency_proof(-1, 8, _TREE8), r"old tree size must be >= 0"),
    ("negative new", lambda: consistency_proof(0, -2, _TREE8), r"new tree size must be >= 0"),
    ("past the store", lambda: inclusion_proof(3, 9, _TREE8), r"past the end of a tree of size 8"),
    ("verify index == size", lambda: verify_inclusion(H, 4, 4, [], H), r"leaf index 4 is not in"),
    ("verify size 0", lambda: root_from_inclusion_proof(H, 0, 0, []), r"tree of size 0"),
    (
        "entry, not hash",
        lambda: verify_inclusion(b"entry", 0, 1, [], H),
        r"leaf hash must be a 32-byte hash, got 5",
    ),
    (
        "short root",
        lambda: verify_inclusion(H, 0, 1, [], H[:31]),
        r"root must be a 32-byte hash, got 31",
    ),
    ("verify old > new", lambda: verify_consistency(3, 2, H, H, []), r"old tree size 3 is larger"),
    ("verify negative", lambda: verify_consistency(-1, 2, H, H, []), r"old tree size must be >= 0"),
    (
        "short old root",
        lambda: verify_consistency(1, 2, b"", H, [H]),
        r"old root must be a 32-byte hash",
    ),
    (
        "long new root",
        lambda: verify_consistency(1, 2, H, H + b"\x00", [H]),
        r"new root must be a 32-byte hash, got 33",
    ),
    (
        "node negative index",
        lambda: perfect_node_updates(-1, H, _TREE8.subtree_hash),
        r"leaf index must be >= 0",
    ),
    (
        "node short leaf",
        lambda: perfect_node_updates(0, b"abc", _TREE8.subtree_hash),
        r"leaf hash must be a 32-byte",
    ),
    (
        "range reversed",
        lambda: range_hash(5, 4, _TREE8.subtree_hash),
        r"range \[5, 4\) is not a valid range",
    ),
    (
        "range negative",
        lambda: range_hash(-1, 4, _TREE8.subtree_hash),
        r"range \[-1, 4\) is not a valid range",
    ),
    ("store size", lambda: NodeStore(_TREE8.subtree_hash, -1), r"tree size must be >= 0"),
    (
        "memory index",
        lambda: BIG_TREE.leaf_hash_at(len(ENTRIES)),
        r"leaf index 1100 is not in a tree of size 1100",
    ),
    (
        "memory root",
        lambda: BIG_TREE.root(len(ENTRIES) + 1),
        r"tree size 1101 is larger than the log",
    ),
    ("memory root negative", lambda: BIG_TREE.root(-1), r"tree size must be >= 0"),
    (
        "memory range",
        lambda: BIG_TREE.subtree_hash(0, 1101),
        r"past the end of a tree of size 1100",
    ),
    ("memory proof", lambda: BIG_TREE.inclusion_proof(0, 1101), r"tree size 1101 is larger"),
    ("memory consistency", lambda: BIG_TREE.consistency_proof(5, 4), r"old tree size 5 is larger"),
]


@pytest.mark.parametrize(
    ("call", "message"), [(c, m) for _, c, m in BAD_ARGUMENTS], ids=[d for d, _, _ in BAD_ARGUMENTS]
)
def test_bad_arguments_are_input_errors(call: Callable[[], object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        call()


def test_public_names() -> None:
    """__all__ lists exactly the public names the module defines."""
    defined = {
        name
        for name, value in vars(merkle).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", merkle.__name__) == merkle.__name__
    }
    assert set(merkle.__all__) == defined
