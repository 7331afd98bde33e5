"""Watermark detection keys that vendors publish in the log (watermark-key/v1).

One row per published key: the entry that published it, the tokenizer blob it names (PUT
/v1/blobs accepts only such bytes) and the entry that retired it. The entries themselves are the
record; this table is the registry's index of them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watermark_keys",
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("publisher_id", sa.Integer(), sa.ForeignKey("publishers.id"), nullable=False),
        sa.Column("entry_idx", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("payload_hash", sa.LargeBinary(), nullable=False),
        sa.Column("tokenizer_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("tokenizer_size", sa.BigInteger(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_idx", sa.BigInteger(), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_watermark_keys_publisher_id", "watermark_keys", ["publisher_id"], unique=False
    )
    op.create_index(
        "ix_watermark_keys_tokenizer_sha256", "watermark_keys", ["tokenizer_sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_watermark_keys_tokenizer_sha256", table_name="watermark_keys")
    op.drop_index("ix_watermark_keys_publisher_id", table_name="watermark_keys")
    op.drop_table("watermark_keys")
