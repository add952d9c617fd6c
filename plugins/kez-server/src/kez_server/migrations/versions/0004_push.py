"""Web Push subscriptions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kez_push_subscriptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("handle", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("endpoint_hash", sa.String(64), nullable=False),
        sa.Column("p256dh", sa.String(100), nullable=False),
        sa.Column("auth", sa.String(40), nullable=False),
        sa.Column("created_at", sa.String(20), nullable=False),
        sa.UniqueConstraint(
            "handle", "endpoint_hash", name="kez_push_subscriptions_handle_endpoint_key"
        ),
    )
    op.create_index("ix_kez_push_subscriptions_handle", "kez_push_subscriptions", ["handle"])
    op.create_index(
        "ix_kez_push_subscriptions_endpoint_hash", "kez_push_subscriptions", ["endpoint_hash"]
    )


def downgrade() -> None:
    op.drop_index("ix_kez_push_subscriptions_endpoint_hash", "kez_push_subscriptions")
    op.drop_index("ix_kez_push_subscriptions_handle", "kez_push_subscriptions")
    op.drop_table("kez_push_subscriptions")
