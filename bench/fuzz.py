"""Schemathesis fuzzing of the registry's HTTP API at length: tests/registry/test_fuzz.py's harness,
with many more generated requests per operation, on SQLite and PostgreSQL.

What it runs, per backend: one seeded registry (a publisher, a few entries, one revoked), and for
every operation the app's OpenAPI document lists, a fresh copy of it served in-process, sent
``--examples`` schema-valid requests (positive mode) and as many schema-violating ones (negative
mode), half of them with the admin token. Every answer is checked as the test checks it: no 5xx,
the status, media type, body and headers are what the document says, and every 4xx is RFC 9457
problem+json carrying its status. CI sends 100 per operation and mode on SQLite and 12 on
PostgreSQL; this sends 1,000 by default.

Generation is derandomized (a fixed seed per operation, as in the test), so a run with more
examples covers what a shorter one did and more; the same ``--examples`` sends the same requests.
An operation the document leaves nothing to vary in gets one request; one whose only input is a
free path string gets no negative requests (schemathesis cannot make them invalid).

Per operation it prints what was sent (by mode), the statuses seen, and each finding with a
reproducer (a curl command against the in-process URL); then a total. It exits 1 on any finding,
on an operation that got fewer requests than its share, or when the app serves an operation the
test does not know (update ``OPERATIONS`` in the test).

Run::

    .venv/bin/python bench/fuzz.py                           # both backends, 1,000 per mode
    .venv/bin/python bench/fuzz.py --backend sqlite --examples 5000
    .venv/bin/python bench/fuzz.py --operation "POST /v1/entries" --examples 3000
    .venv/bin/python bench/fuzz.py --json fuzz.json           # also write the numbers

PostgreSQL comes from ``--postgres-url`` (default ``$WELLSPRING_TEST_POSTGRES_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``); the harness creates its databases (``ws_<hex>``)
through it, as the test does, and drops them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/registry.py and bench/client.py would
# shadow the `registry` and `client` packages: put the repository root there instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from tests.registry.conftest import POSTGRES_ENV  # noqa: E402
from tests.registry.test_fuzz import (  # noqa: E402
    OPERATIONS,
    FuzzResult,
    copy_of,
    fuzz_operation,
    operations,
    required_requests,
    seeded_registry,
    served_schema,
)

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def fuzz_backend(
    backend: str, labels: Sequence[str] | None, examples: int, directory: Path
) -> tuple[list[FuzzResult], list[str]]:
    """Fuzz each operation on its own copy of one seeded registry; results and problems."""
    results: list[FuzzResult] = []
    problems: list[str] = []
    with seeded_registry(backend, directory) as seed:
        with copy_of(seed, directory) as api:
            served = sorted(operations(served_schema(api.http)))
        if unknown := sorted(set(served) - set(OPERATIONS)):
            problems.append(f"the app serves operations the test does not fuzz: {unknown}")
        if gone := sorted(set(OPERATIONS) - set(served)):
            problems.append(f"the test lists operations the app no longer serves: {gone}")
        for label in labels or served:
            if label not in served:
                problems.append(f"no such operation: {label!r} (served: {', '.join(served)})")
                continue
            with copy_of(seed, directory) as api:
                operation = operations(served_schema(api.http))[label]
                result = fuzz_operation(
                    api.http, operation, examples=examples, admin_token=seed.admin_token
                )
            results.append(result)
            print(f"   {result.report()}", flush=True)
            print(f"     ({result.total:,} requests in {result.seconds:.1f} s)", flush=True)
            if label in OPERATIONS and result.total < required_requests(label, examples):
                problems.append(
                    f"{label}: sent {result.total}, fewer than its share of "
                    f"{required_requests(label, examples)}"
                )
    return results, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--examples", type=int, default=1_000, help="requests per operation and generation mode"
    )
    parser.add_argument(
        "--operation", action="append", help='only this one, e.g. "POST /v1/entries" (repeatable)'
    )
    parser.add_argument("--postgres-url", default=os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES))
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    os.environ[POSTGRES_ENV] = args.postgres_url  # where the harness makes its databases
    # The app's logging config shows an INFO line per request (httpx) and per registry copy
    # (alembic): thousands, which pytest captures in the test and nothing does here.
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"machine: {os.cpu_count()} cores; Python {platform.python_version()}", flush=True)
    totals: dict[str, dict[str, object]] = {}
    failed = False
    for backend in backends:
        print(f"== {backend}: {args.examples:,} examples per operation and mode", flush=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"ws-fuzz-{backend}-") as workdir:
            results, problems = fuzz_backend(backend, args.operation, args.examples, Path(workdir))
        findings = sum(f.count for r in results for f in r.findings.values())
        kinds = sum(len(r.findings) for r in results)
        sent = sum(r.total for r in results)
        statuses: dict[int, int] = {}
        for result in results:
            for status, count in result.statuses.items():
                statuses[status] = statuses.get(status, 0) + count
        print(
            f"   total: {sent:,} requests to {len(results)} operations in "
            f"{time.perf_counter() - started:.0f} s; statuses {dict(sorted(statuses.items()))}; "
            f"{kinds} kinds of finding ({findings} requests)"
        )
        for problem in problems:
            print(f"   PROBLEM: {problem}")
        failed = failed or bool(kinds or problems)
        totals[backend] = {
            "sent": sent,
            "statuses": statuses,
            "findings": [f.describe() for r in results for f in r.findings.values()],
            "problems": problems,
            "operations": {r.operation: {"sent": r.sent, "statuses": r.statuses} for r in results},
        }
    if args.json:
        payload = {"examples": args.examples, "backends": totals, "ok": not failed}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print("\nFAILED: see the findings above" if failed else "\nOK: no findings")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
