"""API keys in PostgreSQL: made, listed, revoked, and looked up by the key a client presents.

A key is 32 random bytes in URL-safe text behind a ``tws_`` mark (so that a leaked key is easy
to recognise in a log or a repository). It is printed once; the table keeps its SHA-256 digest
and the first characters, never the key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg

from twin.errors import ConfigurationError, UnknownItem

ROLES = ("viewer", "operator", "admin")
"""Each role may do what the roles before it may: viewers read; operators also act on alerts
and recommendations; admins also manage rules, routes and keys."""
MARK = "tws_"
PREFIX_CHARS = len(MARK) + 6


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def may(role: str, needed: str) -> bool:
    """Whether a key of ``role`` may do what needs ``needed``."""
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_COLUMNS = "id, name, role, prefix, created_at, last_used_at, revoked_at"


def create(conn: psycopg.Connection, name: str, role: str) -> tuple[ApiKey, str]:
    """A new key: its record, and the key itself (shown once)."""
    if role not in ROLES:
        raise ConfigurationError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name.strip():
        raise ConfigurationError("an API key needs a name (who or what uses it)")
    key = MARK + secrets.token_urlsafe(32)
    row = conn.execute(
        f"INSERT INTO api_keys (name, role, prefix, digest) VALUES (%s, %s, %s, %s) "
        f"RETURNING {_COLUMNS}",
        (name.strip(), role, key[:PREFIX_CHARS], digest(key)),
    ).fetchone()
    conn.commit()
    assert row is not None
    return ApiKey(*row), key


def list_keys(conn: psycopg.Connection, *, revoked: bool = False) -> list[ApiKey]:
    sql = f"SELECT {_COLUMNS} FROM api_keys"
    if not revoked:
        sql += " WHERE revoked_at IS NULL"
    return [ApiKey(*row) for row in conn.execute(sql + " ORDER BY id").fetchall()]


def revoke(conn: psycopg.Connection, key_id: int) -> ApiKey:
    """Revoke a key (kept, marked, so that the list still says who had it)."""
    row = conn.execute(
        f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s "
        f"RETURNING {_COLUMNS}",
        (key_id,),
    ).fetchone()
    conn.commit()
    if row is None:
        raise UnknownItem(f"no API key {key_id}")
    return ApiKey(*row)


def holder(conn: psycopg.Connection, key: str) -> ApiKey | None:
    """The live key a client presented, None for an unknown or revoked one; marks it used
    (to the minute, so that a busy client does not write a row per request)."""
    row = conn.execute(
        f"UPDATE api_keys SET last_used_at = now() WHERE digest = %s AND revoked_at IS NULL "
        f"AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute') "
        f"RETURNING {_COLUMNS}",
        (digest(key),),
    ).fetchone()
    if row is None:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE digest = %s AND revoked_at IS NULL",
            (digest(key),),
        ).fetchone()
    conn.commit()
    return ApiKey(*row) if row is not None else None
