"""Alerts as the engine sees them, their timeline, and the notifications they owe (the
outbox), all in the batch's transaction."""

from __future__ import annotations

from typing import Any

import psycopg

from storage.outbox import ROUTE_MATCH
from storage.writers.batch import WriteResult, json
from twin.alerts.records import AlertTransition
from twin.clock import ms_to_datetime
from twin.records import TwinOutput

_UPSERT_ALERT = (
    "INSERT INTO alerts AS a (id, device_id, rule_id, rule_type, status, severity, "
    "peak_severity, occurrences, first_seen, last_seen, observed, detail, resolved_at, "
    "resolved_by) SELECT %(id)s::text, %(device_id)s::text, %(rule_id)s::text, "
    "%(rule_type)s::text, %(status)s::text, %(severity)s::text, %(peak)s::text, "
    "%(occurrences)s::int, %(first_seen)s::timestamptz, %(last_seen)s::timestamptz, "
    "%(observed)s::float8, %(detail)s::text, %(resolved_at)s::timestamptz, "
    "%(resolved_by)s::text WHERE NOT EXISTS (SELECT 1 FROM alerts o "
    "WHERE o.device_id = %(device_id)s::text AND o.rule_id = %(rule_id)s::text "
    "AND o.status <> 'resolved' AND o.id <> %(id)s::text) "
    "ON CONFLICT (id) DO UPDATE SET "
    "severity = EXCLUDED.severity, peak_severity = EXCLUDED.peak_severity, "
    "occurrences = GREATEST(a.occurrences, EXCLUDED.occurrences), "
    "last_seen = GREATEST(a.last_seen, EXCLUDED.last_seen), "
    "observed = EXCLUDED.observed, detail = EXCLUDED.detail, "
    "status = CASE WHEN EXCLUDED.status = 'resolved' THEN 'resolved' ELSE a.status END, "
    "resolved_at = EXCLUDED.resolved_at, resolved_by = EXCLUDED.resolved_by, "
    "updated_at = now() "
    "WHERE a.status <> 'resolved' AND EXCLUDED.last_seen >= a.last_seen"
)
"""The engine's picture of an alert. A resolved alert is final (a person or the clear time
closed it); an older picture never overwrites a newer one, so replays change nothing; and no
second alert opens while one is open for the same device and rule (``uq_alerts_open``)."""

_INSERT_TIMELINE = (
    "INSERT INTO alert_timeline (alert_id, at, transition, status, severity, by, note) "
    "SELECT %s::text, %s::timestamptz, %s::text, %s::text, %s::text, 'engine', %s::text "
    "WHERE EXISTS (SELECT 1 FROM alerts WHERE id = %s::text) "
    "ON CONFLICT DO NOTHING"
)

_ENQUEUE = (
    "INSERT INTO notification_outbox (alert_id, device_id, route_id, transition, at, payload) "
    "SELECT %(alert_id)s, %(device_id)s, r.id, %(transition)s, %(at)s, %(payload)s::jsonb || "
    "jsonb_build_object('profile', d.profile, 'rule_name', "
    "coalesce((SELECT definition->>'name' FROM alert_rules WHERE id = %(rule_id)s), '')) "
    "FROM notification_routes r LEFT JOIN devices d ON d.device_id = %(device_id)s "
    f"WHERE r.enabled AND {ROUTE_MATCH.format(severity='%(severity)s')} "
    "AND EXISTS (SELECT 1 FROM alerts x WHERE x.id = %(alert_id)s) "
    "AND NOT EXISTS (SELECT 1 FROM alerts x WHERE x.id = %(alert_id)s "
    "AND x.status = 'resolved' AND x.resolved_by IS DISTINCT FROM 'engine') "
    "ON CONFLICT DO NOTHING"
)
"""Notifications go to the outbox in the same transaction as the alert they announce: none is
lost and none is sent for an alert that was not stored, nor for one a person already closed.
A dispatcher (``flows.jobs.notifier``) delivers them."""
NOTIFIED = ("opened", "escalated", "resolved")


class AlertRows:
    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.timeline: list[tuple[object, ...]] = []
        self.outbox: list[dict[str, Any]] = []

    def add(self, out: TwinOutput, last: bool) -> None:
        for t in out.alerts:
            self.alerts.append(_alert(t))
            row = self.alerts[-1]
            severity = row["severity"]
            at = ms_to_datetime(t.at_ms)
            self.timeline.append(
                (t.alert_id, at, t.transition, row["status"], severity, t.detail, t.alert_id)
            )
            if t.transition in NOTIFIED:
                self.outbox.append(_notification(t, at, severity))

    def write(self, cur: psycopg.Cursor, result: WriteResult) -> None:
        if not self.alerts:
            return
        cur.executemany(_UPSERT_ALERT, self.alerts)
        cur.executemany(_INSERT_TIMELINE, self.timeline)
        if self.outbox:
            cur.executemany(_ENQUEUE, self.outbox)
        result.alerts = len(self.alerts)


def _alert(t: AlertTransition) -> dict[str, Any]:
    resolved = t.transition == "resolved"
    at = ms_to_datetime(t.at_ms)
    return {
        "id": t.alert_id,
        "device_id": t.device_id,
        "rule_id": t.rule_id,
        "rule_type": t.rule_type,
        "status": "resolved" if resolved else "new",
        "severity": t.severity or t.peak_severity,
        "peak": t.peak_severity or t.severity,
        "occurrences": t.occurrences,
        "first_seen": ms_to_datetime(t.first_seen_ms),
        "last_seen": ms_to_datetime(t.last_seen_ms),
        "observed": t.observed,
        "detail": t.detail,
        "resolved_at": at if resolved else None,
        "resolved_by": "engine" if resolved else None,
    }


def _notification(t: AlertTransition, at: object, severity: str) -> dict[str, Any]:
    payload = {
        "alert_id": t.alert_id,
        "device_id": t.device_id,
        "rule_id": t.rule_id,
        "rule_type": t.rule_type,
        "transition": t.transition,
        "severity": severity,
        "peak_severity": t.peak_severity,
        "occurrences": t.occurrences,
        "first_seen_ms": t.first_seen_ms,
        "at_ms": t.at_ms,
        "observed": t.observed,
        "detail": t.detail,
    }
    return {
        "alert_id": t.alert_id,
        "device_id": t.device_id,
        "transition": t.transition,
        "at": at,
        "severity": severity,
        "rule_id": t.rule_id,
        "payload": json(payload).decode(),
    }
