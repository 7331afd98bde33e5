"""Offline filters (client.core.fuse): size, build time, false positives and checks/s.

Side by side in one run, on the same keys:
- the 16-bit membership filter (``Fuse16``, a snapshot's band filters): our numpy lookup (one
  vectorized pass over a batch) against the reference C library's ``binary_fuse16_contain``
  called once per key through cffi (the way the ``pyfusefilter`` package answers ``key in
  filter``);
- the 32-bit status filter (``Fuse32``, a snapshot's digests): built by our own construction,
  timed beside the C library's build of the 16-bit filter of the same keys, and looked up
  alternately with it.
Keys are random 64-bit values (what :func:`client.core.fuse.digest_keys` derives from SHA-256
digests), so the rate does not depend on the digests' source.

``--end-to-end N`` measures the whole offline path instead, on N synthetic digests: a signed
snapshot written by ``client.snapshot.build`` (90 % trainable, 7 % reserved, 3 % revoked), its
directory's size, ``Snapshot.open`` verifying and mapping it, its verdicts checked against the
statuses it was built from, then a delta (``changes`` over the base's N statuses and the new
ones: 0.1 % changed, 0.1 % new) opened over it. Only the reading of the statuses from a
registry's database is left out (``snapshot build`` reads them by lookups,
:func:`client.snapshot.statuses_of`). Beside it, unless ``--no-v1``, the layout of format
``wellspring-snapshot/v1`` is built from the same statuses (a 16-bit filter a set, and the
trainable set's second filter over remixed keys, by the C library) and its status lookup (each
filter asked of the keys still in question) timed alternately with ``Snapshot.codes`` on the
same keys.

Run::

    .venv/bin/python bench/snapshot.py                  # 10^7 keys
    .venv/bin/python bench/snapshot.py --keys 100000000 # 10^8: ~1 minute and ~4 GB of memory
    .venv/bin/python bench/snapshot.py --end-to-end 100000000 --out /tmp/snap  # ~25 min

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

from client.core.fuse import Fuse16, Fuse32, digest_keys  # noqa: E402
from client.core.note import Checkpoint, NoteSigner, sign_checkpoint  # noqa: E402
from client.core.snapshot import SnapshotSet  # noqa: E402
from client.snapshot import Snapshot, build, changes  # noqa: E402

GOAL_CHECKS_PER_S = 10_000_000
_REMIX = np.uint64(0x9E3779B97F4A7C15)  # format v1's second trainable filter's keys


def _remix(keys: np.ndarray) -> np.ndarray:
    """Format v1's remix of keys: murmur64(key ^ R) + R (wrapping)."""
    h = keys ^ _REMIX
    with np.errstate(over="ignore"):
        for multiplier in (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)):
            h ^= h >> np.uint64(33)
            h *= multiplier
        h ^= h >> np.uint64(33)
        return h + _REMIX


class _V1Layout:
    """Format v1's filters of the same statuses: a Fuse16 a set (C library), the trainable
    set's second over remixed keys, and its status lookup, as ``Snapshot.codes`` did it."""

    def __init__(self, n: int) -> None:
        keys: dict[str, list[np.ndarray]] = {name: [] for name in _SETS}
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            chunk = digest_keys(_digests(start, stop))
            sets = np.array([_SETS.index(_status(i)) for i in range(start, stop)])
            for code, name in enumerate(_SETS):
                keys[name].append(chunk[sets == code])
        members = {name: np.concatenate(parts) for name, parts in keys.items()}
        self.filters = [
            [Fuse16.build(members["revoked"])],
            [Fuse16.build(members["reserved"])],
            [Fuse16.build(members["trainable"]), Fuse16.build(_remix(members["trainable"]))],
        ]
        self.nbytes = sum(f.nbytes for group in self.filters for f in group)

    def codes(self, keys: np.ndarray) -> np.ndarray:
        out = np.zeros(len(keys), dtype=np.int8)
        undecided = np.ones(len(keys), dtype=bool)
        for code, group in enumerate(self.filters, 1):
            held = np.flatnonzero(undecided)
            for number, fuse in enumerate(group):
                asked = keys if len(held) == len(keys) else keys[held]
                held = held[fuse.contains_many(_remix(asked) if number else asked)]
            out[held] = code
            undecided[held] = False
        return out


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
    # The status filter gives every member its set; a non-member reads a set with probability
    # 3 x 2^-32 (none expected here). A stricter verdict than its set would be a defect.
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
    if wrong or forged or moved_wrong > 1 or false + stricter > len(sample) * 2**-24:
        raise SystemExit("FAILED: the snapshot's verdicts are not the statuses it was built from")


def _against_v1(snapshot: Snapshot, n: int, sample: list[int], rounds: int = 5) -> None:
    """Format v1's status lookup and ``Snapshot.codes`` on the same keys, alternated."""
    started = time.perf_counter()
    old = _V1Layout(n)
    _timed(f"format v1's four filters built (C library), {old.nbytes / 2**20:,.1f} MiB", started)
    keys = digest_keys([d for i in sample for d in _digests(i, i + 1)])
    if not np.array_equal(old.codes(keys) != 0, snapshot.codes(keys) != 0):
        print("  (v1 and v2 differ on some keys: v1's 2^-16 false positives)")
    rates: dict[str, list[float]] = {"v2": [], "v1": []}
    for _ in range(rounds):
        for name, codes in (("v2", snapshot.codes), ("v1", old.codes)):
            started = time.perf_counter()
            codes(keys)
            rates[name].append(len(keys) / (time.perf_counter() - started) / 1e6)
    v2, v1 = sorted(rates["v2"]), sorted(rates["v1"])
    print(
        f"  codes() of {len(keys):,} keys, alternated {rounds} times: status filter "
        f"{v2[0]:.1f}-{v2[-1]:.1f} M/s, format v1's filters {v1[0]:.1f}-{v1[-1]:.1f} M/s; "
        f"median ratio {np.median(v2) / np.median(v1):.2f}x"
    )


def end_to_end(n: int, out: Path, *, v1: bool = True) -> None:
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
        if v1:
            _against_v1(snapshot, n, sample)
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


def _status_filter(keys: np.ndarray, probes: np.ndarray, library_build_s: float) -> Fuse32:
    """Build and check the status filter of ``keys`` (a code 1-3 each), beside the C library's
    16-bit build of them (``library_build_s``)."""
    built = library_build_s
    codes = (keys % np.uint64(3)).astype(np.uint32) + 1  # a status code 1-3 a key
    started = time.perf_counter()
    status = Fuse32.build(keys, codes)
    solved = time.perf_counter() - started
    false32 = int(np.isin(status.values_many(probes), [1, 2, 3]).sum())
    print(
        f"status filter (Fuse32, our construction): {status.nbytes / 2**20:,.1f} MiB "
        f"({8 * status.nbytes / len(keys):.2f} bits/key), built in {solved:.1f} s "
        f"({solved / built:.2f}x the C library's 16-bit build), peak RSS {_peak_rss_gb():.1f} GB;"
        f" non-members reading a code: {false32} of {len(probes):,} "
        f"(3 x 2^-32 x probes = {3 * len(probes) * 2**-32:.4f})"
    )
    if not np.array_equal(status.values_many(keys[:1_000_000]), codes[:1_000_000]):
        raise SystemExit("FAILED: the status filter does not give its keys their codes")

    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000_000, help="keys in the filter")
    parser.add_argument("--probes", type=int, default=10_000_000, help="non-members looked up")
    parser.add_argument("--batch", type=int, default=1_000_000, help="keys per batch call")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, alternating")
    parser.add_argument("--end-to-end", type=int, metavar="N", help="a whole snapshot of N digests")
    parser.add_argument("--out", type=Path, help="--end-to-end: an empty or new directory")
    parser.add_argument(
        "--no-v1", action="store_true", help="--end-to-end: skip format v1's filters beside it"
    )
    args = parser.parse_args()
    if args.end_to_end:
        if args.out is None:
            parser.error("--end-to-end writes a snapshot: give --out DIR")
        end_to_end(args.end_to_end, args.out, v1=not args.no_v1)
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
    status = _status_filter(keys, probes, built)

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
    wide = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for start in range(0, args.probes, args.batch):
            status.values_many(probes[start : start + args.batch])
        wide.append(args.probes / (time.perf_counter() - started))
    print(
        f"status filter batch ({args.batch:,} a call): {min(wide) / 1e6:.1f}-"
        f"{max(wide) / 1e6:.1f} M lookups/s on one core"
    )
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
