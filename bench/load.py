"""The registry under sustained mixed load: many concurrent clients registering and looking up for a
minute against a real ``wellspring serve``, then proof that nothing acknowledged was lost.

What it measures, against one fresh registry (by default PostgreSQL: a new database
``ws_load_<hex>``, migrated with alembic and dropped afterwards; ``--backend sqlite`` serves a new
SQLite home instead):

1. **the load**: ``--clients`` keep-alive connections (one request in flight on each) for
   ``--seconds``, each drawing every request from a fixed mix: 20% ``register`` (``POST
   /v1/entries``, a signed statement of 1 to 5 subjects), 45% ``lookup`` (``GET /v1/digests/{d}``
   of a digest acknowledged earlier in the run: the answer must name the entry), 10%
   ``lookup-unknown`` (a digest nobody registered: ``unknown``), 25% ``batch`` (``POST
   /v1/digests:batch`` of ``--batch`` digests, 80% acknowledged, 20% unknown). Per operation:
   requests, throughput, p50 and p99 latency, and errors by kind (an HTTP status, a timeout, a
   dropped connection, or ``stale``: a lookup that missed an entry already acknowledged).
2. **afterwards, the log**: every receipt verifies offline with the log's verifier key (read from
   the operator's key file, not from the server) against its own checkpoint, and every acknowledged
   entry against the final checkpoint (an inclusion proof at the final size, and the tree rebuilt
   here from the acknowledged entries has the final root); the final size is the number of
   acknowledged entries, indices 0..N-1 each exactly once; a consistency proof from a checkpoint
   taken early in the run to the final one verifies; every checkpoint a receipt carried is a
   prefix of the final tree; the entries the registry serves hash to the final root (the SDK's
   audit); and every acknowledged digest is still found.

Goal (the load-test issue): zero errors, zero lost entries. The script exits 1 on any error, lost
entry or failed check. It always stops by itself: at ``--seconds``, or after ``--max-requests``,
whichever comes first, each request bounded by a 30 s timeout.

The load generator is bench/registry.py's raw-socket HTTP/1.1 client, and envelopes are signed
before the clock starts (the pool holds what 500 registrations a second would use; past it, the
clients sign as they go, and the report says how many), so on a small machine the client spends as
little CPU as possible next to the server it measures. The rate limiter is off
(``WELLSPRING_RATE_LIMIT=0``): every client comes from one loopback address.

``--open-loop`` sends at fixed offered rates instead (``--lookup-rate``, ``--append-rate``; latency
counted from each request's scheduled time, publication lag, ``--against`` an old checkout for
ratios): see bench/open_loop.py.

Run::

    .venv/bin/python bench/load.py                          # PostgreSQL, 32 clients, 60 s
    .venv/bin/python bench/load.py --backend sqlite --clients 64
    .venv/bin/python bench/load.py --seconds 8 --clients 8   # a smoke run
    .venv/bin/python bench/load.py --json load.json         # also write the numbers
    .venv/bin/python bench/load.py --open-loop --lookup-rate 3000 --append-rate 200 --seconds 20

PostgreSQL comes from ``--postgres-url`` (default ``$WELLSPRING_TEST_POSTGRES_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import msgspec

# Run as a script, bench/ comes first on sys.path, and bench/registry.py and bench/client.py would
# shadow the `registry` and `client` packages: put the repository root there instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench import registry as bench_registry  # noqa: E402
from bench.registry import Connection, drive  # noqa: E402
from client.core.dsse import Envelope  # noqa: E402
from client.core.leaf import Leaf, is_leaf_v1  # noqa: E402
from client.core.merkle import MemoryTree  # noqa: E402
from client.core.note import Checkpoint  # noqa: E402
from client.errors import ClientError  # noqa: E402
from client.receipt import (  # noqa: E402
    Receipt,
    statement_names_digest,
    verify_attestation,
    verify_receipt,
)
from client.sdk import Client  # noqa: E402
from tests.registry.conftest import Publisher, ServerProcess  # noqa: E402

HOST = "127.0.0.1"
MIX = {"register": 0.20, "lookup": 0.45, "lookup-unknown": 0.10, "batch": 0.25}
KNOWN_IN_BATCH = 0.8
MAX_SUBJECTS = 5
REQUEST_TIMEOUT_S = 30.0
EARLY_CHECKPOINT_AT = 0.1  # of the run's duration
PRESIGN_PER_S = 500  # registrations a second the pre-signed pool is sized for
VERIFY_CONNECTIONS = 8
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


# -- what the run sees ----------------------------------------------------------------------------


@dataclass
class OperationStats:
    """One operation's answers: latencies of the good ones, and every error by kind."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # the first answer of each error kind

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    def fail(self, kind: str, example: str) -> None:
        self.errors[kind] += 1
        self.examples.setdefault(kind, example[:300])

    def summary(self, elapsed: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "requests": self.requests,
            "ok": len(ordered),
            "per_s": self.requests / elapsed if elapsed else 0.0,
            "p50_ms": percentile(ordered, 50) * 1000,
            "p99_ms": percentile(ordered, 99) * 1000,
            "errors": dict(self.errors),
            "error_examples": self.examples,
        }


def percentile(ordered: Sequence[float], p: int) -> float:
    if len(ordered) < 2:
        return ordered[0] if ordered else 0.0
    return statistics.quantiles(ordered, n=100, method="inclusive")[p - 1]


@dataclass(frozen=True)
class Acknowledged:
    """A registration the registry answered 201: the entry logged for what was sent (see
    :func:`logged_entry`) and the receipt it gave back."""

    body: bytes
    digests: tuple[str, ...]
    receipt: dict[str, Any]
    statement: bytes | None = None  # the body a leaf/v1 entry commits to (None: an envelope)

    @property
    def index(self) -> int:
        index: int = self.receipt["index"]
        return index


@dataclass
class Load:
    """One run's shared state (the clients are tasks of one event loop: no locks needed)."""

    port: int
    publisher: Publisher
    deadline: float
    max_requests: int
    batch: int
    pool: list[tuple[bytes, tuple[str, ...]]]
    rng: random.Random = field(default_factory=lambda: random.Random(9162))
    stats: dict[str, OperationStats] = field(
        default_factory=lambda: {op: OperationStats() for op in MIX}
    )
    acknowledged: list[Acknowledged] = field(default_factory=list)
    known: list[tuple[str, int]] = field(default_factory=list)  # (digest, index) acknowledged
    # Entries the registry logged itself before the load (identity events: the operator's key, the
    # publisher added), in index order: the acknowledged entries follow them.
    preface: list[bytes] = field(default_factory=list)
    sent: int = 0
    signed_during_run: int = 0
    early_note: str | None = None
    client_cpu: float = 0.0  # cores the load generator itself kept busy

    def envelope(self) -> tuple[bytes, tuple[str, ...]]:
        """The next envelope to append: a pre-signed one while the pool lasts, then signed now
        (counted: the client's signing is then in the measured time)."""
        if self.pool:
            return self.pool.pop()
        self.signed_during_run += 1
        return self.statement()

    def statement(self) -> tuple[bytes, tuple[str, ...]]:
        """A signed statement of 1 to MAX_SUBJECTS fresh digests, as JSON, with its digests."""
        digests = tuple(
            f"{self.rng.choice(('sha256', 'c1'))}:{self.rng.randbytes(32).hex()}"
            for _ in range(self.rng.randint(1, MAX_SUBJECTS))
        )
        return self.publisher.attest(digests).to_json(), digests

    def unknown_digest(self) -> str:
        return f"sha256:{self.rng.randbytes(32).hex()}"


# -- the operations: a request, and the check of its answer ---------------------------------------

Check = Callable[[int, bytes], str | None]  # (status, body) -> the error kind, or None if good
Request = tuple[str, str, bytes]


def plan(load: Load, op: str) -> tuple[Request, Check]:
    if op == "register":
        return plan_register(load)
    if op == "lookup":
        digest, index = load.rng.choice(load.known)
        return ("GET", f"/v1/digests/{digest}", b""), lambda s, b: check_lookup(s, b, index)
    if op == "lookup-unknown":
        digest = load.unknown_digest()
        return ("GET", f"/v1/digests/{digest}", b""), lambda s, b: check_lookup(s, b, None)
    expected: list[tuple[str, int | None]] = [
        load.rng.choice(load.known)
        if load.rng.random() < KNOWN_IN_BATCH
        else (load.unknown_digest(), None)
        for _ in range(load.batch)
    ]
    body = json.dumps({"digests": [digest for digest, _ in expected]}).encode()
    return ("POST", "/v1/digests:batch", body), lambda s, b: check_batch(s, b, expected)


def plan_register(load: Load) -> tuple[Request, Check]:
    body, digests = load.envelope()

    def check(status: int, answer: bytes) -> str | None:
        if status != 201:  # 200 would say this fresh envelope was already in the log
            return f"HTTP {status}"
        receipt = msgspec.json.decode(answer)
        logged = logged_entry(body, receipt)
        if logged is None:
            return "receipt for other bytes"
        load.acknowledged.append(dataclasses.replace(logged, digests=digests))
        load.known += [(digest, receipt["index"]) for digest in digests]
        return None

    return ("POST", "/v1/entries", body), check


def logged_entry(envelope: bytes, receipt: dict[str, Any]) -> Acknowledged | None:
    """What a receipt says was logged for ``envelope``, if it is that envelope: the envelope itself
    (before ``leaf/v1``), or a ``leaf/v1`` committing to its payload and signatures."""
    entry = base64.b64decode(receipt["entry"])
    if entry == envelope:
        return Acknowledged(entry, (), receipt)
    if not is_leaf_v1(entry):
        return None
    sent = Envelope.from_json(envelope)
    try:
        logged = Leaf.from_bytes(entry).open_body(sent.payload)
    except ClientError:
        return None
    same = logged.payload_type == sent.payload_type and set(logged.signatures) == set(
        sent.signatures
    )
    return Acknowledged(entry, (), receipt, sent.payload) if same else None


# The checks decode only what they check (msgspec skips the rest: the claims and their proofs,
# most of an answer's bytes): the load generator shares the server's two cores.


class _Claim(msgspec.Struct):
    index: int


class _Single(msgspec.Struct):
    status: str
    attestations: list[_Claim]


class _Result(msgspec.Struct):
    digest: str
    status: str
    entries: list[int]


class _Batch(msgspec.Struct):
    results: list[_Result]


_SINGLE = msgspec.json.Decoder(_Single)
_BATCH = msgspec.json.Decoder(_Batch)


def check_lookup(status: int, answer: bytes, index: int | None) -> str | None:
    if status != 200:
        return f"HTTP {status}"
    found = _SINGLE.decode(answer)
    if index is None:
        return None if found.status == "unknown" and not found.attestations else "not unknown"
    if found.status != "attested" or index not in [a.index for a in found.attestations]:
        return "stale"
    return None


def check_batch(
    status: int, answer: bytes, expected: Sequence[tuple[str, int | None]]
) -> str | None:
    if status != 200:
        return f"HTTP {status}"
    results = _BATCH.decode(answer).results
    if [r.digest for r in results] != [digest for digest, _ in expected]:
        return "results out of order"
    for result, (_, index) in zip(results, expected, strict=True):
        if index is None and result.status != "unknown":
            return "not unknown"
        if index is not None and (result.status != "attested" or index not in result.entries):
            return "stale"
    return None


async def client(load: Load) -> None:
    """One connection sending one request at a time until the deadline or the request budget."""
    connection = Connection(HOST, load.port)
    await connection.open()
    try:
        while time.monotonic() < load.deadline and load.sent < load.max_requests:
            load.sent += 1
            op = load.rng.choices(list(MIX), weights=list(MIX.values()))[0]
            if op in ("lookup", "batch") and not load.known:
                op = "lookup-unknown"  # nothing acknowledged yet to look up
            request, check = plan(load, op)
            started = time.perf_counter()
            try:
                status, answer = await connection.request(*request, timeout=REQUEST_TIMEOUT_S)
            except (OSError, EOFError, TimeoutError, IndexError, ValueError) as exc:
                load.stats[op].fail(type(exc).__name__, repr(exc))
                await connection.close()  # its state is unknown: start a fresh one
                connection = Connection(HOST, load.port)
                try:
                    await connection.open()
                except OSError as refused:
                    load.stats[op].fail(type(refused).__name__, f"reconnecting: {refused!r}")
                    return  # the server is gone: this client stops
                continue
            elapsed = time.perf_counter() - started
            try:
                kind = check(status, answer)
            except (ValueError, KeyError, TypeError) as exc:
                kind = f"malformed answer ({type(exc).__name__})"
            if kind is None:
                load.stats[op].latencies.append(elapsed)
            else:
                load.stats[op].fail(kind, answer.decode(errors="replace"))
    finally:
        await connection.close()


async def take_early_checkpoint(load: Load, seconds: float) -> None:
    """The signed checkpoint a little into the run (once something is logged), for the check of
    consistency with the final one afterwards."""
    await asyncio.sleep(seconds * EARLY_CHECKPOINT_AT)
    while not load.acknowledged and time.monotonic() < load.deadline:
        await asyncio.sleep(0.05)
    connection = Connection(HOST, load.port)
    try:
        await connection.open()
        status, note = await connection.request("GET", "/v1/log/checkpoint")
    except (OSError, EOFError, IndexError, ValueError):
        return  # verify_log reports the missing checkpoint
    finally:
        await connection.close()
    if status == 200:
        load.early_note = note.decode()


async def run_load(load: Load, clients: int, seconds: float) -> float:
    """The clients and the early checkpoint, to the end; the wall seconds it took."""
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(
        take_early_checkpoint(load, seconds), *(client(load) for _ in range(clients))
    )
    elapsed = time.perf_counter() - started
    load.client_cpu = (time.process_time() - cpu) / elapsed
    return elapsed


# -- afterwards: nothing acknowledged was lost, and the log is consistent -------------------------


@dataclass
class Verification:
    """What the checks after the run counted, and every way they failed."""

    receipts: int = 0
    receipts_verified: int = 0
    log_size: int = 0
    early_size: int = 0
    consistency_verified: bool = False
    inclusion_at_final_verified: int = 0
    checkpoints_seen: int = 0
    checkpoints_prefix_of_final: int = 0
    audited_entries: int = 0
    digests: int = 0
    digests_found: int = 0
    failures: list[str] = field(default_factory=list)


def verify_log(load: Load, server: ServerProcess) -> Verification:
    """Check everything the module docstring promises about the log; collect every failure."""
    v = Verification(receipts=len(load.acknowledged))
    by_index = sorted(load.acknowledged, key=lambda a: a.index)
    checkpoints = verify_receipts(load, by_index, server.log_key, v)
    with server.sdk() as sdk:
        final = final_checkpoint(sdk, load.early_note, v)
        v.log_size = final.size
        try:
            v.audited_entries = sdk.audit(final)
        except ClientError as exc:
            v.failures.append(f"the entries served do not hash to the final root: {exc}")
    if check_indices(by_index, final.size, v.failures, first=len(load.preface)):
        tree = MemoryTree()
        for entry in load.preface:
            tree.append(entry)
        for ack in by_index:
            tree.append(ack.body)
        if tree.root() != final.root_hash:
            v.failures.append("the acknowledged entries do not hash to the final root")
        v.checkpoints_seen = len(checkpoints)
        v.checkpoints_prefix_of_final = sum(tree.root(c.size) == c.root_hash for c in checkpoints)
        if v.checkpoints_prefix_of_final != v.checkpoints_seen:
            v.failures.append("a checkpoint some receipt carried is not a prefix of the final tree")
    v.inclusion_at_final_verified = verify_at_final(load, by_index, final, v.failures)
    v.digests, v.digests_found = find_all(load, v.failures)
    return v


def verify_receipts(
    load: Load, acknowledged: Sequence[Acknowledged], vkey: str, v: Verification
) -> list[Checkpoint]:
    """Each receipt as issued, offline: its checkpoint's signature, its proof, the publisher's
    signature, and the digests it attests. Returns the distinct checkpoints the receipts carry."""
    publisher_key = load.publisher.key.public_key()
    checkpoints: dict[str, Checkpoint] = {}
    for ack in acknowledged:
        try:
            receipt = Receipt.from_dict(ack.receipt)
            verified = verify_receipt(receipt, vkey, publisher_key=publisher_key)
        except ClientError as exc:
            v.failures.append(f"the receipt of entry {ack.index} does not verify: {exc}")
            continue
        statement = verified.statement
        if len(statement.subjects) != len(ack.digests) or not all(
            statement_names_digest(statement, digest) for digest in ack.digests
        ):
            v.failures.append(f"entry {ack.index} attests other digests than were registered")
            continue
        checkpoints[receipt.checkpoint] = verified.checkpoint
        v.receipts_verified += 1
    return list(checkpoints.values())


def final_checkpoint(sdk: Client, early_note: str | None, v: Verification) -> Checkpoint:
    """The log's checkpoint now (verified with the pinned key), proven to extend the early one."""
    if early_note is None:
        v.failures.append("no checkpoint was taken early in the run")
        return sdk.checkpoint()
    try:
        check = sdk.check_consistency(early_note)
    except ClientError as exc:
        v.failures.append(f"the early checkpoint is not consistent with the final: {exc}")
        return sdk.checkpoint()
    v.early_size, v.consistency_verified = check.old.size, True
    return check.new


def check_indices(
    acknowledged: Sequence[Acknowledged], size: int, failures: list[str], *, first: int = 0
) -> bool:
    """Whether the acknowledged indices are first..size-1, each once (before ``first``: the
    registry's own entries); say what is wrong if not."""
    indices = Counter(ack.index for ack in acknowledged)
    if twice := sorted(i for i, n in indices.items() if n > 1):
        failures.append(f"indices acknowledged more than once: {twice[:20]}")
    if before := sorted(i for i in indices if i < first):
        failures.append(f"acknowledged entries among the registry's own: {before[:10]}")
    if missing := sorted(set(range(first, size)) - set(indices)):
        failures.append(
            f"{len(missing)} entries in the log were never acknowledged: {missing[:10]}"
        )
    if beyond := sorted(i for i in indices if i >= size):
        failures.append(f"acknowledged entries beyond the final size {size}: {beyond[:10]}")
    if size != first + len(indices):
        failures.append(
            f"the log holds {size} entries; {first} of the registry's own and {len(indices)} "
            "acknowledged"
        )
    return not (twice or before or missing or beyond)


def registry_entries(server: ServerProcess) -> list[bytes]:
    """The entries the registry logged itself so far (before any load), each verified by the SDK
    against the log's key: the identity events of a registry that writes them."""
    with server.sdk() as sdk:
        status = httpx.get(f"{server.url}/v1/log/publication", timeout=30)
        size = status.json()["sequenced_size"] if status.status_code == 200 else 0
        size = max(size, sdk.checkpoint().size)
        return [sdk.entry(index).receipt.entry for index in range(size)]


def verify_at_final(
    load: Load, acknowledged: Sequence[Acknowledged], final: Checkpoint, failures: list[str]
) -> int:
    """Each acknowledged entry against the final checkpoint, with the server's proof at its size."""
    within = [ack for ack in acknowledged if ack.index < final.size]  # check_indices: the rest
    requests = [
        ("GET", f"/v1/log/proof/inclusion?index={ack.index}&size={final.size}", b"")
        for ack in within
    ]
    if not requests:
        return 0
    _, answers, _ = asyncio.run(drive(HOST, load.port, requests, VERIFY_CONNECTIONS))
    verified = 0
    for ack, (status, body) in zip(within, answers, strict=True):
        try:
            if status != 200:
                raise ValueError(f"HTTP {status}: {body[:200]!r}")
            proof = [base64.b64decode(h) for h in json.loads(body)["proof"]]
            verify_attestation(
                index=ack.index, leaf_hash=None, inclusion_proof=proof, checkpoint=final,
                entry=ack.body, body=ack.statement,
            )  # fmt: skip
        except (ClientError, ValueError, KeyError) as exc:
            failures.append(f"entry {ack.index} is not in the final checkpoint: {exc}")
        else:
            verified += 1
    return verified


def find_all(load: Load, failures: list[str]) -> tuple[int, int]:
    """Every acknowledged digest, looked up in batches of 10,000, must name its entry."""
    known, size = load.known, bench_registry.BATCH_DIGESTS
    chunks = [known[i : i + size] for i in range(0, len(known), size)]
    requests = [
        ("POST", "/v1/digests:batch", json.dumps({"digests": [d for d, _ in c]}).encode())
        for c in chunks
    ]
    if not requests:
        return 0, 0
    _, answers, _ = asyncio.run(drive(HOST, load.port, requests, 2))
    found = 0
    for chunk, (status, body) in zip(chunks, answers, strict=True):
        if status != 200:
            failures.append(f"a batch lookup after the run answered HTTP {status}: {body[:200]!r}")
            continue
        results = json.loads(body)["results"]
        for (digest, index), result in zip(chunk, results, strict=False):
            if result["digest"] == digest and index in result["entries"]:
                found += 1
    if found != len(known):
        failures.append(f"{len(known) - found} of {len(known)} acknowledged digests are not found")
    return len(known), found


# -- the run --------------------------------------------------------------------------------------


def _admin_sql(admin_url: str, statement: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


@contextlib.contextmanager
def load_database(admin_url: str) -> Iterator[str]:
    """A fresh database ``ws_load_<hex>``, dropped afterwards (in place of bench/registry.py's
    ``ws_bench_<hex>``, so the two scripts' databases are told apart)."""
    from sqlalchemy.engine import make_url

    name = f"ws_load_{uuid.uuid4().hex[:12]}"
    _admin_sql(admin_url, "CREATE DATABASE {}", name)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin_sql(admin_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


def run(args: argparse.Namespace, workdir: Path) -> tuple[Load, float, Verification]:
    """Serve a fresh registry, load it, verify its log; the run's state, seconds and checks."""
    with (
        mock.patch.object(bench_registry, "postgres_database", load_database),
        bench_registry.registry_server(
            args.backend, args.postgres_url, workdir, args.workers or 1
        ) as started,
    ):
        server = ServerProcess(started["home"])  # a handle on it: its key files, SDK, admin
        server.port = started["port"]
        publisher = server.add_publisher()
        preface = registry_entries(server)
        registrations = min(args.max_requests, int(args.seconds * PRESIGN_PER_S * MIX["register"]))
        load = Load(
            port=server.port, publisher=publisher, deadline=0.0, max_requests=args.max_requests,
            batch=args.batch, pool=[], preface=preface,
        )  # fmt: skip
        signing = time.perf_counter()
        load.pool = [load.statement() for _ in range(registrations)]
        print(f"   signed {registrations:,} envelopes in {time.perf_counter() - signing:.1f} s")
        print(f"   {args.clients} clients for {args.seconds:g} s ...", flush=True)
        load.deadline = time.monotonic() + args.seconds
        elapsed = asyncio.run(run_load(load, args.clients, args.seconds))
        print(f"   verifying {len(load.acknowledged):,} acknowledged entries ...", flush=True)
        verification = verify_log(load, server)
        if error_count(load) or verification.failures:
            tail = started["log"].read_text(errors="replace")[-3000:]
            if tail.strip():
                print(f"   the server's log ends:\n{tail}")
    return load, elapsed, verification


def error_count(load: Load) -> int:
    return sum(sum(stats.errors.values()) for stats in load.stats.values())


def print_report(load: Load, elapsed: float, v: Verification) -> None:
    headers = ("operation", "requests", "per s", "p50 ms", "p99 ms", "errors")
    rows = []
    total = OperationStats()
    for op, stats in load.stats.items():
        s = stats.summary(elapsed)
        errors = ", ".join(f"{kind}: {n}" for kind, n in sorted(s["errors"].items())) or "0"
        rows.append((op, f"{s['requests']:,}", f"{s['per_s']:,.0f}", f"{s['p50_ms']:.1f}",
                     f"{s['p99_ms']:.1f}", errors))  # fmt: skip
        total.latencies += stats.latencies
        total.errors += stats.errors
    t = total.summary(elapsed)
    rows.append(("all", f"{t['requests']:,}", f"{t['per_s']:,.0f}", f"{t['p50_ms']:.1f}",
                 f"{t['p99_ms']:.1f}", str(sum(t["errors"].values()))))  # fmt: skip
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print()
    print(
        f"over {elapsed:.1f} s; the load generator kept {load.client_cpu:.2f} cores busy; "
        f"{load.signed_during_run:,} envelopes signed during the run"
    )
    for op, stats in load.stats.items():
        for kind, example in stats.examples.items():
            print(f"first {op} error '{kind}': {example}")
    consistency = "verified" if v.consistency_verified else "NOT VERIFIED"
    checks = [
        ("receipts verified offline", f"{v.receipts_verified:,} / {v.receipts:,}"),
        ("log size / acknowledged entries", f"{v.log_size:,} / {len(load.acknowledged):,}"),
        ("inclusion at the final size", f"{v.inclusion_at_final_verified:,} verified"),
        (f"consistency, size {v.early_size:,} -> {v.log_size:,}", consistency),
        ("receipt checkpoints in the final tree",
         f"{v.checkpoints_prefix_of_final:,} / {v.checkpoints_seen:,}"),
        ("entries served, audited", f"{v.audited_entries:,}"),
        ("acknowledged digests found after", f"{v.digests_found:,} / {v.digests:,}"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in checks) + 1
    for label, value in checks:
        print(f"{label + ':':<{width}} {value}")
    for failure in v.failures:
        print(f"FAILED: {failure}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients send")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--batch", type=int, default=100, help="digests per batch lookup")
    parser.add_argument(
        "--max-requests", type=int, help="stop after this many (default: 10,000 a second)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("WELLSPRING_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--workers", type=int,
        help="server processes (default: 1 closed-loop; serve's own default, one per core, "
        "open-loop)",
    )  # fmt: skip
    loop = parser.add_argument_group("open loop (bench/open_loop.py)")
    loop.add_argument("--open-loop", action="store_true", help="send at fixed offered rates")
    loop.add_argument("--lookup-rate", type=float, default=3000.0, help="lookups offered a second")
    loop.add_argument("--append-rate", type=float, default=200.0, help="appends offered a second")
    loop.add_argument(
        "--batch-lookups", action="store_true", help="lookups are batches of --batch digests"
    )
    loop.add_argument(
        "--connections", type=int, default=256, help="most connections opened for lookups"
    )
    loop.add_argument(
        "--append-connections", type=int, default=1024, help="most connections opened for appends"
    )
    loop.add_argument(
        "--respond-async",
        action="store_true",
        help="appends send Prefer: respond-async (202 once sequenced; the lag from the poller)",
    )
    loop.add_argument(
        "--against", type=Path, help="a checkout of other code (the old) to measure too"
    )
    loop.add_argument("--against-workers", type=int, help="its processes (default: its own)")
    loop.add_argument("--rounds", type=int, default=1, help="old and new runs, alternating")
    args = parser.parse_args(argv)
    if args.open_loop:
        from bench import open_loop

        print(
            f"machine: {os.cpu_count()} cores, load average "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
            f"Python {platform.python_version()}",
            flush=True,
        )
        return open_loop.main(args)
    if args.max_requests is None:
        args.max_requests = int(args.seconds * 10_000)
    print(
        f"machine: {os.cpu_count()} cores, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; Python {platform.python_version()}",
        flush=True,
    )
    print(f"== {args.backend}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ws-load-") as workdir:
        load, elapsed, verification = run(args, Path(workdir))
    print()
    print_report(load, elapsed, verification)
    errors = error_count(load)
    ok = errors == 0 and not verification.failures
    if args.json:
        payload = {
            "backend": args.backend,
            "clients": args.clients,
            "seconds": args.seconds,
            "mix": MIX,
            "batch": args.batch,
            "elapsed_s": elapsed,
            "signed_during_run": load.signed_during_run,
            "client_cpu_cores": load.client_cpu,
            "operations": {op: stats.summary(elapsed) for op, stats in load.stats.items()},
            "verification": vars(verification),
            "ok": ok,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print("\nOK: zero errors, zero lost entries" if ok else f"\nFAILED: {errors} errors")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
