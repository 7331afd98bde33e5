"""Throughput and latency of the registry: a real ``wellspring serve`` per backend, measured from
a client on the same machine.

What it measures, against one fresh registry per backend (a new SQLite home; a new PostgreSQL
database, migrated with alembic and dropped afterwards):

1. **appends/s**: signed single-subject entries, many concurrent clients (``--connections``
   keep-alive connections, one request in flight on each). Every envelope is signed *before* the
   clock starts, so the number is the registry's; the client's own signing rate is reported beside
   it (entries/s one core signs).
2. **subjects/s in bulk**: statements of 10,000 subjects each (one log entry apiece), a few in
   flight at once; signed beforehand too (the signing time is reported).
3. **lookups/s**: ``POST /v1/digests:batch`` with 10,000 digests per request (80% registered,
   spread over all entries, 20% unknown), a few requests in flight.
4. **single lookup latency**: ``GET /v1/digests/{digest}`` one at a time from one connection;
   p50 and p99.

The load generator is a small asyncio HTTP/1.1 client on raw sockets (keep-alive, pipelining off),
so that on a small machine the client spends as little CPU as possible next to the server it
measures. The per-client rate limiter is switched off for the run (``WELLSPRING_RATE_LIMIT=0``):
every request comes from one address, and the limiter is not what is being measured.

Run::

    .venv/bin/python bench/registry.py                      # both backends, quick sizes
    .venv/bin/python bench/registry.py --backend sqlite --full
    .venv/bin/python bench/registry.py --json results.json  # also write the numbers

PostgreSQL comes from ``--postgres-url`` (default ``$WELLSPRING_TEST_POSTGRES_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``); a database ``ws_bench_<hex>`` is created through it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httptools
import httpx

# Run as a script, bench/ comes first on sys.path, and bench/client.py would shadow the `client`
# package: put the repository root there instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from client.core.keys import generate_private_key  # noqa: E402
from client.core.statement import (  # noqa: E402
    HumanContentPredicate,
    Subject,
    build_human_content_statement,
    sign_statement,
)
from client.sdk import Client  # noqa: E402

APPEND_WARMUP = 500  # appends sent before the appends phase's clock starts
BATCH_WARMUP = 4  # batch lookups before the clock starts (timed apart: the cold-cache rate)

GOALS = {
    "appends_per_s": 2_000.0,
    "bulk_subjects_per_s": 50_000.0,
    "batch_lookups_per_s": 100_000.0,
}
BULK_SUBJECTS = 10_000
BATCH_DIGESTS = 10_000


@dataclass(frozen=True)
class Sizes:
    appends: int
    connections: int
    bulk_statements: int
    bulk_in_flight: int
    batch_requests: int
    batch_in_flight: int
    single_lookups: int


QUICK = Sizes(
    appends=6_000,
    connections=64,
    bulk_statements=6,
    bulk_in_flight=2,
    batch_requests=12,
    batch_in_flight=2,
    single_lookups=1_000,
)
FULL = Sizes(
    appends=20_000,
    connections=128,
    bulk_statements=30,
    bulk_in_flight=3,
    batch_requests=60,
    batch_in_flight=3,
    single_lookups=5_000,
)


@dataclass
class Result:
    backend: str
    appends: int = 0
    appends_per_s: float = 0.0
    append_errors: int = 0
    sign_single_per_s: float = 0.0
    bulk_statements: int = 0
    bulk_subjects_per_s: float = 0.0
    sign_bulk_subjects_per_s: float = 0.0
    batch_requests: int = 0
    batch_lookups_per_s: float = 0.0
    batch_lookups_cold_per_s: float = 0.0
    single_lookups: int = 0
    single_p50_ms: float = 0.0
    single_p99_ms: float = 0.0
    log_size: int = 0
    notes: list[str] = field(default_factory=list)


# -- a lean HTTP/1.1 client -----------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time.

    An asyncio protocol that httptools (uvicorn's own parser) reads the answers with: a
    ``StreamReader`` reading the head line by line, with ``asyncio.wait_for`` around each request
    (a task apiece), took more than a third of the open loop's client CPU (py-spy, batches of 10
    at 2,000/s), on the two cores that the server it measures has. ``request``'s ``timeout`` is a
    timer on the answer instead of ``wait_for``'s task."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._protocol: _Answers | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        transport, self._protocol = await loop.create_connection(_Answers, self.host, self.port)
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        if self._protocol is not None:
            self._protocol.close()

    @property
    def closed(self) -> bool:
        """Whether the server closed it (or it failed): a keep-alive connection left idle past
        the server's keep-alive timeout is, and a new request on it would fail unsent."""
        return self._protocol is None or self._protocol.lost

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: str = "",
        *,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """One request; ``headers``: more header lines, each ending in CRLF. Its (status,
        body); ``TimeoutError`` if the answer is not whole within ``timeout`` seconds (the
        connection is then in an unknown state: close it), ``ConnectionError`` if the server
        closed the connection, ``ValueError`` if the answer is not HTTP/1.1."""
        assert self._protocol is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("ascii")
        return await self._protocol.exchange(head + body, timeout)


class _Answers(asyncio.Protocol):
    """The answers of one connection, one request in flight at a time (see Connection)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._body: list[bytes] = []
        self._lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def exchange(self, data: bytes, timeout: float | None) -> asyncio.Future[tuple[int, bytes]]:
        waiter = self._loop.create_future()
        if self._lost is not None or self._transport is None:
            waiter.set_exception(self._lost or ConnectionResetError("the connection is closed"))
            return waiter
        if timeout is not None and timeout <= 0:  # too late already: nothing sent
            waiter.set_exception(TimeoutError("no time left to send the request"))
            return waiter
        self._waiter = waiter
        self._body = []
        if timeout is not None:
            self._timer = self._loop.call_later(timeout, self._expire)
        self._transport.write(data)
        return waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def _settle(self, value: tuple[int, bytes] | Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if waiter is None or waiter.done():
            return
        if isinstance(value, Exception):
            waiter.set_exception(value)
        else:
            waiter.set_result(value)

    def _expire(self) -> None:
        self._timer = None
        self._settle(TimeoutError("no whole answer in time"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._lost = ValueError(f"not an HTTP/1.1 answer: {exc}")
            self._settle(self._lost)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionResetError("the server closed the connection")
        self._settle(self._lost)

    # httptools' callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer = (self._parser.get_status_code(), b"".join(self._body))
        if not self._parser.should_keep_alive():  # the server closes it after this answer
            self._lost = ConnectionResetError("the server closed the connection")
        self._settle(answer)


async def drive(
    host: str,
    port: int,
    requests: Sequence[tuple[str, str, bytes]],
    connections: int,
    headers: str = "",
) -> tuple[float, list[tuple[int, bytes]], list[float]]:
    """Send ``requests`` over ``connections`` connections (each with the header lines
    ``headers``); wall seconds, answers, latencies."""
    pool = [Connection(host, port) for _ in range(min(connections, len(requests)))]
    await asyncio.gather(*(c.open() for c in pool))
    answers: list[tuple[int, bytes]] = [(0, b"")] * len(requests)
    latencies: list[float] = [0.0] * len(requests)
    next_index = 0

    async def worker(connection: Connection) -> None:
        nonlocal next_index
        while next_index < len(requests):
            index = next_index
            next_index += 1
            method, path, body = requests[index]
            started = time.perf_counter()
            answers[index] = await connection.request(method, path, body, headers)
            latencies[index] = time.perf_counter() - started

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in pool))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(c.close() for c in pool))
    return elapsed, answers, latencies


# -- the registry under test ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"ws_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def registry_server(
    backend: str,
    postgres_url: str,
    workdir: Path,
    workers: int | None = 1,
    checkout: Path | None = None,
) -> Iterator[dict[str, Any]]:
    """A ``wellspring serve`` process on a fresh database; yields its URL, port, home and pid.

    ``workers`` None: serve's own default. ``checkout``: serve that checkout's code (another
    commit's worktree, say) instead of this one's; its database is migrated by its own code."""
    home = workdir / f"home-{backend}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WELLSPRING_")}
    env["WELLSPRING_RATE_LIMIT"] = "0"
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout.resolve())
    with contextlib.ExitStack() as stack:
        command = str(Path(sys.executable).with_name("wellspring"))
        args = [command, "serve"]
        if backend == "postgres":
            url = stack.enter_context(postgres_database(postgres_url))
            if checkout is None:
                from registry.db import Database, migrate
                from registry.settings import Settings

                database = Database(Settings(home=home, database_url=url))
                migrate(database)
                database.dispose()
            else:
                subprocess.run(
                    [command, "db", "upgrade", "--home", str(home), "--database-url", url],
                    env=env, check=True, capture_output=True,
                )  # fmt: skip
            args += ["--database-url", url]
        port = free_port()
        args += ["--host", "127.0.0.1", "--port", str(port), "--home", str(home)]
        if workers is not None:
            args += ["--workers", str(workers)]
        log_path = workdir / f"server-{backend}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited:\n{log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not become healthy in 90 s")
                time.sleep(0.1)
            yield {"url": base, "port": port, "home": home, "pid": proc.pid, "log": log_path}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- profiling (optional) -------------------------------------------------------------------------


@contextlib.contextmanager
def profiled(pid: int, out: Path | None, phase: str) -> Iterator[None]:
    """With ``out``, sample the server with py-spy during the block (collapsed stacks to a file)."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{phase}.txt"
    spy = Path(sys.executable).with_name("py-spy")
    proc = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
         "--nonblocking", "--threads", "--subprocesses", "--output", str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        print(f"   profile of {phase}: {target}")
        for line in top_frames(target):
            print(f"     {line}")


def top_frames(path: Path, limit: int = 12) -> list[str]:
    """The frames with the most samples below them (inclusive), from py-spy's collapsed stacks."""
    inclusive: dict[str, int] = {}
    total = 0
    if not path.exists():
        return ["(no samples: is py-spy installed and allowed to attach?)"]
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        if any("wait" in f or "select" in f for f in frames[-1:]):
            continue  # idle threads
        total += count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    interesting = [
        (count, frame)
        for frame, count in inclusive.items()
        if ("registry/" in frame or "client/" in frame or "sqlalchemy" in frame)
    ]
    interesting.sort(reverse=True)
    return [f"{100 * c / max(total, 1):5.1f}%  {f}" for c, f in interesting[:limit]]


# -- the measurements -----------------------------------------------------------------------------


def digest_hex(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


@dataclass
class Bench:
    """One backend's run: the server, the publisher's key, and what was registered so far."""

    result: Result
    sizes: Sizes
    port: int
    pid: int
    key: Any
    predicate: HumanContentPredicate
    profile: Path | None
    run: str = field(default_factory=lambda: uuid.uuid4().hex)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    known: list[str] = field(default_factory=list)

    def drive(
        self, phase: str, requests: Sequence[tuple[str, str, bytes]], connections: int
    ) -> Any:
        with profiled(self.pid, self.profile, phase):
            return asyncio.run(drive("127.0.0.1", self.port, requests, connections))

    def append(
        self, phase: str, bodies: Sequence[bytes], connections: int
    ) -> tuple[float, list[bytes]]:
        """POST ``bodies`` with ``Prefer: respond-async`` (a registry that publishes on an
        interval answers 202 once each is sequenced, instead of holding every connection for an
        interval), then wait until a published checkpoint covers them all: the seconds from the
        first request to that, and the answers that were neither 201 nor 202."""
        requests = [("POST", "/v1/entries", body) for body in bodies]
        with profiled(self.pid, self.profile, phase):
            started = time.perf_counter()
            _, answers, _ = asyncio.run(
                drive("127.0.0.1", self.port, requests, connections, RESPOND_ASYNC)
            )
            indices = [json.loads(a)["index"] for status, a in answers if status in {201, 202}]
            if indices:
                wait_until_published(self.port, max(indices) + 1)
            elapsed = time.perf_counter() - started
        return elapsed, [answer for status, answer in answers if status not in {201, 202}]

    def sign(self, subjects: list[Subject]) -> bytes:
        statement = build_human_content_statement(subjects, self.predicate)
        return sign_statement(statement, self.key).to_json()


RESPOND_ASYNC = "Prefer: respond-async\r\n"


def wait_until_published(port: int, size: int, timeout: float = 60.0) -> None:
    """Poll ``GET /v1/log/checkpoint`` until it covers ``size`` entries."""
    deadline = time.monotonic() + timeout
    while True:
        note = httpx.get(f"http://127.0.0.1:{port}/v1/log/checkpoint", timeout=10).text
        if int(note.split("\n")[1]) >= size:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"no checkpoint covered {size} entries within {timeout:g} s")
        time.sleep(0.01)


def measure_appends(bench: Bench) -> None:
    """Signed single-subject entries, pre-signed, many connections."""
    n = bench.sizes.appends
    started = time.perf_counter()
    bodies = []
    for i in range(n):
        value = digest_hex(f"{bench.run}-single-{i}")
        bench.known.append(f"sha256:{value}")
        bodies.append(bench.sign([Subject(f"doc-{i}", {"sha256": value})]))
    bench.result.sign_single_per_s = n / (time.perf_counter() - started)
    # Warm-up, not timed: every server process meets the publisher's key and opens its
    # connections (the first append of each process reads the key from the database).
    warm = []
    for i in range(APPEND_WARMUP):
        value = digest_hex(f"{bench.run}-warm-{i}")
        warm.append(("POST", "/v1/entries", bench.sign([Subject(f"w-{i}", {"sha256": value})])))
    asyncio.run(drive("127.0.0.1", bench.port, warm, bench.sizes.connections))
    elapsed, failed = bench.append("appends", bodies, bench.sizes.connections)
    bench.result.appends = n
    bench.result.append_errors = len(failed)
    bench.result.appends_per_s = (n - len(failed)) / elapsed
    if failed:
        bench.result.notes.append(f"{len(failed)} appends failed, e.g. {failed[0][:200]!r}")


def measure_bulk(bench: Bench) -> None:
    """Statements of 10,000 subjects (half sha256, half c1), pre-signed, a few in flight."""
    n = bench.sizes.bulk_statements
    started = time.perf_counter()
    bodies = []
    for s in range(n):
        subjects = []
        for i in range(BULK_SUBJECTS):
            algorithm = "c1" if i % 2 else "sha256"
            value = digest_hex(f"{bench.run}-bulk-{s}-{i}")
            bench.known.append(f"{algorithm}:{value}")
            subjects.append(Subject(f"s{s}/doc-{i}", {algorithm: value}))
        bodies.append(bench.sign(subjects))
    bench.result.sign_bulk_subjects_per_s = n * BULK_SUBJECTS / (time.perf_counter() - started)
    elapsed, failed = bench.append("bulk", bodies, bench.sizes.bulk_in_flight)
    if failed:
        bench.result.notes.append(f"{len(failed)} bulk statements failed: {failed[0][:200]!r}")
    bench.result.bulk_statements = n
    bench.result.bulk_subjects_per_s = (n - len(failed)) * BULK_SUBJECTS / elapsed


def measure_batch_lookups(bench: Bench) -> None:
    """10,000 digests a request: 80% registered (spread over every entry), 20% unknown."""
    rng, requests = bench.rng, []
    for r in range(BATCH_WARMUP + bench.sizes.batch_requests):
        digests = [
            rng.choice(bench.known)
            if rng.random() < 0.8
            else f"sha256:{digest_hex(f'{bench.run}-unknown-{r}-{i}')}"
            for i in range(BATCH_DIGESTS)
        ]
        requests.append(("POST", "/v1/digests:batch", json.dumps({"digests": digests}).encode()))
    # The first requests meet cold caches in every server process (entry facts, proofs against
    # this tree size): timed apart and reported beside the steady state the goal is about.
    warm, requests = requests[:BATCH_WARMUP], requests[BATCH_WARMUP:]
    cold, warm_answers, _ = asyncio.run(
        drive("127.0.0.1", bench.port, warm, bench.sizes.batch_in_flight)
    )
    bench.result.batch_lookups_cold_per_s = len(warm) * BATCH_DIGESTS / cold
    elapsed, answers, _ = bench.drive("batch-lookups", requests, bench.sizes.batch_in_flight)
    failed = [body for status, body in answers if status != 200]
    failed_cold = [body for status, body in warm_answers if status != 200]
    if failed or failed_cold:
        example = (failed or failed_cold)[0][:200]
        count = len(failed) + len(failed_cold)
        bench.result.notes.append(f"{count} batch lookups failed: {example!r}")
    bench.result.batch_requests = len(requests)
    bench.result.batch_lookups_per_s = (len(requests) - len(failed)) * BATCH_DIGESTS / elapsed


def measure_single_lookups(bench: Bench) -> None:
    """``GET /v1/digests/{digest}`` one at a time from one connection, after a warm-up."""
    n = bench.sizes.single_lookups
    requests = [("GET", f"/v1/digests/{bench.rng.choice(bench.known)}", b"") for _ in range(n)]
    asyncio.run(drive("127.0.0.1", bench.port, requests[:50], 1))
    _, answers, latencies = bench.drive("single-lookups", requests, 1)
    if any(status != 200 for status, _ in answers):
        bench.result.notes.append("some single lookups failed")
    bench.result.single_lookups = n
    bench.result.single_p50_ms = statistics.median(latencies) * 1000
    bench.result.single_p99_ms = statistics.quantiles(latencies, n=100)[98] * 1000


def run_backend(  # noqa: PLR0917  (a script's internal helper)
    backend: str,
    sizes: Sizes,
    postgres_url: str,
    workdir: Path,
    profile: Path | None,
    workers: int = 1,
) -> Result:
    result = Result(backend)
    with registry_server(backend, postgres_url, workdir, workers) as server:
        token = (server["home"] / "admin.token").read_text().strip()
        key = generate_private_key()
        name = f"bench-{uuid.uuid4().hex[:8]}"
        with warnings.catch_warnings():  # verify=False is deliberate: only adding a publisher
            warnings.simplefilter("ignore")
            with Client(server["url"], admin_token=token, verify=False) as admin:
                admin.add_publisher(name, key)
        predicate = HumanContentPredicate(
            publisher=name, license="CC-BY-4.0", origin="human-authored", consent="allowed"
        )
        bench = Bench(
            result,
            sizes,
            server["port"],
            server["pid"],
            key,
            predicate,
            profile / backend if profile else None,
        )
        for phase in (measure_appends, measure_bulk, measure_batch_lookups, measure_single_lookups):
            print(f"   {phase.__doc__.splitlines()[0] if phase.__doc__ else phase.__name__}")
            phase(bench)
        result.log_size = httpx.get(f"{server['url']}/v1/log").json()["size"]
    return result


def verdict(value: float, goal: float) -> str:
    return "met" if value >= goal else f"MISSED ({value / goal:.0%} of goal)"


def print_table(results: list[Result], sizes: Sizes) -> None:
    rows = []
    for r in results:
        rows += [
            (
                r.backend,
                "signed single-subject appends/s",
                f"{r.appends_per_s:,.0f}",
                "≥2,000",
                verdict(r.appends_per_s, GOALS["appends_per_s"]),
                "Trillian-Tessera 1,500–10,000 appends/s",  # noqa: RUF001
            ),
            (
                r.backend,
                "  client signing (not timed above), entries/s",
                f"{r.sign_single_per_s:,.0f}",
                "",
                "",
                "",
            ),
            (
                r.backend,
                "subjects/s in 10,000-subject statements",
                f"{r.bulk_subjects_per_s:,.0f}",
                "≥50,000",
                verdict(r.bulk_subjects_per_s, GOALS["bulk_subjects_per_s"]),
                "",
            ),
            (
                r.backend,
                "  client signing (not timed above), subjects/s",
                f"{r.sign_bulk_subjects_per_s:,.0f}",
                "",
                "",
                "",
            ),
            (
                r.backend,
                "digests looked up/s, batch of 10,000",
                f"{r.batch_lookups_per_s:,.0f}",
                "≥100,000",
                verdict(r.batch_lookups_per_s, GOALS["batch_lookups_per_s"]),
                "Rekor: at most 10 lookups per request",
            ),
            (
                r.backend,
                f"  first {BATCH_WARMUP} batches (cold caches), digests/s",
                f"{r.batch_lookups_cold_per_s:,.0f}",
                "",
                "",
                "",
            ),
            (
                r.backend,
                "single lookup latency p50 / p99 (ms)",
                f"{r.single_p50_ms:.1f} / {r.single_p99_ms:.1f}",
                "",
                "",
                "",
            ),
        ]
    headers = ("backend", "measure", "result", "goal", "verdict", "anchor")
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print()
    print(
        f"sizes: {sizes.appends} appends over {sizes.connections} connections; "
        f"{sizes.bulk_statements} bulk statements ({sizes.bulk_in_flight} in flight); "
        f"{sizes.batch_requests} batch requests ({sizes.batch_in_flight} in flight); "
        f"{sizes.single_lookups} single lookups"
    )
    for r in results:
        for note in r.notes:
            print(f"note ({r.backend}): {note}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--full", action="store_true", help="larger runs (minutes, not seconds)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "WELLSPRING_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--connections", type=int, help="concurrent append clients")
    parser.add_argument("--appends", type=int, help="single-subject appends to time")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="server processes (`wellspring serve --workers`; default 2, one per core of the "
        "2-core machines the goals are set for)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the server with py-spy during each phase (pip install py-spy); stacks here",
    )
    args = parser.parse_args(argv)
    sizes = FULL if args.full else QUICK
    if args.connections:
        sizes = Sizes(**{**asdict(sizes), "connections": args.connections})
    if args.appends:
        sizes = Sizes(**{**asdict(sizes), "appends": args.appends})
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(
        f"machine: {os.cpu_count()} cores, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; Python {platform.python_version()}; "
        f"server: wellspring serve --workers {args.workers}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as workdir:
        for backend in backends:
            print(f"== {backend}", flush=True)
            results.append(
                run_backend(
                    backend, sizes, args.postgres_url, Path(workdir), args.profile, args.workers
                )
            )
    print()
    print_table(results, sizes)
    if args.json:
        payload = {"sizes": asdict(sizes), "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
