"""Alembic migrations of the kez-server schema (run by `Store.migrate()` at startup)."""
