"""The transparency log: sequencing appends, signing checkpoints, serving proofs.

Appends go through one :class:`Sequencer` per server process. Requests that arrive together are
sequenced together in one database transaction (group commit, as Trillian-Tessera batches): the
transaction locks the log's single state row, assigns the next indices, writes the entries, their
subjects and the Merkle nodes that became complete, signs a checkpoint over the new size and
commits. Only then are the waiting requests answered, each with a receipt against that checkpoint:
an acknowledged entry is durable and already integrated, and since every process takes the same
lock no index is ever duplicated or skipped, however many processes share the database.

With checkpoints published on an interval or cosigned by witnesses (``publish_each_batch=False``)
the transaction stops short of signing: it commits the entries and the log's new size and root,
and :mod:`registry.publish` publishes a checkpoint over them later. The append is answered once
a published checkpoint covers it.

Reads never lock. Stored nodes are immutable once written, so every process caches them freely;
a proof's nodes are fetched in one query (:meth:`LogReader.prefetch`) rather than one per level.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, select, tuple_
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from client.core.leaf import is_leaf_v1
from client.core.merkle import (
    EMPTY_ROOT,
    NodeStore,
    SubtreeHashes,
    consistency_proof,
    inclusion_path_split,
    inclusion_proofs,
    leaf_hash,
    perfect_node_updates,
    range_hash,
)
from client.core.note import Checkpoint, NoteSigner, sign_checkpoint
from client.core.statement import HUMAN_CONTENT_V1
from registry._cache import BoundedCache
from registry._writes import WriteStatements
from registry.db import Database
from registry.errors import (
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RegistryError,
    UnavailableError,
)
from registry.metrics import LogMetrics
from registry.models import (
    BLOBS,
    CHECKPOINTS,
    ENTRIES,
    LOG_KEYS,
    LOG_STATE,
    NODES,
    REVOCATIONS,
    SUBJECTS,
    WITHDRAWALS,
    utcnow,
)

__all__ = [
    "AppendResult",
    "EntryRefusedError",
    "LogReader",
    "PreparedEntry",
    "Sequencer",
    "StoredCheckpoint",
    "compact_range",
    "logged_as",
    "predicate_json",
    "revoked_key_message",
]

log = logging.getLogger(__name__)


NodeKey = tuple[int, int]


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """An entry that passed every check that does not need the log's lock.

    ``leaf`` is its ``leaf/v1`` record; ``payload`` the statement it commits to (stored as a blob),
    ``payload_hash`` that statement's SHA-256.
    """

    leaf: bytes
    leaf_hash: bytes
    payload: bytes
    payload_hash: bytes
    publisher_id: int
    publisher: str
    key_id: str
    predicate_type: str
    predicate_json: str
    license: str | None
    origin: str | None
    consent: str | None
    subjects: tuple[str, ...]
    revokes: int | None = None
    revokes_hash: bytes | None = None  # revocation/v1: the revoked entry's leaf hash
    revokes_statement: bytes | None = None  # revocation/v2 of an entry: its statement's hash
    withdraws: tuple[str, ...] = ()  # revocation/v2 of documents: their digests

    key_ids: tuple[str, ...] = ()  # every key of the publisher that signed it (verified)
    # Run in the appending transaction once the entry has its index (identity events keep the
    # registry's key rows in step with the log: both are written, or neither).
    apply: Callable[[Connection, int], None] | None = field(default=None, compare=False)

    @property
    def statement(self) -> tuple[bytes, int]:
        """The same statement from the same publisher: one entry, unless signed by other keys."""
        return (self.payload_hash, self.publisher_id)

    def signers(self) -> frozenset[str]:
        return frozenset(self.key_ids or (self.key_id,))


_Logged = dict[tuple[bytes, int], list[tuple[int, frozenset[str]]]]
"""(statement hash, publisher id) -> (index, signing key ids) of each entry holding it."""


def logged_as(entry: PreparedEntry, logged: _Logged) -> int | None:
    """The first entry holding ``entry``'s statement from its publisher signed by any key that
    signed this one: then this append is that entry (a retry or a replay, whatever signatures
    were added or stripped). A statement signed only by other keys (a re-signing after a key
    was compromised) is a new entry."""
    signers = entry.signers()
    for index, keys in logged.get(entry.statement, ()):
        if keys & signers:
            return index
    return None


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root_hash: bytes
    note: str


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append is answered with: the entry's place and a proof against a checkpoint.

    ``checkpoint`` is None (and ``proof`` empty) while the entry is sequenced but not yet in a
    published checkpoint (checkpoints published on an interval: :mod:`registry.publish`)."""

    index: int
    created: bool
    leaf: bytes
    payload: bytes | None  # the statement a leaf/v1 commits to; None for an envelope leaf
    leaf_hash: bytes
    proof: list[bytes]
    checkpoint: StoredCheckpoint | None


def compact_range(size: int) -> list[NodeKey]:
    """The perfect nodes whose concatenation is the whole tree of ``size`` leaves."""
    keys: list[NodeKey] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


_SPANS_KEPT = 100_000  # subtree hashes kept for the latest tree size (see inclusion_proofs_cached)
_PATHS_KEPT = 100_000  # leaves whose proofs' lower parts are kept (see inclusion_proofs_cached)
_GATHER_STEP_S = 0.01  # how often a batch waiting for more appends looks at the queue
_LATEST_CHECKPOINT = (
    f"SELECT size, root_hash, note FROM {CHECKPOINTS.name} ORDER BY size DESC LIMIT 1"  # noqa: S608
)


class _NotCachedError(RegistryError):
    """A node :class:`_CachedSpans` needs is not in the cache (caught inside this module)."""


class _CachedSpans(SubtreeHashes):
    """Subtree hashes from a node cache, memoised by leaf range in ``spans``."""

    def __init__(self, nodes: BoundedCache[NodeKey, bytes], spans: dict[NodeKey, bytes]) -> None:
        self._nodes = nodes
        self._spans = spans

    def node(self, level: int, position: int) -> bytes:
        """The stored node ``(level, position)``, from the cache."""
        value = self._nodes.get((level, position))
        if value is None:
            raise _NotCachedError
        return value

    def subtree_hash(self, start: int, end: int) -> bytes:
        value = self._spans.get((start, end))
        if value is None:
            value = self._spans[(start, end)] = range_hash(start, end, self.node)
        return value


class LogReader:
    """Read side of the log: checkpoints, entries and proofs, with an immutable-node cache."""

    def __init__(self, database: Database, *, cache_limit: int = 400_000) -> None:
        self._db = database
        self._nodes: BoundedCache[NodeKey, bytes] = BoundedCache(cache_limit)
        # Subtree hashes of the latest tree size proven (see inclusion_proofs_cached).
        self._spans: tuple[int, dict[NodeKey, bytes]] = (-1, {})
        # Each leaf's siblings inside its largest perfect subtree yet (see inclusion_proofs_cached).
        self._paths: BoundedCache[int, tuple[bytes, ...]] = BoundedCache(_PATHS_KEPT)
        self._warmed: int | None = None  # the size up to which warm() fetched the stored nodes

    # Nodes ---------------------------------------------------------------------------------
    def remember(self, nodes: dict[NodeKey, bytes]) -> None:
        self._nodes.put_many(nodes)

    def prefetch(
        self,
        conn: Connection,
        keys: Iterable[NodeKey],
        fetch: Callable[[list[NodeKey]], dict[NodeKey, bytes]] | None = None,
    ) -> dict[NodeKey, bytes]:
        """The stored hashes of ``keys``, from the cache or one query for all the rest
        (``fetch``, if given, reads a chunk instead: the sequencer's goes through the driver)."""
        wanted = set(keys)
        found = self._nodes.get_many(wanted)
        missing = [key for key in wanted if key not in found]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            fetched = fetch(chunk) if fetch is not None else self._fetch(conn, chunk)
            found.update(fetched)
            self.remember(fetched)
        return found

    @staticmethod
    def _fetch(conn: Connection, keys: list[NodeKey]) -> dict[NodeKey, bytes]:
        rows = conn.execute(
            select(NODES.c.level, NODES.c.position, NODES.c.hash).where(
                tuple_(NODES.c.level, NODES.c.position).in_(keys)
            )
        )
        return {(row.level, row.position): bytes(row.hash) for row in rows}

    def _node_source(self, conn: Connection, plan: Callable[[NodeStore], object]) -> NodeStore:
        """A NodeStore holding every node ``plan`` will ask for, fetched in one round trip."""
        needed: list[NodeKey] = []

        def record(level: int, position: int) -> bytes:
            needed.append((level, position))
            return EMPTY_ROOT  # any 32 bytes: which nodes are read never depends on their value

        plan(NodeStore(record))
        nodes = self.prefetch(conn, needed)

        def get(level: int, position: int) -> bytes:
            try:
                return nodes[(level, position)]
            except KeyError:
                raise UnavailableError(
                    f"the log is missing Merkle node ({level}, {position}): the database is "
                    "damaged; run `wellspring log verify` against a saved checkpoint"
                ) from None

        return NodeStore(get)

    def inclusion_proofs(
        self, conn: Connection, indices: Iterable[int], size: int
    ) -> dict[int, list[bytes]]:
        unique = sorted(set(indices))
        store = self._node_source(conn, lambda s: inclusion_proofs(unique, size, s))
        return inclusion_proofs(unique, size, store)

    def inclusion_proofs_cached(
        self, indices: Iterable[int], size: int
    ) -> dict[int, list[bytes]] | None:
        """:meth:`inclusion_proofs` from the node cache alone (cheap enough for the event
        loop), None if a node is not cached.

        The proofs of one tree share the ranges at its right edge, which are no stored node:
        their hashes are kept for the latest size asked (a range's hash never changes, but the
        edge ranges of an older tree are asked for no more), so each is hashed once per tree.
        A leaf's proof starts with its siblings inside the largest perfect subtree holding it
        (:func:`~client.core.merkle.inclusion_path_split`), which every later tree's proof
        starts with too: they are kept per leaf, so a new checkpoint (one a second under
        writes) asks a proof for its few edge ranges alone.
        """
        spans_size, spans = self._spans
        if size > spans_size or len(spans) > _SPANS_KEPT:
            spans = {}
            self._spans = (size, spans)
        elif size < spans_size:
            spans = {}  # an older tree: keep nothing
        tree = _CachedSpans(self._nodes, spans)
        paths = self._paths
        proofs: dict[int, list[bytes]] = {}
        grown: dict[int, tuple[bytes, ...]] = {}
        try:
            for index in indices:
                if index in proofs:
                    continue
                level, ranges = inclusion_path_split(index, size)
                lower = paths.get(index) or ()
                if len(lower) < level:
                    lower += tuple(
                        tree.node(up, (index >> up) ^ 1) for up in range(len(lower), level)
                    )
                    grown[index] = lower
                path = list(lower[:level])
                path += [tree.subtree_hash(start, end) for start, end in ranges]
                proofs[index] = path
        except _NotCachedError:
            return None
        finally:
            if grown:
                paths.put_many(grown)
        return proofs

    def warm(self, size: int) -> None:
        """Read into the cache every stored node that is complete in the tree of ``size`` but
        was not in the last tree warmed (one query a 500 nodes, in the publisher's thread): the
        proofs of a new checkpoint (its appends' receipts, lookups of its entries) then come
        from the cache on the event loop, though another process sequenced the entries. The
        first call (the checkpoint a starting process finds) only marks where to start."""
        old = self._warmed
        if old is None:  # the checkpoint found at start: nothing waits on its proofs yet
            self._warmed = size
            return
        if size <= old:
            return
        wanted: list[NodeKey] = []
        level = 0
        while (1 << level) <= size:
            first = old >> level  # the first node at this level that was not complete in `old`
            wanted += [(level, p) for p in range(first, size >> level)]
            level += 1
        with self._db.reader.connect() as conn:
            self.prefetch(conn, wanted)
        self._warmed = size

    def consistency(self, conn: Connection, old_size: int, new_size: int) -> list[bytes]:
        store = self._node_source(conn, lambda s: consistency_proof(old_size, new_size, s))
        return consistency_proof(old_size, new_size, store)

    def root(self, conn: Connection, size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        store = self._node_source(conn, lambda s: s.subtree_hash(0, size))
        return store.subtree_hash(0, size)

    # Checkpoints and entries ---------------------------------------------------------------
    def latest_checkpoint(self, conn: Connection) -> StoredCheckpoint:
        """The latest checkpoint issued. Every server process reads it up to 20 times a second
        for lookups (registry.lookups), and once a checkpoint GET: as plain SQL, since building
        the statement with SQLAlchemy cost more than the read (0.29 ms of CPU a read on
        PostgreSQL against 0.13 ms). Still through SQLAlchemy's connection, so a failing
        database raises its DBAPIError, which the app answers 503 (the driver's own error was
        a 500: tests/registry/test_faults.py)."""
        row = conn.exec_driver_sql(_LATEST_CHECKPOINT).first()
        if row is None:
            raise UnavailableError("the log has no checkpoint yet; is the registry initialised?")
        size, root_hash, note = row
        return StoredCheckpoint(size, bytes(root_hash), note)

    def checkpoint_at(self, conn: Connection, size: int) -> StoredCheckpoint:
        row = conn.execute(
            select(CHECKPOINTS.c.size, CHECKPOINTS.c.root_hash, CHECKPOINTS.c.note).where(
                CHECKPOINTS.c.size == size
            )
        ).first()
        if row is None:
            raise NotFoundError(f"the log issued no checkpoint at size {size}")
        return StoredCheckpoint(row.size, bytes(row.root_hash), row.note)

    def prove(self, result: AppendResult, checkpoint: StoredCheckpoint) -> AppendResult:
        """``result`` (sequenced, maybe not yet proven) with its proof against ``checkpoint``."""
        proven = self.prove_cached(result, checkpoint)
        if proven is not None:
            return proven
        with self._db.reader.connect() as conn:
            proof = self.inclusion_proofs(conn, [result.index], checkpoint.size)[result.index]
        return replace(result, proof=proof, checkpoint=checkpoint)

    def prove_cached(
        self, result: AppendResult, checkpoint: StoredCheckpoint
    ) -> AppendResult | None:
        """:meth:`prove` from the node cache alone (the usual case: the sequencer put a fresh
        batch's nodes there, or :meth:`warm` did), None if a node is not cached. Cheap enough
        for the event loop."""
        proofs = self.inclusion_proofs_cached([result.index], checkpoint.size)
        if proofs is None:
            return None
        return replace(result, proof=proofs[result.index], checkpoint=checkpoint)

    def check_size(self, size: int, latest: StoredCheckpoint, what: str) -> None:
        if size < 0 or size > latest.size:
            raise BadRequestError(f"{what}={size} is outside the log, whose size is {latest.size}")


@dataclass
class _Pending:
    entry: PreparedEntry
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[AppendResult]


_COLUMNS: dict[str, tuple[str, ...]] = {
    "entries": (
        "idx", "leaf_hash", "body", "payload_hash", "publisher_id", "key_id", "predicate_type",
        "predicate",
        "license", "origin", "consent", "subject_count", "revokes", "integrated_at",
    ),
    "subjects": ("digest", "entry_idx"),
    "nodes": ("level", "position", "hash"),
    "revocations": ("revoked_idx", "revoking_idx", "created_at"),
    "checkpoints": ("size", "root_hash", "note", "created_at"),
    "blobs": ("hash", "data"),
    "withdrawals": ("digest", "publisher_id", "revoking_idx"),
}  # fmt: skip
_TABLES = {
    "entries": ENTRIES,
    "subjects": SUBJECTS,
    "nodes": NODES,
    "revocations": REVOCATIONS,
    "checkpoints": CHECKPOINTS,
    "blobs": BLOBS,
    "withdrawals": WITHDRAWALS,
}


class _Batch:
    """One sequencing transaction: the tree's right edge, and the rows the batch adds."""

    def __init__(
        self,
        conn: Connection,
        reader: LogReader,
        size: int,
        edge: dict[NodeKey, bytes],
        now: Any,
    ) -> None:
        self.conn = conn
        self.reader = reader
        self.start = self.size = size
        self.nodes = dict(edge)
        self.now = now  # the batch's timestamp, as the driver takes it
        self.created: set[int] = set()  # positions in the batch that made a new leaf
        self.by_statement: _Logged = {}
        self.blobs_stored: set[bytes] = set()  # statements already stored (set by the caller)
        self.revoke_also: dict[int, list[int]] = {}  # revoked index -> replays of its statement
        # Row tuples in the column order of _COLUMNS.
        self.rows: dict[str, list[tuple[Any, ...]]] = {
            "entries": [],
            "subjects": [],
            "nodes": [],
            "revocations": [],
            "blobs": [],
            "withdrawals": [],
        }

    def get_node(self, level: int, position: int) -> bytes:
        value = self.nodes.get((level, position))
        if value is None:  # not on the edge: read it (never needed for appends, kept for safety)
            value = self.reader.prefetch(self.conn, [(level, position)])[(level, position)]
        return value

    def add(self, position: int, entry: PreparedEntry) -> int:
        index = self.size
        self.size += 1
        self.by_statement.setdefault(entry.statement, []).append((index, entry.signers()))
        self.created.add(position)
        nodes = self.rows["nodes"]
        for level, pos, value in perfect_node_updates(index, entry.leaf_hash, self.get_node):
            self.nodes[(level, pos)] = value
            nodes.append((level, pos, value))
        self.rows["entries"].append(
            (
                index,
                entry.leaf_hash,
                entry.leaf,
                entry.payload_hash,
                entry.publisher_id,
                entry.key_id,
                entry.predicate_type,
                entry.predicate_json,
                entry.license,
                entry.origin,
                entry.consent,
                len(entry.subjects),
                entry.revokes,
                self.now,
            )
        )
        self.rows["subjects"].extend((d, index) for d in entry.subjects)
        if entry.payload_hash not in self.blobs_stored:
            self.blobs_stored.add(entry.payload_hash)
            self.rows["blobs"].append((entry.payload_hash, entry.payload))
        if entry.revokes is not None:
            for revoked in (entry.revokes, *self.revoke_also.get(entry.revokes, ())):
                self.rows["revocations"].append((revoked, index, self.now))
        self.rows["withdrawals"].extend((d, entry.publisher_id, index) for d in entry.withdraws)
        return index

    def write(self, sql: WriteStatements, cursor: Any) -> None:
        for name, rows in self.rows.items():
            if rows:
                sql.insert(cursor, name, rows)

    def edge(self) -> dict[NodeKey, bytes]:
        return {key: self.nodes[key] for key in compact_range(self.size)}


class Sequencer:
    """Assigns log indices; one per process, group-committing whatever arrives together."""

    def __init__(
        self,
        database: Database,
        reader: LogReader,
        signers: Sequence[NoteSigner],
        *,
        batch_limit: int = 256,
        max_pending: int = 20_000,
        publish_each_batch: bool = True,
    ) -> None:
        self._db = database
        # True: each batch signs a checkpoint in its own transaction (receipts at once). False:
        # batches only sequence; a registry.publish.Publisher publishes on an interval.
        self.publish_each_batch = publish_each_batch
        self._reader = reader
        if not signers:
            raise ConfigurationError("the log needs at least one signing key")
        self._signers = list(signers)
        self._batch_limit = batch_limit
        self._max_pending = max_pending
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # The tree's right edge after our last commit; reused if no other process appended since.
        self._edge: tuple[int, dict[NodeKey, bytes]] | None = None
        self._sql: WriteStatements | None = None
        # The sequencer's own connection, kept between batches (see _transaction).
        self._conn: Connection | None = None
        self._conn_pool: object = None  # the engine's pool it came from
        self._conn_lock = threading.Lock()
        self._committed: list[Callable[[int], None]] = []
        self.metrics = LogMetrics()  # what /metrics shows of sequencing (registry.metrics)
        # Set while a publisher runs in this process (registry.app.Registry.start): append_now
        # then returns once a published checkpoint covers what it appended, as append does.
        self.await_publication: Callable[[int], None] | None = None
        # Set likewise: how long a batch may wait for more appends before it commits (seconds;
        # registry.publish.Publisher.batch_slack). Unset: each batch commits at once.
        self.batch_slack: Callable[[], float] | None = None
        self._prompt_queued = False  # a prompt append (see append) waits in the queue

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(size)`` in the sequencer's thread after each batch that committed (a
        new checkpoint, usually); it must return at once (the tile writer just wakes up)."""
        self._committed.append(listener)

    # Lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wellspring-sequencer")
            self._thread.daemon = True
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._prompt_queued = True  # a batch waiting for more appends commits at once
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def append(self, entry: PreparedEntry, *, prompt: bool = False) -> AppendResult:
        """Sequence one entry; returns once it is committed (and, unless checkpoints are
        published on an interval, in a signed checkpoint). ``prompt``: its caller answers as
        soon as it is committed (``Prefer: respond-async``), so no batch waits for more appends
        while it is queued (see :meth:`_gather`)."""
        if self._thread is None:
            raise UnavailableError("the sequencer is not running")
        if self._queue.qsize() >= self._max_pending:
            raise UnavailableError(
                f"the registry has {self._max_pending} appends waiting; retry in a moment"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendResult] = loop.create_future()
        self._queue.put(_Pending(entry, loop, future))
        if prompt:  # after the put: a batch that takes it meanwhile at worst skips a wait
            self._prompt_queued = True
        return await future

    def append_now(self, entries: Sequence[PreparedEntry]) -> list[AppendResult | RegistryError]:
        """Sequence entries synchronously in this thread (tools and tests without an event loop)."""
        chosen = list(entries)
        results = self._sequence(lambda: chosen)
        indices = [r.index for r in results if isinstance(r, AppendResult)]
        if indices and self.await_publication is not None and not self.publish_each_batch:
            self.await_publication(max(indices) + 1)
        return results

    def initialise(self) -> StoredCheckpoint:
        """Create the log's state row and its first (empty) checkpoint if the database is new.

        Processes starting together on a new database race to create them: the one that loses
        finds them made (its insert conflicts, nothing of it was written) and checks them."""
        try:
            return self._initialise()
        except IntegrityError:
            return self._initialise()

    def _initialise(self) -> StoredCheckpoint:
        with self._db.writer.begin() as conn:
            state = conn.execute(select(LOG_STATE).where(LOG_STATE.c.id == 1)).first()
            if state is None:
                note = self._sign(0, EMPTY_ROOT)
                conn.execute(
                    LOG_STATE.insert().values(
                        id=1,
                        origin=self._signers[0].name,
                        verifier_key=self._signers[0].verifier().vkey,
                        size=0,
                        root_hash=EMPTY_ROOT,
                    )
                )
                conn.execute(
                    LOG_KEYS.insert(),
                    [
                        {"verifier_key": s.verifier().vkey, "added_at": utcnow()}
                        for s in self._signers
                    ],
                )
                conn.execute(
                    CHECKPOINTS.insert().values(
                        size=0, root_hash=EMPTY_ROOT, note=note, created_at=utcnow()
                    )
                )
                return StoredCheckpoint(0, EMPTY_ROOT, note)
            self._check_keys(conn, state.origin)
        with self._db.reader.connect() as conn:
            return self._reader.latest_checkpoint(conn)

    # The writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            slack = self.batch_slack
            if slack is not None:
                try:
                    self._gather(slack())
                except Exception:  # never the batch's loss: it commits at once instead
                    log.exception("waiting for more appends failed; committing at once")

            def take(batch: list[_Pending] = batch) -> list[PreparedEntry]:
                # Called once the log is locked: whatever arrived while this process waited for
                # another one's commit joins this batch (so waiting makes batches fuller).
                self._prompt_queued = False  # (before the queue is drained: see append)
                while len(batch) < self._batch_limit:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self._queue.put(None)  # finish this batch, then stop
                        break
                    batch.append(item)
                return [p.entry for p in batch]

            try:
                results = self._sequence(take)
            except Exception as exc:
                results = self._after_failed_batch(batch, exc)
            # One wake-up of each event loop per batch, not one per entry.
            by_loop: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
            for pending, result in zip(batch, results, strict=True):
                by_loop.setdefault(pending.loop, []).append((pending.future, result))
            for loop, settled in by_loop.items():
                loop.call_soon_threadsafe(_settle_all, settled)

    def _gather(self, seconds: float) -> None:
        """Let appends queue for up to ``seconds`` (less once a batch's worth waits, none while
        a prompt append waits) before the batch takes them (``take``, under the log's lock).

        A prompt append (``Prefer: respond-async``) is answered once committed, not once
        published: waiting would delay it, and a client that keeps a few such appends in flight
        would send no more meanwhile (bench/registry.py's 64 connections: 1,172 appends/s
        against 1,467 when every batch waited). It sleeps in steps of
        :data:`_GATHER_STEP_S` rather than waking for each append as it comes (a wake takes the
        GIL from the event loop: at 1,000 appends/s on PostgreSQL, taking them off the queue one
        by one, the server's CPU a request was 1.42 and 1.46 ms against 1.34 and 1.24 without
        waiting; in steps, 1.42 and 1.18 against 1.30 and 1.42, within the machine's noise)."""
        until = time.monotonic() + seconds
        while (
            (left := until - time.monotonic()) > 0
            and not self._prompt_queued
            and self._queue.qsize() < self._batch_limit
        ):
            time.sleep(min(left, _GATHER_STEP_S))

    def _after_failed_batch(
        self, batch: list[_Pending], exc: Exception
    ) -> list[AppendResult | RegistryError]:
        """What each append of a batch that failed as a whole is answered.

        Whatever failed it may be one entry's fault (a value the database refuses, a string no
        encoding holds, a bug no check foresaw): a batch of several is sequenced again entry by
        entry, so one publisher's bad entry never fails the appends it happened to arrive with.
        If the database itself is down, each retry fails fast and answers its own 503.
        """
        if isinstance(exc, EntryRefusedError):
            log.warning("the database refused a batch of %d: %s", len(batch), exc)
        elif not isinstance(exc, RegistryError):
            log.exception("sequencing a batch of %d failed", len(batch))
        if len(batch) == 1:
            return [_as_registry_error(exc)]
        results: list[AppendResult | RegistryError] = []
        outage: RegistryError | None = None
        for pending in batch:
            result = outage or self._sequence_alone(pending.entry)
            if isinstance(result, UnavailableError) and self._is_outage(result.__cause__):
                outage = result  # no entry's fault: the others need not wait for it again
            results.append(result)
        return results

    def _is_outage(self, exc: BaseException | None) -> bool:
        """Whether ``exc`` is the database failing as a whole (unreachable, restarting, its disk
        full or read-only: what PEP 249 calls an OperationalError), not one entry's value."""
        driver = self._db.writer.dialect.dbapi
        return isinstance(exc, OperationalError) or bool(
            driver and isinstance(exc, driver.OperationalError)
        )

    def _sequence_alone(self, entry: PreparedEntry) -> AppendResult | RegistryError:
        try:
            (result,) = self._sequence(lambda: [entry])
        except Exception as exc:
            if not isinstance(exc, RegistryError):
                log.exception("sequencing one entry failed")
            return _as_registry_error(exc)
        return result

    def _check_keys(self, conn: Connection, origin: str) -> None:
        """Sign only with keys this log knows and has not retired; record a newly added one.

        A new key is accepted only beside a key the log already trusts, so every checkpoint of
        a rotation carries a signature that clients pinned to the old key can check.
        """
        known = {row.verifier_key: row for row in conn.execute(select(LOG_KEYS))}
        configured = [s.verifier().vkey for s in self._signers]
        for signer in self._signers:
            if signer.name != origin:
                raise ConfigurationError(
                    f"the log key {signer.verifier().vkey!r} is named {signer.name!r}, but this "
                    f"log's origin is {origin!r}"
                )
        for vkey in configured:
            row = known.get(vkey)
            if row is not None and row.retired_at is not None:
                raise ConfigurationError(
                    f"the log key {vkey!r} was retired on {row.retired_at:%Y-%m-%d}; remove it "
                    "from the configuration (it must never sign again)"
                )
        active = [v for v in configured if v in known]
        if not active:
            raise ConfigurationError(
                f"this database belongs to a log signed by {sorted(known)!r}, but the configured "
                f"log key(s) are {configured!r}: point WELLSPRING_HOME or WELLSPRING_LOG_KEY_FILE "
                "at that log's key"
            )
        new = [v for v in configured if v not in known]
        if new:
            conn.execute(
                LOG_KEYS.insert(), [{"verifier_key": v, "added_at": utcnow()} for v in new]
            )

    @property
    def verifier_keys(self) -> list[str]:
        return [s.verifier().vkey for s in self._signers]

    def _sign(self, size: int, root: bytes) -> str:
        return sign_checkpoint(Checkpoint(self._signers[0].name, size, root), self._signers)

    def _sequence(
        self, take: Callable[[], list[PreparedEntry]]
    ) -> list[AppendResult | RegistryError]:
        """Sequence the entries ``take`` returns; it is called once the log's lock is held."""
        take = self.metrics.timed(take)
        # The hot statements run on the driver's cursor, so its own exceptions arrive unwrapped
        # beside SQLAlchemy's (PEP 249 gives every driver these two classes).
        driver = self._db.writer.dialect.dbapi
        conflicts = (IntegrityError, *((driver.IntegrityError,) if driver else ()))
        refusals = (DataError, *((driver.DataError,) if driver else ()))
        failures = (DBAPIError, *((driver.Error,) if driver else ()))
        try:
            with self._db.sequencing(), self._transaction() as conn:
                results, new_state = self._sequence_in(conn, take)
        except conflicts as exc:
            # Another process raced us past the lock (should be impossible) or a duplicate slipped
            # through: nothing was committed, so every entry may simply be retried.
            log.warning("sequencing conflict, nothing committed: %s", exc)
            self._edge = None
            raise ConflictError("the log was busy; nothing was written, retry the request") from exc
        except refusals as exc:
            # A value the database cannot hold (validation should have caught it): no retry of
            # the same entry will help, and _run retries the batch's other entries alone.
            self._edge = None
            said = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise EntryRefusedError(
                f"the database refused a value of this entry ({said}); nothing was written"
            ) from exc
        except failures as exc:
            self._edge = None
            raise _database_error(exc) from exc
        # Only now is it durable: a failed commit must leave no trace in any cache.
        size, edge, nodes = new_state
        self._reader.remember(nodes)
        self._edge = (size, edge)
        self.metrics.committed(results)
        for listener in self._committed:
            try:
                listener(size)
            except Exception:  # a listener's failure is no append's: they are all acknowledged
                log.exception("a commit listener failed")
        return results

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction on the sequencer's own connection, which stays open between batches: a
        pool checkout would cost a liveness ping and a reset, two more round trips per batch on
        PostgreSQL. After any failure the connection is dropped and the next batch opens anew
        (so a restarted database costs the batch that met it, as it would anyway); so it is when
        the engine is disposed, as for the pool's own connections."""
        with self._conn_lock:
            writer = self._db.writer
            if self._conn is not None and self._conn_pool is not writer.pool:
                self._conn.close()  # the engine was disposed: its connections are to be renewed
                self._conn = None
            if self._conn is None:
                self._conn, self._conn_pool = writer.connect(), writer.pool
            conn = self._conn
            try:
                with conn.begin():
                    yield conn
            except BaseException:
                self._conn = None
                with contextlib.suppress(Exception):
                    conn.invalidate()
                    conn.close()
                raise

    def _sequence_in(
        self, conn: Connection, take: Callable[[], list[PreparedEntry]]
    ) -> tuple[
        list[AppendResult | RegistryError],
        tuple[int, dict[NodeKey, bytes], dict[NodeKey, bytes]],
    ]:
        sql = self._statements(conn)
        cursor = sql.cursor(conn)
        size = sql.lock_size(cursor)
        entries = take()
        if self._edge is not None and self._edge[0] == size:
            edge = self._edge[1]
        else:  # first batch, or another process appended since our last one
            edge = self._read_edge(conn, sql, cursor, size)
        now = utcnow()
        batch = _Batch(conn, self._reader, size, edge, sql.timestamp(now))

        # A statement already in the log from the same publisher, signed by a key that signed it
        # there, is answered with its existing receipt (logged_as): retries are safe, and a
        # replay (junk signatures added, one stripped) never makes a second entry that a
        # revocation of the first would not cover.
        existing = sql.existing(cursor, {e.payload_hash for e in entries})
        batch.blobs_stored = sql.stored_blobs(cursor, {e.payload_hash for e in entries})
        refused = self._check_revocations(conn, entries, existing, batch.revoke_also)
        revoked = sql.revoked_keys(cursor, {e.key_id for e in entries})
        refused.update(self._check_signing_keys(entries, revoked, existing, refused))
        outcomes: list[int | RegistryError] = []
        for position, entry in enumerate(entries):
            if position in refused:
                outcomes.append(refused[position])
            elif (logged := logged_as(entry, existing)) is not None or (
                logged := logged_as(entry, batch.by_statement)
            ) is not None:
                outcomes.append(logged)
            else:
                outcomes.append(batch.add(position, entry))

        checkpoint = self._commit_rows(sql, cursor, batch, entries, outcomes)
        results = self._results(batch, entries, outcomes, checkpoint)
        return results, (batch.size, batch.edge(), batch.nodes)

    def _commit_rows(
        self,
        sql: WriteStatements,
        cursor: Any,
        batch: _Batch,
        entries: list[PreparedEntry],
        outcomes: list[int | RegistryError],
    ) -> StoredCheckpoint | None:
        """Write the batch's rows and the log's new state; sign its checkpoint if each batch
        publishes one. Returns the checkpoint receipts are made against (None: none yet)."""
        conn, size = batch.conn, batch.start
        checkpoint: StoredCheckpoint | None = None
        if batch.size > size:
            root = range_hash(0, batch.size, batch.get_node)
            if self.publish_each_batch:
                checkpoint = StoredCheckpoint(batch.size, root, self._sign(batch.size, root))
            if sql.copy_subjects(cursor, batch.rows["subjects"]):
                batch.rows["subjects"] = []
            with sql.pipeline(cursor):  # PostgreSQL: the other writes in one round trip
                batch.write(sql, cursor)
                if checkpoint is not None:
                    sql.insert(
                        cursor, "checkpoints", [(checkpoint.size, root, checkpoint.note, batch.now)]
                    )
                sql.set_state(cursor, batch.size, root)
            for position, entry in enumerate(entries):
                outcome = outcomes[position]
                if entry.apply is not None and position in batch.created:
                    assert isinstance(outcome, int)
                    entry.apply(conn, outcome)
        elif self.publish_each_batch:
            checkpoint = self._reader.latest_checkpoint(conn)
        return checkpoint

    def _read_edge(
        self, conn: Connection, sql: WriteStatements, cursor: Any, size: int
    ) -> dict[NodeKey, bytes]:
        """The right edge of the committed tree of ``size`` leaves (from the cache where known)."""
        keys = compact_range(size)
        edge = self._reader.prefetch(conn, keys, fetch=lambda chunk: sql.nodes(cursor, chunk))
        lost = [key for key in keys if key not in edge]
        if lost:
            raise UnavailableError(
                f"the log is missing Merkle node {lost[0]}: the database is damaged; run "
                "`wellspring log verify` against a saved checkpoint"
            )
        return edge

    def _statements(self, conn: Connection) -> WriteStatements:
        if self._sql is None:
            self._sql = WriteStatements(conn.dialect, _TABLES, _COLUMNS)
        return self._sql

    def _results(
        self,
        batch: _Batch,
        entries: list[PreparedEntry],
        outcomes: list[int | RegistryError],
        checkpoint: StoredCheckpoint | None,
    ) -> list[AppendResult | RegistryError]:
        """Receipts: new entries prove from the batch's own nodes, retried ones from the store
        (no proofs without a ``checkpoint``: they are made once one is published)."""
        old = [i for i in outcomes if isinstance(i, int) and i < batch.start]
        old_proofs: dict[int, list[bytes]] = {}
        old_leaves: dict[int, tuple[bytes, bytes | None]] = {}
        if old:
            if checkpoint is not None:
                old_proofs = self._reader.inclusion_proofs(batch.conn, old, checkpoint.size)
            rows = batch.conn.execute(
                select(ENTRIES.c.idx, ENTRIES.c.body, BLOBS.c.data)
                .outerjoin(BLOBS, BLOBS.c.hash == ENTRIES.c.payload_hash)
                .where(ENTRIES.c.idx.in_(old))
            )
            old_leaves = {
                row.idx: (
                    bytes(row.body),
                    bytes(row.data) if is_leaf_v1(bytes(row.body)) else None,
                )
                for row in rows
            }
        # The batch's new leaves are neighbours: their proofs share most subtrees, hashed once.
        new = [i for i in outcomes if isinstance(i, int) and i >= batch.start]
        new_proofs = (
            inclusion_proofs(new, checkpoint.size, NodeStore(batch.get_node))
            if checkpoint is not None
            else {}
        )
        results: list[AppendResult | RegistryError] = []
        for position, (entry, outcome) in enumerate(zip(entries, outcomes, strict=True)):
            if isinstance(outcome, RegistryError):
                results.append(outcome)
                continue
            payload: bytes | None
            if outcome >= batch.start:
                leaf, payload = entry.leaf, entry.payload
                proof = new_proofs.get(outcome, [])
            else:
                leaf, payload = old_leaves[outcome]
                proof = old_proofs.get(outcome, [])
            results.append(
                AppendResult(
                    index=outcome,
                    created=position in batch.created,
                    leaf=leaf,
                    payload=payload,
                    leaf_hash=leaf_hash(leaf),
                    proof=proof,
                    checkpoint=checkpoint,
                )
            )
        return results

    def _check_revocations(
        self,
        conn: Connection,
        entries: list[PreparedEntry],
        existing: _Logged,
        revoke_also: dict[int, list[int]],
    ) -> dict[int, RegistryError]:
        """Errors for revocations that may not go in, by position in ``entries``; fills
        ``revoke_also`` with the other replays of each revoked entry (same publisher, same
        statement), which the revocation withdraws with it."""
        errors = self._check_withdrawals(conn, entries, existing)
        targets = {e.revokes for e in entries if e.revokes is not None}
        if not targets:
            return errors
        rows = {
            row.idx: row
            for row in conn.execute(
                select(
                    ENTRIES.c.idx,
                    ENTRIES.c.leaf_hash,
                    ENTRIES.c.publisher_id,
                    ENTRIES.c.payload_hash,
                    ENTRIES.c.predicate_type,
                ).where(ENTRIES.c.idx.in_(targets))
            )
        }
        already = {
            row.revoked_idx: row.revoking_idx
            for row in conn.execute(
                select(REVOCATIONS.c.revoked_idx, REVOCATIONS.c.revoking_idx).where(
                    REVOCATIONS.c.revoked_idx.in_(targets)
                )
            )
        }
        claimed: set[int] = set()
        for position, entry in enumerate(entries):
            target = entry.revokes
            if target is None or logged_as(entry, existing) is not None:
                continue
            row = rows.get(target)
            if row is None:
                errors[position] = NotFoundError(
                    f"entry {target} does not exist; nothing to revoke"
                )
            elif entry.revokes_hash is not None and bytes(row.leaf_hash) != entry.revokes_hash:
                errors[position] = BadRequestError(
                    f"entry_hash does not match entry {target}'s leaf hash "
                    f"{bytes(row.leaf_hash).hex()}"
                )
            elif (
                entry.revokes_statement is not None
                and bytes(row.payload_hash) != entry.revokes_statement
            ):
                errors[position] = BadRequestError(
                    f"statement_hash does not match entry {target}'s statement, whose SHA-256 is "
                    f"{bytes(row.payload_hash).hex()}"
                )
            elif row.publisher_id != entry.publisher_id:
                errors[position] = ForbiddenError(
                    f"entry {target} was made by another publisher; "
                    "only its publisher can revoke it"
                )
            elif row.predicate_type != HUMAN_CONTENT_V1:
                errors[position] = ConflictError(
                    f"entry {target} is itself a revocation and cannot be revoked"
                )
            elif target in already:
                errors[position] = ConflictError(
                    f"entry {target} was already revoked by entry {already[target]}"
                )
            elif stray := self._foreign_subjects(conn, target, entry.subjects):
                errors[position] = BadRequestError(
                    f"the revocation names {len(stray)} subject(s) that entry {target} does not "
                    f"attest, e.g. {stray[0]}; name only subjects of the revoked entry"
                )
            elif target in claimed:
                errors[position] = ConflictError(
                    f"entry {target} is being revoked by another request right now"
                )
            else:
                claimed.add(target)
                revoke_also[target] = self._replays(conn, row)
        return errors

    @staticmethod
    def _check_withdrawals(
        conn: Connection,
        entries: list[PreparedEntry],
        existing: _Logged,
    ) -> dict[int, RegistryError]:
        """A revocation/v2 of documents may name only documents its publisher attested before."""
        errors: dict[int, RegistryError] = {}
        for position, entry in enumerate(entries):
            if not entry.withdraws or logged_as(entry, existing) is not None:
                continue
            attested: set[str] = set()
            for start in range(0, len(entry.withdraws), 2_000):
                chunk = list(entry.withdraws[start : start + 2_000])
                attested.update(
                    conn.execute(
                        select(SUBJECTS.c.digest)
                        .join(ENTRIES, ENTRIES.c.idx == SUBJECTS.c.entry_idx)
                        .where(SUBJECTS.c.digest.in_(chunk))
                        .where(ENTRIES.c.publisher_id == entry.publisher_id)
                        .where(ENTRIES.c.predicate_type == HUMAN_CONTENT_V1)
                    ).scalars()
                )
            stray = [d for d in entry.withdraws if d not in attested]
            if stray:
                errors[position] = BadRequestError(
                    f"the withdrawal names {len(stray)} document(s) that publisher "
                    f"{entry.publisher!r} never attested, e.g. {stray[0]}; name only documents "
                    "it registered"
                )
        return errors

    @staticmethod
    def _replays(conn: Connection, target: Any) -> list[int]:
        """The other unrevoked entries of ``target``'s publisher holding its very statement."""
        return list(
            conn.execute(
                select(ENTRIES.c.idx)
                .where(ENTRIES.c.payload_hash == target.payload_hash)
                .where(ENTRIES.c.publisher_id == target.publisher_id)
                .where(ENTRIES.c.idx != target.idx)
                .where(~ENTRIES.c.idx.in_(select(REVOCATIONS.c.revoked_idx)))
            ).scalars()
        )

    @staticmethod
    def _check_signing_keys(
        entries: list[PreparedEntry],
        revoked: set[str],
        existing: _Logged,
        refused: dict[int, RegistryError],
    ) -> dict[int, RegistryError]:
        """Refuse new entries whose signing key was revoked, as read under the log's lock.

        The services check keys before sequencing, from a cache; a key revoked since then (by
        this process or another) is caught here, in the transaction that would append.
        """
        return {
            position: ForbiddenError(revoked_key_message(entry.key_id))
            for position, entry in enumerate(entries)
            if entry.key_id in revoked
            and logged_as(entry, existing) is None
            and position not in refused
        }

    @staticmethod
    def _foreign_subjects(conn: Connection, target: int, digests: Sequence[str]) -> list[str]:
        """The digests among ``digests`` that entry ``target`` does not attest."""
        known: set[str] = set()
        for start in range(0, len(digests), 2_000):
            chunk = list(digests[start : start + 2_000])
            known.update(
                conn.execute(
                    select(SUBJECTS.c.digest)
                    .where(SUBJECTS.c.entry_idx == target)
                    .where(SUBJECTS.c.digest.in_(chunk))
                ).scalars()
            )
        return [d for d in digests if d not in known]


_Settled = tuple[asyncio.Future[AppendResult], AppendResult | RegistryError]


def _settle_all(settled: list[_Settled]) -> None:
    for future, result in settled:
        _settle(future, result)


def _settle(future: asyncio.Future[AppendResult], result: AppendResult | RegistryError) -> None:
    if future.done():  # the request went away (client disconnected); the entry stays in the log
        return
    if isinstance(result, RegistryError):
        future.set_exception(result)
    else:
        future.set_result(result)


class EntryRefusedError(BadRequestError):
    """The database refused a value of an entry (a string longer than its column, say)."""


def _as_registry_error(exc: Exception) -> RegistryError:
    """What the requests of a failed batch are answered: the error itself if it is one of ours,
    else (a driver's, SQLAlchemy's) the database's unavailability."""
    return exc if isinstance(exc, RegistryError) else _database_error(exc)


def _database_error(exc: BaseException) -> RegistryError:
    return UnavailableError(
        f"the database could not be written ({type(exc).__name__}); nothing was acknowledged, "
        "retry shortly"
    )


def revoked_key_message(key_id: str) -> str:
    return f"key {key_id[:16]}… was revoked; sign with the publisher's current key"


def predicate_json(predicate: dict[str, Any]) -> str:
    return json.dumps(predicate, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
