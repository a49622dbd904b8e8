"""A twin's past: the stored snapshot nearest before a time, the readings after it, and the
alerts and anomalies that were open then.

History rows are written beside the snapshots (``storage.writers.registry``); the current
snapshot counts as history too, so the last minutes before now need no history row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
import psycopg

from twin.records import Reading


@dataclass(frozen=True)
class Base:
    """The state a replay starts from."""

    source: str
    """``history`` or ``snapshot``."""
    last_seen: datetime
    """Its newest reading: the replay applies the readings after it."""
    taken_at: datetime
    state: str


_BASE = (
    "(SELECT 'history', last_seen, taken_at, state::text FROM twin_history "
    "WHERE device_id = %(id)s AND bucket <= %(at)s AND last_seen <= %(at)s "
    "ORDER BY bucket DESC LIMIT 1) "
    "UNION ALL (SELECT 'snapshot', last_seen, taken_at, state::text FROM twin_snapshots "
    "WHERE device_id = %(id)s AND last_seen <= %(at)s) ORDER BY 2 DESC LIMIT 1"
)


def base(conn: psycopg.Connection, device_id: str, at: datetime) -> Base | None:
    """The newest stored state whose readings all lie at or before ``at``."""
    row = conn.execute(_BASE, {"id": device_id, "at": at}).fetchone()
    return Base(*row) if row is not None else None


_READINGS = (
    'SELECT round(extract(epoch FROM ts) * 1000)::bigint, seq, "values"::text, '
    "round(extract(epoch FROM received_at) * 1000)::bigint FROM telemetry "
    "WHERE device_id = %s AND ts > %s AND ts <= %s ORDER BY ts, seq LIMIT %s"
)


def readings(
    conn: psycopg.Connection, device_id: str, after: datetime, upto: datetime, limit: int
) -> list[Reading]:
    """Stored readings of ``(after, upto]`` in device time order; at most ``limit + 1``, so
    that a caller can tell the range held more."""
    decode = msgspec.json.Decoder(dict[str, float]).decode
    rows = conn.execute(_READINGS, (device_id, after, upto, limit + 1)).fetchall()
    return [
        Reading(device_id, ts_ms, decode(values), received_ms, None if seq == -1 else seq)
        for ts_ms, seq, values, received_ms in rows
    ]


def open_at(conn: psycopg.Connection, device_id: str, at: datetime) -> dict[str, Any]:
    """Alerts and anomalies of the device that were open at ``at``."""
    alerts = conn.execute(
        "SELECT id, rule_id, severity, first_seen FROM alerts WHERE device_id = %(id)s "
        "AND first_seen <= %(at)s AND (resolved_at IS NULL OR resolved_at > %(at)s) "
        "ORDER BY first_seen",
        {"id": device_id, "at": at},
    ).fetchall()
    anomalies = conn.execute(
        "SELECT detector, metric, kind, severity, started_at FROM anomalies "
        "WHERE device_id = %(id)s AND started_at <= %(at)s "
        "AND (ended_at IS NULL OR ended_at > %(at)s) ORDER BY started_at",
        {"id": device_id, "at": at},
    ).fetchall()
    return {
        "alerts": [{"id": a, "rule_id": r, "severity": s, "since": f} for a, r, s, f in alerts],
        "anomalies": [
            {"detector": d, "metric": m, "kind": k, "severity": s, "since": t}
            for d, m, k, s, t in anomalies
        ],
    }


def prune(conn: psycopg.Connection, retention_days: int, now: datetime) -> int:
    """Drop history older than raw telemetry is kept: it could no longer be replayed."""
    cur = conn.execute(
        "DELETE FROM twin_history WHERE bucket < %s", (now - timedelta(days=retention_days),)
    )
    return cur.rowcount
