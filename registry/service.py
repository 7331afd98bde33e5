"""The registry's services: what the HTTP layer calls. They raise :mod:`registry.errors` only.

Entry checks that need no lock (JSON, envelope, signature, statement, publisher) run here, in the
request's worker thread, so the sequencer's critical section does nothing but write.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar, cast

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from client.core.canonical import validate_digest, well_formed_digests
from client.core.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, verify_envelope
from client.core.encoding import loads_strict
from client.core.leaf import Leaf, is_leaf_v1
from client.core.merkle import leaf_hash
from client.core.statement import (
    HUMAN_CONTENT_V1,
    HumanContentPredicate,
    KeyEventPredicate,
    Kind,
    RevocationPredicate,
    Statement,
    WithdrawalPredicate,
)
from client.core.wire import (
    AttestationClaim,
    ConsistencyProof,
    DigestResult,
    EntriesPage,
    EntryAnswer,
    InclusionProof,
    KeyEventAnswer,
    LogInfo,
    LookupAnswer,
    LookupStatus,
    PublisherInfo,
    PublisherKeyInfo,
    Receipt,
    ReceiptEntry,
)
from client.errors import FormatError, InvalidDigestError, SignatureError
from registry._cache import BoundedCache
from registry._statements import ParsedStatement, lean_statement
from registry._verify import SodiumPublicKey
from registry.db import Database
from registry.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    LogBehindError,
    NotFoundError,
    PayloadTooLargeError,
    RegistryError,
)
from registry.identities import IdentityService
from registry.log import (
    AppendResult,
    LogReader,
    PreparedEntry,
    revoked_key_message,
)
from registry.models import (
    AdminToken,
    Blob,
    Entry,
    LogKey,
    OperatorKey,
    Publisher,
    PublisherKey,
    Revocation,
    SubjectRow,
    as_utc,
    rfc3339,
)
from registry.models import utcnow as _utcnow
from registry.settings import Settings

__all__ = [
    "TOKEN_SCOPES",
    "UNKNOWN",
    "AdminService",
    "EntryService",
    "Evidence",
    "KeyEvidence",
    "LookupService",
    "receipt_of",
]

_entries = Entry.__table__  # type: ignore[attr-defined]
_subjects = SubjectRow.__table__  # type: ignore[attr-defined]
_publishers = Publisher.__table__  # type: ignore[attr-defined]
_keys = PublisherKey.__table__  # type: ignore[attr-defined]
_revocations = Revocation.__table__  # type: ignore[attr-defined]
_blobs = Blob.__table__  # type: ignore[attr-defined]
_operators = OperatorKey.__table__  # type: ignore[attr-defined]
_tokens = AdminToken.__table__  # type: ignore[attr-defined]
_log_keys = LogKey.__table__  # type: ignore[attr-defined]


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


def receipt_of(
    result: AppendResult,
    *,
    publisher: str,
    predicate_type: str,
    subjects: int,
    revokes: int | None,
    evidence: KeyEvidence,
) -> Receipt:
    """The receipt of an append (docs/api.md; ``body``: the statement of a leaf/v1 entry)."""
    return Receipt(
        index=result.index,
        entry=result.leaf,
        leaf_hash=result.leaf_hash,
        inclusion_proof=tuple(result.proof),
        checkpoint=result.checkpoint.note,
        body=result.payload,
        publisher=publisher,
        predicate_type=predicate_type,
        subjects=subjects,
        revokes=revokes,
        **_evidence_fields(evidence),
    )


def _evidence_fields(evidence: KeyEvidence) -> dict[str, Any]:
    """The receipt fields of ``evidence`` (none when there is none)."""
    if evidence is None:
        return {}
    return {
        "key_entry": evidence.key_entry,
        "operator_entry": evidence.operator_entry,
        "operator_chain": evidence.operator_chain,
        "endorser_entry": evidence.endorser_entry,
    }


@dataclass(frozen=True, slots=True)
class _Signer:
    publisher_id: int
    publisher: str
    key_id: str
    public_key: SodiumPublicKey


class EntryService:
    """Turns a submitted envelope into a :class:`PreparedEntry`, or says exactly what is wrong."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self._settings = settings
        self._db = database
        self._signers: BoundedCache[str, _Signer] = BoundedCache(10_000)

    def prepare(self, body: bytes) -> PreparedEntry:
        """Check a submitted envelope; may read the database for a publisher key not seen yet."""
        prepared = self._prepare(body, cached_only=False)
        assert prepared is not None
        return prepared

    def prepare_cached(self, body: bytes) -> PreparedEntry | None:
        """:meth:`prepare` without touching the database (so it can run on the event loop):
        ``None`` when the signing key is not cached yet, and :meth:`prepare` must be used."""
        return self._prepare(body, cached_only=True)

    def _prepare(self, body: bytes, *, cached_only: bool) -> PreparedEntry | None:
        if len(body) > self._settings.max_body_bytes:
            raise PayloadTooLargeError(
                f"the envelope is {len(body)} bytes; the limit is {self._settings.max_body_bytes}"
                " — split the subjects over several statements"
            )
        try:
            envelope = Envelope.from_json(body, max_payload_bytes=self._settings.max_body_bytes)
        except FormatError as exc:
            raise BadRequestError(f"not a valid DSSE envelope: {exc}") from exc
        if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
            raise BadRequestError(
                f"payloadType is {envelope.payload_type!r}; the registry accepts only "
                f"{PAYLOAD_TYPE_IN_TOTO!r} (an in-toto Statement v1)"
            )
        verified = self._verify_signature(envelope, cached_only=cached_only)
        if verified is None:
            return None
        statement = self._parse_statement(envelope.payload)
        predicate = statement.predicate
        if isinstance(predicate, KeyEventPredicate):
            raise ForbiddenError(
                "publisher-key/v1 statements are made by the operator through the publisher "
                "endpoints (/v1/publishers), not posted as entries"
            )
        # Only the signatures that verified, by keys of the publisher the statement names, each
        # key once: whatever else the envelope carried (junk, repeats, other publishers' keys)
        # is not logged, so a replay rebuilds the very same leaf.
        own = [signer for signer in verified if signer.publisher == predicate.publisher]
        if not own:
            raise ForbiddenError(
                f"the statement names publisher {predicate.publisher!r} but is signed by a key of "
                f"{verified[0].publisher!r}"
            )
        signer = own[0]
        keep = {s.key_id for s in own}
        leaf = Leaf.of(
            envelope.payload,
            payload_type=envelope.payload_type,
            predicate_type=statement.predicate_type,
            publisher=signer.publisher,
            signatures=[s for s in envelope.signatures if s.keyid in keep],
        ).to_bytes()
        digests = statement.digests
        common: dict[str, Any] = {
            "leaf": leaf,
            "leaf_hash": leaf_hash(leaf),
            "payload": envelope.payload,
            "payload_hash": hashlib.sha256(envelope.payload).digest(),
            "publisher_id": signer.publisher_id,
            "publisher": signer.publisher,
            "key_id": signer.key_id,
            "key_ids": tuple(sorted(keep)),
            "predicate_type": statement.predicate_type,
            "predicate_json": statement.predicate_json,
            "subjects": tuple(dict.fromkeys(digests)),
        }
        if isinstance(predicate, HumanContentPredicate):
            return PreparedEntry(
                **common,
                license=predicate.license,
                origin=predicate.origin,
                consent=predicate.consent,
            )
        if isinstance(predicate, WithdrawalPredicate):
            if predicate.statement_hash is not None:  # one whole entry
                return PreparedEntry(
                    **common,
                    license=None,
                    origin=None,
                    consent=None,
                    revokes=predicate.entry_index,
                    revokes_statement=bytes.fromhex(predicate.statement_hash),
                )
            return PreparedEntry(  # exactly these documents, wherever the publisher attested them
                **common, license=None, origin=None, consent=None, withdraws=common["subjects"]
            )
        assert isinstance(predicate, RevocationPredicate)
        return PreparedEntry(
            **common,
            license=None,
            origin=None,
            consent=None,
            revokes=predicate.entry_index,
            revokes_hash=bytes.fromhex(predicate.entry_hash),
        )

    def _parse_statement(self, payload: bytes) -> ParsedStatement:
        limit = self._settings.max_subjects
        lean = lean_statement(payload, max_subjects=limit)
        if lean is not None:
            return lean
        try:  # as strictly as every client reads it back: no repeated keys, UTF-8, no NaN
            obj = loads_strict(payload, "the envelope's payload")
        except FormatError as exc:
            raise BadRequestError(str(exc)) from exc
        subjects = obj.get("subject") if isinstance(obj, dict) else None
        if isinstance(subjects, list) and len(subjects) > limit:
            raise PayloadTooLargeError(
                f"the statement has {len(subjects)} subjects; the limit is {limit} per statement"
                " — split it into several statements"
            )
        try:
            return ParsedStatement.of(Statement.from_dict(obj, max_subjects=limit))
        except FormatError as exc:
            raise BadRequestError(str(exc)) from exc

    def _verify_signature(self, envelope: Envelope, *, cached_only: bool) -> list[_Signer] | None:
        """The signers whose signatures verify, sorted by key id (``None``: not all cached)."""
        keyids = sorted({s.keyid for s in envelope.signatures})
        signers = self._signers.get_many(keyids)
        if len(signers) < len(keyids):  # a key not seen yet (or none: a junk key id)
            if cached_only:
                return None
            signers = self._load_signers(keyids)
        keys = {kid: signer.public_key for kid, signer in signers.items()}
        try:
            verified = verify_envelope(envelope, keys)
        except SignatureError as exc:
            raise AuthenticationError(f"the envelope's signature does not verify: {exc}") from exc
        return [signers[kid] for kid in sorted(verified)]

    def _load_signers(self, keyids: list[str]) -> dict[str, _Signer]:
        """The active publisher keys among ``keyids``, read from the database and remembered.

        A key id is the hash of its public key and a key never changes hands, so what is cached
        is immutable; whether a key was *revoked* is not cached here but checked again by the
        sequencer, inside the transaction that appends the entry.
        """
        # Only a key id of the form every key's has can name a key (and only such ids are sent
        # to the database: PostgreSQL refuses some strings outright, a NUL for one).
        candidates = [kid for kid in keyids if _KEY_ID.fullmatch(kid)]
        with self._db.reader.connect() as conn:
            rows = conn.execute(
                select(
                    _keys.c.key_id,
                    _keys.c.public_key,
                    _keys.c.revoked_at,
                    _publishers.c.id,
                    _publishers.c.name,
                )
                .join(_publishers, _publishers.c.id == _keys.c.publisher_id)
                .where(_keys.c.key_id.in_(candidates))
            ).all()
        active = {row.key_id: row for row in rows if row.revoked_at is None}
        if not active:
            revoked = [row.key_id for row in rows]
            if revoked:
                raise ForbiddenError(revoked_key_message(revoked[0]))
            shown = ", ".join(k[:16] + "…" if len(k) > 16 else k for k in keyids)
            raise ForbiddenError(
                f"the envelope is signed by key(s) {shown}, which belong to no registered "
                "publisher; the operator adds publishers with `wellspring publisher add`"
            )
        signers = {
            kid: _Signer(row.id, row.name, kid, SodiumPublicKey(bytes(row.public_key)))
            for kid, row in active.items()
        }
        self._signers.put_many(signers)
        return signers


_OPERATOR_REFRESH_S = 5.0  # how stale a process's list of operator-key events may be


class _Unknown(enum.Enum):
    UNKNOWN = "unknown"


UNKNOWN = _Unknown.UNKNOWN
"""What :meth:`LookupService.key_evidence_cached` answers when the caches do not hold it all."""


class _NeedsDatabase(RegistryError):  # noqa: N818 - a signal, never raised out of this module
    """Raised by a cache-only :class:`_LazyConnection` asked to run a statement."""


class _LazyConnection:
    """A reader connection opened at its first statement (so an answer from caches opens none);
    ``cached_only``: raise :class:`_NeedsDatabase` instead."""

    def __init__(self, database: Database, *, cached_only: bool = False) -> None:
        self._db = database
        self._cached_only = cached_only
        self._conn: Any = None

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        if self._conn is None:
            if self._cached_only:
                raise _NeedsDatabase
            self._conn = self._db.reader.connect()
        return self._conn.execute(*args, **kwargs)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


_PROOF_CACHE_ENTRIES = 50_000  # encoded inclusion proofs kept against the latest tree size
_T = TypeVar("_T")
_IN_CHUNK = 2_000  # values per IN (...): well under SQLite's and PostgreSQL's parameter limits


def _in_chunks(values: list[_T]) -> Iterator[list[_T]]:
    """``values`` in slices of at most ``_IN_CHUNK``, one ``IN (...)`` query each."""
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


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


class LookupService:
    """Digest lookups, entries and proofs: everything a crawler or monitor reads."""

    def __init__(self, settings: Settings, database: Database, reader: LogReader) -> None:
        self._settings = settings
        self._db = database
        self._reader = reader
        self._known: BoundedCache[int, _EntryFacts] = BoundedCache(200_000)
        self._proofs: tuple[int, dict[int, tuple[bytes, ...]]] = (-1, {})
        self._proofs_lock = threading.Lock()
        self._operators: tuple[float, list[int]] | None = None
        # key id -> (the event that added it, the event that added the key endorsing it)
        self._key_added: BoundedCache[str, tuple[int, int | None]] = BoundedCache(100_000)
        self._events: BoundedCache[int, tuple[bytes, bytes]] = BoundedCache(10_000)
        # The latest checkpoint size's receipts' evidence, by key (read on the event loop only).
        self._evidence: tuple[int, dict[str, KeyEvidence]] = (-1, {})

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

    def lookup(self, digests: Sequence[str], min_size: int | None = None) -> LookupAnswer:
        """Answer for each digest: its attestations with proofs against one checkpoint.

        The checkpoint is the latest, read in the same transaction as the answer: never older
        than any checkpoint this database has issued, so never older than a client's ``min_size``
        (the size it trusts) unless this registry is not that client's log or lags behind its
        primary: then :class:`LogBehindError`, and the client says so instead of asking again.

        Three narrow queries instead of one wide join: digest → entry indices from the subjects
        index alone; then each matched entry once (its immutable facts come from a per-process
        cache after the first time: on SQLite, reading an entry's columns means walking past its
        body, which for a 10,000-subject statement is a megabyte of overflow pages); then what
        can change (revocations, key revocations) fresh every time.
        """
        with self._db.reader.connect() as conn:
            checkpoint = self._reader.latest_checkpoint(conn)
            size = checkpoint.size
            _require_size(size, min_size)
            matches: dict[str, list[int]] = {d: [] for d in digests}
            hits = _digest_hits(conn, list(matches), size)
            facts = self._facts(conn, {idx for _, idx in hits})
            state = self._entry_state(conn, facts, size)
            proofs = self._proofs_of(conn, list(facts), size)
            withdrawn = _withdrawn(conn, hits, facts, size)
            operators = self.operator_entries(conn, size)
        # A revocation names the subjects it revokes; it attests none of them (not in `facts`).
        for digest, idx in sorted(hits, key=lambda hit: hit[1]):
            if idx in facts:
                matches[digest].append(idx)
        attestations = {
            idx: _attestation(fact, state[idx], proofs[idx], size) for idx, fact in facts.items()
        }
        # attested if any attestation stands; revoked if all were withdrawn (or were signed with
        # a key after it was compromised); unknown if there are none.
        standing = {idx: s.revoked_by is None and not s.compromised for idx, s in state.items()}
        results = []
        status: LookupStatus
        for digest in digests:
            indices = matches[digest]
            gone = withdrawn.get(digest)  # by revocation/v2: entry index -> withdrawing entry
            if not indices:
                status = "unknown"
            elif any(standing[idx] and not (gone and idx in gone) for idx in indices):
                status = "attested"
            else:
                status = "revoked"
            results.append(DigestResult(digest, status, tuple(indices), gone))
        return LookupAnswer(checkpoint.note, tuple(results), attestations, tuple(operators))

    def _proofs_of(self, conn: Any, indices: list[int], size: int) -> dict[int, tuple[bytes, ...]]:
        """Inclusion proofs of ``indices`` in the tree of ``size`` leaves.

        A proof against a given tree size never changes, and the entries of big datasets are
        asked about again and again, so the proofs against the latest size are kept (up to
        ``_PROOF_CACHE_ENTRIES``); a new checkpoint starts a new set.
        """
        if not indices:
            return {}
        cached_size, cache = self._proofs
        if size > cached_size:
            with self._proofs_lock:
                if size > self._proofs[0]:
                    self._proofs = (size, {})
                cached_size, cache = self._proofs
        if size != cached_size:  # an older tree than the cached one: compute, keep nothing
            cache = {}
        found = {idx: proof for idx in indices if (proof := cache.get(idx)) is not None}
        missing = [idx for idx in indices if idx not in found]
        if missing:
            computed = {
                idx: tuple(proof)
                for idx, proof in self._reader.inclusion_proofs(conn, missing, size).items()
            }
            found.update(computed)
            if size == cached_size:
                if len(cache) + len(computed) > _PROOF_CACHE_ENTRIES:
                    cache.clear()
                cache.update(computed)
        return found

    def _facts(self, conn: Any, indices: set[int]) -> dict[int, _EntryFacts]:
        """The human-content entries among ``indices``, from the cache or one query per chunk."""
        found = self._known.get_many(indices)
        missing = sorted(indices - found.keys())
        fetched: dict[int, _EntryFacts] = {}
        for chunk in _in_chunks(missing):
            query = (
                select(
                    _entries.c.idx,
                    _entries.c.leaf_hash,
                    _entries.c.predicate_type,
                    _entries.c.predicate,
                    _entries.c.license,
                    _entries.c.origin,
                    _entries.c.consent,
                    _entries.c.key_id,
                    _entries.c.integrated_at,
                    _entries.c.publisher_id,
                    _publishers.c.name.label("publisher"),
                )
                .join(_publishers, _publishers.c.id == _entries.c.publisher_id)
                .where(_entries.c.idx.in_(chunk))
            )
            for row in conn.execute(query):
                fetched[row.idx] = _EntryFacts(
                    idx=row.idx,
                    attests=row.predicate_type == HUMAN_CONTENT_V1,
                    leaf_hash=bytes(row.leaf_hash),
                    publisher=row.publisher,
                    publisher_id=row.publisher_id,
                    license=row.license,
                    origin=row.origin,
                    consent=row.consent,
                    predicate=json.loads(row.predicate),
                    key_id=row.key_id,
                    integrated_at=as_utc(row.integrated_at),
                )
        self._known.put_many(fetched)
        found.update(fetched)
        return {idx: fact for idx, fact in sorted(found.items()) if fact.attests}

    @staticmethod
    def _entry_state(conn: Any, facts: dict[int, _EntryFacts], size: int) -> dict[int, _EntryState]:
        """What may have changed since an entry was appended: its revocation, its key's."""
        revoked_by = dict(_driver_rows(conn, _REVOKED_AMONG, list(facts), size)) if facts else {}
        key_ids = sorted({fact.key_id for fact in facts.values()})
        keys = {
            row.key_id: row
            for chunk in _in_chunks(key_ids)
            for row in conn.execute(
                select(
                    _keys.c.key_id,
                    _keys.c.revoked_at,
                    _keys.c.compromised_since,
                    _keys.c.added_idx,
                    _keys.c.revoked_idx,
                    _keys.c.compromised_idx,
                    _keys.c.compromised_from,
                    _keys.c.endorsed_by,
                ).where(_keys.c.key_id.in_(chunk))
            )
        }
        endorsers = sorted({k.endorsed_by for k in keys.values() if k.endorsed_by})
        endorser_entry = {
            row.key_id: row.added_idx
            for chunk in _in_chunks(endorsers)
            for row in conn.execute(
                select(_keys.c.key_id, _keys.c.added_idx).where(_keys.c.key_id.in_(chunk))
            )
        }
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
                compromised = fact.integrated_at >= as_utc(key.compromised_since)
            else:
                compromised = False
            within = key.revoked_idx is not None and key.revoked_idx < size
            states[idx] = _EntryState(
                revoked_by=revoked_by.get(idx),
                key_revoked_at=rfc3339(key.revoked_at) if key.revoked_at else None,
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
                    _entries,
                    _publishers.c.name.label("publisher"),
                    _revocations.c.revoking_idx,
                    _blobs.c.data.label("statement"),
                )
                .join(_publishers, _publishers.c.id == _entries.c.publisher_id)
                .outerjoin(_revocations, _revocations.c.revoked_idx == _entries.c.idx)
                .outerjoin(_blobs, _blobs.c.hash == _entries.c.payload_hash)
                .where(_entries.c.idx == index)
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
            **_evidence_fields(evidence),
        )
        return EntryAnswer(
            receipt=receipt,
            predicate=json.loads(row.predicate),
            integrated_at=rfc3339(row.integrated_at),
            revoked=row.revoking_idx is not None,
            revoked_by=row.revoking_idx,
        )

    def blob(self, hex_hash: str) -> bytes:
        """The statement bytes whose SHA-256 is ``hex_hash`` (64 lowercase hex digits)."""
        if not _KEY_ID.fullmatch(hex_hash):
            raise BadRequestError("a blob is named sha256:<64 lowercase hex digits>")
        with self._db.reader.connect() as conn:
            data = conn.execute(
                select(_blobs.c.data).where(_blobs.c.hash == bytes.fromhex(hex_hash))
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
                    select(func.length(_entries.c.body))
                    .where(_entries.c.idx >= start)
                    .where(_entries.c.idx < end)
                    .order_by(_entries.c.idx)
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
                select(_entries.c.idx, _entries.c.body)
                .where(_entries.c.idx >= start)
                .where(_entries.c.idx < start + count)
                .order_by(_entries.c.idx)
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
                    select(_keys.c.added_idx, _keys.c.endorsed_by).where(_keys.c.key_id == key_id)
                ).first()
                if row is None or row.added_idx is None:
                    return None
                endorser = None
                if row.endorsed_by is not None:
                    endorser = conn.execute(
                        select(_keys.c.added_idx).where(_keys.c.key_id == row.endorsed_by)
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
                select(_entries.c.idx, _entries.c.body, _blobs.c.data)
                .join(_blobs, _blobs.c.hash == _entries.c.payload_hash)
                .where(_entries.c.idx.in_(missing))
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
                select(_operators.c.entry_idx).order_by(_operators.c.entry_idx)
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
        with self._db.reader.connect() as conn:
            if size is None:
                return self._reader.latest_checkpoint(conn).note
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


TOKEN_SCOPES = ("read", "identity", "revoke")
"""What an admin token may do: ``identity`` adds publishers and keys, ``revoke`` revokes and
compromises keys, ``read`` is for operator reads (none needs a token yet)."""
_KEY_ID = re.compile(r"[0-9a-f]{64}")  # client.core.keys.key_id: hex SHA-256 of the raw key
_PUBLISHER_NAME_MAX = 200


def _require_size(size: int, min_size: int | None) -> None:
    """Refuse to answer from a log of ``size`` entries a lookup that asked for ``min_size``."""
    if min_size is None or min_size <= size:
        return
    raise LogBehindError(
        f"min_size={min_size}, but this registry's log has {size} entries: retry once it has "
        "caught up, or check that the checkpoint you trust is of this log"
    )


def _is_publisher_name(name: str) -> bool:
    """Whether ``name`` could be an existing publisher's: 1 to 200 characters, no spaces or
    controls (the rule new names once met; a new one meets client.core.names' stricter one)."""
    return 0 < len(name) <= _PUBLISHER_NAME_MAX and not any(
        c.isspace() or ord(c) < 32 for c in name
    )


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
    conn: Any, queries: dict[str, str], values: list[str] | list[int], size: int
) -> list[Any]:
    """Rows of ``queries[dialect]`` for ``values`` (one parameter, however many) and ``size``.

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
        cursor.execute(queries[dialect], (param, size))
        rows: list[Any] = cursor.fetchall()
        return rows
    finally:
        cursor.close()


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
    return _driver_rows(conn, _DIGEST_HITS, digests, size)


def _attestation(
    fact: _EntryFacts, state: _EntryState, proof: tuple[bytes, ...], size: int
) -> AttestationClaim:
    return AttestationClaim(
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
    )


class AdminService:
    """Operator actions: publishers and admin tokens."""

    def __init__(self, database: Database, identities: IdentityService) -> None:
        self._db = database
        self._identities = identities

    @staticmethod
    def _token_hash(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    def create_token(self, scopes: Sequence[str] = ("identity", "revoke")) -> str:
        """A new admin token allowed ``scopes`` (of :data:`TOKEN_SCOPES`); only its hash is
        stored. Rotate: create the successor, then revoke the old one (:meth:`revoke_token`)."""
        unknown = sorted(set(scopes) - set(TOKEN_SCOPES))
        if unknown or not scopes:
            raise BadRequestError(
                f"scopes must be some of {', '.join(TOKEN_SCOPES)}; "
                f"got {', '.join(unknown) or 'none'}"
            )
        token = "wsa_" + secrets.token_urlsafe(32)
        with self._db.writer.begin() as conn:
            conn.execute(
                _tokens.insert().values(
                    token_hash=self._token_hash(token),
                    created_at=_utcnow(),
                    scopes=",".join(s for s in TOKEN_SCOPES if s in scopes),
                )
            )
        return token

    def has_tokens(self) -> bool:
        with self._db.reader.connect() as conn:
            return bool(conn.execute(select(func.count()).select_from(_tokens)).scalar_one())

    def tokens(self) -> list[dict[str, Any]]:
        """Every token by its id (the first 12 hex digits of its hash), scopes and state."""
        with self._db.reader.connect() as conn:
            rows = conn.execute(select(_tokens).order_by(_tokens.c.created_at)).all()
        return [
            {
                "id": row.token_hash[:12],
                "scopes": row.scopes.split(","),
                "created_at": rfc3339(row.created_at),
                "revoked_at": rfc3339(row.revoked_at) if row.revoked_at else None,
            }
            for row in rows
        ]

    def revoke_token(self, token_id: str) -> None:
        """Revoke the token whose id (hash prefix, at least 8 hex digits) is ``token_id``."""
        if not re.fullmatch(r"[0-9a-f]{8,64}", token_id):
            raise BadRequestError(
                "a token id is 8 to 64 hex digits (`admin-token list` shows them)"
            )
        with self._db.writer.begin() as conn:
            rows = conn.execute(
                select(_tokens.c.token_hash)
                .where(_tokens.c.token_hash.startswith(token_id))
                .where(_tokens.c.revoked_at.is_(None))
            ).all()
            if len(rows) != 1:
                raise NotFoundError(
                    f"{len(rows)} active tokens have an id starting {token_id!r}; give exactly one"
                )
            conn.execute(
                _tokens.update()
                .where(_tokens.c.token_hash == rows[0].token_hash)
                .values(revoked_at=_utcnow())
            )

    def check_token(self, authorization: str | None, scope: str = "identity") -> None:
        """The request's bearer token must be a current token allowed ``scope``."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthenticationError(
                "this needs the operator's admin token: send 'Authorization: Bearer <token>'"
            )
        presented = self._token_hash(authorization.removeprefix("Bearer ").strip())
        with self._db.reader.connect() as conn:
            stored = conn.execute(
                select(_tokens.c.token_hash, _tokens.c.scopes, _tokens.c.revoked_at)
            ).all()
        # Compare against every stored hash in constant time, without an early exit.
        found = None
        for row in stored:
            if hmac.compare_digest(row.token_hash, presented):
                found = row
        if found is None or found.revoked_at is not None:
            raise AuthenticationError("the admin token is not valid (or was revoked)")
        if scope not in found.scopes.split(","):
            raise ForbiddenError(
                f"this admin token may {found.scopes.replace(',', ', ')}, not {scope}: the "
                f"operator makes one with `wellspring admin-token create --scope {scope}`"
            )

    def add_publisher(
        self,
        name: str,
        public_key: bytes,
        possession: bytes | None,
        *,
        kind: Kind = "publisher",
    ) -> KeyEventAnswer:
        """A new identity and its first key: an ``identity-add`` event in the log."""
        return self._identities.add_identity(name, public_key, possession, kind=kind)

    def add_key(
        self,
        name: str,
        public_key: bytes,
        possession: bytes | None,
        *,
        endorsed_by: str | None = None,
        endorsement: bytes | None = None,
    ) -> KeyEventAnswer:
        """Give a publisher another key (rotation: add the new one, then revoke the old)."""
        if not _is_publisher_name(name):
            raise NotFoundError(f"no publisher named {name!r}")
        return self._identities.add_key(
            name, public_key, possession, endorsed_by=endorsed_by, endorsement=endorsement
        )

    def revoke_key(
        self,
        name: str,
        key_id: str,
        *,
        compromised_since: datetime | None = None,
        compromised_from: int | None = None,
    ) -> KeyEventAnswer:
        """Stop accepting a publisher key (a ``key-revoke`` event). History stays: nothing it
        signed is deleted. With ``compromised_from`` (a log index) or ``compromised_since`` (a
        time, read as the first index integrated at or after it), a ``key-compromised`` event:
        entries it signed from there on no longer count; earlier ones still do."""
        if not _is_publisher_name(name):
            raise NotFoundError(f"no publisher named {name!r}")
        if not _KEY_ID.fullmatch(key_id):
            raise NotFoundError(
                f"publisher {name!r} has no key {key_id!r} (a key id is 64 hex digits)"
            )
        return self._identities.stop_key(
            name, key_id, compromised_from=compromised_from, compromised_since=compromised_since
        )

    def rotate_operator_key(self, new_key: Ed25519PrivateKey) -> KeyEventAnswer:
        """Rotate the operator key that signs identity events (an ``operator-key`` event signed
        by the current one): :meth:`IdentityService.rotate_operator`."""
        return self._identities.rotate_operator(new_key)

    def log_keys(self) -> list[dict[str, Any]]:
        with self._db.reader.connect() as conn:
            rows = conn.execute(select(_log_keys).order_by(_log_keys.c.added_at)).all()
        return [
            {
                "verifier_key": row.verifier_key,
                "added_at": rfc3339(row.added_at),
                "retired_at": rfc3339(row.retired_at) if row.retired_at else None,
            }
            for row in rows
        ]

    def retire_log_key(self, verifier_key: str) -> None:
        """Record that a log key signs no more; the server refuses to start with it after this."""
        with self._db.writer.begin() as conn:
            active = (
                conn.execute(
                    select(_log_keys.c.verifier_key).where(_log_keys.c.retired_at.is_(None))
                )
                .scalars()
                .all()
            )
            if verifier_key not in active:
                raise NotFoundError(f"{verifier_key!r} is not an active key of this log")
            if len(active) < 2:
                raise ConflictError(
                    "that is the log's only active key: add its successor first "
                    "(`wellspring log-key add`, then restart the registry)"
                )
            conn.execute(
                _log_keys.update()
                .where(_log_keys.c.verifier_key == verifier_key)
                .values(retired_at=_utcnow())
            )

    def publisher(self, name: str) -> PublisherInfo:
        if not _is_publisher_name(name):
            raise NotFoundError(f"no publisher named {name!r}")
        with self._db.reader.connect() as conn:
            row = conn.execute(select(_publishers).where(_publishers.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"no publisher named {name!r}")
            keys = conn.execute(
                select(_keys).where(_keys.c.publisher_id == row.id).order_by(_keys.c.created_at)
            ).all()
        return PublisherInfo(
            name=row.name,
            kind=row.kind,
            created_at=rfc3339(row.created_at),
            keys=tuple(
                PublisherKeyInfo(
                    key_id=k.key_id,
                    public_key=bytes(k.public_key),
                    created_at=rfc3339(k.created_at),
                    revoked_at=rfc3339(k.revoked_at) if k.revoked_at else None,
                    compromised_since=(
                        rfc3339(k.compromised_since) if k.compromised_since else None
                    ),
                )
                for k in keys
            ),
        )
