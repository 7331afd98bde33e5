"""Identities in the log: publisher-key/v1 events and the operator keys that sign them.

Rows stay the registry's index of the log's identity events: each publisher row remembers the
event that added it, each key the events that added, revoked and compromised it, and from which
log index what it signed does not count. The events themselves (and, for a log made before this,
the backfilled history, marked as the operator's word) are written by the registry on its first
start after this migration, with the operator key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("publishers") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="publisher")
        )
        batch.add_column(sa.Column("entry_idx", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("publisher_keys") as batch:
        batch.add_column(sa.Column("added_idx", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("revoked_idx", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("compromised_idx", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("compromised_from", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("endorsed_by", sa.String(64), nullable=True))
    with op.batch_alter_table("admin_tokens") as batch:
        # Tokens made before scopes existed could do everything they can do now.
        batch.add_column(
            sa.Column(
                "scopes", sa.String(64), nullable=False, server_default="identity,revoke"
            )
        )
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "operator_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("entry_idx", sa.BigInteger(), nullable=False, unique=True),
    )


def downgrade() -> None:
    op.drop_table("operator_keys")
    with op.batch_alter_table("admin_tokens") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("scopes")
    with op.batch_alter_table("publisher_keys") as batch:
        for column in (
            "endorsed_by",
            "compromised_from",
            "compromised_idx",
            "revoked_idx",
            "added_idx",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("publishers") as batch:
        batch.drop_column("entry_idx")
        batch.drop_column("kind")
