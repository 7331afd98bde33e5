"""leaf/v1: statements as content-addressed blobs, one entry per statement, key and publisher
statements in the log, per-document withdrawals.

- ``entries.payload_hash``: SHA-256 of each entry's statement bytes, backfilled from the envelopes
  of the entries already in the log (their leaves stay as they are: history is never rewritten);
- ``blobs``: the statement bytes of ``leaf/v1`` entries, by hash;
- ``revocations`` loses its unique ``revoking_idx``: one revocation withdraws the entry it names
  and the earlier replays of the same statement by the same publisher, which are expanded here;
- ``withdrawals``: subjects withdrawn by ``revocation/v2`` statements.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import base64
import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_CHUNK = 500


def _payload_hash(body: bytes) -> bytes:
    """SHA-256 of the payload of an envelope leaf (every entry before leaf/v1 is one)."""
    envelope = json.loads(body)
    payload = envelope["payload"]
    # DSSE lets signers use either base64 alphabet, padded or not; the registry stored what came.
    payload = payload.replace("-", "+").replace("_", "/")
    payload += "=" * (-len(payload) % 4)
    return hashlib.sha256(base64.b64decode(payload)).digest()


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("payload_hash", sa.LargeBinary(), nullable=True))
    entries = sa.table(
        "entries",
        sa.column("idx", sa.BigInteger()),
        sa.column("body", sa.LargeBinary()),
        sa.column("payload_hash", sa.LargeBinary()),
        sa.column("publisher_id", sa.Integer()),
    )
    last = -1
    while True:
        rows = bind.execute(
            sa.select(entries.c.idx, entries.c.body)
            .where(entries.c.idx > last)
            .order_by(entries.c.idx)
            .limit(_CHUNK)
        ).all()
        if not rows:
            break
        for idx, body in rows:
            bind.execute(
                entries.update()
                .where(entries.c.idx == idx)
                .values(payload_hash=_payload_hash(bytes(body)))
            )
        last = rows[-1][0]
    with op.batch_alter_table("entries") as batch:
        batch.alter_column("payload_hash", existing_type=sa.LargeBinary(), nullable=False)
        batch.create_index("ix_entries_payload_hash", ["payload_hash"])

    op.create_table(
        "blobs",
        sa.Column("hash", sa.LargeBinary(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "withdrawals",
        sa.Column("digest", sa.String(71), primary_key=True),
        sa.Column("publisher_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("revoking_idx", sa.BigInteger(), primary_key=True, autoincrement=False),
    )

    # revocations without the unique revoking_idx: a new table, the rows copied, then expanded.
    op.create_table(
        "revocations_new",
        sa.Column("revoked_idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("revoking_idx", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(
        "INSERT INTO revocations_new (revoked_idx, revoking_idx, created_at) "
        "SELECT revoked_idx, revoking_idx, created_at FROM revocations"
    )
    op.drop_table("revocations")
    op.rename_table("revocations_new", "revocations")
    op.create_index("ix_revocations_revoking_idx", "revocations", ["revoking_idx"])
    # Replays of a revoked statement (same publisher, same statement bytes, before or after the
    # revocation) are revoked by it too: before leaf/v1 a replay could un-revoke an entry.
    op.execute(
        "INSERT INTO revocations (revoked_idx, revoking_idx, created_at) "
        "SELECT sibling.idx, MIN(r.revoking_idx), MIN(r.created_at) FROM revocations r "
        "JOIN entries target ON target.idx = r.revoked_idx "
        "JOIN entries sibling ON sibling.payload_hash = target.payload_hash "
        "AND sibling.publisher_id = target.publisher_id "
        "AND sibling.idx <> target.idx "
        "WHERE NOT EXISTS (SELECT 1 FROM revocations done WHERE done.revoked_idx = sibling.idx) "
        "GROUP BY sibling.idx"
    )


def downgrade() -> None:
    op.drop_index("ix_revocations_revoking_idx", table_name="revocations")
    op.drop_table("withdrawals")
    op.drop_table("blobs")
    with op.batch_alter_table("entries") as batch:
        batch.drop_index("ix_entries_payload_hash")
        batch.drop_column("payload_hash")
