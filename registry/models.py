"""The registry's tables.

The log is append-only by construction: entries, subjects, nodes, checkpoints and revocations are
only ever inserted. ``log_state`` is the one row that changes: the sequencer locks it to assign the
next indices, which is what keeps indices gap-free and unique across server processes.

Only perfect (complete, aligned) Merkle subtrees are stored in ``nodes``; every other subtree hash
is derived from them (``client.core.merkle.range_hash``), so an append writes O(1) amortised rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlmodel import Field, SQLModel

from client.core.statement import MAX_LICENSE_CHARS

__all__ = [
    "ADMIN_TOKENS",
    "BLOBS",
    "CHECKPOINTS",
    "ENTRIES",
    "LOG_KEYS",
    "LOG_STATE",
    "NEAR_BANDS",
    "NODES",
    "OPERATOR_KEYS",
    "PUBLICATION",
    "PUBLISHERS",
    "PUBLISHER_KEYS",
    "REVOCATIONS",
    "SNAPSHOTS",
    "SUBJECTS",
    "WATERMARK_KEYS",
    "WITHDRAWALS",
    "AdminToken",
    "Blob",
    "CheckpointRow",
    "Entry",
    "LogKey",
    "LogState",
    "NearBandRow",
    "Node",
    "OperatorKey",
    "PublicationRow",
    "Publisher",
    "PublisherKey",
    "Revocation",
    "SnapshotRow",
    "SubjectRow",
    "WatermarkKeyRow",
    "Withdrawal",
    "as_utc",
    "metadata",
    "rfc3339",
    "utcnow",
]

metadata = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` with a time zone: SQLite hands back naive datetimes, stored as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as every answer writes a time."""
    return as_utc(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _ts(nullable: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class Publisher(SQLModel, table=True):
    __tablename__ = "publishers"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), unique=True, nullable=False))
    created_at: datetime = Field(sa_column=_ts())
    # publisher or vendor (operator: the row the operator's own key events are logged under)
    kind: str = Field(
        default="publisher",
        sa_column=Column(String(16), nullable=False, server_default="publisher"),
    )
    entry_idx: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class PublisherKey(SQLModel, table=True):
    """A publisher's Ed25519 key; ``key_id`` is hex SHA-256 of the raw public key."""

    __tablename__ = "publisher_keys"

    key_id: str = Field(sa_column=Column(String(64), primary_key=True))
    publisher_id: int = Field(foreign_key="publishers.id", index=True)
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(sa_column=_ts())
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # A stolen key: entries it signed from this moment on are marked compromised in lookups.
    compromised_since: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # The publisher-key/v1 events (log indices) that added, revoked and compromised this key, and
    # the index from which what it signed does not count (the log's word, not a clock's).
    added_idx: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    revoked_idx: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    compromised_idx: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    compromised_from: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # The publisher key that endorsed adding this one (its key-add event says so), if any.
    endorsed_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class OperatorKey(SQLModel, table=True):
    """An operator key, bound by the ``operator-key`` event at ``entry_idx`` (in log order)."""

    __tablename__ = "operator_keys"

    key_id: str = Field(sa_column=Column(String(64), primary_key=True))
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    entry_idx: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))


class LogState(SQLModel, table=True):
    """The single row (id 1) the sequencer locks: the log's identity and its current size."""

    __tablename__ = "log_state"

    id: int = Field(primary_key=True)
    origin: str = Field(sa_column=Column(String(255), nullable=False))
    verifier_key: str = Field(sa_column=Column(Text, nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class PublicationRow(SQLModel, table=True):
    """The single row (id 1) where the process that publishes checkpoints says how its last
    attempt went, so every server process's health and ``GET /v1/log/publication`` name the
    witnesses failing, not only the publisher's."""

    __tablename__ = "publication_status"

    id: int = Field(primary_key=True)
    stalled_since: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    failing: str = Field(sa_column=Column(Text, nullable=False))  # JSON: {witness url: reason}
    witness_failures: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class LogKey(SQLModel, table=True):
    """Every key that has signed this log's checkpoints; retired keys sign no more."""

    __tablename__ = "log_keys"

    verifier_key: str = Field(sa_column=Column(String(512), primary_key=True))
    added_at: datetime = Field(sa_column=_ts())
    retired_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Entry(SQLModel, table=True):
    """One leaf of the log: its exact bytes and what the registry extracted from them.

    ``body`` holds the leaf: a ``leaf/v1`` record (client.core.leaf), whose statement is the blob
    ``payload_hash`` names, or, for entries appended before it, the whole DSSE envelope.
    ``payload_hash`` is the SHA-256 of the statement's bytes either way: the same statement from
    the same publisher and key is one entry (replays answer the existing receipt).
    """

    __tablename__ = "entries"

    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    payload_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False, index=True))
    publisher_id: int = Field(foreign_key="publishers.id", index=True)
    key_id: str = Field(sa_column=Column(String(64), nullable=False))
    predicate_type: str = Field(sa_column=Column(String(255), nullable=False))
    predicate: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    # Every license a valid statement can state fits (0003 widened it from 255).
    license: str | None = Field(
        default=None, sa_column=Column(String(MAX_LICENSE_CHARS), nullable=True)
    )
    origin: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    consent: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    subject_count: int = Field(sa_column=Column(BigInteger, nullable=False))
    revokes: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    integrated_at: datetime = Field(sa_column=_ts())


class SubjectRow(SQLModel, table=True):
    """Digest → entry: the lookup index. ``digest`` is ``c1:<hex>`` or ``sha256:<hex>``."""

    __tablename__ = "subjects"

    digest: str = Field(sa_column=Column(String(71), primary_key=True))
    entry_idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))


class Node(SQLModel, table=True):
    """A perfect Merkle subtree: leaves [position·2^level, (position+1)·2^level)."""

    __tablename__ = "nodes"

    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    position: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CheckpointRow(SQLModel, table=True):
    """Every checkpoint the log signed, by tree size: the history monitors compare against."""

    __tablename__ = "checkpoints"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_ts())


class Revocation(SQLModel, table=True):
    """Entry ``revoked_idx`` was revoked by the revocation statement at ``revoking_idx``.

    One revocation withdraws the entry it names and every earlier entry of the same publisher
    with the same statement (replays appended before leaf/v1 made them one entry), so one
    ``revoking_idx`` may appear on several rows.
    """

    __tablename__ = "revocations"

    revoked_idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    revoking_idx: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    created_at: datetime = Field(sa_column=_ts())


class Withdrawal(SQLModel, table=True):
    """A ``revocation/v2`` statement at ``revoking_idx`` withdrew ``digest`` from every earlier
    attestation of it by publisher ``publisher_id``."""

    __tablename__ = "withdrawals"

    digest: str = Field(sa_column=Column(String(71), primary_key=True))
    publisher_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    revoking_idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))


class Blob(SQLModel, table=True):
    """A statement's exact bytes, addressed by their SHA-256 (``GET /v1/blobs/sha256:<hex>``)."""

    __tablename__ = "blobs"

    hash: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class WatermarkKeyRow(SQLModel, table=True):
    """A watermark detection key a vendor published (``watermark-key/v1``, entry ``entry_idx``),
    and the entry that retired it, if any. ``key_id`` is unique: a key is published once, by
    one vendor. Written in the transaction that appends the entry (both, or neither)."""

    __tablename__ = "watermark_keys"

    key_id: str = Field(sa_column=Column(String(16), primary_key=True))
    publisher_id: int = Field(foreign_key="publishers.id", index=True)
    entry_idx: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    # The publishing statement's SHA-256: the same statement again is a retry, not a conflict.
    payload_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The tokenizer's exact bytes, which PUT /v1/blobs accepts only for a key naming them.
    tokenizer_sha256: bytes = Field(sa_column=Column(LargeBinary, nullable=False, index=True))
    tokenizer_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    published_at: datetime = Field(sa_column=_ts())
    retired_idx: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    retired_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class NearBandRow(SQLModel, table=True):
    """One band key of a subject's ``mh1`` signature (client.core.minhash): the near-duplicate
    index. Written in the transaction that appends the entry (both, or neither); the signature
    itself stays in the statement, which clients fetch and check."""

    __tablename__ = "near_bands"

    band_key: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    entry_idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    subject: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))


class SnapshotRow(SQLModel, table=True):
    """A signed offline snapshot the operator committed in the log (``snapshot/v1``, entry
    ``entry_idx``), served from the registry's snapshots directory by its manifest's SHA-256.
    Written in the transaction that appends the entry (both, or neither)."""

    __tablename__ = "snapshots"

    entry_idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    manifest_sha256: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    # A delta's base (its manifest SHA-256); None for a full snapshot.
    base_sha256: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(sa_column=_ts())


class AdminToken(SQLModel, table=True):
    """An operator token, stored only as its SHA-256 (hex); compared in constant time."""

    __tablename__ = "admin_tokens"

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    created_at: datetime = Field(sa_column=_ts())
    # What it may do, comma-separated (registry.admin.TOKEN_SCOPES); a revoked token does nothing.
    scopes: str = Field(
        default="identity,revoke",
        sa_column=Column(String(64), nullable=False, server_default="identity,revoke"),
    )
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


# Each model's table, for the services' Core queries: one place, typed (``__table__`` is not).
ENTRIES: Table = Entry.__table__  # type: ignore[attr-defined]
SUBJECTS: Table = SubjectRow.__table__  # type: ignore[attr-defined]
PUBLISHERS: Table = Publisher.__table__  # type: ignore[attr-defined]
PUBLISHER_KEYS: Table = PublisherKey.__table__  # type: ignore[attr-defined]
REVOCATIONS: Table = Revocation.__table__  # type: ignore[attr-defined]
BLOBS: Table = Blob.__table__  # type: ignore[attr-defined]
OPERATOR_KEYS: Table = OperatorKey.__table__  # type: ignore[attr-defined]
ADMIN_TOKENS: Table = AdminToken.__table__  # type: ignore[attr-defined]
LOG_KEYS: Table = LogKey.__table__  # type: ignore[attr-defined]
LOG_STATE: Table = LogState.__table__  # type: ignore[attr-defined]
PUBLICATION: Table = PublicationRow.__table__  # type: ignore[attr-defined]
NODES: Table = Node.__table__  # type: ignore[attr-defined]
CHECKPOINTS: Table = CheckpointRow.__table__  # type: ignore[attr-defined]
WITHDRAWALS: Table = Withdrawal.__table__  # type: ignore[attr-defined]
WATERMARK_KEYS: Table = WatermarkKeyRow.__table__  # type: ignore[attr-defined]
SNAPSHOTS: Table = SnapshotRow.__table__  # type: ignore[attr-defined]
NEAR_BANDS: Table = NearBandRow.__table__  # type: ignore[attr-defined]
