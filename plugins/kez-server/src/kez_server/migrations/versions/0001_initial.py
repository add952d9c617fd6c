"""Initial schema: links, fork evidence, handles.

Revision ID: 0001
Revises:
Create Date: 2026-05-25
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
        "kez_links",
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("seqno", sa.BigInteger, nullable=False),
        sa.Column("link_id", sa.String(64), nullable=False),
        sa.Column("line", sa.LargeBinary, nullable=False),
        sa.Column("stored_at", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("identity", "seqno", name="kez_links_pkey"),
    )
    op.create_table(
        "kez_forks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("seqno", sa.BigInteger, nullable=False),
        sa.Column("stored_id", sa.String(64), nullable=False),
        sa.Column("link_id", sa.String(64), nullable=False),
        sa.Column("line", sa.LargeBinary, nullable=False),
        sa.Column("first_seen", sa.String(20), nullable=False),
        sa.UniqueConstraint("identity", "link_id", name="kez_forks_identity_link_key"),
    )
    op.create_table(
        "kez_handles",
        sa.Column("handle", sa.String(32), primary_key=True),
        sa.Column("primary_key", sa.String(200), nullable=False),
        sa.Column("envelope_id", sa.String(64), nullable=False),
        sa.Column("envelope", sa.LargeBinary, nullable=False),
        sa.Column("registered_at", sa.String(20), nullable=False),
        sa.UniqueConstraint("primary_key", name="kez_handles_primary_key_key"),
        sa.UniqueConstraint("envelope_id", name="kez_handles_envelope_id_key"),
    )


def downgrade() -> None:
    op.drop_table("kez_handles")
    op.drop_table("kez_forks")
    op.drop_table("kez_links")
