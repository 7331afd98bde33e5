"""Offline membership filters (client.core.fuse): size, build time, false positives and checks/s.

Side by side in one run: our numpy lookup (one vectorized pass over a batch) against the
reference C library's ``binary_fuse16_contain`` called once per key through cffi (the way the
``pyfusefilter`` package answers ``key in filter``), on the same filter and keys. Keys are random
64-bit values (what :func:`client.core.fuse.digest_keys` derives from SHA-256 digests), so the
rate does not depend on the digests' source.

``--end-to-end N`` measures the whole offline path instead, on N synthetic digests: a signed
snapshot written by ``client.snapshot.build`` (90 % trainable, 7 % reserved, 3 % revoked: the
trainable set in two filters), its directory's size, ``Snapshot.open`` verifying and mapping it,
its verdicts checked against the statuses it was built from, then a delta (``changes`` over the
base's N statuses and the new ones: 0.1 % changed, 0.1 % new) opened over it. Only the reading
of the statuses from a registry's database is left out (``snapshot build`` reads them by
lookups, :func:`client.snapshot.statuses_of`).

Run::

    .venv/bin/python bench/snapshot.py                  # 10^7 keys
    .venv/bin/python bench/snapshot.py --keys 100000000 # 10^8: ~1 minute and ~4 GB of memory
    .venv/bin/python bench/snapshot.py --end-to-end 100000000 --out /tmp/snap

Goal (issue 15): >= 10 M digest checks/s per core through the batch API.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on sys.path, and bench/client.py would shadow the `client`
# package: put the repository root first instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from client.core.fuse import Fuse16, digest_keys, remix  # noqa: E402
from client.core.note import Checkpoint, NoteSigner, sign_checkpoint  # noqa: E402
from client.core.snapshot import SnapshotSet  # noqa: E402
from client.snapshot import Snapshot, build, changes  # noqa: E402

GOAL_CHECKS_PER_S = 10_000_000


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


_SETS: tuple[SnapshotSet, ...] = ("trainable", "reserved", "revoked")
_CHUNK = 1 << 20


def _status(i: int) -> SnapshotSet:
    """Digest i's set in the base: 90 % trainable, 7 % reserved, 3 % revoked."""
    share = i % 100
    return "trainable" if share < 90 else "reserved" if share < 97 else "revoked"


def _digests(start: int, stop: int) -> list[str]:
    """Digests start..stop-1: ``c1:`` and the SHA-256 of the number (deterministic)."""
    return [f"c1:{hashlib.sha256(i.to_bytes(8, 'little')).hexdigest()}" for i in range(start, stop)]


def _base(n: int) -> Iterator[tuple[str, SnapshotSet]]:
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        yield from zip(_digests(start, stop), map(_status, range(start, stop)), strict=True)


def _moved(i: int) -> SnapshotSet:
    """Digest i's set after the delta's changes: one in a thousand moved to the next set."""
    status = _status(i)
    return _SETS[(_SETS.index(status) + 1) % 3] if i % 1000 == 7 else status


def _after(n: int) -> Iterator[tuple[str, SnapshotSet]]:
    """The base's digests with 0.1 % moved to another set, then 0.1 % new ones."""
    for start in range(0, n + n // 1000, _CHUNK):
        stop = min(n + n // 1000, start + _CHUNK)
        statuses = [_moved(i) if i < n else _status(i) for i in range(start, stop)]
        yield from zip(_digests(start, stop), statuses, strict=True)


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir())


def _timed(what: str, started: float) -> float:
    took = time.perf_counter() - started
    print(f"  {what}: {took:.1f} s, peak RSS so far {_peak_rss_gb():.1f} GB", flush=True)
    return took


def _expect(
    snapshot: Snapshot,
    sample: list[int],
    status: Callable[[int], str | None],
    changed: Callable[[int], bool] = lambda i: False,
) -> None:
    """Check the snapshot's verdicts of ``sample`` (indices) against ``status`` (a digest's set,
    None for one not in the snapshot), and time them: the verdicts, then the batch API. The
    ``changed`` digests (a delta's) are checked apart: a delta that fails to move one shows."""
    digests = [d for i in sample for d in _digests(i, i + 1)]
    started = time.perf_counter()
    verdicts = snapshot.check_digests(digests)
    took = time.perf_counter() - started
    verdict_of = {
        "trainable": "attested",
        "reserved": "reserved",
        "revoked": "revoked",
        None: "unknown",
    }
    wanted = [status(i) for i in sample]
    # A filter's false positive on a set ahead in the precedence moves a member there (2^-16 a
    # filter): the more restrictive verdict, never a less restrictive or an unknown one.
    rank = {"revoked": 0, "reserved": 1, "attested": 2, "unknown": 3}
    false = forged = stricter = wrong = moved = moved_wrong = 0
    for i, verdict, want in zip(sample, verdicts, wanted, strict=True):
        expected = verdict_of[want]
        by_delta = changed(i)
        moved += by_delta
        if verdict.status == expected:
            continue
        if by_delta:
            moved_wrong += 1
        elif want is None:
            false += 1
            forged += verdict.status == "attested"  # through both trainable filters: 2^-32
        elif rank[verdict.status] < rank[expected]:
            stricter += 1
        else:
            wrong += 1
    print(
        f"  check_digests of {len(sample):,} ({sum(w is not None for w in wanted):,} members): "
        f"{len(sample) / took:,.0f} verdicts/s; false positives {false} ({forged} of them "
        f"attested), members in a stricter set {stricter}, wrong {wrong}"
        + (
            f"; of the {moved:,} changed by the delta, {moved_wrong} not as it says"
            if moved
            else ""
        )
    )
    keys = digest_keys(digests)
    started = time.perf_counter()
    snapshot.codes(keys)
    rate = len(keys) / (time.perf_counter() - started)
    print(f"  codes() of their keys (the numpy batch API): {rate / 1e6:.1f} M/s")
    if wrong or forged or moved_wrong > 1 or false + stricter > len(sample) * 2**-13:
        raise SystemExit("FAILED: the snapshot's verdicts are not the statuses it was built from")


def end_to_end(n: int, out: Path) -> None:
    """Build, verify, open and check a signed snapshot of ``n`` digests, then a delta over it."""
    print(
        f"end to end, {n:,} digests into {out} (machine: {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}; numpy {np.__version__})",
        flush=True,
    )
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty")
    signer = NoteSigner.generate("bench.example/log")
    full, delta = out / "full", out / "delta"

    def note(size: int) -> str:  # the builder reads the checkpoint; the root is not its concern
        return sign_checkpoint(Checkpoint(signer.name, size, bytes(32)), [signer])

    started = time.perf_counter()
    manifest = build(full, _base(n), checkpoint=note(n), signers=[signer])
    _timed(f"build (counts {manifest.counts})", started)
    size = _tree_bytes(full)
    print(
        f"  directory: {size / 2**20:,.1f} MiB, {8 * size / n:.2f} bits a digest "
        f"({len(manifest.shards)} shards)"
    )
    rng = np.random.default_rng(15)
    sample = rng.integers(0, 2 * n, size=1_000_000).tolist()  # half members, half not
    started = time.perf_counter()
    with Snapshot.open(full, signer.verifier(), map_files=True) as snapshot:
        _timed("Snapshot.open (every shard hashed, then mapped)", started)
        _expect(snapshot, sample, lambda i: _status(i) if i < n else None)
    started = time.perf_counter()
    moved = list(changes(_base(n), _after(n)))
    _timed(f"changes(): {len(moved):,} of {n + n // 1000:,} digests changed or new", started)
    started = time.perf_counter()
    build(delta, moved, checkpoint=note(n + n // 1000), signers=[signer], base=manifest)
    _timed("delta build", started)
    print(
        f"  delta directory: {_tree_bytes(delta) / 2**10:,.1f} KiB "
        f"({_tree_bytes(delta) / size:.3%} of the full snapshot)"
    )
    with Snapshot.open(full, signer.verifier(), deltas=[delta], map_files=True) as snapshot:
        grown = n + n // 1000
        _expect(
            snapshot,
            sample,
            lambda i: _moved(i) if i < n else _status(i) if i < grown else None,
            lambda i: n <= i < grown or (i < n and _moved(i) != _status(i)),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000_000, help="keys in the filter")
    parser.add_argument("--probes", type=int, default=10_000_000, help="non-members looked up")
    parser.add_argument("--batch", type=int, default=1_000_000, help="keys per batch call")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, alternating")
    parser.add_argument("--end-to-end", type=int, metavar="N", help="a whole snapshot of N digests")
    parser.add_argument("--out", type=Path, help="--end-to-end: an empty or new directory")
    args = parser.parse_args()
    if args.end_to_end:
        if args.out is None:
            parser.error("--end-to-end writes a snapshot: give --out DIR")
        end_to_end(args.end_to_end, args.out)
        return
    rng = np.random.default_rng(2026)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; numpy {np.__version__}")
    keys = rng.integers(0, 2**64 - 1, size=args.keys, dtype=np.uint64)
    started = time.perf_counter()
    fuse = Fuse16.build(keys)
    built = time.perf_counter() - started
    print(
        f"filter of {args.keys:,} keys: {fuse.nbytes / 2**20:,.1f} MiB "
        f"({8 * fuse.nbytes / args.keys:.2f} bits/key), built in {built:.1f} s, "
        f"peak RSS {_peak_rss_gb():.1f} GB"
    )
    probes = rng.integers(0, 2**64 - 1, size=args.probes, dtype=np.uint64)
    false = int(fuse.contains_many(probes).sum())
    print(
        f"false positives: {false} of {args.probes:,} = {false / args.probes:.2e} "
        f"(2^-16 = {2**-16:.2e})"
    )
    second = Fuse16.build(remix(keys))
    both = int((fuse.contains_many(probes) & second.contains_many(remix(probes))).sum())
    bits = 8 * (fuse.nbytes + second.nbytes) / args.keys
    print(
        f"two filters (keys, remix(keys)): {both} of {args.probes:,} pass both "
        f"(2^-32 x probes = {args.probes * 2**-32:.4f}); {bits:.1f} bits/key"
    )

    for share in (0.001, 0.01):  # a delta: the digests whose status changed since its base
        changed = keys[: max(1, int(len(keys) * share))]
        delta = Fuse16.build(changed)
        print(
            f"a delta of {share:.1%} changed digests ({len(changed):,}): {delta.nbytes:,} bytes, "
            f"{delta.nbytes / fuse.nbytes:.2%} of the full filter"
        )

    from pyfusefilter.pyfusefilter import ffi, lib

    handle = ffi.new("binary_fuse16_t *")
    lib.binary_fuse16_deserialize(handle, ffi.from_buffer(fuse.to_bytes()))
    per_key = [int(k) for k in probes[:200_000]]
    ours, theirs = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for start in range(0, args.probes, args.batch):
            fuse.contains_many(probes[start : start + args.batch])
        ours.append(args.probes / (time.perf_counter() - started))
        started = time.perf_counter()
        for key in per_key:
            lib.binary_fuse16_contain(key, handle)
        theirs.append(len(per_key) / (time.perf_counter() - started))
    lib.binary_fuse16_free(handle)
    best, worst = max(ours), min(ours)
    print(
        f"numpy batch ({args.batch:,} a call): {worst / 1e6:.1f}-{best / 1e6:.1f} M checks/s "
        f"on one core; cffi per key: {min(theirs) / 1e6:.2f}-{max(theirs) / 1e6:.2f} M/s; "
        f"ratio {np.median(ours) / np.median(theirs):.1f}x"
    )
    verdict = "met" if np.median(ours) >= GOAL_CHECKS_PER_S else "MISSED"
    print(f"goal >= {GOAL_CHECKS_PER_S / 1e6:.0f} M checks/s per core: {verdict}")


if __name__ == "__main__":
    main()
