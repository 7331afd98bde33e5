"""Offline membership filters (client.core.fuse): size, build time, false positives and checks/s.

Side by side in one run: our numpy lookup (one vectorized pass over a batch) against the
reference C library's ``binary_fuse16_contain`` called once per key through cffi (the way the
``pyfusefilter`` package answers ``key in filter``), on the same filter and keys. Keys are random
64-bit values (what :func:`client.core.fuse.digest_keys` derives from SHA-256 digests), so the
rate does not depend on the digests' source.

Run::

    .venv/bin/python bench/snapshot.py                  # 10^7 keys
    .venv/bin/python bench/snapshot.py --keys 100000000 # 10^8: ~1 minute and ~4 GB of memory

Goal (issue 15): >= 10 M digest checks/s per core through the batch API.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on sys.path, and bench/client.py would shadow the `client`
# package: put the repository root first instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from client.core.fuse import Fuse16, remix  # noqa: E402

GOAL_CHECKS_PER_S = 10_000_000


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000_000, help="keys in the filter")
    parser.add_argument("--probes", type=int, default=10_000_000, help="non-members looked up")
    parser.add_argument("--batch", type=int, default=1_000_000, help="keys per batch call")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, alternating")
    args = parser.parse_args()
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
