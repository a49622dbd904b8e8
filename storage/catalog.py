"""Device profiles and twin snapshots as stored in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg

from twin.profiles import DeviceProfile, profile_from_mapping


def sync_builtin_profiles(conn: psycopg.Connection, profiles: Iterable[DeviceProfile]) -> int:
    """Store the shipped profiles; an operator's own profiles (builtin = false) are left alone."""
    rows = [(p.name, p.kind, p.description, p.to_json().decode()) for p in profiles]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO device_profiles (name, kind, description, definition, builtin) "
            "VALUES (%s, %s, %s, %s::jsonb, true) ON CONFLICT (name) DO UPDATE SET "
            "kind = excluded.kind, description = excluded.description, "
            "definition = excluded.definition, updated_at = now() "
            "WHERE device_profiles.builtin",
            rows,
        )
    return len(rows)


def load_profiles(conn: psycopg.Connection) -> list[DeviceProfile]:
    rows = conn.execute("SELECT definition FROM device_profiles ORDER BY name").fetchall()
    return [profile_from_mapping(row[0]) for row in rows]


def load_snapshots(conn: psycopg.Connection) -> dict[str, bytes]:
    """Every twin's latest snapshot, encoded, by device id (used to warm twins on start)."""
    out: dict[str, bytes] = {}
    with conn.cursor() as cur:
        cur.execute("SELECT device_id, state::text FROM twin_snapshots")
        for device_id, state in cur:
            out[device_id] = state.encode()
    return out


def recently_seen(conn: psycopg.Connection, since: datetime) -> list[str]:
    """Devices with a snapshot whose newest reading is no older than ``since``."""
    rows = conn.execute("SELECT device_id FROM twin_snapshots WHERE last_seen >= %s", (since,))
    return [device_id for (device_id,) in rows.fetchall()]
