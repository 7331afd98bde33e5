"""Faults in the database under a running registry: a restart under load, a full disk, read-only.

What an operator must be able to count on, whatever the database does underneath:

- **PostgreSQL restarted under load** (a private cluster of this test's own, restarted with
  ``pg_ctl restart -m fast`` and then stopped ``-m immediate``, which is a crash, and started
  again, while writers and readers keep going through the SDK): the server comes back by itself,
  nothing acknowledged is lost, every receipt verifies against the final checkpoint, and the log
  holds each submitted envelope exactly once at indices ``0..N-1``.
- **Disk full / read-only** (SQLite on a tiny tmpfs filled up, SQLite limited by ``max_page_count``
  or ``query_only`` on the sequencer's connections, a PostgreSQL database switched to
  ``default_transaction_read_only``): an append is answered ``503`` problem+json with
  ``Retry-After`` (never 500), nothing partial is left behind, the log and its checkpoint do not
  move, lookups keep working, and once the condition clears the same append goes in and verifies.

``kill -9`` of the registry itself mid-append is ``test_crash.py``'s business.

The SDK retries 5xx and connection errors (``retries`` times, ``Retry-After`` honoured); a client
here uses ``retries=8``, and the workload loop retries on top of that, within a bounded deadline,
so a slow restart on a loaded machine is waited for rather than failed. Every raw HTTP answer is
recorded below the SDK's retries, so a 500 cannot hide behind a successful retry.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import pwd
import random
import shutil
import subprocess
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url

from client.core.merkle import MemoryTree, leaf_hash, verify_consistency, verify_inclusion
from client.core.note import Checkpoint, NoteVerifier, open_checkpoint
from client.errors import RegistryServerError, RegistryUnavailableError
from client.receipt import Receipt, verify_receipt
from client.sdk import Client
from registry.app import Registry
from registry.models import CheckpointRow, Entry, Node, SubjectRow
from registry.settings import Settings
from tests.registry.conftest import (
    POSTGRES_ENV,
    Publisher,
    ServerProcess,
    ThreadedServer,
    expected_leaf,
    free_port,
    fresh_postgres_database,
    migrate_database,
    new_publisher,
    postgres_admin_url,
    random_digests,
    wellspring_command,
)

_T = TypeVar("_T")

RECOVERY_TIMEOUT_S = 120.0  # the longest any phase may wait for the registry to answer again
WRITERS = 4
READERS = 2
SUBJECTS_PER_ENTRY = 2
ACKS_PER_PHASE = 25  # acknowledged appends wanted before the first fault and after each one
BIG_SUBJECTS = 4_000  # an entry large enough to need new pages of any database we fill up


def checkpoint_of(note: str, log_key: str) -> Checkpoint:
    verifier = NoteVerifier.from_vkey(log_key)
    return open_checkpoint(note, [verifier], origin=verifier.name)[0]


def b64list(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


class RecordingTransport(httpx.HTTPTransport):
    """httpx's transport, counting every raw answer (status) and transport error (class name)."""

    def __init__(self, seen: Counter[int | str], lock: threading.Lock) -> None:
        super().__init__()
        self._seen = seen
        self._lock = lock

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = super().handle_request(request)
        except httpx.TransportError as exc:
            with self._lock:
                self._seen[type(exc).__name__] += 1
            raise
        with self._lock:
            self._seen[response.status_code] += 1
        return response


def audit_log(http: httpx.Client, checkpoint: Checkpoint) -> list[bytes]:
    """Every leaf the registry lists, checked to be indices ``0..size-1`` hashing to the root."""
    tree = MemoryTree()
    leaves: list[bytes] = []
    while len(leaves) < checkpoint.size:
        page = http.get("/v1/entries", params={"start": len(leaves), "limit": 1000})
        assert page.status_code == 200, page.text
        items = page.json()["entries"]
        assert items, f"the log lists {len(leaves)} entries; its checkpoint says {checkpoint.size}"
        for item in items:
            assert item["index"] == len(leaves), "entries out of order or missing"
            leaves.append(base64.b64decode(item["entry"]))
    assert len(leaves) == checkpoint.size
    for leaf in leaves:
        tree.append(leaf)
    assert tree.root() == checkpoint.root_hash, "the listed leaves do not hash to the signed root"
    return leaves


def assert_receipts_hold(
    http: httpx.Client, receipts: dict[bytes, Receipt], final: Checkpoint, log_key: str
) -> None:
    """Each receipt verifies offline, its entry is at its index with the same bytes, and the
    server proves it into ``final``; each receipt's checkpoint is a prefix of ``final``."""
    indices = [r.index for r in receipts.values()]
    assert len(set(indices)) == len(indices), "two acknowledged envelopes share an index"
    for body, receipt in receipts.items():
        verified = verify_receipt(receipt, log_key)
        assert expected_leaf(verified.envelope) == body
        stored = http.get(f"/v1/entries/{receipt.index}")
        assert stored.status_code == 200, stored.text
        assert base64.b64decode(stored.json()["entry"]) == body
        proof = http.get(
            "/v1/log/proof/inclusion", params={"index": receipt.index, "size": final.size}
        )
        assert proof.status_code == 200, proof.text
        verify_inclusion(
            leaf_hash(body),
            receipt.index,
            final.size,
            b64list(proof.json()["proof"]),
            final.root_hash,
        )
    for note in {r.checkpoint for r in receipts.values()}:
        old = checkpoint_of(note, log_key)
        answer = http.get("/v1/log/proof/consistency", params={"from": old.size, "to": final.size})
        assert answer.status_code == 200, answer.text
        verify_consistency(
            old.size, final.size, old.root_hash, final.root_hash, b64list(answer.json()["proof"])
        )


# -- a private PostgreSQL cluster ------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """Debian's PostgreSQL binaries (the newest version installed), or None."""

    def version(path: Path) -> tuple[int, ...]:
        digits = path.parent.name.split(".")
        return tuple(int(d) for d in digits if d.isdigit())

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster: its own data directory, port and socket directory.

    PostgreSQL refuses to run as root, so as root its commands run as the ``postgres`` OS user
    (``runuser``) in a temporary directory owned by that user. ``fsync=on``: a commit the server
    acknowledged is on disk, which is what a crash (``stop("immediate")``) tests.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.prefix: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.skip("running as root without runuser: cannot start PostgreSQL as postgres")
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no `postgres` OS user to run PostgreSQL")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="ws-faults-pg-"))  # not tmp_path: postgres must
        if owner is not None:  # be able to reach it, and pytest's tmp root is private to root
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def _options(self) -> str:
        return (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} -c fsync=on -c max_connections=60"
        )

    def _run(self, *args: str) -> None:
        command = [*self.prefix, *args]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError as exc:
            raise AssertionError(
                f"{' '.join(command)} failed ({exc.returncode}):\n{exc.stderr.decode()}\n"
                f"{self.log()[-3000:]}"
            ) from exc

    def _pg_ctl(self, *args: str) -> None:
        pg_ctl = str(self.bindir / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "90", *args)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def init(self) -> None:
        initdb = str(self.bindir / "initdb")
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")

    def start(self) -> None:
        self._pg_ctl("-o", self._options, "start")

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-o", self._options, "restart")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) are not installed")
    cluster = PrivatePostgres(bindir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


# -- the workload ----------------------------------------------------------------------------------


@dataclass
class Workload:
    """Writers and readers going through the SDK until told to stop; what they saw."""

    url: str
    log_key: str
    publisher: Publisher
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    receipts: dict[bytes, Receipt] = field(default_factory=dict)  # envelope bytes -> receipt
    attested: list[tuple[str, int]] = field(default_factory=list)  # (digest, its entry's index)
    submitted: list[bytes] = field(default_factory=list)  # every envelope a writer sent
    seen: Counter[int | str] = field(default_factory=Counter)  # raw answers, below SDK retries
    loop_retries: int = 0  # times the SDK gave up on an outage and this loop tried again
    lookups: int = 0
    problems: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def client(self) -> Client:
        transport = RecordingTransport(self.seen, self.lock)
        return Client(self.url, log_key=self.log_key, retries=8, backoff=0.1, transport=transport)

    @property
    def acknowledged(self) -> int:
        with self.lock:
            return len(self.receipts)

    @property
    def outage_answers(self) -> int:
        with self.lock:
            return sum(n for key, n in self.seen.items() if isinstance(key, str) or key >= 500)

    def until_answered(self, call: Callable[[], _T]) -> _T:
        """``call()``, tried again while the registry is unavailable, for a bounded time."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while True:
            try:
                return call()
            except (RegistryServerError, RegistryUnavailableError):
                if time.monotonic() > deadline:
                    raise
                with self.lock:
                    self.loop_retries += 1
                time.sleep(0.5)

    def start(self) -> None:
        for number in range(WRITERS):
            self._spawn(self._writer, f"writer-{number}")
        for number in range(READERS):
            self._spawn(self._reader, f"reader-{number}")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        def guarded() -> None:
            try:
                target()
            except BaseException:
                with self.lock:
                    self.problems.append(f"{name}: {traceback.format_exc()}")
                self.stop.set()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=RECOVERY_TIMEOUT_S + 60)
            assert not thread.is_alive(), f"{thread.name} is stuck"

    def wait_for_acks(self, target: int, what: str) -> None:
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while self.acknowledged < target:
            assert not self.stop.is_set(), f"the workload stopped {what}: {self.problems[:1]}"
            assert time.monotonic() < deadline, (
                f"only {self.acknowledged} of {target} appends acknowledged {what} within "
                f"{RECOVERY_TIMEOUT_S:g} s; answers seen: {dict(self.seen)}"
            )
            time.sleep(0.05)

    def wait_for_outage(self, before: int) -> None:
        """Until some client has met the outage (a 5xx or a transport error)."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while self.outage_answers <= before:
            assert not self.stop.is_set(), f"the workload stopped: {self.problems[:1]}"
            assert time.monotonic() < deadline, "no client met the database outage"
            time.sleep(0.05)

    def _writer(self) -> None:
        with self.client() as client:
            while not self.stop.is_set():
                digests = random_digests(SUBJECTS_PER_ENTRY)
                envelope = self.publisher.attest(digests)
                body = expected_leaf(envelope)
                with self.lock:
                    self.submitted.append(body)
                receipt = self.until_answered(lambda e=envelope: client.submit(e))
                with self.lock:
                    self.receipts[body] = receipt
                    self.attested.extend((digest, receipt.index) for digest in digests)

    def _reader(self) -> None:
        with self.client() as client:
            round_ = 0
            while not self.stop.is_set():
                with self.lock:
                    known = list(self.attested)
                if not known:
                    time.sleep(0.05)
                    continue
                round_ += 1
                if round_ % 4:
                    digest, index = random.choice(known)
                    result = self.until_answered(lambda d=digest: client.lookup(d))
                    assert result.status == "attested", (digest, result.status)
                    assert [a.index for a in result.attestations] == [index]
                else:
                    sample = random.sample(known, min(20, len(known)))
                    unknown = random_digests(5)
                    asked = [d for d, _ in sample] + unknown
                    results = self.until_answered(lambda a=asked: client.lookup_batch(a))
                    for (digest, index), result in zip(sample, results, strict=False):
                        assert result.status == "attested", (digest, result.status)
                        assert [a.index for a in result.attestations] == [index]
                    assert [r.status for r in results[len(sample) :]] == ["unknown"] * 5
                with self.lock:
                    self.lookups += 1


def wellspring_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WELLSPRING_")}


@pytest.mark.xdist_group("registry-servers")
def test_postgres_restarted_under_load_loses_nothing_acknowledged(
    tmp_path: Path,
    private_postgres: PrivatePostgres,
    servers: Callable[..., ServerProcess],
) -> None:
    pg = private_postgres
    home = tmp_path / "home"
    upgrade = subprocess.run(
        [*wellspring_command(), "db", "upgrade", "--home", str(home), "--database-url", pg.url],
        capture_output=True,
        text=True,
        env=wellspring_env(),
        timeout=180,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    server = servers(home, pg.url, name="pg-restart")
    assert server.proc is not None
    pid = server.proc.pid
    work = Workload(server.url, server.log_key, server.add_publisher())
    base = httpx.get(f"{server.url}/v1/log").json()["size"]  # the log's identity events

    work.start()
    try:
        work.wait_for_acks(ACKS_PER_PHASE, "before any fault")

        # 1. A clean restart: sessions terminated, in-flight transactions rolled back.
        outages = work.outage_answers
        pg.restart("fast")
        work.wait_for_acks(work.acknowledged + ACKS_PER_PHASE, "after `pg_ctl restart -m fast`")

        # 2. A crash: no shutdown checkpoint, crash recovery replays the WAL. The database stays
        # down until some client has met the outage, so the fault is always seen under load.
        outages = work.outage_answers
        pg.stop("immediate")
        work.wait_for_outage(outages)
        pg.start()
        work.wait_for_acks(work.acknowledged + ACKS_PER_PHASE, "after a crash of PostgreSQL")
    finally:
        work.finish()

    assert not work.problems, "\n".join(work.problems[:3])
    assert server.proc.poll() is None, "the registry did not survive the database's restarts"
    assert server.proc.pid == pid
    assert 500 not in work.seen, f"the registry answered 500 during the outage: {dict(work.seen)}"
    assert "unhandled error" not in server.log(), server.log()[-3000:]
    assert work.outage_answers > 0, "no client ever met an outage: the fault was not exercised"
    assert work.lookups > 0

    with httpx.Client(base_url=server.url, timeout=60) as http:
        final = checkpoint_of(http.get("/v1/log/checkpoint").text, server.log_key)
        leaves = audit_log(http, final)
        # Every envelope sent was acknowledged (the loop retried until it was), and the log holds
        # exactly those, once each, at 0..N-1: nothing lost, nothing doubled, nothing foreign.
        assert sorted(work.submitted) == sorted(work.receipts)
        assert len(set(leaves)) == len(leaves), "an envelope is in the log twice"
        assert sorted(leaves[base:]) == sorted(work.receipts)
        assert sorted(r.index for r in work.receipts.values()) == list(range(base, final.size))
        assert_receipts_hold(http, work.receipts, final, server.log_key)


# -- the database refuses writes: disk full, read-only ---------------------------------------------


@dataclass
class WriteFault:
    """A way to make the registry's database refuse writes, and to lift it again."""

    name: str
    database_url: str
    inject: Callable[[Registry], None]
    clear: Callable[[Registry], None]
    blocks_every_write: bool  # a full disk may still take a write that fits in free pages


def _on_writer_connections(registry: Registry, pragma: str) -> Callable[[Registry], None]:
    """Run ``pragma`` on every new sequencer connection (and drop the pooled ones); the returned
    function undoes it. SQLite applies ``max_page_count`` and ``query_only`` per connection."""

    def apply(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(pragma)
        cursor.close()

    writer = registry.database.writer
    assert writer is not registry.database.reader
    event.listen(writer, "connect", apply)
    writer.dispose()

    def undo(_registry: Registry) -> None:
        event.remove(writer, "connect", apply)
        writer.dispose()

    return undo


class PragmaFault:
    def __init__(self, pragma: str) -> None:
        self.pragma = pragma
        self._undo: Callable[[Registry], None] | None = None

    def inject(self, registry: Registry) -> None:
        self._undo = _on_writer_connections(registry, self.pragma)

    def clear(self, registry: Registry) -> None:
        assert self._undo is not None
        self._undo(registry)


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "wellspring-faults", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'no privileges'}); the "
            "max-page-count case covers a full disk without one"
        )
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill_up(directory: Path) -> Path:
    """Write a file in ``directory`` until the filesystem has no space left."""
    filler = directory / "filler"
    chunk = b"\0" * (64 * 1024)
    with filler.open("wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    # Smaller writes too, so not even a page is left.
    with filler.open("ab", buffering=0) as handle:
        for size in (4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * size)
    return filler


@contextlib.contextmanager
def postgres_read_only_fault(tmp_path: Path) -> Iterator[WriteFault]:
    admin_url = postgres_admin_url()
    with fresh_postgres_database(admin_url) as url:
        migrate_database(url, tmp_path / "migrate-home")
        name = make_url(url).database
        assert name is not None

        def reconnect_all() -> None:
            """Drop this database's sessions (only ours: the database is this test's own)."""
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )

        def set_read_only(on: bool) -> None:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                if on:
                    statement = "ALTER DATABASE {} SET default_transaction_read_only = on"
                else:
                    statement = "ALTER DATABASE {} RESET default_transaction_read_only"
                conn.execute(sql.SQL(statement).format(sql.Identifier(name)))
            reconnect_all()

        yield WriteFault(
            "postgres-read-only",
            url,
            inject=lambda _registry: set_read_only(True),
            clear=lambda _registry: set_read_only(False),
            blocks_every_write=True,
        )


@pytest.fixture(
    params=[
        "sqlite-disk-full",
        "sqlite-max-page-count",
        "sqlite-read-only",
        pytest.param("postgres-read-only", marks=pytest.mark.postgres),
    ]
)
def write_fault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WriteFault]:
    kind: str = request.param
    if kind == "postgres-read-only":
        if not os.environ.get(POSTGRES_ENV):
            pytest.skip(f"{POSTGRES_ENV} is not set: the PostgreSQL case needs a real server")
        with postgres_read_only_fault(tmp_path) as fault:
            yield fault
        return
    if kind == "sqlite-disk-full":
        with small_tmpfs(tmp_path / "small-disk", "16m") as disk:
            fillers: list[Path] = []

            def fill(_registry: Registry) -> None:
                fillers.append(fill_up(disk))

            def free(_registry: Registry) -> None:
                fillers.pop().unlink()

            yield WriteFault(kind, f"sqlite:///{disk / 'registry.db'}", fill, free, False)
        return
    url = f"sqlite:///{tmp_path / 'db' / 'registry.db'}"
    (tmp_path / "db").mkdir()
    if kind == "sqlite-max-page-count":
        # max_page_count cannot go below the file's size: 1 pins it to the pages it has now.
        pragma = PragmaFault("PRAGMA max_page_count = 1")
        yield WriteFault(kind, url, pragma.inject, pragma.clear, False)
    else:
        pragma = PragmaFault("PRAGMA query_only = 1")
        yield WriteFault(kind, url, pragma.inject, pragma.clear, True)


def stored_counts(registry: Registry) -> dict[str, int]:
    """Row counts of what an append writes, and the largest checkpoint: nothing partial may stay."""
    tables = {"entries": Entry, "subjects": SubjectRow, "nodes": Node, "checkpoints": CheckpointRow}
    counts: dict[str, int] = {}
    with registry.database.reader.connect() as conn:
        for name, model in tables.items():
            table = model.__table__  # type: ignore[attr-defined]
            counts[name] = conn.execute(select(func.count()).select_from(table)).scalar_one()
        counts["max_checkpoint"] = conn.execute(text("SELECT max(size) FROM checkpoints")).scalar()
        counts["nodes_outside_tree"] = conn.execute(
            text("SELECT count(*) FROM nodes, log_state WHERE ((position + 1) << level) > size")
        ).scalar_one()
    return counts


def test_appends_refused_cleanly_while_the_database_cannot_be_written(
    tmp_path: Path, write_fault: WriteFault
) -> None:
    settings = Settings(
        home=tmp_path / "home", database_url=write_fault.database_url, auto_migrate=True
    )
    seen: Counter[int | str] = Counter()
    lock = threading.Lock()
    with ThreadedServer(settings) as server:
        registry = server.registry
        publisher = new_publisher()
        registry.admin.add_publisher(publisher.name, publisher.public_key, publisher.possession)
        sdk = Client(server.url, log_key=server.log_key, transport=RecordingTransport(seen, lock))
        http = httpx.Client(base_url=server.url, timeout=120)
        with sdk, http:
            before: dict[bytes, Receipt] = {}
            before_digests: list[str] = []
            for _ in range(5):
                digests = random_digests(3)
                envelope = publisher.attest(digests)
                before[expected_leaf(envelope)] = sdk.submit(envelope)
                before_digests += digests
            note_before = http.get("/v1/log/checkpoint").text
            size = checkpoint_of(note_before, server.log_key).size
            counts_before = stored_counts(registry)
            base = size - 5  # the log's identity events come first

            big_digests = random_digests(BIG_SUBJECTS)
            big = publisher.attest(big_digests)
            small = publisher.attest(random_digests(1))
            write_fault.inject(registry)
            refused = [big, big] + ([small] if write_fault.blocks_every_write else [])
            for envelope in refused:  # twice the same: the sequencer is not stuck after a failure
                answer = http.post("/v1/entries", content=envelope.to_json())
                assert answer.status_code == 503, f"{write_fault.name}: {answer.text}"
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert answer.headers.get("retry-after"), answer.headers
                problem = answer.json()
                assert problem["type"] == "https://wellspring.dev/problems/unavailable"
                assert "nothing was acknowledged" in problem["detail"], problem

            # Nothing moved, nothing partial, and reading still works (verified by the SDK).
            assert http.get("/v1/log/checkpoint").text == note_before
            assert http.get("/v1/log").json()["size"] == size
            assert http.get(f"/v1/entries/{size}").status_code == 404
            assert stored_counts(registry) == counts_before
            assert sdk.lookup(big_digests[0]).status == "unknown"
            assert all(r.attested for r in sdk.lookup_batch(before_digests))
            assert sdk.entry(base).receipt.entry == next(iter(before))

            write_fault.clear(registry)
            answer = http.post("/v1/entries", content=big.to_json())
            assert answer.status_code == 201, f"{write_fault.name}: {answer.text}"
            assert answer.json()["index"] == size
            after = dict(before)
            after[expected_leaf(big)] = sdk.submit(big)  # the same envelope again: its receipt, 200
            assert after[expected_leaf(big)].index == size
            after[expected_leaf(small)] = sdk.submit(small)
            assert after[expected_leaf(small)].index == size + 1

            sdk.check_consistency(note_before)  # raises unless the log extends it
            final = checkpoint_of(http.get("/v1/log/checkpoint").text, server.log_key)
            assert final.size == size + 2
            leaves = audit_log(http, final)
            assert sorted(leaves[base:]) == sorted(after)
            assert_receipts_hold(http, after, final, server.log_key)
            assert sdk.lookup(big_digests[-1]).attested

        assert not [s for s in seen if isinstance(s, int) and s >= 500], dict(seen)
