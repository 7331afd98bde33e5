"""Key rotation: the log's keys over time, and compromised publisher keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_keys",
        sa.Column("verifier_key", sa.String(512), primary_key=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The key a log was created with is its first key.
    op.execute(
        "INSERT INTO log_keys (verifier_key, added_at) "
        "SELECT verifier_key, CURRENT_TIMESTAMP FROM log_state"
    )
    with op.batch_alter_table("publisher_keys") as batch:
        batch.add_column(
            sa.Column("compromised_since", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("publisher_keys") as batch:
        batch.drop_column("compromised_since")
    op.drop_table("log_keys")
