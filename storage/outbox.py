"""Notification routes and the outbox: claim what is due, record each attempt, add reminders.

The engine fills the outbox in the same transaction as the alert it announces
(``storage.pg_writer``), one row per matching route; dispatchers (``flows.jobs.notifier``) deliver
from it. Claims use ``FOR UPDATE SKIP LOCKED`` and a lease (the row's next attempt moves past
the time its delivery can take), so several dispatchers can share the outbox and a dispatcher
that dies leaves its rows to be tried again when the lease runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import psycopg

from twin.alerts.rules import SEVERITIES
from twin.errors import ConfigurationError, UnknownItem

CHANNELS = ("webhook", "slack", "email", "log")
SEVERITY_ORDER = "ARRAY['info','warning','major','critical']"

ROUTE_MATCH = (
    f"array_position({SEVERITY_ORDER}, {{severity}}) >= "
    f"array_position({SEVERITY_ORDER}, r.min_severity) "
    "AND (cardinality(r.profiles) = 0 OR d.profile = ANY(r.profiles)) "
    "AND (r.device_group = '' OR d.attributes->>'group' = r.device_group)"
)
"""A route takes an alert of at least its severity, of one of its profiles (none: all) and of
its device group (the device attribute ``group``; empty: all)."""


@dataclass(frozen=True)
class Route:
    id: str
    channel: str
    target: str
    secret: str = ""
    min_severity: str = "warning"
    profiles: tuple[str, ...] = ()
    device_group: str = ""
    max_per_device_hour: int = 20
    remind_every_s: int = 0
    enabled: bool = True

    def check(self) -> None:
        if not self.id:
            raise ConfigurationError("a route needs an id")
        if self.channel not in CHANNELS:
            raise ConfigurationError(f"channel must be one of {', '.join(CHANNELS)}")
        if self.min_severity not in SEVERITIES:
            raise ConfigurationError(f"min severity must be one of {', '.join(SEVERITIES)}")
        if self.max_per_device_hour < 0 or self.remind_every_s < 0:
            raise ConfigurationError("rate limit and reminder interval may not be negative")
        if self.channel in ("webhook", "slack") and not self.target.startswith(
            ("http://", "https://")
        ):
            raise ConfigurationError(f"a {self.channel} route needs an http(s):// URL")
        if self.channel == "email" and not (
            self.target.startswith(("smtp://", "smtps://")) and "@" in self.target
        ):
            raise ConfigurationError(
                "an email route needs smtp://host:port/recipient@example.com[?from=...]"
            )


_ROUTE_COLUMNS = ", ".join(f.name for f in fields(Route))


def save_route(conn: psycopg.Connection, route: Route) -> None:
    """Add or replace a route (takes effect with the next alert; no restart)."""
    route.check()
    values = [
        list(v) if isinstance(v, tuple) else v
        for v in (getattr(route, f.name) for f in fields(Route))
    ]
    placeholders = ", ".join(["%s"] * len(values))
    updates = ", ".join(f"{f.name} = EXCLUDED.{f.name}" for f in fields(Route)[1:])
    conn.execute(
        f"INSERT INTO notification_routes ({_ROUTE_COLUMNS}) VALUES ({placeholders}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}",
        values,
    )
    conn.commit()


def list_routes(conn: psycopg.Connection) -> list[Route]:
    rows = conn.execute(f"SELECT {_ROUTE_COLUMNS} FROM notification_routes ORDER BY id")
    names = [f.name for f in fields(Route)]
    routes = []
    for row in rows.fetchall():
        values = dict(zip(names, row, strict=True))
        values["profiles"] = tuple(values["profiles"])
        routes.append(Route(**values))
    return routes


def remove_route(conn: psycopg.Connection, route_id: str) -> None:
    """Remove a route; what it still had pending in the outbox is cancelled."""
    cur = conn.execute("DELETE FROM notification_routes WHERE id = %s", (route_id,))
    if cur.rowcount == 0:
        raise UnknownItem(f"no route {route_id!r}")
    conn.execute(
        "UPDATE notification_outbox SET status = 'cancelled', done_at = now() "
        "WHERE route_id = %s AND status = 'pending'",
        (route_id,),
    )
    conn.commit()


@dataclass(frozen=True)
class Due:
    """One notification to deliver now, with what its route says about how."""

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


def claim(
    conn: psycopg.Connection,
    *,
    limit: int = 20,
    lease_s: float = 60.0,
    skip_routes: Sequence[str] = (),
) -> list[Due]:
    """Take up to ``limit`` due notifications, oldest first, leaving out routes still busy."""
    rows = conn.execute(
        "UPDATE notification_outbox o SET next_attempt_at = now() + make_interval(secs => %s) "
        "FROM notification_routes r "
        "WHERE o.id IN (SELECT id FROM notification_outbox WHERE status = 'pending' "
        "AND next_attempt_at <= now() AND NOT (route_id = ANY(%s)) "
        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
        "AND r.id = o.route_id "
        "RETURNING o.id, o.alert_id, o.device_id, o.transition, o.payload, o.attempts, r.id, "
        "r.channel, r.target, r.secret, r.max_per_device_hour",
        (lease_s, list(skip_routes), limit),
    ).fetchall()
    conn.commit()
    return [Due(*row) for row in sorted(rows)]


def sent_last_hour(conn: psycopg.Connection, device_id: str, route_id: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM notification_log l JOIN notification_outbox o ON o.id = l.outbox_id "
        "WHERE l.device_id = %s AND o.route_id = %s AND l.status = 'delivered' "
        "AND l.at > now() - interval '1 hour'",
        (device_id, route_id),
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
    """Log one attempt. ``delivered``, ``rate_limited`` and ``gave_up`` end the notification;
    ``failed`` with ``retry_in_s`` schedules the next try."""
    attempt = due.attempts + 1
    response = response[:2000]
    conn.execute(
        "INSERT INTO notification_log (outbox_id, alert_id, device_id, channel, recipient, "
        "attempt, status, response) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (due.id, due.alert_id, due.device_id, due.channel, due.target, attempt, status, response),
    )
    if status == "failed" and retry_in_s is not None:
        conn.execute(
            "UPDATE notification_outbox SET attempts = %s, last_error = %s, "
            "next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
            (attempt, response, retry_in_s, due.id),
        )
    else:
        final = {"delivered": "delivered", "rate_limited": "suppressed"}.get(status, "failed")
        conn.execute(
            "UPDATE notification_outbox SET attempts = %s, status = %s, done_at = now(), "
            "last_error = %s WHERE id = %s",
            (attempt, final, "" if final == "delivered" else response, due.id),
        )
    conn.commit()


def enqueue_reminders(conn: psycopg.Connection) -> int:
    """One reminder per route and interval for every alert still unacknowledged.

    Intervals count from when the alert was stored (the engine's clock, not the device's), and
    a reminder's time is the interval boundary it belongs to, so running this often adds each
    reminder once."""
    cur = conn.execute(
        "INSERT INTO notification_outbox (alert_id, device_id, route_id, transition, at, payload) "
        "SELECT a.id, a.device_id, r.id, 'reminder', "
        "a.created_at + make_interval(secs => r.remind_every_s * floor(extract(epoch FROM "
        "now() - a.created_at) / r.remind_every_s)), "
        "jsonb_build_object('alert_id', a.id, 'device_id', a.device_id, 'rule_id', a.rule_id, "
        "'rule_type', a.rule_type, 'rule_name', coalesce(ar.definition->>'name', ''), "
        "'profile', d.profile, 'transition', 'reminder', 'status', a.status, "
        "'severity', a.severity, 'peak_severity', a.peak_severity, "
        "'occurrences', a.occurrences, 'observed', a.observed, 'detail', a.detail, "
        "'first_seen_ms', (extract(epoch FROM a.first_seen) * 1000)::bigint, "
        "'at_ms', (extract(epoch FROM now()) * 1000)::bigint, "
        "'open_for_s', floor(extract(epoch FROM now() - a.created_at))::bigint) "
        "FROM alerts a JOIN notification_routes r ON r.enabled AND r.remind_every_s > 0 "
        "LEFT JOIN devices d ON d.device_id = a.device_id "
        "LEFT JOIN alert_rules ar ON ar.id = a.rule_id "
        "WHERE a.status = 'new' "
        "AND now() - a.created_at >= make_interval(secs => r.remind_every_s) "
        f"AND {ROUTE_MATCH.format(severity='a.severity')} "
        "ON CONFLICT DO NOTHING"
    )
    conn.commit()
    return max(cur.rowcount, 0)


def counts(conn: psycopg.Connection) -> dict[str, int]:
    """Outbox rows by status (for the demo summary and ``twin alerts routes``)."""
    rows = conn.execute("SELECT status, count(*) FROM notification_outbox GROUP BY status")
    return {status: int(n) for status, n in rows.fetchall()}


def prune(conn: psycopg.Connection, older_than_days: int) -> int:
    """Forget finished notifications and delivery attempts older than ``older_than_days``;
    pending ones stay whatever their age. Runs in the caller's transaction; returns the rows
    deleted."""
    interval = f"{int(older_than_days)} days"
    done = conn.execute(
        "DELETE FROM notification_outbox WHERE status <> 'pending' "
        "AND done_at < now() - %s::interval",
        (interval,),
    ).rowcount
    attempts = conn.execute(
        "DELETE FROM notification_log WHERE at < now() - %s::interval", (interval,)
    ).rowcount
    return max(done, 0) + max(attempts, 0)
