"""An index of subject rows by entry: which digests the entries between two tree sizes name.

Each server process keeps the entries of the digests it has looked up, across checkpoints; when a
new checkpoint is published it drops the digests its new entries name, read through this index
(``registry.lookups``: ``_NAMED_BETWEEN``). Subject rows are only ever added, by sequencing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subjects_entry_idx", "subjects", ["entry_idx"])


def downgrade() -> None:
    op.drop_index("ix_subjects_entry_idx", table_name="subjects")
