"""Profiles: the signed profile object and the published picture of a handle.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kez_profiles",
        sa.Column("handle", sa.String(32), primary_key=True),
        sa.Column("profile", sa.LargeBinary, nullable=True),
        sa.Column("profile_id", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.String(20), nullable=True),
        sa.Column("picture", sa.LargeBinary, nullable=True),
        sa.Column("picture_sha256", sa.String(64), nullable=True),
        sa.Column("stored_at", sa.String(20), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kez_profiles")
