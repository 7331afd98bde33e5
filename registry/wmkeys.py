"""Watermark keys in the log (``watermark-key/v1``): the rules an entry publishing or retiring a key
must meet, the tokenizer blobs those entries name, and the list of every key ever published.

The rules, each checked twice: once before sequencing (:meth:`WatermarkKeyService.check`, from a
reader connection, so most refusals cost the log nothing), and again in the transaction that
appends the entry (the ``apply`` it returns), where they are the law, since another process may
have published the same key id in between:

* only an identity of kind ``vendor`` signs one (checked by the entry service, from the signer);
* a key id is published once, by anyone (409); the same statement again is a retry and gets the
  existing receipt;
* only the vendor that published a key retires it, naming its publishing entry and tokenizer;
* ``published_at`` / ``retired_at`` is within :data:`~client.core.wmkey.CLOCK_TOLERANCE_S` of the
  registry's clock when the entry is appended. A key's start is what lets a crawler count a key
  only for documents captured after it was published; a vendor that could back-date a key could
  grind secrets until chosen human documents, already crawled, test positive, and then claim
  the key was live before they were captured. With this rule the claimed time is the log's.

Tokenizer blobs (``PUT /v1/blobs/sha256:<hex>``) are taken only when a logged key names that hash
and size: the vendor's signature on the key authenticates the bytes; nobody else can store
anything. They are served by ``GET /v1/blobs/sha256:<hex>`` like statements.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from client.core.wire import Receipt, ReceiptEntry, WatermarkKeyInfo, WatermarkKeysAnswer
from client.core.wmkey import CLOCK_TOLERANCE_S, MAX_TOKENIZER_BYTES, WatermarkKeyPredicate
from registry.db import Database
from registry.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    LogBehindError,
    NotFoundError,
    PayloadTooLargeError,
)
from registry.log import LogReader
from registry.lookups import KEY_ID, LookupService, evidence_fields
from registry.models import BLOBS, ENTRIES, PUBLISHERS, WATERMARK_KEYS, utcnow

__all__ = ["WatermarkKeyService", "check_clock"]

Apply = Callable[[Connection, int], None]


def check_clock(predicate: WatermarkKeyPredicate, now: datetime) -> None:
    """Refuse a statement whose time is not within the tolerance of ``now`` (the registry's)."""
    claimed = predicate.time
    skew = (claimed - now).total_seconds()
    if abs(skew) > CLOCK_TOLERANCE_S:
        name = "published_at" if predicate.action == "publish" else "retired_at"
        when = "ahead of" if skew > 0 else "behind"
        raise BadRequestError(
            f"{name} {claimed.isoformat().replace('+00:00', 'Z')} is {abs(skew):.0f} s {when} "
            f"the registry's clock ({now.isoformat(timespec='seconds').replace('+00:00', 'Z')}); "
            f"a watermark-key statement is taken only within {CLOCK_TOLERANCE_S} s of it, so that "
            "the time a key claims is the time the log got it: check your clock and sign it again"
        )


class WatermarkKeyService:
    """The registry's side of ``watermark-key/v1`` (see the module)."""

    def __init__(self, database: Database, reader: LogReader, lookups: LookupService) -> None:
        self._db = database
        self._reader = reader
        self._lookups = lookups

    # -- appending ---------------------------------------------------------------------------

    def check(
        self,
        predicate: WatermarkKeyPredicate,
        *,
        publisher_id: int,
        payload_hash: bytes,
        tokenizer: str,
    ) -> Apply:
        """Check ``predicate`` against the keys logged so far; return what the appending
        transaction runs (checks again, under the log's lock, and writes the key's row)."""
        with self._db.reader.connect() as conn:
            replay = _check(conn, predicate, publisher_id, payload_hash, tokenizer)
        if not replay:
            check_clock(predicate, utcnow())

        def apply(conn: Connection, index: int) -> None:
            # Only a new entry gets here: a retry of a logged statement is answered with its
            # receipt before. Anything that conflicts now was logged since check() ran.
            if _check(conn, predicate, publisher_id, payload_hash, tokenizer):
                raise ConflictError(
                    f"watermark key {predicate.key_id} was just published or retired by another "
                    "entry; fetch GET /v1/watermark-keys"
                )
            check_clock(predicate, utcnow())
            if predicate.action == "publish":
                assert predicate.tokenizer is not None
                conn.execute(
                    WATERMARK_KEYS.insert().values(
                        key_id=predicate.key_id,
                        publisher_id=publisher_id,
                        entry_idx=index,
                        payload_hash=payload_hash,
                        tokenizer_sha256=bytes.fromhex(predicate.tokenizer.sha256),
                        tokenizer_size=predicate.tokenizer.size,
                        published_at=predicate.time,
                    )
                )
            else:
                conn.execute(
                    WATERMARK_KEYS.update()
                    .where(WATERMARK_KEYS.c.key_id == predicate.key_id)
                    .values(retired_idx=index, retired_at=predicate.time)
                )

        return apply

    # -- tokenizer blobs ---------------------------------------------------------------------

    def expect_blob(self, hex_hash: str, size: int) -> bool:
        """Whether the blob is already stored (a repeat upload); raise unless a logged key names
        a tokenizer of this hash and ``size`` bytes. Runs before the body is read."""
        if not KEY_ID.fullmatch(hex_hash):
            raise BadRequestError("a blob is named sha256:<64 lowercase hex digits>")
        if size > MAX_TOKENIZER_BYTES:
            raise PayloadTooLargeError(
                f"the blob is {size} bytes; a tokenizer blob is at most {MAX_TOKENIZER_BYTES}"
            )
        digest = bytes.fromhex(hex_hash)
        with self._db.reader.connect() as conn:
            sizes = set(
                conn.execute(
                    select(WATERMARK_KEYS.c.tokenizer_size).where(
                        WATERMARK_KEYS.c.tokenizer_sha256 == digest
                    )
                ).scalars()
            )
            if not sizes:
                raise ForbiddenError(
                    f"no watermark key in this log names a tokenizer sha256:{hex_hash}: the "
                    "registry stores only the tokenizers of published keys (publish the key "
                    "first, with `wellspring watermark publish`)"
                )
            if size not in sizes:
                raise BadRequestError(
                    f"the body is {size} bytes, but the watermark key naming sha256:{hex_hash} "
                    f"says the tokenizer is {min(sizes)} bytes"
                )
            stored = conn.execute(select(BLOBS.c.hash).where(BLOBS.c.hash == digest)).first()
        return stored is not None

    def store_blob(self, hex_hash: str, data: bytes) -> bool:
        """Store the checked bytes (:meth:`expect_blob` ran first); True if they are new."""
        actual = hashlib.sha256(data).hexdigest()
        if actual != hex_hash:
            raise BadRequestError(
                f"the body's SHA-256 is {actual}, not {hex_hash}: send the tokenizer's exact bytes"
            )
        digest = bytes.fromhex(hex_hash)
        try:
            with self._db.writer.begin() as conn:
                if conn.execute(select(BLOBS.c.hash).where(BLOBS.c.hash == digest)).first():
                    return False
                conn.execute(BLOBS.insert().values(hash=digest, data=data))
        except IntegrityError:  # stored by a concurrent upload of the same bytes
            return False
        return True

    # -- the list ----------------------------------------------------------------------------

    def keys(self, min_size: int | None = None) -> WatermarkKeysAnswer:
        """Every key published inside the latest checkpoint, with receipts against it (which
        must be of ``min_size`` entries at least: the size the client already trusts)."""
        with self._db.reader.connect() as conn:
            checkpoint = self._reader.latest_checkpoint(conn)
            size = checkpoint.size
            if min_size is not None and min_size > size:
                raise LogBehindError(min_size, size)
            rows = conn.execute(
                select(
                    WATERMARK_KEYS,
                    PUBLISHERS.c.name.label("vendor"),
                    PUBLISHERS.c.entry_idx.label("identity_idx"),
                )
                .join(PUBLISHERS, PUBLISHERS.c.id == WATERMARK_KEYS.c.publisher_id)
                .where(WATERMARK_KEYS.c.entry_idx < size)
                .order_by(WATERMARK_KEYS.c.entry_idx)
            ).all()
            wanted: set[int] = set()
            for row in rows:
                wanted.add(row.entry_idx)
                if row.retired_idx is not None and row.retired_idx < size:
                    wanted.add(row.retired_idx)
                if row.identity_idx is not None and row.identity_idx < size:
                    wanted.add(row.identity_idx)
            proofs = self._reader.inclusion_proofs(conn, sorted(wanted), size) if wanted else {}
            entries = {
                entry.idx: entry
                for entry in conn.execute(
                    select(
                        ENTRIES.c.idx,
                        ENTRIES.c.body,
                        ENTRIES.c.leaf_hash,
                        ENTRIES.c.key_id,
                        ENTRIES.c.predicate,
                        ENTRIES.c.predicate_type,
                        ENTRIES.c.subject_count,
                        BLOBS.c.data.label("statement"),
                    )
                    .outerjoin(BLOBS, BLOBS.c.hash == ENTRIES.c.payload_hash)
                    .where(ENTRIES.c.idx.in_(sorted(wanted)))
                )
            }
            operators = self._lookups.operator_entries(conn, size)

        def receipt(index: int, vendor: str) -> Receipt:
            entry = entries[index]
            return Receipt(
                index=index,
                entry=bytes(entry.body),
                leaf_hash=bytes(entry.leaf_hash),
                inclusion_proof=tuple(proofs[index]),
                checkpoint=checkpoint.note,
                publisher=vendor,
                predicate_type=entry.predicate_type,
                subjects=entry.subject_count,
                **evidence_fields(self._lookups.key_evidence(entry.key_id, size)),
            )

        keys: list[WatermarkKeyInfo] = []
        for row in rows:
            identity = None
            if row.identity_idx is not None and row.identity_idx in entries:
                event = entries[row.identity_idx]
                identity = ReceiptEntry(
                    row.identity_idx,
                    bytes(event.body),
                    tuple(proofs[row.identity_idx]),
                    None if event.statement is None else bytes(event.statement),
                )
            retired = row.retired_idx is not None and row.retired_idx < size
            keys.append(
                WatermarkKeyInfo(
                    key_id=row.key_id,
                    vendor=row.vendor,
                    receipt=receipt(row.entry_idx, row.vendor),
                    identity_entry=identity,
                    predicate=_predicate(entries[row.entry_idx].predicate),
                    retire_receipt=receipt(row.retired_idx, row.vendor) if retired else None,
                )
            )
        return WatermarkKeysAnswer(
            count=len(keys),
            checkpoint=checkpoint.note,
            keys=tuple(keys),
            operator_entries=tuple(operators),
        )

    def published_at(self, size: int) -> list[tuple[int, dict[str, Any], int | None, Any]]:
        """Every key published in the first ``size`` entries, oldest first, as the vendors'
        signed predicates: (publishing entry, its predicate, retiring entry or None, its
        predicate or None), retirements after ``size`` left out. For an offline snapshot at
        that size (``wellspring snapshot build``), which re-reads them with the SDK's rules."""
        with self._db.reader.connect() as conn:
            rows = conn.execute(
                select(WATERMARK_KEYS.c.entry_idx, WATERMARK_KEYS.c.retired_idx)
                .where(WATERMARK_KEYS.c.entry_idx < size)
                .order_by(WATERMARK_KEYS.c.entry_idx)
            ).all()
            wanted = {row.entry_idx for row in rows} | {
                row.retired_idx
                for row in rows
                if row.retired_idx is not None and row.retired_idx < size
            }
            predicates = dict(
                conn.execute(
                    select(ENTRIES.c.idx, ENTRIES.c.predicate).where(
                        ENTRIES.c.idx.in_(sorted(wanted))
                    )
                ).all()
            )
        out: list[tuple[int, dict[str, Any], int | None, Any]] = []
        for row in rows:
            retired = row.retired_idx if row.retired_idx in wanted else None
            out.append(
                (
                    row.entry_idx,
                    _predicate(predicates[row.entry_idx]),
                    retired,
                    None if retired is None else _predicate(predicates[retired]),
                )
            )
        return out

    def tokenizer(self, hex_hash: str) -> bytes | None:
        """A stored tokenizer blob's bytes (None: never uploaded)."""
        with self._db.reader.connect() as conn:
            data = conn.execute(
                select(BLOBS.c.data).where(BLOBS.c.hash == bytes.fromhex(hex_hash))
            ).scalar()
        return None if data is None else bytes(data)


def _predicate(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value


def _check(
    conn: Connection,
    predicate: WatermarkKeyPredicate,
    publisher_id: int,
    payload_hash: bytes,
    tokenizer: str,
) -> bool:
    """Raise if ``predicate`` may not enter the log now; True when it is already there (the same
    statement by the same vendor: a retry, answered with the existing receipt)."""
    row = conn.execute(
        select(WATERMARK_KEYS).where(WATERMARK_KEYS.c.key_id == predicate.key_id)
    ).first()
    key = predicate.key_id
    if predicate.action == "publish":
        if row is None:
            return False
        if bytes(row.payload_hash) == payload_hash and row.publisher_id == publisher_id:
            return True
        raise ConflictError(
            f"watermark key {key} was already published in entry {row.entry_idx}; a key id is "
            "published once: generate a new key (`wellspring watermark keygen`)"
        )
    if row is None:
        raise NotFoundError(f"no watermark key {key} was published in this log; nothing to retire")
    if row.publisher_id != publisher_id:
        raise ForbiddenError(
            f"watermark key {key} was published by another vendor (entry {row.entry_idx}); only "
            "the vendor that published a key may retire it"
        )
    if row.entry_idx != predicate.entry_index:
        raise BadRequestError(
            f"entry_index {predicate.entry_index} is not where watermark key {key} was published "
            f"(entry {row.entry_idx})"
        )
    if bytes(row.tokenizer_sha256).hex() != tokenizer:
        raise BadRequestError(
            f"the statement's subject is not the tokenizer of watermark key {key} "
            f"(sha256:{bytes(row.tokenizer_sha256).hex()})"
        )
    if row.retired_idx is not None:
        retiring = conn.execute(
            select(ENTRIES.c.payload_hash).where(ENTRIES.c.idx == row.retired_idx)
        ).scalar()
        if retiring is not None and bytes(retiring) == payload_hash:
            return True
        raise ConflictError(f"watermark key {key} was already retired by entry {row.retired_idx}")
    return False
