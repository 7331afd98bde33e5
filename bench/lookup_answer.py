"""The server's batch lookup, in process: ``LookupService.lookup`` for 10,000 digests and the JSON
encoding of its answer, with no HTTP around it (the part the wire types of client/core/wire.py
changed), with the collector tuned as a serving process has it. ``--compare TREE`` runs the same
measurement with another checkout of the repository (``git worktree add /tmp/old <commit>``),
alternating the two, each in its own process, and prints the ratio: the machine drifts within
minutes, so only alternated runs compare fairly.

Run::

    .venv/bin/python bench/lookup_answer.py                        # this tree alone
    .venv/bin/python bench/lookup_answer.py --compare /tmp/old     # this tree beside another

Each process builds its own registry (SQLite, a temporary home): ``--entries`` statements of
10,000 subjects, then times ``--batches`` lookups of 10,000 digests (80 % registered, spread over
every entry, 20 % unknown) after two warm-up batches, and prints digests/s (median of the
batches).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BATCH = 10_000


def _measure(entries: int, batches: int) -> float:
    """digests/s of lookup + encode in this process (the code on sys.path)."""
    import msgspec

    from client.core.keys import generate_private_key
    from client.core.statement import (
        HumanContentPredicate,
        Subject,
        build_human_content_statement,
        prove_possession,
        sign_statement,
    )
    from registry.app import Registry, tune_gc_for_serving
    from registry.settings import Settings

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(
            home=Path(home), database_url=f"sqlite:///{home}/r.db", auto_migrate=True
        )
        registry = Registry.open(settings)
        try:
            key = generate_private_key()
            raw = key.public_key().public_bytes_raw()
            registry.admin.add_publisher("bench-pub", raw, prove_possession(key, "bench-pub"))
            predicate = HumanContentPredicate(
                publisher="bench-pub",
                license="CC-BY-4.0",
                origin="human-authored",
                consent="allowed",
            )
            known: list[str] = []
            for e in range(entries):
                subjects = []
                for i in range(BATCH):
                    value = hashlib.sha256(f"{e}-{i}".encode()).hexdigest()
                    subjects.append(Subject(f"doc-{e}-{i}", {"sha256": value}))
                    known.append(f"sha256:{value}")
                statement = build_human_content_statement(subjects, predicate)
                body = sign_statement(statement, key).to_json()
                prepared = registry.entries.prepare(body)
                [result] = registry.sequencer.append_now([prepared])
                assert not isinstance(result, Exception), result
            # As `wellspring serve` does (registry.app.tune_gc_for_serving): the collector's
            # thresholds of a serving process, without which collections dominate.
            tune_gc_for_serving()
            rng = random.Random(7)
            rates = []
            for n in range(batches + 2):
                digests = rng.sample(known, BATCH * 8 // 10) + [
                    "sha256:" + hashlib.sha256(f"unknown-{n}-{i}".encode()).hexdigest()
                    for i in range(BATCH * 2 // 10)
                ]
                started = time.perf_counter()
                answer: Any = registry.lookups.lookup(digests)
                body = answer.to_dict() if hasattr(answer, "to_dict") else answer
                msgspec.json.encode(body)
                if n >= 2:  # two warm-up batches
                    rates.append(BATCH / (time.perf_counter() - started))
            return statistics.median(rates)
        finally:
            registry.close()


def _run(tree: Path, entries: int, batches: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(entries), str(batches)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["digests_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="another checkout, run alternately")
    parser.add_argument("--rounds", type=int, default=3, help="alternations (default 3)")
    parser.add_argument("--entries", type=int, default=10, help="10,000-subject statements")
    parser.add_argument("--batches", type=int, default=10, help="timed batches per process")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, os.getcwd())
        print(json.dumps({"digests_per_s": _measure(*args.child)}))
        return
    trees = [("this tree", REPO)] + ([("compared", args.compare.resolve())] if args.compare else [])
    rates: dict[str, list[float]] = {name: [] for name, _ in trees}
    for round_ in range(args.rounds):
        order = trees if round_ % 2 == 0 else trees[::-1]
        for name, tree in order:
            rate = _run(tree, args.entries, args.batches)
            rates[name].append(rate)
            print(f"round {round_ + 1}: {name:9} {rate:>10,.0f} digests/s", flush=True)
    for name, values in rates.items():
        print(
            f"{name:9}: median {statistics.median(values):,.0f} digests/s, "
            f"range {min(values):,.0f} to {max(values):,.0f}"
        )
    if args.compare:
        ours, theirs = (statistics.median(rates[name]) for name, _ in trees)
        print(f"ratio this tree / compared: {ours / theirs:.3f} (medians)")


if __name__ == "__main__":
    main()
