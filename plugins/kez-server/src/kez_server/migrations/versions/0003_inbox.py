"""The HTTP inbox: stored envelopes per handle, with a server-wide increasing seq.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kez_messages",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("handle", sa.String(32), nullable=False),
        sa.Column("route", sa.String(64), nullable=True),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("received_at", sa.String(20), nullable=False),
        sa.Column("received_unix", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,  # seqs are never reused after deletes
    )
    op.create_index("kez_messages_handle_seq", "kez_messages", ["handle", "seq"])
    op.create_index("kez_messages_received", "kez_messages", ["received_unix"])


def downgrade() -> None:
    op.drop_table("kez_messages")
