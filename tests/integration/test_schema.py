"""``storage/schema.py`` and the migrations describe the same database."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from storage import partitions
from storage.database import connect, migrate, sqlalchemy_url
from storage.schema import metadata
from tests.conftest import fresh_database


def _differences(url: str, **options: Any) -> list[Any]:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_object": partitions.include_object,  # as migrations/env.py
                    "compare_type": True,
                    "compare_server_default": True,
                    **options,
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def migrated(pg_admin_url: str) -> Any:
    with fresh_database(pg_admin_url) as url:
        migrate(url)
        with connect(url) as conn:  # partitions as the running engine makes them
            partitions.ensure_window(conn, date(2026, 3, 1), 2)
            conn.commit()
        yield url


def test_migrations_build_the_schema_that_schema_py_declares(migrated: str) -> None:
    assert _differences(migrated) == []


def test_without_the_filter_the_partitions_would_be_proposed_for_dropping(migrated: str) -> None:
    """The filter is what keeps autogenerate quiet about run-time partitions."""
    diffs = _differences(migrated, include_object=lambda *a: True)
    dropped = {d[1].name for d in diffs if d[0] == "remove_table"}
    assert {"telemetry_p20260301", "telemetry_p20260302"} <= dropped


def test_a_column_missing_from_the_migrations_is_found(pg_admin_url: str) -> None:
    with fresh_database(pg_admin_url) as url:
        migrate(url)
        with connect(url) as conn:
            conn.execute("ALTER TABLE devices DROP COLUMN updated_at")
            conn.commit()
        diffs = _differences(url)
    assert [(d[0], d[2], d[3].name) for d in diffs] == [("add_column", "devices", "updated_at")]
