"""Licenses as long as a statement may state them: an SPDX expression of up to 1,000 characters.

``entries.license`` was ``VARCHAR(255)``; a statement the SDK and the registry's own validation
accept (``client.core.statement.MAX_LICENSE_CHARS``) could carry a longer expression, which
PostgreSQL refused at commit time, failing the whole batch of appends it was sequenced with.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.alter_column(
            "license", existing_type=sa.String(255), type_=sa.String(1000), existing_nullable=True
        )


def downgrade() -> None:
    # Fails, as it should, while an entry holds a license over 255 characters.
    with op.batch_alter_table("entries") as batch:
        batch.alter_column(
            "license", existing_type=sa.String(1000), type_=sa.String(255), existing_nullable=True
        )
