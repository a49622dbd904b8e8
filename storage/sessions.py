"""The MQTT sessions an engine has used, and those that may still hold readings.

A persistent session outlives its client: the broker keeps queuing for it until it expires.
The engine records every client id it connects with (per broker); at start, a recorded session
that this engine no longer uses, and that has not expired, is an orphan to drain.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg

_RECORD = (
    "INSERT INTO mqtt_sessions (broker, client_id, expiry_s, last_used, drained_at) "
    "VALUES (%s, %s, %s, %s, NULL) ON CONFLICT (broker, client_id) DO UPDATE SET "
    "expiry_s = EXCLUDED.expiry_s, last_used = EXCLUDED.last_used, drained_at = NULL"
)
_ORPHANS = (
    "SELECT client_id, last_used FROM mqtt_sessions WHERE broker = %s AND drained_at IS NULL "
    "AND NOT client_id = ANY(%s) AND last_used + make_interval(secs => expiry_s) > %s "
    "ORDER BY client_id"
)


def record(
    conn: psycopg.Connection, broker: str, client_ids: Iterable[str], expiry_s: int, now: datetime
) -> None:
    with conn.cursor() as cur:
        cur.executemany(_RECORD, [(broker, c, expiry_s, now) for c in client_ids])


def orphans(
    conn: psycopg.Connection, broker: str, in_use: Iterable[str], now: datetime
) -> list[tuple[str, datetime]]:
    """Sessions used before on this broker, not in use now, and not expired."""
    return [(c, t) for c, t in conn.execute(_ORPHANS, (broker, list(in_use), now)).fetchall()]


def drained(conn: psycopg.Connection, broker: str, client_id: str, now: datetime) -> None:
    conn.execute(
        "UPDATE mqtt_sessions SET drained_at = %s WHERE broker = %s AND client_id = %s",
        (now, broker, client_id),
    )
