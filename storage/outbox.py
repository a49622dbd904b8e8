"""The notification outbox: claim what is due, record each attempt, schedule reminders.

Claims use ``FOR UPDATE SKIP LOCKED`` and a lease (the row's next attempt moves ahead while it
is being worked on), so several dispatchers can share the outbox and a dispatcher that dies
leaves its rows to be tried again when the lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class Due:
    id: int
    alert_id: str
    device_id: str
    transition: str
    payload: dict[str, Any]
    attempts: int
    route_id: str
    channel: str
    target: str
    secret: str
    max_per_device_hour: int


def claim(conn: psycopg.Connection, limit: int = 50, lease_s: int = 60) -> list[Due]:
    rows = conn.execute(
        "UPDATE notification_outbox o SET next_attempt_at = now() + make_interval(secs => %s) "
        "FROM notification_routes r "
        "WHERE o.id IN (SELECT id FROM notification_outbox WHERE status = 'pending' "
        "AND next_attempt_at <= now() ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
        "AND r.id = o.route_id "
        "RETURNING o.id, o.alert_id, o.device_id, o.transition, o.payload, o.attempts, r.id, "
        "r.channel, r.target, r.secret, r.max_per_device_hour",
        (lease_s, limit),
    ).fetchall()
    conn.commit()
    return [Due(*row) for row in sorted(rows)]


def sent_last_hour(conn: psycopg.Connection, device_id: str, channel: str, recipient: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM notification_log WHERE device_id = %s AND channel = %s "
        "AND recipient = %s AND status = 'delivered' AND at > now() - interval '1 hour'",
        (device_id, channel, recipient),
    ).fetchone()
    return int(row[0]) if row else 0


def record(
    conn: psycopg.Connection,
    due: Due,
    status: str,
    response: str,
    *,
    retry_in_s: float | None = None,
) -> None:
    """Log one attempt; ``status`` delivered / rate_limited / gave_up end the row, failed with
    ``retry_in_s`` schedules the next try."""
    attempt = due.attempts + 1
    conn.execute(
        "INSERT INTO notification_log (outbox_id, alert_id, device_id, channel, recipient, "
        "attempt, status, response) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            due.id,
            due.alert_id,
            due.device_id,
            due.channel,
            due.target,
            attempt,
            status,
            response[:2000],
        ),
    )
    if status == "failed" and retry_in_s is not None:
        conn.execute(
            "UPDATE notification_outbox SET attempts = %s, last_error = %s, "
            "next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
            (attempt, response[:2000], retry_in_s, due.id),
        )
    else:
        final = {"delivered": "delivered", "rate_limited": "suppressed"}.get(status, "failed")
        conn.execute(
            "UPDATE notification_outbox SET attempts = %s, status = %s, done_at = now(), "
            "last_error = CASE WHEN %s = 'delivered' THEN '' ELSE %s END WHERE id = %s",
            (attempt, final, final, response[:2000], due.id),
        )
    conn.commit()


def enqueue_reminders(conn: psycopg.Connection) -> int:
    """A reminder per route and interval for every alert still unacknowledged."""
    cur = conn.execute(
        "INSERT INTO notification_outbox (alert_id, device_id, route_id, transition, at, payload) "
        "SELECT a.id, a.device_id, r.id, 'reminder', "
        "a.first_seen + make_interval(secs => r.remind_every_s * floor(extract(epoch FROM "
        "now() - a.first_seen) / r.remind_every_s)), "
        "jsonb_build_object('alert_id', a.id, 'device_id', a.device_id, 'rule_id', a.rule_id, "
        "'transition', 'reminder', 'severity', a.severity, 'peak_severity', a.peak_severity, "
        "'occurrences', a.occurrences, 'detail', a.detail, 'status', a.status) "
        "FROM alerts a JOIN notification_routes r ON r.enabled AND r.remind_every_s > 0 "
        "LEFT JOIN devices d ON d.device_id = a.device_id "
        "WHERE a.status = 'new' AND now() - a.first_seen >= make_interval(secs => "
        "r.remind_every_s) "
        "AND array_position(ARRAY['info','warning','major','critical'], a.severity) >= "
        "array_position(ARRAY['info','warning','major','critical'], r.min_severity) "
        "AND (cardinality(r.profiles) = 0 OR d.profile = ANY(r.profiles)) "
        "AND (r.device_group = '' OR d.attributes->>'group' = r.device_group) "
        "ON CONFLICT DO NOTHING"
    )
    conn.commit()
    return max(cur.rowcount, 0)
