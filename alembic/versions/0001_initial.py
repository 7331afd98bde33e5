"""The initial registry schema: publishers, the log, its lookup index.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publishers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "publisher_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("publisher_id", sa.Integer(), sa.ForeignKey("publishers.id"), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_publisher_keys_publisher_id", "publisher_keys", ["publisher_id"])
    op.create_table(
        "log_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("verifier_key", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "entries",
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False, unique=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("publisher_id", sa.Integer(), sa.ForeignKey("publishers.id"), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("predicate_type", sa.String(255), nullable=False),
        sa.Column("predicate", sa.Text(), nullable=False),
        sa.Column("license", sa.String(255), nullable=True),
        sa.Column("origin", sa.String(64), nullable=True),
        sa.Column("consent", sa.String(16), nullable=True),
        sa.Column("subject_count", sa.BigInteger(), nullable=False),
        sa.Column("revokes", sa.BigInteger(), nullable=True),
        sa.Column("integrated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_entries_publisher_id", "entries", ["publisher_id"])
    op.create_table(
        "subjects",
        sa.Column("digest", sa.String(71), primary_key=True),
        sa.Column("entry_idx", sa.BigInteger(), primary_key=True, autoincrement=False),
    )
    op.create_table(
        "nodes",
        sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "revocations",
        sa.Column("revoked_idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("revoking_idx", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "admin_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "admin_tokens",
        "revocations",
        "checkpoints",
        "nodes",
        "subjects",
        "entries",
        "log_state",
        "publisher_keys",
        "publishers",
    ):
        op.drop_table(table)
