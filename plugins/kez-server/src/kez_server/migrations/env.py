"""Alembic environment: runs on the connection `Store.migrate()` hands over.

Migrations run in one transaction (also on SQLite, see `transactional_ddl`). On PostgreSQL a transaction-level
advisory lock comes first, so several server processes starting at once
against one database migrate it exactly once; on SQLite the write
transaction (`BEGIN IMMEDIATE`) does the same.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from kez_server.schema import VERSION_TABLE, metadata

MIGRATION_LOCK = 0x6B657A  # "kez": the advisory lock id on PostgreSQL

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    transaction_per_migration=False,
    # SQLite's DDL is transactional, but alembic assumes it is not and would
    # commit after each migration, letting a second process read the version
    # in between and run the next migration again.
    transactional_ddl=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    context.run_migrations()
