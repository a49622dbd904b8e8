"""Database URLs and schema migration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import pq
from sqlalchemy import create_engine, pool

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def psycopg_url(url: str) -> str:
    """The libpq form of a SQLAlchemy-style URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


def sqlalchemy_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg{sep}{rest}" if scheme in ("postgresql", "postgres") else url


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; returns the revision now current."""
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return current_revision(url)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    with psycopg.connect(psycopg_url(url)) as conn:
        row = (
            conn.execute("SELECT version_num FROM alembic_version LIMIT 1").fetchone()
            if _has_table(conn, "alembic_version")
            else None
        )
    return row[0] if row else None


def _has_table(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    return psycopg.connect(psycopg_url(url), autocommit=autocommit, connect_timeout=5)


def connect_migrated(url: str) -> psycopg.Connection:
    """A connection to a database brought to the newest schema first (for the CLI commands)."""
    migrate(url)
    return connect(url)


class KeptConnection:
    """One connection a background thread keeps between its rounds (instead of connecting every
    second), opened again after a failure. Each round ends outside a transaction."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection | None = None

    @contextmanager
    def session(self) -> Iterator[psycopg.Connection]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._url)
        conn = self._conn
        try:
            yield conn
        except BaseException:
            self.close()
            raise
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            conn.rollback()  # a round that only read: no transaction left open

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
