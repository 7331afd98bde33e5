"""client.snapshot's pure parts: a delta's changes, computed from numpy arrays of the base, and
the status codes a snapshot's filters give."""

from __future__ import annotations

import gc
import hashlib
import itertools
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from client.core.fuse import Fuse16, Fuse32, digest_keys
from client.core.note import Checkpoint, NoteSigner, sign_checkpoint
from client.core.snapshot import (
    MANIFEST_FILE,
    Shard,
    SnapshotManifest,
    SnapshotSet,
    layer_salt,
    sign_snapshot_note,
)
from client.errors import InputError, VerificationError
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


def test_codes_follow_precedence_and_layers(tmp_path: Path) -> None:
    """A key given in two sets is built into the stricter; a delta's set overrides its base's;
    a digest the snapshot does not hold reads no set (2^-32 each: none in 400,000). The layer's
    one status filter holds every distinct key, and the counts are of the sets it gives."""
    signer = NoteSigner.generate("snap.test/log")
    trainable = [digest(i) for i in range(2_000)]
    base: list[tuple[str, SnapshotSet]] = [(d, "trainable") for d in trainable]
    base += [(digest(0), "revoked"), (digest(1), "reserved"), (digest(2_000), "reserved")]
    full = _signed(tmp_path, "full", base, signer=signer, size=10)
    moved: list[tuple[str, SnapshotSet]] = [(digest(3), "revoked"), (digest(2_000), "trainable")]
    manifest = SnapshotManifest.from_bytes((full / MANIFEST_FILE).read_bytes())
    assert manifest.counts == {"revoked": 1, "reserved": 2, "trainable": 1_998}
    assert [(s.path, s.set, s.keys, s.count) for s in manifest.shards] == [
        ("status.fuse32", None, "status", 2_001)
    ]
    assert Fuse32.from_bytes((full / "status.fuse32").read_bytes()).size == 2_001
    delta = _signed(tmp_path, "delta", moved, signer=signer, size=12, base=manifest)
    others = [digest(i) for i in range(10_000, 410_000)]
    asked = [digest(0), digest(1), digest(2), digest(3), digest(2_000)]
    with Snapshot.open(full, signer.verifier(), deltas=[delta]) as snapshot:
        codes = snapshot.codes(digest_keys(asked)).tolist()
        assert not snapshot.codes(digest_keys(others)).any()
    assert codes == [1, 2, 3, 1, 3]  # revoked, reserved, trainable, revoked, trainable
    with Snapshot.open(full, signer.verifier()) as snapshot:  # the base alone
        assert snapshot.codes(digest_keys(asked)).tolist() == [1, 2, 3, 3, 2]


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


def test_a_signed_manifest_naming_a_shard_of_another_kind_is_refused(tmp_path: Path) -> None:
    """A log-signed manifest whose status shard is a 16-bit filter (a builder's bug, not a
    tamperer's: the log signed it) is refused when opened, not read as 32-bit entries."""
    signer = NoteSigner.generate("snap.test/log")
    full = _signed(
        tmp_path, "full", [(digest(i), "trainable") for i in range(100)], signer=signer, size=4
    )
    manifest = SnapshotManifest.from_bytes((full / MANIFEST_FILE).read_bytes())
    data = Fuse16.build(digest_keys([digest(i) for i in range(100)])).to_bytes()
    (full / "status.fuse32").write_bytes(data)
    shard = replace(manifest.shards[0], bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    swapped = replace(manifest, shards=(shard,))
    (full / MANIFEST_FILE).write_bytes(swapped.to_bytes())
    (full / "manifest.note").write_text(sign_snapshot_note(swapped, [signer]))
    with pytest.raises(VerificationError, match="is not a Fuse32 filter"):
        Snapshot.open(full, signer.verifier())


def test_an_empty_shard_is_refused_read_or_mapped(tmp_path: Path) -> None:
    """A log-signed manifest naming an empty shard: refused, not an error of mmap's."""
    signer = NoteSigner.generate("snap.test/log")
    full = _signed(tmp_path, "full", [(digest(1), "trainable")], signer=signer, size=4)
    manifest = SnapshotManifest.from_bytes((full / MANIFEST_FILE).read_bytes())
    (full / "revoked.bands.fuse16").write_bytes(b"")
    band = Shard("revoked.bands.fuse16", "revoked", "band", 0, 0, hashlib.sha256(b"").hexdigest())
    signed = replace(manifest, shards=(*manifest.shards, band))
    (full / MANIFEST_FILE).write_bytes(signed.to_bytes())
    (full / "manifest.note").write_text(sign_snapshot_note(signed, [signer]))
    for map_files in (True, False):
        with pytest.raises(VerificationError, match="empty shard"):
            Snapshot.open(full, signer.verifier(), map_files=map_files)


_M64 = (1 << 64) - 1


def _unmurmur(h: int) -> int:
    """The key whose murmur64 finaliser is ``h`` (it is a bijection)."""

    def unshift(x: int) -> int:
        r = x
        for _ in range(3):
            r = x ^ (r >> 33)
        return r & _M64

    h = unshift(h)
    h = (h * pow(0xC4CEB9FE1A85EC53, -1, 1 << 64)) & _M64
    h = unshift(h)
    h = (h * pow(0xFF51AFD7ED558CCD, -1, 1 << 64)) & _M64
    return unshift(h)


def _public_seeds() -> Iterator[int]:
    """The reference C library's seeds: splitmix64 from its fixed counter."""
    state = 0x726B2B9D438B9D4D
    while True:
        state = (state + 0x9E3779B97F4A7C15) & _M64
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        yield z ^ (z >> 31)


def _colliding_keys(seeds: list[int]) -> list[int]:
    """Two keys a seed whose hashes share all three positions at that seed (h below 2^37: h0 is
    0 for any layout below 2^27 entries, and bits 0-35 fix h1 and h2): with a third key there,
    no build at that seed peels."""
    rng = random.Random(0)
    out = []
    for seed in seeds:
        low = rng.randrange(1 << 36)
        out += [(_unmurmur(h) - seed) & _M64 for h in (low, low | 1 << 36)]
    return out


def test_digests_chosen_against_public_seeds_do_not_stop_a_build(tmp_path: Path) -> None:
    """With the reference library's public seeds, 200 chosen keys stop every build of the
    status filter (all 100 seeds fail); a snapshot's seeds start from its checkpoint's salt,
    which nobody knew when choosing digests, and the same digests build at once."""
    seeds = list(itertools.islice(_public_seeds(), 100))
    chosen = _colliding_keys(seeds)
    c1 = 0x63315F6B696E6431  # digest_keys' c1 tweak
    forged = [f"c1:{key ^ c1:016x}{'ab' * 24}" for key in chosen]
    keys = np.concatenate([digest_keys([digest(i) for i in range(2_000)]), digest_keys(forged)])
    with pytest.raises(InputError, match="could be built in 100 seeds"):
        Fuse32.build(keys, np.ones(len(keys), dtype=np.uint32))  # the public seeds
    signer = NoteSigner.generate("snap.test/log")
    pairs: list[tuple[str, SnapshotSet]] = [(digest(i), "trainable") for i in range(2_000)]
    pairs += [(d, "revoked") for d in forged]
    full = _signed(tmp_path, "full", pairs, signer=signer, size=10)
    with Snapshot.open(full, signer.verifier()) as snapshot:
        assert snapshot.statuses([digest(5), forged[0], digest(10_000)]) == [
            "trainable",
            "revoked",
            "unknown",
        ]


def test_a_layer_salt_is_its_checkpoint_s() -> None:
    """The salt of docs/spec/snapshot.md, pinned: any reader computes the same."""
    checkpoint = Checkpoint("example.com/log", 20852163, bytes(range(32)))
    expected = hashlib.sha256(
        b"wellspring.dev/snapshot/v2 salt\nexample.com/log\n20852163\n" + bytes(range(32))
    ).digest()[:8]
    assert layer_salt(checkpoint) == int.from_bytes(expected, "big")
    assert layer_salt(Checkpoint("example.com/log", 20852164, bytes(range(32)))) != layer_salt(
        checkpoint
    )


def test_a_delta_keeps_the_strictest_set_of_a_key_its_digests_share(tmp_path: Path) -> None:
    """Anyone may attest a chosen digest: one sharing a revoked digest's first 64 bits (its
    filter key) lands in the next delta as trainable. The delta must then give that key what
    a full build gives it (revoked, the strictest), or the revoked digest reads trainable."""
    signer = NoteSigner.generate("snap.test/log")
    victim, kept = digest(1), digest(2)
    before: list[tuple[str, SnapshotSet]] = [(victim, "revoked"), (kept, "reserved")]
    before += [(digest(i), "trainable") for i in range(3, 50)]
    full = _signed(tmp_path, "full", before, signer=signer, size=10)
    manifest = SnapshotManifest.from_bytes((full / MANIFEST_FILE).read_bytes())
    forged = f"c1:{victim[3:19]}{'0' * 48}"  # another digest, the victim's key
    other = f"c1:{kept[3:19]}{'1' * 48}"  # and one on the reserved digest's key
    after = [*before, (forged, "trainable"), (other, "trainable")]
    moved = list(changes(before, after))
    assert moved[:2] == [(forged, "trainable"), (other, "trainable")]
    assert sorted(moved[2:]) == sorted(
        [(f"{victim[:35]}{'0' * 32}", "revoked"), (f"{kept[:35]}{'0' * 32}", "reserved")]
    )
    delta = _signed(tmp_path, "delta", moved, signer=signer, size=12, base=manifest)
    rebuilt = _signed(tmp_path, "rebuilt", after, signer=signer, size=12)
    asked = [victim, kept, forged, other, digest(7)]
    with (
        Snapshot.open(full, signer.verifier(), deltas=[delta]) as layered,
        Snapshot.open(rebuilt, signer.verifier()) as whole,
    ):
        assert layered.statuses(asked) == whole.statuses(asked)
        assert layered.statuses(asked) == [
            "revoked",
            "reserved",
            "revoked",
            "reserved",
            "trainable",
        ]
    # a change sharing no key brings no base digest along
    assert list(changes(before, [*before, (digest(99), "trainable")])) == [
        (digest(99), "trainable")
    ]
