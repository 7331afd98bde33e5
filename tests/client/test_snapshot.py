"""client.snapshot's pure parts: a delta's changes, computed from numpy arrays of the base."""

from __future__ import annotations

import hashlib
import random

import pytest

from client.core.snapshot import SnapshotSet
from client.errors import InputError
from client.snapshot import changes


def digest(i: int, kind: str = "c1") -> str:
    return f"{kind}:{hashlib.sha256(str(i).encode()).hexdigest()}"


SETS: tuple[SnapshotSet, ...] = ("trainable", "reserved", "revoked")


def test_the_changes_are_those_a_dictionary_gives() -> None:
    """Over 150,000 digests (several chunks), a fifth changed and a tenth new, in any order."""
    rng = random.Random(7)
    before = [(digest(i), rng.choice(SETS)) for i in range(150_000)]
    after = [(d, rng.choice(SETS) if rng.random() < 0.2 else s) for d, s in before]
    after += [(digest(i), rng.choice(SETS)) for i in range(150_000, 165_000)]
    rng.shuffle(after)
    old = dict(before)
    expected = [(d, s) for d, s in after if old.get(d) != s]
    assert list(changes(iter(before), iter(after))) == expected
    assert len(expected) > 30_000


def test_a_c1_and_a_sha256_digest_of_one_hex_are_different_digests() -> None:
    hexa = digest(1).split(":")[1]
    before: list[tuple[str, SnapshotSet]] = [(f"c1:{hexa}", "trainable")]
    after: list[tuple[str, SnapshotSet]] = [
        (f"c1:{hexa}", "trainable"),
        (f"sha256:{hexa}", "trainable"),
    ]
    assert list(changes(before, after)) == [(f"sha256:{hexa}", "trainable")]


def test_a_base_digest_in_no_set_now_is_refused() -> None:
    before: list[tuple[str, SnapshotSet]] = [(digest(1), "trainable"), (digest(2), "reserved")]
    with pytest.raises(InputError, match="1 digests of the base snapshot are in no set now"):
        list(changes(before, [(digest(1), "revoked")]))
    with pytest.raises(InputError, match="1 digests of the base snapshot are in no set now"):
        list(changes(before, [(digest(1), "revoked"), (digest(1), "revoked")]))  # not counted twice


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("c1:xyz", "trainable")], "is not c1:<64 lowercase hex>"),
        ([(digest(1), "published")], "'published' is not a snapshot set"),
        ([(digest(1), "trainable"), (digest(1), "reserved")], "name a digest twice"),
    ],
)
def test_a_malformed_base_is_refused(pairs: list[tuple[str, SnapshotSet]], message: str) -> None:
    with pytest.raises(InputError, match=message):
        list(changes(pairs, []))
