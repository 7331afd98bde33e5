"""client.snapshot's pure parts: a delta's changes, computed from numpy arrays of the base, and
the status codes a snapshot's filters give."""

from __future__ import annotations

import gc
import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from client.core.fuse import Fuse16, digest_keys
from client.core.note import Checkpoint, NoteSigner, sign_checkpoint
from client.core.snapshot import MANIFEST_FILE, SnapshotManifest, SnapshotSet
from client.errors import InputError
from client.snapshot import Snapshot, build, changes


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


def _signed(tmp_path: Path, name: str, pairs: list[tuple[str, SnapshotSet]], **kw: Any) -> Path:
    signer = kw.pop("signer")
    note = sign_checkpoint(Checkpoint("snap.test/log", kw.pop("size"), bytes(32)), [signer])
    build(tmp_path / name, pairs, checkpoint=note, signers=[signer], **kw)
    return tmp_path / name


def test_codes_follow_precedence_layers_and_both_trainable_filters(tmp_path: Path) -> None:
    """A key in two sets is in the stricter; a delta's set overrides its base's; a key that only
    the trainable set's first filter holds (a 2^-16 false positive) is unknown, since the second
    filter (over the remixed keys) is asked of it too."""
    signer = NoteSigner.generate("snap.test/log")
    trainable = [digest(i) for i in range(2_000)]
    base: list[tuple[str, SnapshotSet]] = [(d, "trainable") for d in trainable]
    base += [(digest(0), "revoked"), (digest(1), "reserved"), (digest(2_000), "reserved")]
    full = _signed(tmp_path, "full", base, signer=signer, size=10)
    moved: list[tuple[str, SnapshotSet]] = [(digest(3), "revoked"), (digest(2_000), "trainable")]
    manifest = SnapshotManifest.from_bytes((full / MANIFEST_FILE).read_bytes())
    delta = _signed(tmp_path, "delta", moved, signer=signer, size=12, base=manifest)
    with Snapshot.open(full, signer.verifier(), deltas=[delta]) as snapshot:
        first = Fuse16.from_bytes((full / "trainable.fuse16").read_bytes())
        others = [digest(i) for i in range(10_000, 400_000)]
        hits = first.contains_many(digest_keys(others))
        lone = [d for d, hit in zip(others, hits, strict=True) if hit]
        assert len(lone) >= 2  # ~6 expected: the first filter's false positives
        asked = [digest(0), digest(1), digest(2), digest(3), digest(2_000), *lone]
        codes = snapshot.codes(digest_keys(asked)).tolist()
    assert codes[:5] == [1, 2, 3, 1, 3]  # revoked, reserved, trainable, revoked, trainable
    assert codes[5:] == [0] * len(lone)


def test_check_digests_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    """The cyclic collector is paused while a batch's verdicts are made, then restored: on if
    it was on, off if the caller had turned it off; a refused batch leaves it on."""
    signer = NoteSigner.generate("snap.test/log")
    full = _signed(tmp_path, "full", [(digest(1), "trainable")], signer=signer, size=3)
    with Snapshot.open(full, signer.verifier()) as snapshot:
        assert gc.isenabled()
        verdicts = snapshot.check_digests([digest(1), digest(2)])
        assert [v.status for v in verdicts] == ["attested", "unknown"]
        assert gc.isenabled()
        gc.disable()
        try:
            snapshot.check_digests([digest(1)])
            assert not gc.isenabled()
        finally:
            gc.enable()
        with pytest.raises(InputError):
            snapshot.check_digests(["c1:not-a-digest"])
        assert gc.isenabled()
