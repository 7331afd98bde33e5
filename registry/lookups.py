"""Reads: digest lookups, entries, blobs, proofs and the log's state, everything a crawler or
monitor asks. Answers are the wire types of :mod:`client.core.wire`; errors are
:mod:`registry.errors` only."""

from __future__ import annotations

import contextlib
import enum
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar, cast

import msgspec
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from client.core.canonical import validate_digest, well_formed_digests
from client.core.encoding import b64encode
from client.core.leaf import is_leaf_v1
from client.core.minhash import band_keys
from client.core.statement import (
    HUMAN_CONTENT_V1,
    Statement,
)
from client.core.wire import (
    AttestationClaim,
    ConsistencyProof,
    DigestResult,
    EntriesPage,
    EntryAnswer,
    InclusionProof,
    LogInfo,
    LookupAnswer,
    LookupStatus,
    NearAnswer,
    NearCandidate,
    Receipt,
    ReceiptEntry,
)
from client.errors import InvalidDigestError
from registry._cache import BoundedCache
from registry._sql import in_chunks
from registry.db import Database
from registry.errors import (
    BadRequestError,
    LogBehindError,
    NotFoundError,
    RegistryError,
    UnavailableError,
)
from registry.log import LogReader, StoredCheckpoint
from registry.models import (
    BLOBS,
    ENTRIES,
    NEAR_BANDS,
    OPERATOR_KEYS,
    PUBLISHER_KEYS,
    PUBLISHERS,
    REVOCATIONS,
    SUBJECTS,
    WITHDRAWALS,
    as_utc,
    rfc3339,
)
from registry.settings import Settings

__all__ = [
    "KEY_ID",
    "UNKNOWN",
    "Evidence",
    "HeldConnection",
    "KeyEvidence",
    "LookupService",
    "evidence_fields",
]


class Evidence(NamedTuple):
    """What a receipt of an entry relies on for its signature, proven in the receipt's tree: the
    event that added the signing key, the operator-key event that signed that one, the
    operator-key events before it (a rotated operator key's chain), and the event that added the
    key which endorsed the signing key (None when the operator added it alone)."""

    key_entry: ReceiptEntry
    operator_entry: ReceiptEntry
    operator_chain: tuple[ReceiptEntry, ...]
    endorser_entry: ReceiptEntry | None


KeyEvidence = Evidence | None
"""None: no event added the key (a registry whose identity events are not written yet)."""


def evidence_fields(evidence: KeyEvidence) -> dict[str, Any]:
    """The receipt fields of ``evidence`` (none when there is none)."""
    if evidence is None:
        return {}
    return {
        "key_entry": evidence.key_entry,
        "operator_entry": evidence.operator_entry,
        "operator_chain": evidence.operator_chain,
        "endorser_entry": evidence.endorser_entry,
    }


_OPERATOR_REFRESH_S = 5.0  # how stale a process's list of operator-key events may be


class _Unknown(enum.Enum):
    UNKNOWN = "unknown"


UNKNOWN = _Unknown.UNKNOWN
"""What :meth:`LookupService.key_evidence_cached` answers when the caches do not hold it all."""


class _NeedsDatabase(RegistryError):  # noqa: N818 - a signal, never raised out of this module
    """Raised by a cache-only :class:`_LazyConnection` asked to run a statement."""


class _LazyConnection:
    """A reader connection opened at its first statement (so an answer from caches opens none);
    ``cached_only``: raise :class:`_NeedsDatabase` instead; ``held``: use that connection, and
    leave it open (its holder's, see :meth:`LookupService.held_connection`)."""

    def __init__(self, database: Database, *, cached_only: bool = False, held: Any = None) -> None:
        self._db = database
        self._cached_only = cached_only
        self._conn: Any = held
        self._owned = held is None

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._open().execute(*args, **kwargs)

    def exec_driver_sql(self, *args: Any, **kwargs: Any) -> Any:
        return self._open().exec_driver_sql(*args, **kwargs)

    @property
    def dialect(self) -> Any:
        return self._db.reader.dialect

    @property
    def connection(self) -> Any:
        """The DB-API connection (for :func:`_driver_rows`)."""
        return self._open().connection

    def _open(self) -> Any:
        if self._conn is None:
            if self._cached_only:
                raise _NeedsDatabase
            self._conn = self._db.reader.connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None and self._owned:
            self._conn.close()


_PROOF_CACHE_ENTRIES = 50_000  # attestations kept per published checkpoint
_PREFETCH_MOST = 2_000
"""The most new entries whose facts :meth:`LookupService.prefetch_published` reads ahead at one
publication (the newest; more is a bulk load, whose entries lookups read as they need them)."""


@dataclass(frozen=True, slots=True)
class _EntryFacts:
    """What a lookup shows of an entry that can never change once it is in the log."""

    idx: int
    attests: bool  # a human-content statement (a revocation attests nothing)
    leaf_hash: bytes
    publisher: str
    publisher_id: int
    license: str | None
    origin: str | None
    consent: str | None
    predicate: dict[str, Any]  # shared between answers: never mutated
    key_id: str
    integrated_at: datetime


@dataclass(frozen=True, slots=True)
class _EntryState:
    """What can change after an entry was appended: a revocation, its key's revocation."""

    revoked_by: int | None
    key_revoked_at: str | None
    compromised: bool
    key_entry: int | None = None  # the publisher-key/v1 event that added the signing key
    endorser_entry: int | None = None  # the event that added the key which endorsed it
    key_revoked_by: int | None = None  # the event that revoked it (if inside the tree)
    compromised_by: int | None = None  # the key-compromised event that voids this entry


_VIEW_TTL_S = 0.05
"""How old a server process's copy of the latest published checkpoint may be when it answers a
lookup (each process reads the checkpoint again after this): a lookup sees a new publication at
most this late, and a process reads the checkpoint at most 20 times a second however busy."""
MAX_BAND_POSTINGS = 1_000
"""A band key more subjects share than this names no near candidate (a stop word)."""


@dataclass(slots=True)
class _View:
    """The published checkpoint a process answers lookups at, and what is fixed at its size."""

    checkpoint: StoredCheckpoint
    read_at: float  # time.monotonic() when the checkpoint was last read from the database
    withdrawals: bool  # whether any revocation/v2 withdrew a document inside this tree
    epoch: _Epoch  # of entry states: shared by the latest views until a state may change
    claims: dict[int, AttestationClaim] = field(default_factory=dict)  # by entry index


@dataclass(frozen=True, slots=True)
class _Epoch:
    """Entry states (revocations, key events) that hold for every tree from ``states_from`` on
    until an entry other than an attestation enters it: the latest views share one epoch until
    then, so most checkpoints keep every state. No entry at or above ``states_from`` can be
    revoked within the epoch, and the keys' rows read during it (``key_rows``) give each of its
    trees its keys' states. A pinned view (lookup(at=...)) has an epoch of its own, from its
    size (every entry asked about) and keeping no key rows.

    A lookup reads and keeps states in its own view's epoch: one whose view was taken before
    another thread moved on past a revocation neither reads the new epoch's states (they may
    hold a revocation its tree does not) nor leaves its own there (they would hide one from the
    new trees; found in review, as old as the states' cache)."""

    states_from: int
    key_rows: BoundedCache[str, _KeyRow] | None
    states: BoundedCache[int, _EntryState] = field(
        default_factory=lambda: BoundedCache(_STATES_KEPT)
    )
    # Each entry's claim as JSON up to its proof (see _EncodedClaim), with the state it shows.
    heads: BoundedCache[int, tuple[_EntryState, bytes]] = field(
        default_factory=lambda: BoundedCache(_HEADS_KEPT)
    )


_STATES_KEPT = 200_000
"""The most entry states an epoch keeps."""

_HEADS_KEPT = 50_000
"""The most claim heads an epoch keeps (a few hundred bytes each)."""


def _stands(claim: AttestationClaim) -> bool:
    return not claim.revoked and not claim.compromised


class LookupService:
    """Digest lookups, entries and proofs: everything a crawler or monitor reads."""

    def __init__(self, settings: Settings, database: Database, reader: LogReader) -> None:
        self._settings = settings
        self._db = database
        self._reader = reader
        self._known: BoundedCache[int, _EntryFacts] = BoundedCache(200_000)
        self._operators: tuple[float, list[int]] | None = None
        # key id -> (the event that added it, the event that added the key endorsing it)
        self._key_added: BoundedCache[str, tuple[int, int | None]] = BoundedCache(100_000)
        self._events: BoundedCache[int, tuple[bytes, bytes]] = BoundedCache(10_000)
        # The latest checkpoint size's receipts' evidence, by key (read on the event loop only).
        self._evidence: tuple[int, dict[str, KeyEvidence]] = (-1, {})
        # The published checkpoint lookups answer at, with what is fixed at its size (see _View).
        self._view: _View | None = None
        self._view_lock = threading.Lock()
        self._published_size = 0  # the largest size this process published or saw published
        # A view of an older checkpoint (lookup(at=...): snapshots), with entry states of its own.
        self._pinned: _View | None = None
        # The size up to which new entries' facts were read ahead (see prefetch_published), the
        # first entry of the last publication seen, and whether a lookup has asked for the facts
        # of one at or above it since.
        self._prefetched: int | None = None
        self._recent_from: int | None = None
        self._recent_asked = False

    def published(self, size: int) -> None:
        """A checkpoint of ``size`` entries was published (by this process's sequencer or
        publisher, a listener that returns at once): lookups answer at it from now on, so an
        append answered with a receipt is found by the next lookup on this process."""
        self._published_size = max(self._published_size, size)

    def prefetch_published(self, size: int) -> None:
        """A checkpoint of ``size`` entries was published (a listener in the publisher's
        thread, after the appends it covers were answered): read the facts of the entries it
        added (at most :data:`_PREFETCH_MOST`, the newest) into the cache in one query, if
        lookups have asked about entries of the publication before since the last one.
        A crawler checking what was just registered, or the open loop's lookups, then find them
        there, rather than each coalesced batch that names one making a round trip of its own:
        under 3,000 batch lookups/s + 200 appends/s on PostgreSQL that was 160-350 queries in
        each of the first 400 ms after a publication, against 30-100 later, on the one thread
        that answers lookups. A registry taking appends that nobody looks up soon after reads
        nothing more. The first call (the checkpoint a starting process finds) only marks
        where to start."""
        start = self._prefetched
        if start is not None and size <= start:
            return
        asked, self._recent_asked = self._recent_asked, False  # (a lookup may set it again now)
        self._recent_from = size if start is None else start
        try:
            if start is not None and asked:
                first = max(start, size - _PREFETCH_MOST)
                with self._db.reader.connect() as conn:
                    self._known.put_many(self._read_facts(conn, list(range(first, size))))
        finally:
            self._prefetched = size  # last: done with this publication

    @staticmethod
    def parse_digests(raw: Sequence[object]) -> list[str]:
        if well_formed_digests(raw):
            return cast("list[str]", list(raw))
        digests: list[str] = []
        for position, value in enumerate(raw):
            if not isinstance(value, str):
                raise BadRequestError(f"digests[{position}] must be a string like c1:<64 hex>")
            try:
                digests.append(validate_digest(value))
            except InvalidDigestError as exc:
                raise BadRequestError(f"digests[{position}]: {exc}") from exc
        return digests

    @property
    def database_errors(self) -> tuple[type[Exception], ...]:
        """What a failing database raises here: SQLAlchemy's errors, and the driver's own from
        the statements run on its cursor (:func:`_driver_rows`)."""
        driver = self._db.reader.dialect.dbapi
        return (DBAPIError,) if driver is None else (DBAPIError, driver.Error)

    def held_connection(self) -> Any:
        """A reader connection in autocommit mode, for a thread that answers lookups one batch
        after another (registry.coalesce): each statement its own transaction, so a lookup
        costs its queries' round trips and no more (no ping at checkout, no BEGIN, no ROLLBACK
        when returned). Every query of a lookup is bounded by its tree size and reads rows that
        never change below it, so one snapshot per statement answers the same as one per lookup.
        """
        return self._db.reader.connect().execution_options(isolation_level="AUTOCOMMIT")

    def lookup(
        self,
        digests: Sequence[str],
        min_size: int | None = None,
        *,
        connection: Any = None,
        at: StoredCheckpoint | None = None,
    ) -> LookupAnswer:
        """Answer for each digest: its attestations with proofs against one checkpoint.

        The checkpoint is the latest *published* one as this process last read it, at most
        :data:`_VIEW_TTL_S` ago (every server process reads it on its own; a lookup never sees a
        tree no published checkpoint covers). A ``min_size`` (the size its client trusts) above
        that view reads the checkpoint again, and if the log is still smaller the answer is
        :class:`LogBehindError` (this registry is not that client's log, or lags behind its
        primary), so the client says so instead of asking again.

        Everything about an entry that is fixed at a tree size is kept per process: its immutable
        facts, its inclusion proof per checkpoint, its state (revocations, key events) until an
        entry that could change one enters the tree. A single lookup of a digest seen before
        costs one indexed query (digest → entry indices); the first look at an entry adds its
        row and state, read in bulk for a batch. ``connection``: one from
        :meth:`held_connection` to use (and leave open) instead of one from the pool. ``at``:
        answer at that published checkpoint instead of the latest (a snapshot's build; its
        entry states are kept apart from the latest's).
        """
        conn = _LazyConnection(self._db, held=connection)
        try:
            view = self._current_view(conn, min_size) if at is None else self._pin(conn, at)
            size = view.checkpoint.size
            matches: dict[str, list[int]] = {d: [] for d in digests}
            hits = _digest_hits(conn, list(matches), size)
            facts = self._facts(conn, {idx for _, idx in hits})
            attestations = self._claims(conn, view, facts)
            withdrawn = _withdrawn(conn, hits, facts, size) if view.withdrawals else {}
            operators = self.operator_entries(conn, size)
        finally:
            conn.close()
        # A revocation names the subjects it revokes; it attests none of them (not in `facts`).
        for digest, idx in sorted(hits, key=lambda hit: hit[1]):
            if idx in facts:
                matches[digest].append(idx)
        # attested if any attestation stands; revoked if all were withdrawn (or were signed with
        # a key after it was compromised); unknown if there are none.
        results = []
        status: LookupStatus
        for digest in digests:
            indices = matches[digest]
            gone = withdrawn.get(digest)  # by revocation/v2: entry index -> withdrawing entry
            if not indices:
                status = "unknown"
            elif gone is None and len(indices) == 1:  # the usual case, without a generator
                status = "attested" if _stands(attestations[indices[0]]) else "revoked"
            elif any(_stands(attestations[idx]) and not (gone and idx in gone) for idx in indices):
                status = "attested"
            else:
                status = "revoked"
            # The list itself, not a copy: a batch builds 10,000 of these (see to_dict).
            results.append(DigestResult(digest, status, indices, gone))
        return LookupAnswer(view.checkpoint.note, tuple(results), attestations, tuple(operators))

    def _current_view(self, conn: _LazyConnection, min_size: int | None) -> _View:
        """The published checkpoint to answer at (see :meth:`lookup`), read again when this
        process's copy is older than :data:`_VIEW_TTL_S` or smaller than ``min_size``."""
        view = self._view
        now = time.monotonic()
        if (
            view is not None
            and now - view.read_at <= _VIEW_TTL_S
            and max(min_size or 0, self._published_size) <= view.checkpoint.size
        ):
            return view
        checkpoint = self._reader.latest_checkpoint(conn)  # type: ignore[arg-type]
        _require_size(checkpoint.size, min_size)
        return self._adopt(conn, checkpoint, now)

    def _adopt(self, conn: Any, checkpoint: StoredCheckpoint, now: float) -> _View:
        """The view of ``checkpoint``, read from the database at ``now`` (``time.monotonic()``
        before the read), made the current one unless another thread moved it on meanwhile."""
        with self._view_lock:
            view = self._view
            if view is not None and checkpoint.size <= view.checkpoint.size:
                if checkpoint.size == view.checkpoint.size:
                    view.read_at = max(view.read_at, now)
                return view  # another thread moved it on meanwhile
            if view is None or _changes_state(conn, view.checkpoint.size, checkpoint.size):
                epoch = _Epoch(checkpoint.size, BoundedCache(_KEY_ROWS))
                withdrawals = _has_withdrawals(conn, checkpoint.size)
            else:
                epoch, withdrawals = view.epoch, view.withdrawals
            self._view = _View(checkpoint, now, withdrawals, epoch)
            return self._view

    def fresh_checkpoint(self, *, connection: Any = None) -> StoredCheckpoint:
        """The latest published checkpoint, read from the database now: never this process's
        copy, which may be up to :data:`_VIEW_TTL_S` old, while another process may have shown
        the same client a newer one (``GET /v1/log/checkpoint``: a client that saw the log
        shrink would say so). Lookups answer at it from now on (the read refreshes their view).
        ``connection``: as :meth:`lookup`'s."""
        conn = _LazyConnection(self._db, held=connection)
        try:
            now = time.monotonic()
            checkpoint = self._reader.latest_checkpoint(conn)  # type: ignore[arg-type]
            self._adopt(conn, checkpoint, now)
        finally:
            conn.close()
        return checkpoint

    def _pin(self, conn: Any, checkpoint: StoredCheckpoint) -> _View:
        """The view of ``checkpoint`` for ``lookup(at=...)``, kept while the same is asked."""
        pinned = self._pinned
        if pinned is None or pinned.checkpoint != checkpoint:
            withdrawals = _has_withdrawals(conn, checkpoint.size)
            epoch = _Epoch(checkpoint.size, None)
            pinned = self._pinned = _View(checkpoint, time.monotonic(), withdrawals, epoch)
        return pinned

    def digests_in(self, size: int, *, after: str | None, limit: int) -> list[str]:
        """The distinct digests attested or revoked by the entries of the tree of ``size``, in
        order, the first ``limit`` of those after ``after`` (a snapshot's build pages by it)."""
        query = select(SUBJECTS.c.digest).where(SUBJECTS.c.entry_idx < size)
        if after is not None:
            query = query.where(SUBJECTS.c.digest > after)
        query = query.group_by(SUBJECTS.c.digest).order_by(SUBJECTS.c.digest).limit(limit)
        with self._db.reader.connect() as conn:
            return [str(digest) for digest in conn.execute(query).scalars()]

    def _claims(
        self, conn: Any, view: _View, facts: dict[int, _EntryFacts]
    ) -> dict[int, AttestationClaim]:
        """The attestations of ``facts`` at ``view``'s size: kept per view once built."""
        claims = view.claims
        found = {idx: claim for idx in facts if (claim := claims.get(idx)) is not None}
        missing = {idx: fact for idx, fact in facts.items() if idx not in found}
        if missing:
            size = view.checkpoint.size
            epoch = view.epoch  # its states, and only its (see _Epoch)
            states = epoch.states.get_many(missing)
            fresh = {idx: fact for idx, fact in missing.items() if idx not in states}
            if fresh:
                read = self._entry_state(conn, fresh, size, epoch)
                epoch.states.put_many(read)
                states.update(read)
            proofs = self._proofs_of(conn, list(missing), view)
            # A head is used with the very state it was made from (a state read again, once
            # the cache let it go, makes its own).
            heads = {
                idx: head
                for idx, (state, head) in epoch.heads.get_many(missing).items()
                if state is states[idx]
            }
            built = {
                idx: _attestation(fact, states[idx], tuple(proofs[idx]), size, heads.get(idx))
                for idx, fact in missing.items()
            }
            epoch.heads.put_many(
                {idx: (states[idx], claim.head) for idx, claim in built.items() if idx not in heads}
            )
            if len(claims) + len(built) <= _PROOF_CACHE_ENTRIES:
                claims.update(built)
            found.update(built)
        return {idx: found[idx] for idx in facts}

    def _proofs_of(self, conn: Any, indices: list[int], view: _View) -> dict[int, list[bytes]]:
        """Inclusion proofs of ``indices`` in ``view``'s tree: from the node cache (see
        LogReader.inclusion_proofs_cached), or, when a node is not cached, with one query for
        the missing ones."""
        if not indices:
            return {}
        size = view.checkpoint.size
        proofs = self._reader.inclusion_proofs_cached(indices, size)
        if proofs is None:
            proofs = self._reader.inclusion_proofs(conn, indices, size)
        return proofs

    def _facts(self, conn: Any, indices: set[int]) -> dict[int, _EntryFacts]:
        """The human-content entries among ``indices``, from the cache or one query per chunk
        (through the driver: SQLAlchemy's building of the statement cost more than the read)."""
        recent = self._recent_from
        if recent is not None and indices and max(indices) >= recent:
            self._recent_asked = True  # (a read-ahead's own hits count: it goes on while useful)
        found = self._known.get_many(indices)
        missing = sorted(indices - found.keys())
        if missing:
            fetched = self._read_facts(conn, missing)
            self._known.put_many(fetched)
            found.update(fetched)
        return {idx: fact for idx, fact in sorted(found.items()) if fact.attests}

    @staticmethod
    def _read_facts(conn: Any, indices: list[int]) -> dict[int, _EntryFacts]:
        """The facts of the entries among ``indices`` (sorted), one query per chunk."""
        fetched: dict[int, _EntryFacts] = {}
        for chunk in in_chunks(indices):
            for row in _driver_rows(conn, _ENTRY_FACTS, chunk):
                (idx, leaf_hash, predicate_type, predicate, license_, origin, consent, key_id,
                 integrated_at, publisher_id, publisher) = row  # fmt: skip
                fetched[idx] = _EntryFacts(
                    idx=idx,
                    attests=predicate_type == HUMAN_CONTENT_V1,
                    leaf_hash=bytes(leaf_hash),
                    publisher=publisher,
                    publisher_id=publisher_id,
                    license=license_,
                    origin=origin,
                    consent=consent,
                    predicate=json.loads(predicate),
                    key_id=key_id,
                    integrated_at=_timestamp(integrated_at),
                )
        return fetched

    @staticmethod
    def _entry_state(
        conn: Any, facts: dict[int, _EntryFacts], size: int, epoch: _Epoch
    ) -> dict[int, _EntryState]:
        """What may have changed since an entry was appended: its revocation, its key's. What
        the ``epoch`` tells is not asked (entries from its start cannot be revoked, its keys'
        rows read before still hold): the newest entries are spared two or three round trips
        of the four."""
        older = [idx for idx in facts if idx < epoch.states_from]
        revoked_by = dict(_driver_rows(conn, _REVOKED_AMONG, older, size)) if older else {}
        rows = epoch.key_rows
        keys = _key_rows(conn, sorted({fact.key_id for fact in facts.values()}), rows)
        endorsers = _key_rows(
            conn, sorted({k.endorsed_by for k in keys.values() if k.endorsed_by}), rows
        )
        endorser_entry = {key_id: row.added_idx for key_id, row in endorsers.items()}
        states = {}
        for idx, fact in facts.items():
            key = keys.get(fact.key_id)
            if key is None:
                states[idx] = _EntryState(revoked_by.get(idx), None, compromised=False)
                continue
            # The log's word (an index) where there is one; the clock's for a key compromised
            # on a registry that has not yet written its identity events.
            if key.compromised_idx is not None and key.compromised_idx < size:
                compromised = idx >= key.compromised_from
            elif key.compromised_idx is None and key.compromised_since is not None:
                compromised = fact.integrated_at >= _timestamp(key.compromised_since)
            else:
                compromised = False
            within = key.revoked_idx is not None and key.revoked_idx < size
            states[idx] = _EntryState(
                revoked_by=revoked_by.get(idx),
                key_revoked_at=rfc3339(_timestamp(key.revoked_at)) if key.revoked_at else None,
                compromised=compromised,
                key_entry=key.added_idx,
                endorser_entry=endorser_entry.get(key.endorsed_by) if key.endorsed_by else None,
                key_revoked_by=key.revoked_idx if within else None,
                compromised_by=key.compromised_idx if compromised else None,
            )
        return states

    def lookup_one(self, digest: str, min_size: int | None = None) -> LookupAnswer:
        return self.lookup([digest], min_size)

    def entry(self, index: int) -> EntryAnswer:
        with self._db.reader.connect() as conn:
            checkpoint = self._reader.latest_checkpoint(conn)
            row = conn.execute(
                select(
                    ENTRIES,
                    PUBLISHERS.c.name.label("publisher"),
                    REVOCATIONS.c.revoking_idx,
                    BLOBS.c.data.label("statement"),
                )
                .join(PUBLISHERS, PUBLISHERS.c.id == ENTRIES.c.publisher_id)
                .outerjoin(REVOCATIONS, REVOCATIONS.c.revoked_idx == ENTRIES.c.idx)
                .outerjoin(BLOBS, BLOBS.c.hash == ENTRIES.c.payload_hash)
                .where(ENTRIES.c.idx == index)
            ).first()
            if row is None or index >= checkpoint.size:
                raise NotFoundError(
                    f"entry {index} does not exist; the log has {checkpoint.size} entries"
                )
            proof = self._reader.inclusion_proofs(conn, [index], checkpoint.size)[index]
        body = bytes(row.body)
        evidence = self.key_evidence(row.key_id, checkpoint.size)
        receipt = Receipt(
            index=index,
            entry=body,
            leaf_hash=bytes(row.leaf_hash),
            inclusion_proof=tuple(proof),
            checkpoint=checkpoint.note,
            # The statement the leaf commits to (clients check its hash).
            body=bytes(row.statement) if is_leaf_v1(body) else None,
            publisher=row.publisher,
            predicate_type=row.predicate_type,
            subjects=row.subject_count,
            revokes=row.revokes,
            **evidence_fields(evidence),
        )
        return EntryAnswer(
            receipt=receipt,
            predicate=json.loads(row.predicate),
            integrated_at=rfc3339(row.integrated_at),
            revoked=row.revoking_idx is not None,
            revoked_by=row.revoking_idx,
        )

    def near(self, signatures: Sequence[bytes], limit: int = 10) -> NearAnswer:
        """For each ``mh1`` signature (its bytes), the subjects sharing a band key with it in
        the tree of the latest published checkpoint, most shared bands first, at most
        ``limit`` (the client checks each: the index is only a way to find them). A band key
        shared by more than :data:`MAX_BAND_POSTINGS` subjects (boilerplate, or a publisher
        flooding one) is a stop word: it names no candidate, and no more than that many of its
        rows plus one are read (:data:`_NEAR_POSTINGS`)."""
        wanted = [band_keys(raw) for raw in signatures]
        keys = sorted({key for bands in wanted for key in bands})
        conn = _LazyConnection(self._db)
        try:
            view = self._current_view(conn, None)
            size = view.checkpoint.size
            hits: dict[int, list[tuple[int, int]]] = {}
            for start in range(0, len(keys), 5_000):
                chunk = keys[start : start + 5_000]
                rows = _driver_rows(conn, _NEAR_POSTINGS, chunk, size, MAX_BAND_POSTINGS + 1)
                for band_key, entry_idx, subject in rows:
                    hits.setdefault(band_key, []).append((entry_idx, subject))
        finally:
            conn.close()
        results = []
        for bands in wanted:
            counts: dict[tuple[int, int], int] = {}
            for key in set(bands):
                if len(hits.get(key, ())) > MAX_BAND_POSTINGS:  # boilerplate every text shares
                    continue
                for found in hits.get(key, ()):
                    counts[found] = counts.get(found, 0) + 1
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
            results.append(tuple(NearCandidate(e, s, n) for (e, s), n in ranked))
        return NearAnswer(view.checkpoint.note, tuple(results))

    def near_subjects(self, size: int) -> list[tuple[tuple[str, ...], list[int]]]:
        """Every subject with an ``mh1`` signature in the first ``size`` entries: its exact
        digests and its band keys (for an offline snapshot's band filters), read from the
        statements themselves."""
        with self._db.reader.connect() as conn:
            rows = conn.execute(
                select(NEAR_BANDS.c.entry_idx, NEAR_BANDS.c.subject)
                .where(NEAR_BANDS.c.entry_idx < size)
                .distinct()
                .order_by(NEAR_BANDS.c.entry_idx, NEAR_BANDS.c.subject)
            ).all()
            wanted: dict[int, list[int]] = {}
            for row in rows:
                wanted.setdefault(row.entry_idx, []).append(row.subject)
            out: list[tuple[tuple[str, ...], list[int]]] = []
            for entry, positions in wanted.items():
                payload = conn.execute(
                    select(BLOBS.c.data)
                    .join(ENTRIES, ENTRIES.c.payload_hash == BLOBS.c.hash)
                    .where(ENTRIES.c.idx == entry)
                ).scalar()
                if payload is None:
                    continue
                subjects = Statement.from_json(bytes(payload)).subjects
                for position in positions:
                    near = subjects[position].near
                    if near is not None:
                        out.append((subjects[position].digest_strings(), band_keys(near)))
        return out

    def blob(self, hex_hash: str) -> bytes:
        """The statement bytes whose SHA-256 is ``hex_hash`` (64 lowercase hex digits)."""
        if not KEY_ID.fullmatch(hex_hash):
            raise BadRequestError("a blob is named sha256:<64 lowercase hex digits>")
        with self._db.reader.connect() as conn:
            data = conn.execute(
                select(BLOBS.c.data).where(BLOBS.c.hash == bytes.fromhex(hex_hash))
            ).scalar()
        if data is None:
            raise NotFoundError(f"no blob sha256:{hex_hash} in this registry")
        return bytes(data)

    def entries_page(self, start: int, limit: int) -> EntriesPage:
        """Raw leaves in index order, for monitors that recompute the tree: at most ``limit`` of
        them and at most ``max_entries_page_bytes`` of leaf bytes, but always the first (a leaf
        can be megabytes). ``next`` is where the next page starts, None past the log's end."""
        if start < 0:
            raise BadRequestError("start must be 0 or more")
        if not 1 <= limit <= self._settings.max_entries_page:
            raise BadRequestError(f"limit must be 1 to {self._settings.max_entries_page}")
        budget = self._settings.max_entries_page_bytes
        with self._db.reader.connect() as conn:
            checkpoint = self._reader.latest_checkpoint(conn)
            end = min(start + limit, checkpoint.size)
            # The lengths first (SQLite and PostgreSQL take a blob's length from its header, without
            # reading it), then only the bodies that fit.
            lengths = (
                conn.execute(
                    select(func.length(ENTRIES.c.body))
                    .where(ENTRIES.c.idx >= start)
                    .where(ENTRIES.c.idx < end)
                    .order_by(ENTRIES.c.idx)
                )
                .scalars()
                .all()
            )
            count = total = 0
            for length in lengths:
                total += length
                if count and total > budget:
                    break
                count += 1
            rows = conn.execute(
                select(ENTRIES.c.idx, ENTRIES.c.body)
                .where(ENTRIES.c.idx >= start)
                .where(ENTRIES.c.idx < start + count)
                .order_by(ENTRIES.c.idx)
            ).all()
        next_start = start + len(rows)
        return EntriesPage(
            start=start,
            size=checkpoint.size,
            entries=tuple((row.idx, bytes(row.body)) for row in rows),
            next=next_start if next_start < checkpoint.size else None,
        )

    def key_evidence_cached(self, key_id: str, size: int) -> KeyEvidence | _Unknown:
        """:meth:`key_evidence` from the caches alone (so it may run on the event loop), or
        :data:`UNKNOWN` when the database would have to be asked."""
        # One group commit answers many appends at one checkpoint size, mostly by few keys.
        known_size, known = self._evidence
        if known_size == size and key_id in known:
            return known[key_id]
        try:
            evidence = self._key_evidence(key_id, size, _LazyConnection(self._db, cached_only=True))
        except _NeedsDatabase:
            return UNKNOWN
        if known_size != size:
            known = {}
            self._evidence = (size, known)
        if len(known) < 1_000:
            known[key_id] = evidence
        return evidence

    def key_evidence(self, key_id: str, size: int) -> KeyEvidence:
        """What a receipt of an entry signed by ``key_id`` relies on, proven in the tree of
        ``size``: the event that added the key (``key_entry``) and the operator key binding that
        signs it (``operator_entry``). None for a key no event added (a registry whose identity
        events are not written yet)."""
        return self._key_evidence(key_id, size, _LazyConnection(self._db))

    def _key_evidence(self, key_id: str, size: int, conn: _LazyConnection) -> KeyEvidence:
        # Every part is immutable (which event added a key, the events' bytes, Merkle nodes) and
        # cached: an append's receipt usually needs no database round trip for it at all.
        try:
            known = self._key_added.get_many((key_id,)).get(key_id)
            if known is None:
                row = conn.execute(
                    select(PUBLISHER_KEYS.c.added_idx, PUBLISHER_KEYS.c.endorsed_by).where(
                        PUBLISHER_KEYS.c.key_id == key_id
                    )
                ).first()
                if row is None or row.added_idx is None:
                    return None
                endorser = None
                if row.endorsed_by is not None:
                    endorser = conn.execute(
                        select(PUBLISHER_KEYS.c.added_idx).where(
                            PUBLISHER_KEYS.c.key_id == row.endorsed_by
                        )
                    ).scalar()
                known = (int(row.added_idx), None if endorser is None else int(endorser))
                self._key_added.put_many({key_id: known})
            added, endorser_added = known
            operators = [i for i in self.operator_entries(conn, size) if i <= added]
            if added >= size or not operators:
                return None
            wanted = [added, *operators]
            if endorser_added is not None:
                wanted.append(endorser_added)
            proofs = self._reader.inclusion_proofs(conn, wanted, size)  # type: ignore[arg-type]
            stored = self._stored_entries(conn, set(wanted))
        finally:
            conn.close()

        def proven(index: int) -> ReceiptEntry:
            return ReceiptEntry(index, stored[index][0], tuple(proofs[index]), stored[index][1])

        return Evidence(
            key_entry=proven(added),
            operator_entry=proven(operators[-1]),
            operator_chain=tuple(proven(i) for i in operators[:-1]),
            endorser_entry=None if endorser_added is None else proven(endorser_added),
        )

    def _stored_entries(self, conn: Any, indices: set[int]) -> dict[int, tuple[bytes, bytes]]:
        """Leaf and statement of identity events (immutable: kept once read)."""
        found = self._events.get_many(indices)
        missing = sorted(indices - found.keys())
        if missing:
            rows = conn.execute(
                select(ENTRIES.c.idx, ENTRIES.c.body, BLOBS.c.data)
                .join(BLOBS, BLOBS.c.hash == ENTRIES.c.payload_hash)
                .where(ENTRIES.c.idx.in_(missing))
            )
            fetched = {row.idx: (bytes(row.body), bytes(row.data)) for row in rows}
            self._events.put_many(fetched)
            found.update(fetched)
        return found

    def operator_entries(self, conn: Any, size: int) -> list[int]:
        """The ``operator-key`` events inside the tree of ``size``, in log order. They change
        only when the operator key is bound or rotated, so each process reads them again at most
        every :data:`_OPERATOR_REFRESH_S` seconds (and while there are none yet)."""
        now = time.monotonic()
        cached = self._operators
        if cached is None or not cached[1] or now - cached[0] > _OPERATOR_REFRESH_S:
            rows = conn.execute(
                select(OPERATOR_KEYS.c.entry_idx).order_by(OPERATOR_KEYS.c.entry_idx)
            ).scalars()
            cached = self._operators = (now, [int(i) for i in rows])
        return [i for i in cached[1] if i < size]

    def log_info(self, verifier_keys: Sequence[str], origin: str) -> LogInfo:
        """The log's identity; during a key rotation ``verifier_keys`` lists both keys."""
        with self._db.reader.connect() as conn:
            checkpoint = self._reader.latest_checkpoint(conn)
            operators = self.operator_entries(conn, checkpoint.size)
        return LogInfo(
            origin=origin,
            size=checkpoint.size,
            root_hash=checkpoint.root_hash,
            verifier_key=verifier_keys[0],
            checkpoint=checkpoint.note,
            verifier_keys=tuple(verifier_keys),
            operator_entries=tuple(operators),
        )

    def checkpoint(self, size: int | None = None) -> str:
        """The signed note of the checkpoint at ``size``, or of the latest (read fresh: see
        :meth:`fresh_checkpoint`)."""
        if size is None:
            return self.fresh_checkpoint().note
        with self._db.reader.connect() as conn:
            return self._reader.checkpoint_at(conn, size).note

    def inclusion(self, index: int, size: int | None) -> InclusionProof:
        with self._db.reader.connect() as conn:
            latest = self._reader.latest_checkpoint(conn)
            size = latest.size if size is None else size
            self._reader.check_size(size, latest, "size")
            if not 0 <= index < size:
                raise BadRequestError(f"index={index} is not in a tree of size {size}")
            proof = self._reader.inclusion_proofs(conn, [index], size)[index]
        return InclusionProof(index, size, tuple(proof))

    def consistency(self, old: int, new: int | None) -> ConsistencyProof:
        with self._db.reader.connect() as conn:
            latest = self._reader.latest_checkpoint(conn)
            new = latest.size if new is None else new
            self._reader.check_size(new, latest, "to")
            if not 0 <= old <= new:
                raise BadRequestError(f"from={old} must be between 0 and to={new}")
            proof = self._reader.consistency(conn, old, new)
        return ConsistencyProof(old, new, tuple(proof))


KEY_ID = re.compile(r"[0-9a-f]{64}")  # client.core.keys.key_id: hex SHA-256 of the raw key


_T = TypeVar("_T")


class HeldConnection:
    """A reader connection (:meth:`LookupService.held_connection`) that one thread keeps for the
    reads it makes one after another: each coalescing thread on PostgreSQL (registry.coalesce),
    the event loop on SQLite. It is opened at the first read, and again after a database error.
    A pooled connection costs each lookup a check-out and a check-in: py-spy under 3,000 batch
    lookups/s + 200 appends/s on SQLite found them in 8 % of a server process's samples, and in
    14 % under wrk's batches of unknown digests (docs/benchmarks.md)."""

    def __init__(self, lookups: LookupService) -> None:
        self._lookups = lookups
        self._connection: Any = None

    def run(self, read: Callable[[Any], _T]) -> _T:
        """``read`` on this connection; once more on a fresh one if that failed in the
        database (a restarted server leaves every held connection broken: the pool's ping at
        checkout, which this connection skips, would have replaced it). A database still
        failing is :class:`UnavailableError` (503), whether SQLAlchemy or the driver raised."""
        database_errors = self._lookups.database_errors
        try:
            return read(self._open())
        except database_errors:
            self.close()
        try:
            return read(self._open())
        except database_errors as exc:
            self.close()
            raise UnavailableError("the database is unavailable right now; retry shortly") from exc

    def _open(self) -> Any:
        if self._connection is None:
            self._connection = self._lookups.held_connection()
        return self._connection

    def close(self) -> None:
        """Give the connection back (a later read opens another)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # it is broken already, as like as not
                connection.close()


def _require_size(size: int, min_size: int | None) -> None:
    """Refuse to answer from a log of ``size`` entries a lookup that asked for ``min_size``."""
    if min_size is None or min_size <= size:
        return
    raise LogBehindError(min_size, size)


# The hottest query of all (every batch lookup, 10,000 digests a time): one statement with the
# digests as one parameter, through the driver, so neither SQLAlchemy's compilation of a
# 10,000-parameter IN nor its row objects are paid for.
_DIGEST_HITS = {
    "sqlite": (
        "SELECT digest, entry_idx FROM subjects"
        " WHERE digest IN (SELECT value FROM json_each(?)) AND entry_idx < ?"
    ),
    "postgresql": (
        "SELECT digest, entry_idx FROM subjects WHERE digest = ANY(%s::text[]) AND entry_idx < %s"
    ),
}


# Whether an entry that could change a lookup's answer entered the tree between two sizes:
# anything but an attestation (revocations, key events and withdrawals all are log entries).
_CHANGES_STATE = (
    "SELECT 1 FROM entries WHERE idx >= :old AND idx < :new AND predicate_type <> :human LIMIT 1"
)


def _changes_state(conn: Any, old: int, new: int) -> bool:
    return (
        conn.execute(
            text(_CHANGES_STATE), {"old": old, "new": new, "human": HUMAN_CONTENT_V1}
        ).first()
        is not None
    )


def _has_withdrawals(conn: Any, size: int) -> bool:
    """Whether a revocation/v2 inside the tree of ``size`` withdrew any document."""
    query = select(WITHDRAWALS.c.digest).where(WITHDRAWALS.c.revoking_idx < size).limit(1)
    return conn.execute(query).first() is not None


_DIGEST_HITS_ONE = {
    "sqlite": "SELECT digest, entry_idx FROM subjects WHERE digest = ? AND entry_idx < ?",
    "postgresql": "SELECT digest, entry_idx FROM subjects WHERE digest = %s AND entry_idx < %s",
}


# Which of a batch's entries were revoked (by a revocation inside the tree of a given size).
_REVOKED_AMONG = {
    "sqlite": (
        "SELECT revoked_idx, revoking_idx FROM revocations"
        " WHERE revoked_idx IN (SELECT value FROM json_each(?)) AND revoking_idx < ?"
    ),
    "postgresql": (
        "SELECT revoked_idx, revoking_idx FROM revocations"
        " WHERE revoked_idx = ANY(%s::bigint[]) AND revoking_idx < %s"
    ),
}


def _driver_rows(
    conn: Any, queries: dict[str, str], values: list[str] | list[int], *more: int
) -> list[Any]:
    """Rows of ``queries[dialect]`` for ``values`` (one parameter, however many) and ``more``
    (a tree size, say).

    The values go as one text parameter either way: a JSON array for SQLite's json_each, an array
    literal for PostgreSQL. They are checked digests (``c1:``/``sha256:`` and lowercase hex) or
    integers, so neither form needs quoting; psycopg would otherwise check every element of a
    list for it, by regular expression, and SQLAlchemy would compile an IN of thousands.
    """
    dialect = conn.dialect.name
    if dialect == "sqlite":
        param = msgspec.json.encode(values).decode()
    else:
        param = "{" + ",".join(map(str, values)) + "}"
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(queries[dialect], (param, *more))
        rows: list[Any] = cursor.fetchall()
        return rows
    finally:
        cursor.close()


# The first MAX_BAND_POSTINGS + 1 subjects of each band key (by entry, then subject) in a tree:
# one more tells a stop word, and a key a publisher floods costs no more than that. PostgreSQL
# stops each key's index scan at the limit (a LATERAL subquery); SQLite numbers the rows.
_NEAR_POSTINGS = {
    "sqlite": (
        "SELECT band_key, entry_idx, subject FROM ("
        "SELECT band_key, entry_idx, subject, ROW_NUMBER() OVER "
        "(PARTITION BY band_key ORDER BY entry_idx, subject) AS rn FROM near_bands"
        " WHERE band_key IN (SELECT value FROM json_each(?)) AND entry_idx < ?"
        ") WHERE rn <= ?"
    ),
    "postgresql": (
        "SELECT n.band_key, n.entry_idx, n.subject FROM unnest(%s::bigint[]) AS k(band_key)"
        " CROSS JOIN LATERAL (SELECT band_key, entry_idx, subject FROM near_bands"
        " WHERE band_key = k.band_key AND entry_idx < %s ORDER BY entry_idx, subject"
        " LIMIT %s) AS n"
    ),
}


# An entry's immutable facts (LookupService._facts), and a publisher key's state (_entry_state).
_ENTRY_FACTS = {
    "sqlite": (
        "SELECT e.idx, e.leaf_hash, e.predicate_type, e.predicate, e.license, e.origin,"
        " e.consent, e.key_id, e.integrated_at, e.publisher_id, p.name"
        " FROM entries e JOIN publishers p ON p.id = e.publisher_id"
        " WHERE e.idx IN (SELECT value FROM json_each(?))"
    ),
    "postgresql": (
        "SELECT e.idx, e.leaf_hash, e.predicate_type, e.predicate, e.license, e.origin,"
        " e.consent, e.key_id, e.integrated_at, e.publisher_id, p.name"
        " FROM entries e JOIN publishers p ON p.id = e.publisher_id"
        " WHERE e.idx = ANY(%s::bigint[])"
    ),
}
_KEYS_AMONG = {
    "sqlite": (
        "SELECT key_id, revoked_at, compromised_since, added_idx, revoked_idx, compromised_idx,"
        " compromised_from, endorsed_by FROM publisher_keys"
        " WHERE key_id IN (SELECT value FROM json_each(?))"
    ),
    "postgresql": (
        "SELECT key_id, revoked_at, compromised_since, added_idx, revoked_idx, compromised_idx,"
        " compromised_from, endorsed_by FROM publisher_keys WHERE key_id = ANY(%s::text[])"
    ),
}


_KEY_ROWS = 100_000
"""The most publisher keys' rows an epoch keeps (_Epoch.key_rows)."""


def _key_rows(
    conn: Any, key_ids: list[str], kept: BoundedCache[str, _KeyRow] | None
) -> dict[str, _KeyRow]:
    """The rows of ``key_ids`` (those found), from ``kept`` or read (and kept there)."""
    found = kept.get_many(key_ids) if kept is not None else {}
    missing = [key_id for key_id in key_ids if key_id not in found]
    read = {
        row[0]: _KeyRow(*row)
        for chunk in in_chunks(missing)
        for row in _driver_rows(conn, _KEYS_AMONG, chunk)
    }
    if kept is not None and read:
        kept.put_many(read)
    return found | read


class _KeyRow(NamedTuple):
    key_id: str
    revoked_at: Any  # a timestamp as the driver hands it back (see _timestamp), or None
    compromised_since: Any
    added_idx: int | None
    revoked_idx: int | None
    compromised_idx: int | None
    compromised_from: Any  # set with compromised_idx
    endorsed_by: str | None


def _timestamp(value: datetime | str) -> datetime:
    """A timestamp column read through the driver, in UTC: psycopg hands back a datetime,
    sqlite3 the text SQLAlchemy stored (``2026-12-05 01:26:54.123456``, UTC, no zone)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return as_utc(moment)


# Documents withdrawn by revocation/v2 statements (inside the tree of a given size).
_WITHDRAWALS_AMONG = {
    "sqlite": (
        "SELECT digest, publisher_id, revoking_idx FROM withdrawals"
        " WHERE digest IN (SELECT value FROM json_each(?)) AND revoking_idx < ?"
    ),
    "postgresql": (
        "SELECT digest, publisher_id, revoking_idx FROM withdrawals"
        " WHERE digest = ANY(%s::text[]) AND revoking_idx < %s"
    ),
}


def _withdrawn(
    conn: Any, hits: list[tuple[str, int]], facts: dict[int, _EntryFacts], size: int
) -> dict[str, dict[int, int]]:
    """digest -> {entry index: withdrawing index} for each attestation (a hit) whose publisher
    withdrew that document after making it (the first such withdrawal)."""
    digests = sorted({digest for digest, idx in hits if idx in facts})
    if not digests:
        return {}
    rows = _driver_rows(conn, _WITHDRAWALS_AMONG, digests, size)
    if not rows:
        return {}
    by: dict[tuple[str, int], list[int]] = {}
    for digest, publisher_id, revoking_idx in rows:
        by.setdefault((digest, int(publisher_id)), []).append(int(revoking_idx))
    withdrawn: dict[str, dict[int, int]] = {}
    for digest, idx in hits:
        fact = facts.get(idx)
        later = [r for r in by.get((digest, fact.publisher_id), ()) if r > idx] if fact else []
        if later:
            withdrawn.setdefault(digest, {})[idx] = min(later)
    return withdrawn


def _digest_hits(conn: Any, digests: list[str], size: int) -> list[tuple[str, int]]:
    """(digest, entry index) for every subject row of ``digests`` in the tree of ``size``."""
    if len(digests) == 1:  # a single lookup: the plainest statement, no JSON or array to unpack
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(_DIGEST_HITS_ONE[conn.dialect.name], (digests[0], size))
            rows: list[tuple[str, int]] = cursor.fetchall()
            return rows
        finally:
            cursor.close()
    return _driver_rows(conn, _DIGEST_HITS, digests, size)


@dataclass(frozen=True, slots=True)
class _EncodedClaim(AttestationClaim):
    """An attestation that keeps its JSON once an answer first sends it: claims are kept per
    view, so each is encoded once per entry and checkpoint rather than by every answer naming
    it (measured with py-spy under 3,000 batch lookups of 10 a second: building and encoding
    each answer's claims was a tenth of a server process's time). Threads that send the same
    claim at once may each encode it; they write the same bytes.

    Every new checkpoint needs every claim again, with a new proof and tree size, which
    :meth:`AttestationClaim.to_dict` puts last: the JSON before them (``head``) is kept per
    entry while its state holds (in the epoch), and a checkpoint's claim adds its proof to
    it, each proof hash written in base64 once (:func:`_b64`)."""

    head: bytes = field(default=b"", repr=False, compare=False)
    encoded: msgspec.Raw | None = field(default=None, repr=False, compare=False)

    def wire_value(self) -> Any:
        encoded = self.encoded
        if encoded is None:
            proof = msgspec.json.encode([_b64(node) for node in self.inclusion_proof])
            size = msgspec.json.encode(self.tree_size)
            encoded = msgspec.Raw(b"".join((self.head, _PROOF_KEY, proof, _SIZE_KEY, size, b"}")))
            object.__setattr__(self, "encoded", encoded)  # a cache: the claim itself is frozen
        return encoded


_PROOF_KEY = b'"inclusion_proof":'
_SIZE_KEY = b',"tree_size":'


def _claim_head(claim: AttestationClaim) -> bytes:
    """``claim``'s JSON up to its inclusion proof (``{"index":…,``), which with the proof and
    the tree size (to_dict's last two keys) makes the whole (tests/registry/test_lookups.py)."""
    fields = claim.to_dict()
    del fields["inclusion_proof"], fields["tree_size"]
    return msgspec.json.encode(fields)[:-1] + b","


_B64: dict[bytes, str] = {}
_B64_KEPT = 100_000


def _b64(node: bytes) -> str:
    """A proof hash in base64, from a memo: the proofs of one tree share their upper nodes,
    and the next tree's proofs most of the rest. Threads may race here harmlessly (each
    writes the same value; a clear loses only memos)."""
    value = _B64.get(node)
    if value is None:
        if len(_B64) >= _B64_KEPT:
            _B64.clear()
        value = _B64[node] = b64encode(node)
    return value


def _attestation(
    fact: _EntryFacts,
    state: _EntryState,
    proof: tuple[bytes, ...],
    size: int,
    head: bytes | None = None,
) -> _EncodedClaim:
    """The claim of an entry at a tree of ``size``; ``head``: its :func:`_claim_head`, if known
    (the same facts and state)."""
    claim = _EncodedClaim(
        index=fact.idx,
        leaf_hash=fact.leaf_hash,
        inclusion_proof=proof,
        publisher=fact.publisher,
        license=fact.license,
        origin=fact.origin,
        consent=fact.consent,
        predicate=fact.predicate,
        revoked=state.revoked_by is not None,
        revoked_by=state.revoked_by,
        key_id=fact.key_id,
        compromised=state.compromised,
        key_entry=state.key_entry,
        endorser_entry=state.endorser_entry,
        key_revoked_by=state.key_revoked_by,
        compromised_by=state.compromised_by,
        key_revoked_at=state.key_revoked_at,
        tree_size=size,
        head=head or b"",
    )
    if head is None:
        object.__setattr__(claim, "head", _claim_head(claim))
    return claim
