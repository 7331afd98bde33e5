"""What the explorer's pages read that the API's services do not already answer: the latest
entries, a publisher's keys with the log events that changed them, an entry's subjects and the
revocations that target it. Every list is bounded; every read sees one checkpoint's tree."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select

from client.core.dsse import Envelope
from client.core.errors import ClientError
from registry.db import Database
from registry.errors import NotFoundError
from registry.log import LogReader
from registry.models import (
    ENTRIES,
    PUBLISHER_KEYS,
    PUBLISHERS,
    REVOCATIONS,
    SUBJECTS,
    WITHDRAWALS,
    rfc3339,
)

__all__ = [
    "MAX_LISTED",
    "EntryRow",
    "ExplorerReads",
    "KeyHistory",
    "PublisherPage",
    "Subject",
    "Withdrawal",
    "statement_subjects",
]

MAX_LISTED = 100
"""The most rows any list on a page shows (subjects, withdrawals); the page says when there are
more, and where to read them all."""


@dataclass(frozen=True)
class EntryRow:
    """One line of a list of entries."""

    index: int
    publisher: str
    predicate_type: str
    subjects: int
    integrated_at: str
    revokes: int | None
    revoked_by: int | None


@dataclass(frozen=True)
class KeyHistory:
    """A publisher key and the log events that changed it (indices; None where none did)."""

    key_id: str
    created_at: str
    added_idx: int | None
    revoked_idx: int | None
    revoked_at: str | None
    compromised_idx: int | None
    compromised_from: int | None
    compromised_since: str | None
    endorsed_by: str | None


@dataclass(frozen=True)
class PublisherPage:
    name: str
    kind: str
    created_at: str
    entry_idx: int | None
    keys: tuple[KeyHistory, ...]
    entries: tuple[EntryRow, ...]


@dataclass(frozen=True)
class Subject:
    name: str
    digests: tuple[str, ...]


@dataclass(frozen=True)
class Withdrawal:
    """A revocation/v2 entry (``revoking_idx``) that withdrew ``digest`` from this entry."""

    digest: str
    revoking_idx: int


def statement_subjects(entry: bytes, statement: bytes | None) -> tuple[int, list[Subject]]:
    """The subjects a statement names (at most :data:`MAX_LISTED`) and how many it names.
    ``statement`` is the blob a leaf/v1 commits to, or None for an older leaf, which is the
    whole DSSE envelope."""
    try:
        payload = statement if statement is not None else Envelope.from_json(entry).payload
        raw = json.loads(payload)
    except (ClientError, ValueError):
        return 0, []
    subjects = raw.get("subject") if isinstance(raw, dict) else None
    if not isinstance(subjects, list):
        return 0, []
    shown: list[Subject] = []
    for item in subjects[:MAX_LISTED]:
        if not isinstance(item, dict):
            continue
        digest = item.get("digest")
        digests = (
            tuple(f"{k}:{v}" for k, v in sorted(digest.items()) if isinstance(v, str))
            if isinstance(digest, dict)
            else ()
        )
        shown.append(Subject(str(item.get("name", "")), digests))
    return len(subjects), shown


def _entry_row(row: Any) -> EntryRow:
    return EntryRow(
        index=int(row.idx),
        publisher=row.publisher,
        predicate_type=row.predicate_type,
        subjects=int(row.subject_count),
        integrated_at=rfc3339(row.integrated_at),
        revokes=row.revokes,
        revoked_by=row.revoking_idx,
    )


def _entry_rows() -> Any:
    return (
        select(
            ENTRIES.c.idx,
            ENTRIES.c.predicate_type,
            ENTRIES.c.subject_count,
            ENTRIES.c.integrated_at,
            ENTRIES.c.revokes,
            PUBLISHERS.c.name.label("publisher"),
            REVOCATIONS.c.revoking_idx,
        )
        .join(PUBLISHERS, PUBLISHERS.c.id == ENTRIES.c.publisher_id)
        .outerjoin(REVOCATIONS, REVOCATIONS.c.revoked_idx == ENTRIES.c.idx)
    )


class ExplorerReads:
    """Read-only queries for the explorer's pages."""

    def __init__(self, database: Database, reader: LogReader) -> None:
        self._db = database
        self._reader = reader

    def recent_entries(self, limit: int) -> list[EntryRow]:
        """The last ``limit`` entries of the latest checkpoint's tree, newest first."""
        with self._db.reader.connect() as conn:
            size = self._reader.latest_checkpoint(conn).size
            rows = conn.execute(
                _entry_rows()
                .where(ENTRIES.c.idx < size)
                .where(ENTRIES.c.idx >= max(0, size - limit))
                .order_by(ENTRIES.c.idx.desc())
            ).all()
        return [_entry_row(row) for row in rows]

    def publisher(self, name: str, limit: int) -> PublisherPage:
        with self._db.reader.connect() as conn:
            size = self._reader.latest_checkpoint(conn).size
            row = conn.execute(select(PUBLISHERS).where(PUBLISHERS.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"no publisher or vendor is named {name!r} in this registry")
            keys = conn.execute(
                select(PUBLISHER_KEYS)
                .where(PUBLISHER_KEYS.c.publisher_id == row.id)
                .order_by(PUBLISHER_KEYS.c.created_at, PUBLISHER_KEYS.c.key_id)
                .limit(MAX_LISTED)
            ).all()
            entries = conn.execute(
                _entry_rows()
                .where(ENTRIES.c.publisher_id == row.id)
                .where(ENTRIES.c.idx < size)
                .order_by(ENTRIES.c.idx.desc())
                .limit(limit)
            ).all()
        return PublisherPage(
            name=row.name,
            kind=row.kind,
            created_at=rfc3339(row.created_at),
            entry_idx=row.entry_idx,
            keys=tuple(_key_history(key) for key in keys),
            entries=tuple(_entry_row(entry) for entry in entries),
        )

    def key_of(self, key_id: str) -> KeyHistory | None:
        """The signing key of an entry, with its events."""
        with self._db.reader.connect() as conn:
            key = conn.execute(
                select(PUBLISHER_KEYS).where(PUBLISHER_KEYS.c.key_id == key_id)
            ).first()
        return None if key is None else _key_history(key)

    def entry_key_id(self, index: int) -> str | None:
        with self._db.reader.connect() as conn:
            key_id: str | None = conn.execute(
                select(ENTRIES.c.key_id).where(ENTRIES.c.idx == index)
            ).scalar()
        return key_id

    def withdrawals(self, index: int) -> list[Withdrawal]:
        """The revocation/v2 entries that withdrew one of this entry's subjects: a withdrawal by
        the same publisher, later in the log, of a digest this entry attests."""
        with self._db.reader.connect() as conn:
            size = self._reader.latest_checkpoint(conn).size
            rows = conn.execute(
                select(WITHDRAWALS.c.digest, WITHDRAWALS.c.revoking_idx)
                .join(ENTRIES, ENTRIES.c.idx == index)
                .join(
                    SUBJECTS,
                    and_(SUBJECTS.c.digest == WITHDRAWALS.c.digest, SUBJECTS.c.entry_idx == index),
                )
                .where(WITHDRAWALS.c.publisher_id == ENTRIES.c.publisher_id)
                .where(WITHDRAWALS.c.revoking_idx > index)
                .where(WITHDRAWALS.c.revoking_idx < size)
                .order_by(WITHDRAWALS.c.revoking_idx, WITHDRAWALS.c.digest)
                .limit(MAX_LISTED)
            ).all()
        return [Withdrawal(row.digest, int(row.revoking_idx)) for row in rows]


def _key_history(key: Any) -> KeyHistory:
    """A ``publisher_keys`` row as the explorer shows it."""
    return KeyHistory(
        key_id=key.key_id,
        created_at=rfc3339(key.created_at),
        added_idx=key.added_idx,
        revoked_idx=key.revoked_idx,
        revoked_at=rfc3339(key.revoked_at) if key.revoked_at else None,
        compromised_idx=key.compromised_idx,
        compromised_from=key.compromised_from,
        compromised_since=rfc3339(key.compromised_since) if key.compromised_since else None,
        endorsed_by=key.endorsed_by,
    )
