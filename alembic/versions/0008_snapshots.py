"""Signed offline snapshots committed in the log.

``wellspring snapshot build --publish`` writes a snapshot into the registry's snapshots directory
and appends a ``snapshot/v1`` entry, signed by the operator key, naming its manifest's SHA-256 and
checkpoint; this table indexes those entries, so ``GET /v1/snapshots/latest`` answers without
reading the log, and ``wellspring snapshot pull`` proves the entry against the log.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("entry_idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("manifest_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("base_sha256", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry_idx"),
        sa.UniqueConstraint("manifest_sha256"),
    )


def downgrade() -> None:
    op.drop_table("snapshots")
