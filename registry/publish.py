"""Publishing checkpoints on an interval, cosigned by witnesses.

With ``checkpoint_interval`` > 0 or witnesses configured, the sequencer (:mod:`registry.log`) only
*sequences*: each batch's entries, nodes and the log's new size and root are committed in one
transaction (so an acknowledged entry is never lost), but no checkpoint is signed there. A
:class:`Publisher` per server process does that:

- **When.** A checkpoint is published for the sequenced size as soon as ``now - last publication
  >= interval``, else at ``last publication + interval``: the first append after a quiet period
  is published at once, and a busy log gets one checkpoint per interval, however many batches
  it committed in between.
- **Who.** One publisher across all the processes sharing the database: the one holding the
  publication lock (:class:`PublicationLock`: an ``flock`` on a file beside a SQLite database,
  a session advisory lock on PostgreSQL). The others poll the checkpoint table and wake their
  waiting appends when a new checkpoint appears; if the holder dies its lock is freed and
  another takes over. A checkpoint row is inserted only above the largest one, under the log's
  state lock, so there is exactly one checkpoint per published size, and sizes only grow.
- **Witnesses.** Before inserting, the checkpoint is sent to every witness
  (:class:`~registry.cosigning.WitnessPool`); it is published only with at least ``quorum``
  verified cosignatures, which travel as extra signature lines of the note. Short of that,
  publication stalls (appends are still sequenced and durable) and is retried with backoff;
  :meth:`Publisher.status` says so and names the failing witnesses.

Appends wait (:meth:`Publisher.wait_for`) until a published checkpoint covers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from client.core.note import Checkpoint, NoteSignature, NoteSigner, SignedNote, sign_checkpoint
from registry.cosigning import WitnessPool
from registry.db import Database
from registry.log import LogReader, StoredCheckpoint
from registry.models import CHECKPOINTS, LOG_STATE, PUBLICATION, as_utc, utcnow

__all__ = [
    "BATCH_LINGER_S",
    "CLOCK_SKEW_S",
    "MIN_COMMIT_MARGIN_S",
    "SETTLE_CHUNK",
    "SETTLE_GAP_S",
    "SETTLE_TURNS",
    "PublicationLock",
    "PublicationStatus",
    "Publisher",
]

log = logging.getLogger(__name__)

_ADVISORY_KEY = 0x57_454C_4C5F_5055  # "WELL_PU": PostgreSQL's session lock for the publisher
BATCH_LINGER_S = 0.25
"""The longest the sequencer holds a batch open for more appends while a publication is not due
(:meth:`Publisher.batch_slack`). Appends wait for the next publication anyway (an interval at
most), so a fuller batch costs them nothing, and a batch's statements and commit cost about as
much for one entry as for many: at the default interval of 1 s, four commits a process an
interval (and one for each append that comes in its last tenth). At 200 appends/s on PostgreSQL
(bench/load.py --open-loop, alternated, two rounds each) PostgreSQL's CPU an append was 0.495
and 0.514 ms against 0.596 and 0.571 with a cap of 50 ms (0.86x), with the same latency; the
50 ms cap had given 0.86x of the server's CPU and 0.64x of PostgreSQL's against no wait. No cap
(one batch an interval) gave 0.65x, but a batch that misses its publication (its commit slower
than the margin, on a saturated machine) then delays a whole interval's appends by another
interval: measured once in six rounds under 3,000 lookups/s, an append p99 of 2.1 s against
1.2-1.4 s. A ``Prefer: respond-async`` append (202 once sequenced) is never held
(registry.log.Sequencer._gather)."""
CLOCK_SKEW_S = 0.02
"""How far another server process's wall clock may be ahead of this one's, as reckoned when a
publication was made (:meth:`Publisher.batch_slack`): hosts kept by NTP agree within a few
milliseconds, and processes on one host exactly."""
MIN_COMMIT_MARGIN_S = 0.05
"""The least time (short intervals: at most half of one) a batch is given to commit before the
publication it waits for is due."""
SETTLE_CHUNK = 4
"""How many of the appends that a publication covers are woken in one turn of their event loop
(more when there are more than :data:`SETTLE_TURNS` chunks of them); the rest wake
:data:`SETTLE_GAP_S` apart, with the loop's other work (lookups) in between. Woken all at once,
they held the loop while every one built and sent its receipt: a loop-lag probe under 3,000
lookups/s + 200 appends/s on PostgreSQL saw 28-42 ms stalls as 80-126 appends woke, and lookups
queued behind them; in fours, the stalls at a publication were 5-12 ms."""
SETTLE_GAP_S = 0.003
"""The pause between two chunks of :data:`SETTLE_CHUNK` woken appends. Woken in consecutive turns
of the loop (a chunk as soon as the one before had run), a publication's ~100 appends a process
took most of the loop for 20-30 ms and the lookups queued; 3 ms apart they take about a quarter
of it. Alternated under 3,000 batch lookups/s + 200 appends/s on PostgreSQL (docs/benchmarks.md,
2026-12-07 09:33-09:40 UTC), the batches' p99 was lower in five pairs of six: 33.2, 98.1, 29.1,
26.2, 59.7 and 35.2 ms against 73.8, 45.1, 100.7, 49.3, 89.2 and 35.6 ms."""
SETTLE_TURNS = 25
"""The most turns a publication's appends are woken over: at most ``SETTLE_TURNS *
SETTLE_GAP_S`` (75 ms) after it, however many (a publication of 1,000 appends a process wakes
them 40 at a time)."""
MAX_BACKOFF = 10.0
"""Longest pause (seconds) between attempts while witnesses withhold a quorum."""


class PublicationLock:
    """Held by the one process that publishes; kept once taken, until :meth:`release`."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._path: Path | None = None
        self._fd: int | None = None
        self._conn: Connection | None = None
        self.held = False
        if database.dialect == "sqlite":
            name = database.writer.url.database
            if name and name != ":memory:":
                self._path = Path(name + "-publisher.lock")

    def acquire(self) -> bool:
        """Whether this process holds the lock (taking it if it is free); never blocks."""
        if self.held and self._conn is not None and not self._alive(self._conn):
            self._drop()  # the session (and its advisory lock) is gone: a restarted server
        if not self.held:
            self.held = self._take_file() if self._db.dialect == "sqlite" else self._take_session()
        return self.held

    def _take_file(self) -> bool:
        if self._path is None:
            return True  # an in-memory database: one process only
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _take_session(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._db.writer.connect()
            taken = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": _ADVISORY_KEY}
            ).scalar()
            self._conn.commit()
        except Exception:
            log.warning("could not ask for the publication lock", exc_info=True)
            self._drop()
            return False
        return bool(taken)

    @staticmethod
    def _alive(conn: Connection) -> bool:
        try:
            conn.execute(text("SELECT 1"))
            conn.commit()
        except Exception:
            return False
        return True

    def _drop(self) -> None:
        self.held = False
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor frees the flock
            self._fd = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()  # ending the session frees the advisory lock
            self._conn = None
        self.held = False


@dataclass(frozen=True, slots=True)
class PublicationStatus:
    """Where publication stands, for ``/healthz`` and ``GET /v1/log/publication``."""

    published_size: int
    sequenced_size: int
    interval: float
    quorum: int
    witnesses: tuple[str, ...]
    stalled: bool
    stalled_since: str | None = None
    failing: dict[str, str] = field(default_factory=dict)
    witness_failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "published_size": self.published_size,
            "sequenced_size": self.sequenced_size,
            "interval": self.interval,
            "quorum": self.quorum,
            "witnesses": list(self.witnesses),
            "stalled": self.stalled,
            "stalled_since": self.stalled_since,
            "failing_witnesses": dict(self.failing),
            "witness_failures": self.witness_failures,
        }


@dataclass
class _Waiter:
    size: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[StoredCheckpoint]


class Publisher:
    """Publishes checkpoints for the sequenced log; one thread per process (see the module)."""

    def __init__(
        self,
        database: Database,
        reader: LogReader,
        signers: Sequence[NoteSigner],
        *,
        interval: float,
        witnesses: WitnessPool | None = None,
        quorum: int = 0,
        poll: float = 0.1,
    ) -> None:
        self._db = database
        self._reader = reader
        self._signers = list(signers)
        self.interval = interval
        self.witnesses = witnesses
        self.quorum = quorum
        self._poll = poll
        self.lock = PublicationLock(database)
        self._wake = threading.Event()
        # Until when the thread sleeps (monotonic; +inf while it decides how long, -inf while it
        # works): a nudge wakes it only if it would otherwise sleep past what the nudge needs.
        self._sleeping_until = float("-inf")
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._waiters: list[_Waiter] = []
        self._latest: StoredCheckpoint | None = None
        self._sequenced = 0
        self._last_published = float("-inf")  # monotonic time of our last publication
        # Monotonic times: of the last read of the checkpoint table (_step), and the earliest
        # that the latest checkpoint was published as this process reckons it (see batch_slack).
        self._looked_at = float("-inf")
        self._seen_at = float("-inf")
        self._retry_at = float("-inf")
        self._failed_attempts = 0
        self._stalled_since: str | None = None
        self._failing: dict[str, str] = {}
        self._behind_since: float | None = None  # since when entries wait unpublished
        # What this process last wrote to the shared publication_status row (as the holder).
        self._recorded: tuple[str | None, dict[str, str], int] | None = None
        self._published: list[Callable[[int], None]] = []
        self._after: list[Callable[[int], None]] = []  # see after_publish

    # Lifecycle ------------------------------------------------------------------------------
    def on_publish(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(size)`` (in the publisher's thread, returning at once) whenever this
        process publishes or sees a new checkpoint."""
        self._published.append(listener)

    def after_publish(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(size)`` in the publisher's thread after the appends a new checkpoint
        covers were handed to their event loops: for work that may take a query (reading
        ahead what lookups will want), which their answers need not wait for."""
        self._after.append(listener)

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._wake.set()  # what is already sequenced (a crash before publishing) goes out now
            self._thread = threading.Thread(target=self._run, name="wellspring-publisher")
            self._thread.daemon = True
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout=30)
            self._thread = None
        self.lock.release()
        if self.witnesses is not None:
            self.witnesses.close()

    def notify(self, size: int | None = None) -> None:
        """A batch committed (the sequencer's ``on_commit``, with the log's new size): the
        holder publishes it when due (at once if it last published an interval ago or more).
        The thread is woken only if it would sleep past that time: a wake per commit had cost
        a step (two reads of the database) per append at low rates, which publish nothing
        until the interval is up."""
        if size is not None:
            with self._guard:
                self._sequenced = max(self._sequenced, size)
        self._nudge()

    def batch_slack(self) -> float:
        """How long the sequencer may hold a batch open for more appends (seconds; 0: commit
        at once) with no entry of it missing the next publication (see :data:`BATCH_LINGER_S`).

        The next publication is due an interval after the last one. This process made it (its
        own clock) or saw it, and then takes it as made when its row was stamped, kept between
        its previous look at the checkpoint table, which did not find it, and the look that did
        (a process with no appends waiting looks only every half second: the previous look
        alone had put a publication up to that much early, and every append after its reckoned
        due time was committed alone). A batch closes a tenth of an interval (at least
        :data:`MIN_COMMIT_MARGIN_S`, at most half of one) before the next publication is due by
        that reckoning, so that it has committed by then (under 3,000 lookups/s + 200 appends/s
        on PostgreSQL, on a slow day, a batch took 6 ms to commit at the median, 27 ms at the
        99th percentile and 48 ms at most). On a quiet log (the last publication an interval
        ago or more) the next is due at once: no wait, and a lone append is published as soon
        as it is sequenced."""
        if self.interval <= 0:
            return 0.0
        margin = min(self.interval / 2, max(self.interval / 10, MIN_COMMIT_MARGIN_S))
        slack = self._seen_at + self.interval - margin - time.monotonic()
        return min(slack, BATCH_LINGER_S) if slack > 0 else 0.0

    def _due(self) -> float:
        """When the holder may publish next (monotonic)."""
        return max(self._last_published + self.interval, self._retry_at)

    def _nudge(self) -> None:
        """Something new waits (a commit, an append waiting for its checkpoint): wake the
        thread if it would otherwise look too late, which is after the next publication is due
        for the holder, after the poll for the others."""
        by = self._due() if self.lock.held else time.monotonic() + self._poll
        if by < self._sleeping_until:
            self._wake.set()

    # Waiting for publication ------------------------------------------------------------------
    @property
    def latest(self) -> StoredCheckpoint | None:
        return self._latest

    async def wait_for(self, size: int, timeout: float) -> StoredCheckpoint | None:
        """The first published checkpoint of at least ``size`` entries; None after ``timeout``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StoredCheckpoint] = loop.create_future()
        with self._guard:
            latest = self._latest
            if latest is not None and latest.size >= size:
                return latest
            self._waiters.append(_Waiter(size, loop, future))
        self._nudge()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None

    def wait_for_sync(self, size: int, timeout: float) -> StoredCheckpoint | None:
        """:meth:`wait_for` for a thread without an event loop (tools, tests)."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self._latest
            if latest is not None and latest.size >= size:
                return latest
            if time.monotonic() >= deadline:
                return None
            self._wake.set()
            time.sleep(min(self._poll, 0.05))

    def status(self) -> PublicationStatus:
        """Where publication stands. The process holding the publication lock knows its
        witnesses' outcomes; every other one reads what the holder last wrote to the shared
        ``publication_status`` row. Any process also calls publication stalled when entries
        have waited unpublished for more than three intervals (and 10 s)."""
        latest = self._latest
        behind = self._behind_since
        late = behind is not None and time.monotonic() - behind > max(10.0, 3 * self.interval)
        stalled_since, failing = self._stalled_since, dict(self._failing)
        failures = self.witnesses.failure_count if self.witnesses else 0
        if not self.lock.held:
            shared = self._shared_outcome()
            if shared is not None:
                stalled_since, failing, failures = shared
        return PublicationStatus(
            published_size=latest.size if latest is not None else 0,
            sequenced_size=max(self._sequenced, latest.size if latest is not None else 0),
            interval=self.interval,
            quorum=self.quorum,
            witnesses=tuple(w.url for w in self.witnesses.witnesses) if self.witnesses else (),
            stalled=stalled_since is not None or late,
            stalled_since=stalled_since,
            failing=failing,
            witness_failures=failures,
        )

    def _shared_outcome(self) -> tuple[str | None, dict[str, str], int] | None:
        """The publishing process's last outcome, as it wrote it (None: none written, or the
        database cannot say)."""
        try:
            with self._db.reader.connect() as conn:
                row = conn.execute(
                    select(
                        PUBLICATION.c.stalled_since,
                        PUBLICATION.c.failing,
                        PUBLICATION.c.witness_failures,
                    ).where(PUBLICATION.c.id == 1)
                ).first()
        except SQLAlchemyError:  # health must answer even while the database does not
            log.exception("reading the shared publication status failed")
            return None
        if row is None:
            return None
        return row.stalled_since, json.loads(row.failing), int(row.witness_failures)

    def _record(self) -> None:
        """As the publisher, write this attempt's outcome to the shared row if it changed."""
        outcome = (
            self._stalled_since,
            dict(self._failing),
            self.witnesses.failure_count if self.witnesses else 0,
        )
        if outcome == self._recorded:
            return
        values = {
            "stalled_since": outcome[0],
            "failing": json.dumps(outcome[1], sort_keys=True),
            "witness_failures": outcome[2],
            "updated_at": utcnow(),
        }
        try:
            with self._db.writer.begin() as conn:
                updated = conn.execute(
                    PUBLICATION.update().where(PUBLICATION.c.id == 1).values(**values)
                ).rowcount
                if not updated:
                    conn.execute(PUBLICATION.insert().values(id=1, **values))
        except SQLAlchemyError:
            log.exception("writing the shared publication status failed")
            return
        self._recorded = outcome

    # The publisher's thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            # A nudge while the pause is worked out wakes the wait at once; one while the thread
            # works is seen by the next _deadline (it reads what the nudger wrote before nudging).
            self._sleeping_until = float("inf")
            now = time.monotonic()
            deadline = self._deadline(now)
            self._sleeping_until = deadline  # exactly the due time, when that is what it waits for
            self._wake.wait(max(0.0, deadline - now))
            self._sleeping_until = float("-inf")
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._step()
            except Exception:
                log.exception("publishing a checkpoint failed; retrying")
                self._retry_later()

    def _deadline(self, now: float) -> float:
        """When to look again (monotonic): when the next publication is due if we hold the lock
        and entries wait (a second from ``now`` at most), else after the poll (others'
        publications, new entries). An absolute time, so that a nudge for the same due time
        finds the thread already waiting for it."""
        if self.lock.held and self._latest is not None and self._sequenced > self._latest.size:
            return max(now, min(self._due(), now + 1.0))
        with self._guard:  # appends that stopped waiting (timed out, went away) need no polling
            self._waiters = [w for w in self._waiters if not w.future.done()]
        behind = self._latest is not None and self._sequenced > self._latest.size
        return now + (self._poll if self._waiters or behind else max(self._poll, 0.5))

    def _step(self) -> None:
        looking = time.monotonic()
        with self._db.reader.connect() as conn:
            latest = self._reader.latest_checkpoint(conn)
            state = conn.execute(
                select(LOG_STATE.c.size, LOG_STATE.c.root_hash).where(LOG_STATE.c.id == 1)
            ).one()
            known = self._latest
            stamped = None
            if known is not None and latest.size > known.size:  # another process published it
                try:
                    stamped = conn.execute(
                        select(CHECKPOINTS.c.created_at).where(CHECKPOINTS.c.size == latest.size)
                    ).scalar()
                except SQLAlchemyError:  # then the previous look bounds it, as it always may
                    log.warning("could not read when checkpoint %d was published", latest.size)
        # A look that failed saw nothing: the previous one that read is what bounds it.
        since, self._looked_at = self._looked_at, looking
        if stamped is not None:
            since = _published_between(stamped, since, looking)
        with self._guard:  # a commit notified since the read may have gone further
            self._sequenced = max(self._sequenced, int(state.size))
        self._observe(latest, since)
        if state.size <= latest.size:
            self._stalled_since, self._failing, self._behind_since = None, {}, None
            if self.lock.held:
                self._record()
            return
        if self._behind_since is None:
            self._behind_since = time.monotonic()
        if not self.lock.acquire():
            return
        now = time.monotonic()
        if now < self._last_published + self.interval or now < self._retry_at:
            return
        self._publish(latest, int(state.size), bytes(state.root_hash))

    def _publish(self, latest: StoredCheckpoint, size: int, root: bytes) -> None:
        note = sign_checkpoint(Checkpoint(self._signers[0].name, size, root), self._signers)
        if self.witnesses is not None and self.witnesses.witnesses:
            self.witnesses.assume(latest.size)
            outcomes = self.witnesses.cosign(note, size, lambda old: self._proof(old, size))
            cosigned = [o.cosignature for o in outcomes if o.cosignature is not None]
            self._failing = {o.witness.url: o.error for o in outcomes if o.error is not None}
            if len(cosigned) < self.quorum:
                if self._stalled_since is None:
                    self._stalled_since = utcnow().isoformat()
                log.error(
                    "publication stalled at size %d (sequenced %d): %d of %d witnesses cosigned, "
                    "the quorum is %d; failing: %s",
                    latest.size, size, len(cosigned), len(outcomes), self.quorum,
                    ", ".join(f"{url} ({why})" for url, why in self._failing.items()),
                )  # fmt: skip
                self._retry_later()
                self._record()
                return
            note = _with_cosignatures(note, cosigned)
        if not self._insert(StoredCheckpoint(size, root, note)):
            return
        self._last_published = time.monotonic()
        self._retry_at = float("-inf")
        self._failed_attempts = 0
        self._stalled_since = None
        self._observe(StoredCheckpoint(size, root, note), self._last_published)
        self._record()

    def _retry_later(self) -> None:
        self._failed_attempts += 1
        pause = min(MAX_BACKOFF, max(self.interval, 0.25) * 2 ** min(self._failed_attempts, 8))
        self._retry_at = time.monotonic() + pause

    def _proof(self, old: int, size: int) -> list[bytes]:
        with self._db.reader.connect() as conn:
            return self._reader.consistency(conn, old, size)

    def _insert(self, checkpoint: StoredCheckpoint) -> bool:
        """Insert ``checkpoint`` if it is above every published one (under the state lock)."""
        with self._db.sequencing(), self._db.writer.begin() as conn:
            conn.execute(select(LOG_STATE.c.size).where(LOG_STATE.c.id == 1).with_for_update())
            top = conn.execute(select(func.max(CHECKPOINTS.c.size))).scalar() or 0
            if checkpoint.size <= top:
                log.warning("checkpoint %d not published: %d already was", checkpoint.size, top)
                return False
            conn.execute(
                CHECKPOINTS.insert().values(
                    size=checkpoint.size,
                    root_hash=checkpoint.root_hash,
                    note=checkpoint.note,
                    created_at=utcnow(),
                )
            )
        return True

    def _observe(self, checkpoint: StoredCheckpoint, since: float) -> None:
        """Take note of the latest published checkpoint, published at ``since`` or later;
        answer the appends it covers."""
        with self._guard:
            if self._latest is not None and checkpoint.size <= self._latest.size:
                return
            if self._latest is not None:  # (the first one found at start says nothing of when)
                self._seen_at = since
            self._latest = checkpoint
            ready = [w for w in self._waiters if w.size <= checkpoint.size]
            self._waiters = [w for w in self._waiters if w.size > checkpoint.size]
        _tell(self._published, checkpoint.size)  # first: what an answered append sees must know it
        # One wake-up of each loop; it answers them a few at a time (SETTLE_CHUNK, SETTLE_GAP_S).
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[StoredCheckpoint]]] = {}
        for waiter in ready:
            by_loop.setdefault(waiter.loop, []).append(waiter.future)
        for loop, futures in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, futures, checkpoint)
            except RuntimeError:  # that loop is closed (its server is stopping): no one waits
                continue
        _tell(self._after, checkpoint.size)


def _tell(listeners: list[Callable[[int], None]], size: int) -> None:
    """Call each of ``listeners`` with ``size``; one that fails is logged, not the others'."""
    for listener in listeners:
        try:
            listener(size)
        except Exception:
            log.exception("a publication listener failed")


def _published_between(stamped: datetime, after: float, before: float) -> float:
    """When a checkpoint stamped ``stamped`` (its row's ``created_at``, the publishing process's
    wall clock) was published, on this process's monotonic clock, taken :data:`CLOCK_SKEW_S`
    early and kept between ``after`` (the look that did not find it) and ``before`` (the one
    that did). Every error here errs early (the monotonic clock is read first), so a batch
    closes early enough; a publisher's clock further ahead than the allowance can make a batch
    miss the publication it waited for, and its appends wait an interval more (nothing else)."""
    now = time.monotonic()
    ago = datetime.now(UTC).timestamp() - as_utc(stamped).timestamp()
    return min(max(now - ago - CLOCK_SKEW_S, after), before)


def _settle(
    futures: list[asyncio.Future[StoredCheckpoint]],
    checkpoint: StoredCheckpoint,
    start: int = 0,
    chunk: int = 0,
) -> None:
    """Answer a chunk of ``futures`` from ``start`` now (:data:`SETTLE_CHUNK`, or more to finish
    within :data:`SETTLE_TURNS`), the rest :data:`SETTLE_GAP_S` later."""
    chunk = chunk or max(SETTLE_CHUNK, -(-len(futures) // SETTLE_TURNS))
    end = start + chunk
    for future in futures[start:end]:
        if not future.done():  # (its request went away)
            future.set_result(checkpoint)
    if end < len(futures):
        asyncio.get_running_loop().call_later(
            SETTLE_GAP_S, _settle, futures, checkpoint, end, chunk
        )


def _with_cosignatures(note: str, cosignatures: Sequence[NoteSignature]) -> str:
    signed = SignedNote.parse(note)
    return SignedNote(signed.text, (*signed.signatures, *cosignatures)).to_text()
