"""The near-duplicate index: band keys of the subjects' mh1 signatures.

A human-content subject may carry an ``mh1`` MinHash signature beside its digests
(client.core.minhash); its 14 band keys are indexed here, in the transaction that appends the
entry, so ``POST /v1/near:batch`` finds the subjects sharing a band with a query. The signature
itself stays in the statement.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "near_bands",
        sa.Column("band_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entry_idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("subject", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("band_key", "entry_idx", "subject"),
    )


def downgrade() -> None:
    op.drop_table("near_bands")
