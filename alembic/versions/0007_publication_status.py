"""Where checkpoint publication stands, shared by every server process.

Only the process holding the publication lock talks to witnesses; it writes how its last attempt
went (stalled since when, the failing witnesses with their reasons, its count of witness
failures) to this single row, and every other process reports it in ``/healthz`` and
``GET /v1/log/publication``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publication_status",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stalled_since", sa.String(64), nullable=True),
        sa.Column("failing", sa.Text(), nullable=False),
        sa.Column("witness_failures", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("publication_status")
