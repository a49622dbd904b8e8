"""Alembic environment and revisions of the twinstream schema (target: storage.schema)."""
