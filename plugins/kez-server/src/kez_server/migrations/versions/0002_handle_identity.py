"""Handles remember the identity id of their chain, so a handle follows a key rotation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows from 0001 had the primary as the identity id (read as such).
    with op.batch_alter_table("kez_handles") as batch:
        batch.add_column(sa.Column("identity", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("kez_handles") as batch:
        batch.drop_column("identity")
