"""Daily partitions of ``telemetry``: created ahead of the data, dropped after retention.

Partition ``telemetry_p20251121`` holds ``[2025-11-21T00:00Z, 2025-11-22T00:00Z)``. Creation
and dropping take a transaction-scoped advisory lock so several writers never race.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import psycopg

PARENT = "telemetry"
_NAME_RE = re.compile(r"^telemetry_p(\d{8})$")
_LOCK_KEY = 0x7477696E  # "twin"


def partition_name(day: date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


def day_of_ms(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).date()


def _bounds(day: date) -> tuple[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start.isoformat(), (start + timedelta(days=1)).isoformat()


def existing_days(conn: psycopg.Connection) -> set[date]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
        (PARENT,),
    ).fetchall()
    days = set()
    for (name,) in rows:
        m = _NAME_RE.match(name)
        if m:
            days.add(datetime.strptime(m.group(1), "%Y%m%d").date())
    return days


def ensure(conn: psycopg.Connection, days: Iterable[date]) -> list[date]:
    """Create the partitions of ``days`` that do not exist yet; returns those created.

    Runs inside the caller's transaction.
    """
    wanted = sorted(set(days))
    if not wanted:
        return []
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    have = existing_days(conn)
    created = []
    for day in wanted:
        if day in have:
            continue
        lo, hi = _bounds(day)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {PARENT} "
            f"FOR VALUES FROM ('{lo}') TO ('{hi}')"
        )
        created.append(day)
    return created


def ensure_window(conn: psycopg.Connection, today: date, ahead: int, behind: int = 1) -> list[date]:
    """Partitions from ``behind`` days ago to ``ahead`` days ahead of ``today``."""
    return ensure(conn, (today + timedelta(days=d) for d in range(-behind, ahead + 1)))


def drop_expired(conn: psycopg.Connection, today: date, retention_days: int) -> list[date]:
    """Drop partitions whose whole day is older than ``retention_days`` before ``today``."""
    if retention_days < 1:
        raise ValueError("retention must be at least one day")
    cutoff = today - timedelta(days=retention_days)
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    dropped = []
    for day in sorted(existing_days(conn)):
        if day < cutoff:
            conn.execute(f"DROP TABLE IF EXISTS {partition_name(day)}")
            dropped.append(day)
    return dropped


def is_partition(table: str | None) -> bool:
    return bool(table and _NAME_RE.match(table))


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's filter: the daily partitions (and their indexes) are made at run time, not by
    migrations, so autogenerate must neither drop nor create them."""
    if type_ == "table":
        return not is_partition(name)
    table = getattr(obj, "table", None)
    return not is_partition(getattr(table, "name", None))
