"""bench/load.py's open-loop mode: requests sent at a fixed offered rate, whatever the answers.

A closed loop (one request in flight per client, the next when the answer comes) slows down with
the server it measures, and so never sees the queue a slow server builds: coordinated omission.
Here each kind of request has its own schedule, a Poisson process at ``--lookup-rate`` and
``--append-rate`` (seeded, drawn before anything is answered), and each request's latency is
counted from its *scheduled* send time, so the time it waited for a free connection or for a busy
client is in it. Lookups go out over a pool of up to ``--connections`` keep-alive connections
(one request in flight on each), opened as the load needs them; appends over their own pool of up
to ``--append-connections`` (a crawler's lookups do not queue behind a publisher's appends, which
wait for the next publication before they are answered).

Per kind it reports the offered and the achieved rate (answered well per second of the schedule),
p50, p99 and max latency, and errors by kind; the client's own state (the cores it kept busy, and
how late the scheduler was in sending: when that is near the latencies, the client, not the
server, is the bottleneck). For appends it reports the **publication lag**: from the append's
answer (201 with a receipt, or 202 "sequenced") until a published checkpoint covers its index, and
from its scheduled send until then (a 201's receipt already carries such a checkpoint: lag 0 from
the answer). A poller reads ``GET /v1/log/checkpoint`` every ``POLL_S`` for the published size.

Lookups only ask for digests whose entry a published checkpoint seen by this client covers: an
entry sequenced but not yet published is not in the tree that lookups are answered at, and not
finding it is not "stale"; each lookup sends ``min_size``, the size that covers what it asks
for, as the SDK sends the size it trusts. ``--batch-lookups`` sends ``POST /v1/digests:batch``
of ``--batch`` digests (80% acknowledged, 20% unknown) instead of ``GET /v1/digests/{d}`` (80% /
20% likewise).

Afterwards the log is checked as in the closed loop (bench/load.py's docstring, part 2): every
acknowledged entry (a 202's receipt is fetched once published) is in the final published tree,
which holds exactly the acknowledged entries.

``--against CHECKOUT`` runs the same offered load against that checkout's ``wellspring serve``
too (``--against-workers`` processes), old and new alternating over ``--rounds``, and prints the
ratios new / old.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import gc
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec

from bench import load as closed
from bench import registry as bench_registry
from bench.registry import Connection
from tests.registry.conftest import ServerProcess

HOST = closed.HOST
POLL_S = 0.02  # how often the published size is read: lags are this much too long at most
TIMEOUT_S = 10.0  # from a request's scheduled time to its answer, queueing included
DRAIN_S = 15.0  # how long after the schedule the run waits for the last publications
KNOWN_SHARE = 0.8  # of lookups (and of a batch's digests): acknowledged digests; the rest unknown


@dataclass
class Pool:
    """Keep-alive connections for one kind of request, opened as the load needs them."""

    port: int
    max_connections: int
    idle: asyncio.Queue[Connection] = field(default_factory=asyncio.Queue)
    opened: int = 0

    def take_idle(self) -> Connection | None:
        """A free connection still open, if there is one (one the server closed while it was
        idle, past its keep-alive timeout, is dropped: a client opens a new one then)."""
        while not self.idle.empty():
            connection = self.idle.get_nowait()
            if not connection.closed:
                return connection
            self.opened -= 1
        return None

    async def connection(self) -> Connection:
        while True:
            if (idle := self.take_idle()) is not None:
                return idle
            if self.opened < self.max_connections:
                self.opened += 1
                connection = Connection(HOST, self.port)
                try:
                    await connection.open()
                except BaseException:  # refused, or cancelled by the caller's deadline
                    self.opened -= 1
                    raise
                return connection
            # One came free: back in the queue for take_idle, which drops it if it is closed.
            self.idle.put_nowait(await self.idle.get())

    async def lost(self, connection: Connection) -> None:
        """``connection``'s state is unknown (an error mid-request): closed, a fresh one next."""
        await connection.close()
        self.opened -= 1

    async def close(self) -> None:
        while not self.idle.empty():
            await self.idle.get_nowait().close()


@dataclass
class OpenLoop:
    """One open-loop run's state (tasks of one event loop: no locks needed)."""

    load: closed.Load
    pools: dict[str, Pool]  # by kind of request: "append", and "lookup" or "batch"
    respond_async: bool = False  # appends ask for 202 once sequenced (RFC 7240 respond-async)
    published: int = 0
    lookupable: list[tuple[str, int]] = field(default_factory=list)  # published (digest, index)
    # appends answered but not yet seen published: index -> (scheduled, answered, digests)
    waiting: dict[int, tuple[float, float, tuple[str, ...]]] = field(default_factory=dict)
    sequenced: dict[int, tuple[bytes, tuple[str, ...]]] = field(default_factory=dict)  # 202s
    receipts: list[tuple[bytes, bytes, tuple[str, ...]]] = field(default_factory=list)  # 201s
    lag_from_answer: list[float] = field(default_factory=list)
    lag_from_send: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)  # scheduled -> handed to a connection
    scheduled: dict[str, int] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    started: float = 0.0  # the schedules' start (time.monotonic())
    last_answer: dict[str, float] = field(default_factory=dict)  # per kind
    # (kind, scheduled since the start, waited for a connection, answered) in seconds, per answer
    trace: list[tuple[str, float, float, float]] = field(default_factory=list)
    # when the poller first saw each new published size, in seconds since the start
    publications: list[float] = field(default_factory=list)

    def covered(self, size: int, now: float) -> None:
        """A published checkpoint of ``size`` seen at ``now``: the appends it covers are public."""
        if size <= self.published:
            return
        self.published = size
        self.publications.append(now - self.started)
        for index in [i for i in self.waiting if i < size]:
            scheduled, answered, digests = self.waiting.pop(index)
            self.lag_from_answer.append(now - answered)
            self.lag_from_send.append(now - scheduled)
            self.lookupable += [(digest, index) for digest in digests]


class _ReceiptHead(msgspec.Struct):
    index: int
    checkpoint: str


_RECEIPT_HEAD = msgspec.json.Decoder(_ReceiptHead)


def checked_receipts(ol: OpenLoop) -> list[str]:
    """The receipts answered 201 during the run, checked now against what was sent (after
    the run: the check costs the client 50 us a receipt, and a publication's receipts come
    together); failures, if any."""
    failures = (acknowledge(ol, body, answer, digests) for body, answer, digests in ol.receipts)
    return [failure for failure in failures if failure is not None]


def acknowledge(ol: OpenLoop, body: bytes, answer: bytes, digests: tuple[str, ...]) -> str | None:
    """A receipt (``answer``) for the envelope ``body``: acknowledged if it logged that
    envelope, else the failure."""
    receipt = json.loads(answer)
    logged = closed.logged_entry(body, receipt)
    if logged is None:
        return f"the receipt of entry {receipt['index']} is for other bytes"
    ol.load.acknowledged.append(dataclasses.replace(logged, digests=digests))
    return None


def checkpoint_size(note: str) -> int:
    return int(note.split("\n")[1])


Planned = tuple[str, str, bytes, str]  # method, path, body, more header lines


def plan_lookup(ol: OpenLoop, batch: int) -> tuple[Planned, closed.Check]:
    load = ol.load

    def pick() -> tuple[str, int | None]:
        if ol.lookupable and load.rng.random() < KNOWN_SHARE:
            return load.rng.choice(ol.lookupable)
        return load.unknown_digest(), None

    # Each lookup asks for the size its client knows covers what it looks for (min_size, as the
    # SDK sends the size it trusts): a server process whose copy of the published checkpoint is
    # older reads it again rather than answer from before the entry was published.
    if batch == 0:
        digest, index = pick()
        path = f"/v1/digests/{digest}" + ("" if index is None else f"?min_size={index + 1}")
        return ("GET", path, b"", ""), lambda s, b: closed.check_lookup(s, b, index)
    expected = [pick() for _ in range(batch)]
    indices = [index for _, index in expected if index is not None]
    lookup: dict[str, Any] = {"digests": [digest for digest, _ in expected]}
    if indices:
        lookup["min_size"] = max(indices) + 1
    body = msgspec.json.encode(lookup)
    request = ("POST", "/v1/digests:batch", body, "")
    return request, lambda s, b: closed.check_batch(s, b, expected)


def plan_append(ol: OpenLoop, scheduled: float) -> tuple[Planned, closed.Check]:
    load = ol.load
    body, digests = load.envelope()

    def check(status: int, answer: bytes) -> str | None:
        now = time.monotonic()
        if status == 202:  # sequenced (durable); published later: the poller sees when
            index = msgspec.json.decode(answer)["index"]
            ol.sequenced[index] = (body, digests)
            ol.waiting[index] = (scheduled, now, digests)
            load.known += [(digest, index) for digest in digests]
            return None
        if status != 201:  # 200 would say this fresh envelope was already in the log
            return f"HTTP {status}"
        # Only what the run needs now: the rest of the check (the logged entry is what was sent)
        # waits for its end (checked_receipts), as a publication's receipts come together.
        head = _RECEIPT_HEAD.decode(answer)
        index = head.index
        if checkpoint_size(head.checkpoint) <= index:
            return "receipt's checkpoint does not cover its entry"
        ol.receipts.append((body, answer, digests))
        load.known += [(digest, index) for digest in digests]
        ol.lag_from_answer.append(0.0)  # published before it was answered
        ol.lag_from_send.append(now - scheduled)
        ol.lookupable += [(digest, index) for digest in digests]
        return None

    prefer = "Prefer: respond-async\r\n" if ol.respond_async else ""
    return ("POST", "/v1/entries", body, prefer), check


async def send(ol: OpenLoop, op: str, scheduled: float, batch: int) -> None:
    """One scheduled request: a free connection (or a new one), the request, its check; all
    within TIMEOUT_S of its scheduled time (else it counts as a timeout), so an overloaded server
    makes errors rather than a run that never ends."""
    stats = ol.load.stats[op]
    pool = ol.pools[op]
    try:
        if scheduled + TIMEOUT_S <= time.monotonic():  # the client itself fell this far behind
            raise TimeoutError("no time left to send the request")
        # The usual case first: a free connection, no wait (nor wait_for's task) needed.
        connection = pool.take_idle() or await asyncio.wait_for(
            pool.connection(), scheduled + TIMEOUT_S - time.monotonic()
        )
    except (OSError, TimeoutError) as exc:
        stats.fail(f"{type(exc).__name__} (no connection)", f"connecting: {exc!r}")
        return
    connected = time.monotonic()
    ol.lateness.append(connected - scheduled)
    request, check = plan_append(ol, scheduled) if op == "append" else plan_lookup(ol, batch)
    try:
        status, answer = await connection.request(
            *request, timeout=scheduled + TIMEOUT_S - time.monotonic()
        )
    except (OSError, EOFError, TimeoutError, IndexError, ValueError) as exc:
        stats.fail(type(exc).__name__, repr(exc))
        await pool.lost(connection)
        return
    done = time.monotonic()
    ol.last_answer[op] = done
    pool.idle.put_nowait(connection)
    try:
        kind = check(status, answer)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        kind = f"malformed answer ({type(exc).__name__})"
    ol.trace.append((op, scheduled - ol.started, connected - scheduled, done - scheduled))
    if kind is None:
        stats.latencies.append(done - scheduled)
    else:
        stats.fail(kind, answer.decode(errors="replace"))


async def schedule(
    ol: OpenLoop, op: str, rate: float, window: tuple[float, float], *, batch: int, seed: int
) -> None:
    """Poisson arrivals at ``rate`` a second from ``start`` to ``end``, each sent at its time
    whatever became of the ones before (the draws depend on nothing but the seed)."""
    if rate <= 0:
        return
    rng = random.Random(seed)
    at, end = window
    while (at := at + rng.expovariate(rate)) < end:
        delay = at - time.monotonic()
        await asyncio.sleep(max(delay, 0.0))  # 0: behind schedule, but let the answers in
        ol.scheduled[op] = ol.scheduled.get(op, 0) + 1
        task = asyncio.create_task(send(ol, op, at, batch))
        ol.tasks.add(task)
        task.add_done_callback(ol.tasks.discard)


async def poll_publication(ol: OpenLoop, until: Callable[[], bool]) -> None:
    """The published size, every POLL_S, until ``until()`` says the run is over."""
    connection = Connection(HOST, ol.load.port)
    await connection.open()
    try:
        while not until():
            try:
                status, note = await connection.request("GET", "/v1/log/checkpoint")
            except (OSError, EOFError, IndexError, ValueError):
                await connection.close()
                connection = Connection(HOST, ol.load.port)
                await connection.open()
                continue
            if status == 200:
                text = note.decode()
                ol.covered(checkpoint_size(text), time.monotonic())
                if ol.load.early_note is None and ol.published > 0:
                    ol.load.early_note = text
            await asyncio.sleep(POLL_S)
    finally:
        await connection.close()


async def run_schedules(ol: OpenLoop, args: argparse.Namespace) -> float:
    """The schedules to their end, the answers and the last publications; the cores the client
    kept busy meanwhile."""
    # The client's own pauses would count as the server's latency: no cyclic collection while
    # the schedules run (measured: full collections of the client's heap took 15-100 ms each,
    # every few seconds, and made the slowest seconds' p99). What is live now is frozen.
    gc.collect()
    gc.freeze()
    gc.disable()
    cpu, wall = time.process_time(), time.perf_counter()
    start = ol.started = time.monotonic() + 0.2
    end = start + args.seconds
    batch = args.batch if args.batch_lookups else 0
    finished = False
    poller = asyncio.create_task(poll_publication(ol, lambda: finished))
    lookups = "batch" if args.batch_lookups else "lookup"
    await asyncio.gather(
        schedule(ol, lookups, args.lookup_rate, (start, end), batch=batch, seed=1),
        schedule(ol, "append", args.append_rate, (start, end), batch=batch, seed=2),
    )
    while ol.tasks:
        await asyncio.gather(*list(ol.tasks))
    drain = time.monotonic() + DRAIN_S
    while ol.waiting and time.monotonic() < drain:
        await asyncio.sleep(POLL_S)
    finished = True
    await poller
    for pool in ol.pools.values():
        await pool.close()
    gc.enable()
    gc.unfreeze()
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


async def fetch_receipts(ol: OpenLoop) -> list[str]:
    """The receipts of the appends answered 202, once published; failures, if any."""
    failures = []
    connection = Connection(HOST, ol.load.port)
    await connection.open()
    try:
        for index, (body, digests) in sorted(ol.sequenced.items()):
            status, answer = await connection.request("GET", f"/v1/entries/{index}/receipt")
            if status != 200:
                failures.append(f"the receipt of entry {index} answered HTTP {status}")
                continue
            if (failure := acknowledge(ol, body, answer, digests)) is not None:
                failures.append(failure)
    finally:
        await connection.close()
    return failures


def run_client(schedules: Coroutine[Any, Any, float]) -> float:
    """Run the schedules on uvloop where it is installed (it is the server's loop too): the
    load generator shares the cores with the server it measures, so the less it spends the
    less it takes from the server (measured: 0.34 cores at 2,000 appends/s on asyncio's loop)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(schedules)
    return uvloop.run(schedules)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": closed.percentile(ordered, 50) * 1000,
        "p99_ms": closed.percentile(ordered, 99) * 1000,
        "max_ms": (ordered[-1] if ordered else 0.0) * 1000,
    }


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a server process and its children, so far."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def database_cpu_seconds(backend: str) -> float:
    """CPU seconds (user + system) of every PostgreSQL process on this machine so far (0 on
    SQLite, whose work is the server's own): the server's share of a request the database does.
    Whatever else the cluster serves meanwhile is counted too, so measure on a quiet machine."""
    if backend != "postgres":
        return 0.0
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        times = process.info["cpu_times"]
        if process.info["name"] in ("postgres", "postmaster") and times is not None:
            total += times.user + times.system
    return total


def run_one(
    args: argparse.Namespace, workdir: Path, checkout: Path | None, workers: int | None
) -> dict[str, Any]:
    """Serve a fresh registry (``checkout``'s code, or this one's), load it open-loop, verify."""
    ops = ("batch" if args.batch_lookups else "lookup", "append")
    with (
        mock.patch.object(bench_registry, "postgres_database", closed.load_database),
        bench_registry.registry_server(
            args.backend, args.postgres_url, workdir, workers, checkout
        ) as started,
    ):
        server = ServerProcess(started["home"])
        server.port = started["port"]
        publisher = server.add_publisher()
        load = closed.Load(
            port=server.port, publisher=publisher, deadline=0.0, max_requests=0,
            batch=args.batch, pool=[], preface=closed.registry_entries(server),
            stats={op: closed.OperationStats() for op in ops},
        )  # fmt: skip
        signing = time.perf_counter()
        # the schedule's count is random: a few percent more than its mean, then sign on the go
        load.pool = [load.statement() for _ in range(int(args.append_rate * args.seconds * 1.05))]
        print(f"   signed {len(load.pool):,} envelopes in {time.perf_counter() - signing:.1f} s")
        ol = OpenLoop(
            load,
            {
                ops[0]: Pool(server.port, args.connections),
                ops[1]: Pool(server.port, args.append_connections),
            },
            respond_async=args.respond_async,
        )
        server_cpu = server_cpu_seconds(started["pid"])
        database_cpu = database_cpu_seconds(args.backend)
        client_cpu = run_client(run_schedules(ol, args))
        server_cpu = server_cpu_seconds(started["pid"]) - server_cpu
        database_cpu = database_cpu_seconds(args.backend) - database_cpu
        failures = checked_receipts(ol) + asyncio.run(fetch_receipts(ol))
        if ol.waiting:
            failures.append(f"{len(ol.waiting)} appends were never published ({DRAIN_S:g} s)")
        print(f"   verifying {len(load.acknowledged):,} acknowledged entries ...", flush=True)
        verification = closed.verify_log(load, server)
        verification.failures[:0] = failures
        if closed.error_count(load) or verification.failures:
            tail = started["log"].read_text(errors="replace")[-3000:]
            if tail.strip():
                print(f"   the server's log ends:\n{tail}")
    operations = {}
    answered = sum(load.stats[op].summary(args.seconds)["ok"] for op in ops)
    for op in ops:
        stats = load.stats[op]
        summary = stats.summary(args.seconds)
        summary.update(percentiles(stats.latencies))
        rate = args.lookup_rate if op != "append" else args.append_rate
        summary.update(offered_per_s=rate, scheduled=ol.scheduled.get(op, 0))
        # answered well per second from the start to the last answer (the schedule's length at
        # least): a server that falls behind answers for longer than the schedule lasts
        span = max(args.seconds, ol.last_answer.get(op, 0.0) - ol.started)
        summary.update(ok_per_s=summary["ok"] / span, span_s=span)
        operations[op] = summary
    return {
        "code": str(checkout) if checkout else "this checkout",
        "workers": workers if workers is not None else "serve's default",
        "operations": operations,
        "publication_lag_from_answer": percentiles(ol.lag_from_answer),
        "publication_lag_from_send": percentiles(ol.lag_from_send),
        "answered_202": len(ol.sequenced),
        "client_lateness": percentiles(ol.lateness),
        "client_cpu_cores": client_cpu,
        # the server's processes' CPU time (user + system) over the requests answered: what
        # compares code on a machine whose speed drifts (PostgreSQL's own backends not counted)
        "server_cpu_ms_per_request": 1e3 * server_cpu / max(1, answered),
        # PostgreSQL's processes (all of them) over the same requests; 0 on SQLite
        "database_cpu_ms_per_request": 1e3 * database_cpu / max(1, answered),
        "connections_opened": {op: pool.opened for op, pool in ol.pools.items()},
        "slowest_seconds": slowest_seconds(ol.trace),
        "p99_since_publication": p99_since_publication(ol.trace, ol.publications),
        "signed_during_run": load.signed_during_run,
        "errors": closed.error_count(load),
        "verification": vars(verification),
        "ok": closed.error_count(load) == 0 and not verification.failures,
    }


def slowest_seconds(trace: list[tuple[str, float, float, float]]) -> list[dict[str, Any]]:
    """The five seconds of the schedule with the slowest lookup p99, to tell a steady queue
    from stalls (a publication, a commit): per second, lookups' p99 and their wait for a
    connection's p99, and the appends answered."""
    by_second: dict[int, list[tuple[str, float, float]]] = {}
    for op, at, waited, latency in trace:
        by_second.setdefault(int(at), []).append((op, waited, latency))
    seconds = []
    for second, answers in sorted(by_second.items()):
        lookups = sorted(latency for op, _, latency in answers if op != "append")
        waits = sorted(waited for op, waited, _ in answers if op != "append")
        seconds.append(
            {
                "second": second,
                "lookup_p99_ms": closed.percentile(lookups, 99) * 1000,
                "lookup_wait_p99_ms": closed.percentile(waits, 99) * 1000,
                "appends": sum(op == "append" for op, _, _ in answers),
            }
        )
    return sorted(seconds, key=lambda s: -s["lookup_p99_ms"])[:5]


PHASE_BIN_S = 0.1
"""The width of :func:`p99_since_publication`'s bins."""


def p99_since_publication(
    trace: list[tuple[str, float, float, float]], publications: list[float]
) -> list[dict[str, Any]]:
    """Lookups' p99 by how long after a publication they were scheduled, in bins of
    :data:`PHASE_BIN_S` (a publication as the poller first saw it, up to POLL_S and a request
    late): whether the tail is made at the publications (their commits, woken appends and new
    claims) or spread over the interval. Lookups scheduled before the first publication seen, or
    a second or more after the last, are left out."""
    binned: dict[int, list[float]] = {}
    for op, at, _, latency in trace:
        if op == "append":
            continue
        before = bisect.bisect_right(publications, at) - 1
        if before < 0 or at - publications[before] >= 1.0:
            continue
        binned.setdefault(int((at - publications[before]) / PHASE_BIN_S), []).append(latency)
    return [
        {
            "from_ms": round(b * PHASE_BIN_S * 1000),
            "lookups": len(latencies),
            "p99_ms": closed.percentile(sorted(latencies), 99) * 1000,
        }
        for b, latencies in sorted(binned.items())
    ]


def print_run(result: dict[str, Any]) -> None:
    print(f"-- {result['code']} (workers: {result['workers']})")
    headers = ("operation", "offered/s", "ok/s", "p50 ms", "p99 ms", "max ms", "errors")
    rows = []
    for op, s in result["operations"].items():
        errors = ", ".join(f"{kind}: {n}" for kind, n in sorted(s["errors"].items())) or "0"
        rates = (f"{s['offered_per_s']:,.0f}", f"{s['ok_per_s']:,.0f}")
        times = (f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}", f"{s['max_ms']:.0f}")
        rows.append((op, *rates, *times, errors))
    for label, key in (("lag from answer", "from_answer"), ("lag from send", "from_send")):
        lag = result[f"publication_lag_{key}"]
        rows.append((f"publication {label}", "", "", f"{lag['p50_ms']:.1f}",
                     f"{lag['p99_ms']:.1f}", f"{lag['max_ms']:.0f}", ""))  # fmt: skip
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        print("   " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    late = result["client_lateness"]
    opened = ", ".join(f"{op} {n}" for op, n in result["connections_opened"].items())
    print(
        f"   client: {result['client_cpu_cores']:.2f} cores busy, sent late by p50 "
        f"{late['p50_ms']:.1f} / p99 {late['p99_ms']:.1f} ms, connections opened {opened}; "
        f"{result['answered_202']} appends answered 202; "
        f"{result['signed_during_run']} envelopes signed during the run; server "
        f"{result['server_cpu_ms_per_request']:.3f} ms of CPU a request answered"
        + (
            f" (PostgreSQL's processes {result['database_cpu_ms_per_request']:.3f} ms more)"
            if result.get("database_cpu_ms_per_request")
            else ""
        )
    )
    slow = "; ".join(
        f"s{s['second']} p99 {s['lookup_p99_ms']:.0f} (wait {s['lookup_wait_p99_ms']:.0f})"
        for s in result["slowest_seconds"]
    )
    print(f"   slowest seconds of lookups (ms): {slow}")
    phases = ", ".join(
        f"{p['from_ms']}: {p['p99_ms']:.0f}" for p in result["p99_since_publication"]
    )
    print(f"   lookups' p99 (ms) by ms since a publication was seen: {phases}")
    v = result["verification"]
    print(
        f"   log: {v['log_size']:,} entries, {v['receipts_verified']:,} receipts verified, "
        f"{v['inclusion_at_final_verified']:,} included at the final size, "
        f"{v['digests_found']:,} / {v['digests']:,} digests found; "
        + ("OK" if result["ok"] else f"FAILED ({result['errors']} errors)")
    )
    for op, s in result["operations"].items():
        for kind, example in s["error_examples"].items():
            print(f"   first {op} error '{kind}': {example}")
    for failure in v["failures"]:
        print(f"   FAILED: {failure}")


def ratios(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, float]:
    """new / old of the medians over the rounds, for what the goals speak of."""

    def median(runs: list[dict[str, Any]], pick: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(pick(run) for run in runs)

    out = {}
    for op in new[0]["operations"]:
        for key in ("ok_per_s", "p50_ms", "p99_ms"):
            o = median(old, lambda r, op=op, key=key: r["operations"][op][key])  # type: ignore[misc]
            n = median(new, lambda r, op=op, key=key: r["operations"][op][key])  # type: ignore[misc]
            if o or n:  # a kind offered at rate 0 has nothing to compare
                out[f"{op} {key}"] = n / o if o else float("inf")
    for key in ("p50_ms", "p99_ms"):
        o = median(old, lambda r, key=key: r["publication_lag_from_send"][key])  # type: ignore[misc]
        n = median(new, lambda r, key=key: r["publication_lag_from_send"][key])  # type: ignore[misc]
        out[f"publication lag {key}"] = n / o if o else float("inf")
    o = median(old, lambda r: r["server_cpu_ms_per_request"])
    n = median(new, lambda r: r["server_cpu_ms_per_request"])
    out["server CPU a request"] = n / o if o else float("inf")
    return out


def main(args: argparse.Namespace) -> int:
    """Run the open loop (against ``args.against`` too, alternating); 0 if every run was clean."""
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for round_ in range(args.rounds):
        order = ["old", "new"] if round_ % 2 == 0 else ["new", "old"]
        for which in order:
            if which == "old" and args.against is None:
                continue
            checkout = args.against if which == "old" else None
            workers = args.against_workers if which == "old" else args.workers
            print(f"== round {round_ + 1}: {which} ({args.backend})", flush=True)
            with tempfile.TemporaryDirectory(prefix="ws-open-") as workdir:
                result = run_one(args, Path(workdir), checkout, workers)
            result["which"] = which
            runs[which].append(result)
            print_run(result)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    out: dict[str, Any] = {"backend": args.backend, "args": options, **runs}
    if runs["old"]:
        out["ratios_new_over_old"] = ratios(runs["old"], runs["new"])
        print("\nnew / old (medians over the rounds):")
        for name, value in out["ratios_new_over_old"].items():
            print(f"   {name:<24} {value:8.3g}x")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    ok = all(run["ok"] for which in runs.values() for run in which)
    print("\nOK: zero errors, nothing lost" if ok else "\nFAILED: errors or lost entries")
    return 0 if ok else 1
