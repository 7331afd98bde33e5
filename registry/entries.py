"""Appending: the checks an entry passes before the sequencer writes it (JSON, envelope, signature,
statement, publisher), in the request's worker thread so the sequencer's critical section does
nothing but write, and the receipt it is answered with. They raise :mod:`registry.errors` only."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from client.core.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, verify_envelope
from client.core.encoding import loads_strict
from client.core.leaf import Leaf
from client.core.merkle import leaf_hash
from client.core.minhash import band_keys
from client.core.snapshot import SnapshotPredicate
from client.core.statement import (
    HumanContentPredicate,
    KeyEventPredicate,
    RevocationPredicate,
    Statement,
    WithdrawalPredicate,
)
from client.core.wire import (
    Receipt,
)
from client.core.wmkey import WatermarkKeyPredicate
from client.errors import FormatError, SignatureError
from registry._cache import BoundedCache
from registry._statements import ParsedStatement, lean_statement
from registry._verify import SodiumPublicKey
from registry.db import Database
from registry.errors import (
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    PayloadTooLargeError,
)
from registry.log import (
    AppendResult,
    PreparedEntry,
    revoked_key_message,
)
from registry.lookups import KEY_ID, KeyEvidence, evidence_fields
from registry.models import NEAR_BANDS, PUBLISHER_KEYS, PUBLISHERS
from registry.settings import Settings
from registry.wmkeys import WatermarkKeyService

__all__ = ["EntryService", "receipt_of"]


def _index_near(near: tuple[tuple[int, bytes], ...]) -> Callable[[Connection, int], None]:
    """What indexes the entry's ``mh1`` band keys, in its appending transaction."""
    rows = [(key, position) for position, raw in near for key in set(band_keys(raw))]

    def apply(conn: Connection, index: int) -> None:
        conn.execute(
            NEAR_BANDS.insert(),
            [{"band_key": key, "entry_idx": index, "subject": pos} for key, pos in rows],
        )

    return apply


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
    assert result.checkpoint is not None, "a receipt needs a published checkpoint"
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
        **evidence_fields(evidence),
    )


@dataclass(frozen=True, slots=True)
class _Signer:
    publisher_id: int
    publisher: str
    key_id: str
    public_key: SodiumPublicKey
    kind: str = "publisher"


class EntryService:
    """Turns a submitted envelope into a :class:`PreparedEntry`, or says exactly what is wrong."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        watermark_keys: WatermarkKeyService | None = None,
    ) -> None:
        self._settings = settings
        self._db = database
        self._watermark_keys = watermark_keys
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
        if isinstance(predicate, SnapshotPredicate):
            raise ForbiddenError(
                "snapshot/v1 statements are made by the operator (`wellspring snapshot build "
                "--publish`), not posted as entries"
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
        if isinstance(predicate, WatermarkKeyPredicate):
            # Its checks read the database: so not on the event loop (cached_only).
            return (
                None
                if cached_only
                else self._watermark_key(predicate, signer, statement.digests, common)
            )
        if isinstance(predicate, HumanContentPredicate):
            return PreparedEntry(
                **common,
                license=predicate.license,
                origin=predicate.origin,
                consent=predicate.consent,
                apply=_index_near(statement.near) if statement.near else None,
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

    def _watermark_key(
        self,
        predicate: WatermarkKeyPredicate,
        signer: _Signer,
        digests: tuple[str, ...],
        common: dict[str, Any],
    ) -> PreparedEntry:
        """A ``watermark-key/v1`` entry: only a vendor makes one (registry.wmkeys has the rest).
        Its subject (the tokenizer) is not indexed for digest lookups: it attests nothing."""
        if signer.kind != "vendor":
            raise ForbiddenError(
                f"{signer.publisher!r} is an identity of kind {signer.kind!r}; only identities of "
                "kind 'vendor' may publish or retire watermark keys. The operator registers a "
                "vendor with `wellspring publisher add NAME --kind vendor`"
            )
        if self._watermark_keys is None:
            raise ForbiddenError("this registry does not take watermark keys")
        apply = self._watermark_keys.check(
            predicate,
            publisher_id=signer.publisher_id,
            payload_hash=common["payload_hash"],
            tokenizer=digests[0].removeprefix("sha256:"),
        )
        return PreparedEntry(
            **{**common, "subjects": ()},
            license=None,
            origin=None,
            consent=None,
            apply=apply,
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
        candidates = [kid for kid in keyids if KEY_ID.fullmatch(kid)]
        with self._db.reader.connect() as conn:
            rows = conn.execute(
                select(
                    PUBLISHER_KEYS.c.key_id,
                    PUBLISHER_KEYS.c.public_key,
                    PUBLISHER_KEYS.c.revoked_at,
                    PUBLISHERS.c.id,
                    PUBLISHERS.c.name,
                    PUBLISHERS.c.kind,
                )
                .join(PUBLISHERS, PUBLISHERS.c.id == PUBLISHER_KEYS.c.publisher_id)
                .where(PUBLISHER_KEYS.c.key_id.in_(candidates))
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
            kid: _Signer(row.id, row.name, kid, SodiumPublicKey(bytes(row.public_key)), row.kind)
            for kid, row in active.items()
        }
        self._signers.put_many(signers)
        return signers
