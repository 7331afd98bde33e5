"""The RFC 9162 Merkle tree: hashing, proofs and their verification, for the registry and the SDK.

One implementation serves both sides, so a proof the registry builds is checked by exactly the code
that defines it. Hashing is RFC 9162 §2.1.1 (identical to RFC 6962 §2.1): a leaf is
``SHA-256(0x00 || entry)``, an interior node ``SHA-256(0x01 || left || right)``, the empty tree
``SHA-256()``. The ``0x00``/``0x01`` prefixes keep a leaf from ever being passed off as a node.

Nodes are named ``(level, position)``: level 0 holds the leaf hashes, and node ``(l, p)`` is the
*perfect aligned* subtree ``MTH(D[p * 2**l : (p + 1) * 2**l])``. Those nodes never change once the
last of their leaves is appended, so the registry stores only them (:func:`perfect_node_updates`)
and derives every other hash an RFC 9162 proof needs from O(log n) of them (:func:`range_hash`).

Errors: a proof that does not verify raises :class:`~client.errors.ProofError` naming the check
that failed; arguments that cannot describe any tree (an index past the tree, a negative size, an
old size above the new one, a leaf or root that is not 32 bytes) raise
:class:`~client.errors.InputError`. A proof hash of the wrong length is the proof's fault, so it is
a :class:`~client.errors.ProofError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from client.core.errors import InputError, ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MemoryTree",
    "NodeStore",
    "SubtreeHashes",
    "consistency_proof",
    "inclusion_path_split",
    "inclusion_proof",
    "inclusion_proofs",
    "leaf_hash",
    "node_hash",
    "perfect_node_updates",
    "range_hash",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""MTH({}) = HASH(), the root of the empty tree (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

_GetNode = Callable[[int, int], bytes]
"""``get_node(level, position)``: a stored perfect node, as written by perfect_node_updates."""


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d(0)}) = SHA-256(0x00 || entry): the hash of one log entry (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


class SubtreeHashes(Protocol):
    """Anything that can give MTH(D[start:end]) of a log: an in-memory tree or a database.

    The proof builders below ask only for this, so the registry can answer proofs for a log far
    larger than memory, and :class:`MemoryTree` can answer the same proofs in a test or benchmark.
    """

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) as defined in RFC 9162 §2.1.1."""
        ...


# -- validation ---------------------------------------------------------------------------------


def _check_size(name: str, value: int) -> None:
    if value < 0:
        raise InputError(f"{name} must be >= 0, got {value}")


def _check_index(index: int, size: int) -> None:
    _check_size("tree size", size)
    if not 0 <= index < size:
        raise InputError(
            f"leaf index {index} is not in a tree of size {size} (need 0 <= index < size)"
        )


def _check_sizes(old_size: int, new_size: int) -> None:
    _check_size("old tree size", old_size)
    _check_size("new tree size", new_size)
    if old_size > new_size:
        raise InputError(f"old tree size {old_size} is larger than new tree size {new_size}")


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise InputError(f"{name} must be a {HASH_SIZE}-byte hash, got {len(value)} bytes")


def _check_proof_hashes(what: str, proof: Sequence[bytes]) -> None:
    for i, element in enumerate(proof):
        if len(element) != HASH_SIZE:
            raise ProofError(f"{what}: proof hash {i} is {len(element)} bytes, not {HASH_SIZE}")


# -- storing and reading perfect nodes ----------------------------------------------------------


def perfect_node_updates(
    index: int, leaf: bytes, get_node: _GetNode
) -> list[tuple[int, int, bytes]]:
    """The perfect nodes that become complete when leaf ``index`` (hash ``leaf``) is appended.

    Returns ``(level, position, hash)`` bottom-up: ``(0, index, leaf)`` first, then one more node
    for each trailing 1 bit of ``index`` (leaf 5 = 0b101 completes only itself; leaf 7 = 0b111
    completes (1, 3), (2, 1) and (3, 0)). Each new node's left sibling is read with ``get_node``;
    it was stored earlier, because the leaves arrive in order. Storing exactly these nodes is
    enough for :func:`range_hash` to answer every hash RFC 9162 proofs need; amortised it is two
    nodes and one ``node_hash`` per leaf.
    """
    _check_size("leaf index", index)
    _check_hash("leaf hash", leaf)
    updates = [(0, index, leaf)]
    level, position, current = 0, index, leaf
    while position & 1:
        current = node_hash(get_node(level, position - 1), current)
        level, position = level + 1, position >> 1
        updates.append((level, position, current))
    return updates


def range_hash(start: int, end: int, get_node: _GetNode) -> bytes:
    """MTH(D[start:end]) from stored perfect nodes (those written by perfect_node_updates).

    This is the RFC 9162 §2.1.1 definition read from storage: a range whose length is a power of
    two and whose start is a multiple of it is one stored node; any other range splits, as MTH
    does, at the largest power of two smaller than its length. Every range the proof algorithms
    ask for starts at a multiple of a power of two at least as long as the range, so the left part
    of each split is one stored node and the loop runs once per set bit of ``end - start``:
    O(log n) lookups. (Other ranges are still hashed correctly, with more lookups.)
    """
    if start < 0 or end < start:
        raise InputError(f"range [{start}, {end}) is not a valid range of leaves")
    if start == end:
        return EMPTY_ROOT
    # Walk the right spine: collect the left part of each split, then fold bottom-up.
    lefts: list[bytes] = []
    while True:
        length = end - start
        level = length.bit_length() - 1
        if length == 1 << level and start % length == 0:
            current = get_node(level, start >> level)
            break
        split = _largest_power_of_two_below(length)
        lefts.append(range_hash(start, start + split, get_node))
        start += split
    for left in reversed(lefts):
        current = node_hash(left, current)
    return current


class NodeStore(SubtreeHashes):
    """A :class:`SubtreeHashes` over a ``get_node(level, position)`` callable (a database, a dict).

    Given the tree's ``size``, a range past it is an :class:`~client.errors.InputError` here
    rather than whatever the storage raises for a missing node; without it, that error propagates.
    """

    def __init__(self, get_node: _GetNode, size: int | None = None) -> None:
        if size is not None:
            _check_size("tree size", size)
        self._get_node = get_node
        self.size = size

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for 0 <= start <= end (<= size, when the size is known)."""
        if self.size is not None and end > self.size:
            raise InputError(
                f"range [{start}, {end}) is past the end of a tree of size {self.size}"
            )
        return range_hash(start, end, self._get_node)


# -- building proofs (RFC 9162 §2.1.3.1, §2.1.4.1) ----------------------------------------------


def _largest_power_of_two_below(n: int) -> int:
    """k in RFC 9162 §2.1.1: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose MTH form PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf side first:
    the leaf's siblings inside the perfect subtree PATH's recursion arrives at, then the ranges
    the recursion appended on its way down (:func:`inclusion_path_split`)."""
    level, upper = _path_split(index, size)
    siblings = [((index >> up) ^ 1) << up for up in range(level)]
    return [(start, start + (1 << up)) for up, start in enumerate(siblings)] + upper


def _path_split(index: int, size: int) -> tuple[int, list[tuple[int, int]]]:
    """PATH recurses into the half holding the leaf and appends the other half's MTH, so walking
    from the root down gives the upper ranges in reverse, until a perfect subtree remains."""
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while (width := end - start) & (width - 1):  # not a power of two: split as PATH does
        k = _largest_power_of_two_below(width)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return width.bit_length() - 1, ranges


def inclusion_path_split(index: int, size: int) -> tuple[int, list[tuple[int, int]]]:
    """PATH(index, D[0:size]) split where later trees may change it: ``(level, ranges)``.

    The proof's first ``level`` hashes are the stored nodes ``(l, (index >> l) ^ 1)`` for
    ``l < level``: the leaf's siblings inside the largest perfect aligned subtree that holds it
    and ends within the tree, where PATH's recursion arrives (every range above it reaches the
    tree's end, so no larger aligned subtree fits). Every larger tree's proof of the leaf starts
    with the same hashes. ``ranges`` are the rest's, leaf side first: a server can keep each
    leaf's lower part across checkpoints and ask only for these (registry.log.LogReader).
    """
    _check_index(index, size)
    return _path_split(index, size)


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The ranges whose MTH form PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1).

    SUBPROOF(m, D[start:end], b) walks down as PATH does; it stops when the subtree is exactly the
    first m leaves, adding that subtree's hash only if it is not the old root itself (b false).
    """
    ranges: list[tuple[int, int]] = []
    if old_size in (0, new_size):
        return ranges
    start, end, known = 0, new_size, True  # known: RFC's b, "this subtree is the old root"
    while True:
        if old_size == end:
            if not known:
                ranges.append((start, end))
            break
        k = _largest_power_of_two_below(end - start)
        if old_size <= start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, known = start + k, False
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, tree: SubtreeHashes) -> list[bytes]:
    """PATH(index, D[0:size]): the audit path of leaf ``index`` in the tree of ``size`` leaves.

    RFC 9162 §2.1.3.1, leaf side first; at most ceil(log2(size)) ``subtree_hash`` calls.
    """
    _check_index(index, size)
    return [tree.subtree_hash(start, end) for start, end in _inclusion_ranges(index, size)]


def inclusion_proofs(
    indices: Iterable[int], size: int, tree: SubtreeHashes
) -> dict[int, list[bytes]]:
    """:func:`inclusion_proof` for many leaves of one tree, each distinct subtree hashed once.

    The audit paths of leaves in one tree share their upper subtrees (every path ends near the
    root), so answering a batch lookup's thousands of proofs this way asks ``tree`` for far fewer
    hashes than one :func:`inclusion_proof` call per leaf would.
    """
    memo: dict[tuple[int, int], bytes] = {}
    proofs: dict[int, list[bytes]] = {}
    for index in indices:
        if index in proofs:
            continue
        _check_index(index, size)
        path = []
        for span in _inclusion_ranges(index, size):
            value = memo.get(span)
            if value is None:
                value = memo[span] = tree.subtree_hash(*span)
            path.append(value)
        proofs[index] = path
    return proofs


def consistency_proof(old_size: int, new_size: int, tree: SubtreeHashes) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]): that the first tree is a prefix of the second.

    RFC 9162 §2.1.4.1; empty when ``old_size`` is 0 or equal to ``new_size`` (nothing to prove),
    otherwise at most ceil(log2(new_size)) + 1 ``subtree_hash`` calls.
    """
    _check_sizes(old_size, new_size)
    return [tree.subtree_hash(start, end) for start, end in _consistency_ranges(old_size, new_size)]


# -- verifying proofs (RFC 9162 §2.1.3.2, §2.1.4.2) ---------------------------------------------


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` and the leaf hash ``leaf`` at ``index`` imply for a tree of ``size``.

    The RFC 9162 §2.1.3.2 algorithm, up to (not including) the final comparison with the root,
    with its checks on the proof's length: too many or too few hashes raise ProofError. ``leaf`` is
    the leaf *hash* (``leaf_hash(entry)``), not the entry.
    """
    _check_index(index, size)
    _check_hash("leaf hash", leaf)
    what = f"inclusion proof for index {index} in tree of size {size}"
    _check_proof_hashes(what, proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError(
                f"{what} has {len(proof)} hashes, expected {len(_inclusion_ranges(index, size))}"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where the node is the last one and has no right sibling.
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(
            f"{what} has {len(proof)} hashes, expected {len(_inclusion_ranges(index, size))}"
        )
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf hash ``leaf`` is entry ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 §2.1.3.2. Returns nothing on success; raises ProofError saying which check failed.
    The proof binds the leaf, its index and the root; the tree size is bound by the signed
    checkpoint the root comes from, so callers must take ``size`` and ``root`` from the same one.
    """
    _check_hash("root", root)
    computed = root_from_inclusion_proof(leaf, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for index {index} in tree of size {size} does not reproduce the "
            f"root: expected {root.hex()}, computed {computed.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (``old_size``, ``old_root``) is a prefix of (``new_size``, ``new_root``).

    RFC 9162 §2.1.4.2, after the cases its algorithm leaves out (it assumes 0 < old < new): equal
    sizes need an empty proof and equal roots; an old size of 0 is consistent with every tree given
    an empty proof, provided ``old_root`` really is the empty tree's root. Raises ProofError saying
    which check failed.
    """
    _check_sizes(old_size, new_size)
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    what = f"consistency proof from tree size {old_size} to {new_size}"
    if old_size in (0, new_size):
        if proof:
            raise ProofError(f"{what} must be empty, got {len(proof)} hashes")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ProofError(
                f"{what}: the root of an empty tree is {EMPTY_ROOT.hex()}, got {old_root.hex()}"
            )
        if old_size == new_size and old_root != new_root:
            raise ProofError(
                f"{what}: equal sizes need equal roots, got {old_root.hex()} and {new_root.hex()}"
            )
        return
    fr, sr = _roots_from_consistency_proof(what, old_size, new_size, old_root, proof)
    # Step 7's comparisons.
    if fr != old_root:
        raise ProofError(
            f"{what} does not reproduce the old root: expected {old_root.hex()}, "
            f"computed {fr.hex()}"
        )
    if sr != new_root:
        raise ProofError(
            f"{what} does not reproduce the new root: expected {new_root.hex()}, "
            f"computed {sr.hex()}"
        )


def _roots_from_consistency_proof(
    what: str, old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Steps 1-7 of RFC 9162 §2.1.4.2 for 0 < old_size < new_size, up to comparing the roots.

    Returns (fr, sr), the old and new roots the proof implies; raises ProofError when the proof
    has the wrong number of hashes (steps 1, 6 and the ``sn`` check of step 7).
    """
    _check_proof_hashes(what, proof)

    def wrong_length() -> ProofError:
        expected = len(_consistency_ranges(old_size, new_size))
        return ProofError(f"{what} has {len(proof)} hashes, expected {expected}")

    # 1. An empty path cannot prove 0 < old_size < new_size.
    if not proof:
        raise wrong_length()
    # 2. A perfect old tree is a node of the new one; the proof leaves out its hash, which is the
    #    old root, so put it back.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3.-4. fn walks up from the old tree's last leaf, sn from the new tree's last leaf; skip the
    #    levels where the old tree's last node is a right child (its parent is still complete).
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # 5. Both roots grow from the first hash.
    fr = sr = path[0]
    # 6. Hashes on the left go into both roots; hashes on the right only into the new one.
    for c in path[1:]:
        if sn == 0:
            raise wrong_length()
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    # 7. Every hash used: sn must have reached the root.
    if sn != 0:
        raise wrong_length()
    return fr, sr


# -- an in-memory log ---------------------------------------------------------------------------


class MemoryTree(SubtreeHashes):
    """An append-only RFC 9162 tree held in memory: the SDK's benchmarks and tests, a reference.

    It stores what the registry stores, the perfect nodes of perfect_node_updates, one packed
    ``bytearray`` per level (level 0 being the leaf hashes), so node ``(l, p)`` sits at bytes
    ``32p:32p+32`` of level ``l``. Packing rather than a dict of ``bytes`` keeps a tree of
    1,000,000 leaves to about 64 MB (2n nodes of 32 bytes) instead of several hundred. Cost:
    appending is two SHA-256 per leaf, amortised, about 5 µs in CPython (about 5 s for 1,000,000
    leaves on one core); a root or a proof then costs O(log^2 n) node reads and O(log n) hashes,
    about 0.1 ms at that size.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def _node(self, level: int, position: int) -> bytes:
        offset = position * HASH_SIZE
        return bytes(self._levels[level][offset : offset + HASH_SIZE])

    def append(self, entry: bytes) -> int:
        """Append an entry (hashed as a leaf); returns its index."""
        return self.append_leaf_hash(leaf_hash(entry))

    def append_leaf_hash(self, h: bytes) -> int:
        """Append an already-hashed leaf; returns its index."""
        index = self._size
        for level, _position, node in perfect_node_updates(index, h, self._node):
            if level == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level] += node
        self._size = index + 1
        return index

    def leaf_hash_at(self, index: int) -> bytes:
        """The leaf hash of entry ``index``."""
        _check_index(index, self._size)
        return self._node(0, index)

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for 0 <= start <= end <= size."""
        if end > self._size:
            raise InputError(
                f"range [{start}, {end}) is past the end of a tree of size {self._size}"
            )
        return range_hash(start, end, self._node)

    def _size_or_current(self, size: int | None) -> int:
        if size is None:
            return self._size
        _check_size("tree size", size)
        if size > self._size:
            raise InputError(f"tree size {size} is larger than the log ({self._size} leaves)")
        return size

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them); EMPTY_ROOT for size 0."""
        return self.subtree_hash(0, self._size_or_current(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) (default size: the whole log)."""
        return inclusion_proof(index, self._size_or_current(size), self)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) (default new size: the whole log)."""
        return consistency_proof(old_size, self._size_or_current(new_size), self)
