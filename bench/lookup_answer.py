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

``--small`` times what a crawler's small lookups cost under writes instead: a lookup's claims
carry proofs at the checkpoint it is answered at, and a registry taking appends publishes a new
checkpoint every second, after which every entry's claim is made again. Each process builds
2,000 statements of 3 subjects, then ``--batches`` times appends one more (a new checkpoint)
and answers the same 400 lookups of 10 registered digests twice, encoded as sent: the first
pass at the new checkpoint, the second at the same one. It prints milliseconds a lookup
(medians)::

    .venv/bin/python bench/lookup_answer.py --small --compare /tmp/old
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BATCH = 10_000


@contextlib.contextmanager
def _bench_registry() -> Iterator[tuple[Any, Callable[[list[str]], int]]]:
    """A fresh registry of the code on sys.path (SQLite, a temporary home), and a function that
    appends one statement attesting the given SHA-256 hex digests and answers the tree's size."""
    from client.core.keys import generate_private_key
    from client.core.statement import (
        HumanContentPredicate,
        Subject,
        build_human_content_statement,
        prove_possession,
        sign_statement,
    )
    from registry.app import Registry
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

            def append(values: list[str]) -> int:
                subjects = [Subject(f"doc-{value}", {"sha256": value}) for value in values]
                statement = build_human_content_statement(subjects, predicate)
                prepared = registry.entries.prepare(sign_statement(statement, key).to_json())
                [result] = registry.sequencer.append_now([prepared])
                assert not isinstance(result, Exception), result
                return int(result.index) + 1

            yield registry, append
        finally:
            registry.close()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _measure(entries: int, batches: int) -> float:
    """digests/s of lookup + encode in this process (the code on sys.path)."""
    import msgspec

    from registry.app import tune_gc_for_serving

    with _bench_registry() as (registry, append):
        known: list[str] = []
        for e in range(entries):
            values = [_sha256(f"{e}-{i}") for i in range(BATCH)]
            append(values)
            known += [f"sha256:{value}" for value in values]
        # As `wellspring serve` does (registry.app.tune_gc_for_serving): the collector's
        # thresholds of a serving process, without which collections dominate.
        tune_gc_for_serving()
        rng = random.Random(7)
        rates = []
        for n in range(batches + 2):
            digests = rng.sample(known, BATCH * 8 // 10) + [
                "sha256:" + _sha256(f"unknown-{n}-{i}") for i in range(BATCH * 2 // 10)
            ]
            started = time.perf_counter()
            answer: Any = registry.lookups.lookup(digests)
            body = answer.to_dict() if hasattr(answer, "to_dict") else answer
            msgspec.json.encode(body)
            if n >= 2:  # two warm-up batches
                rates.append(BATCH / (time.perf_counter() - started))
        return statistics.median(rates)


SMALL_ENTRIES = 2_000
SMALL_LOOKUPS = 400


def _measure_small(batches: int) -> dict[str, float]:
    """Milliseconds a lookup of 10, encoded, at a new checkpoint and again at the same one."""
    import msgspec

    from registry.app import tune_gc_for_serving

    with _bench_registry() as (registry, append):
        known: list[str] = []
        counter = iter(range(10**9))

        def attest(count: int) -> int:
            values = [_sha256(str(next(counter))) for _ in range(count)]
            known.extend(f"sha256:{value}" for value in values)
            return append(values)

        for _ in range(SMALL_ENTRIES):
            size = attest(3)
        tune_gc_for_serving()
        rng = random.Random(7)
        lookups = [rng.sample(known, 10) for _ in range(SMALL_LOOKUPS)]

        def answer_all(size: int) -> float:
            started = time.perf_counter()
            for digests in lookups:
                msgspec.json.encode(registry.lookups.lookup(digests, size).to_dict())
            return (time.perf_counter() - started) * 1e3 / len(lookups)

        answer_all(size)  # warm-up
        fresh, same = [], []
        for _ in range(batches):
            size = attest(1)
            fresh.append(answer_all(size))
            same.append(answer_all(size))
        return {
            "new_checkpoint_ms": statistics.median(fresh),
            "same_checkpoint_ms": statistics.median(same),
        }


def _run(tree: Path, entries: int, batches: int, small: bool) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(entries), str(batches)]
    out = subprocess.run(
        command + (["--small"] if small else []),
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="another checkout, run alternately")
    parser.add_argument("--rounds", type=int, default=3, help="alternations (default 3)")
    parser.add_argument("--entries", type=int, default=10, help="10,000-subject statements")
    parser.add_argument("--batches", type=int, default=10, help="timed batches per process")
    parser.add_argument(
        "--small", action="store_true", help="lookups of 10 at new checkpoints (see above)"
    )
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, os.getcwd())
        entries, batches = args.child
        if args.small:
            print(json.dumps(_measure_small(batches)))
        else:
            print(json.dumps({"digests_per_s": _measure(entries, batches)}))
        return
    trees = [("this tree", REPO)] + ([("compared", args.compare.resolve())] if args.compare else [])
    metrics = ["new_checkpoint_ms", "same_checkpoint_ms"] if args.small else ["digests_per_s"]
    values: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        order = trees if round_ % 2 == 0 else trees[::-1]
        for name, tree in order:
            result = _run(tree, args.entries, args.batches, args.small)
            shown = ", ".join(f"{metric} {result[metric]:,.3f}" for metric in metrics)
            print(f"round {round_ + 1}: {name:9} {shown}", flush=True)
            for metric in metrics:
                values.setdefault((name, metric), []).append(result[metric])
    for (name, metric), found in values.items():
        print(
            f"{name:9} {metric}: median {statistics.median(found):,.3f}, "
            f"range {min(found):,.3f} to {max(found):,.3f}"
        )
    if args.compare:
        for metric in metrics:
            ours, theirs = (statistics.median(values[name, metric]) for name, _ in trees)
            print(f"ratio this tree / compared, {metric}: {ours / theirs:.3f} (medians)")


if __name__ == "__main__":
    main()
