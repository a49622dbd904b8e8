"""Alert rules, and the alerts people work with: list, show, acknowledge, assign, resolve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import psycopg

from twin.alerts.rules import SEVERITIES, Rule
from twin.errors import AlertActionError, TwinstreamError, UnknownItem

_rule_decoder = msgspec.json.Decoder(Rule)


def sync_builtin_rules(conn: psycopg.Connection, rules: Sequence[Rule]) -> int:
    """Add shipped rules that are missing and bring shipped rules nobody edited up to date.

    A shipped rule an operator replaced (``twin alerts rule set``) is theirs from then on
    (``builtin`` false) and is kept as they left it; enabling or disabling a shipped rule is
    not an edit. Returns how many rules were added or updated."""
    changed = 0
    with conn.cursor() as cur:
        for rule in rules:
            cur.execute(
                "INSERT INTO alert_rules AS r (id, definition, enabled, builtin) "
                "VALUES (%s, %s, %s, true) ON CONFLICT (id) DO UPDATE "
                "SET definition = EXCLUDED.definition, updated_at = now() "
                "WHERE r.builtin AND r.definition <> EXCLUDED.definition",
                (rule.id, msgspec.json.encode(rule).decode(), rule.enabled),
            )
            changed += cur.rowcount
    return changed


def load_rules(conn: psycopg.Connection) -> tuple[list[Rule], list[str]]:
    """The stored rules in force, and one message per stored rule that cannot be used."""
    rules, problems = [], []
    for rule_id, definition, enabled in conn.execute(
        "SELECT id, definition::text, enabled FROM alert_rules ORDER BY id"
    ).fetchall():
        try:
            rule = _rule_decoder.decode(definition)
            rule.check()
        except (msgspec.ValidationError, msgspec.DecodeError, TwinstreamError) as exc:
            problems.append(f"alert rule {rule_id}: {exc}")
            continue
        if rule.id != rule_id:
            rule = msgspec.structs.replace(rule, id=rule_id)
        rules.append(msgspec.structs.replace(rule, enabled=bool(enabled) and rule.enabled))
    return rules, problems


@dataclass(frozen=True)
class StoredRule:
    id: str
    definition: dict[str, Any]
    enabled: bool
    builtin: bool
    updated_at: datetime


def stored_rules(conn: psycopg.Connection) -> list[StoredRule]:
    rows = conn.execute(
        "SELECT id, definition, enabled, builtin, updated_at FROM alert_rules ORDER BY id"
    ).fetchall()
    return [StoredRule(*row) for row in rows]


def save_rules(conn: psycopg.Connection, rules: Sequence[Rule]) -> None:
    """Add or replace rules; a running engine picks them up at its next reload. A shipped
    rule replaced here becomes the operator's own (the engine no longer updates it)."""
    for rule in rules:
        rule.check()
    for rule in rules:
        conn.execute(
            "INSERT INTO alert_rules (id, definition, enabled) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET definition = EXCLUDED.definition, "
            "enabled = EXCLUDED.enabled, builtin = false, updated_at = now()",
            (rule.id, msgspec.json.encode(rule).decode(), rule.enabled),
        )
    conn.commit()


def set_rule_enabled(conn: psycopg.Connection, rule_id: str, enabled: bool) -> None:
    cur = conn.execute(
        "UPDATE alert_rules SET enabled = %s, updated_at = now() WHERE id = %s",
        (enabled, rule_id),
    )
    if cur.rowcount == 0:
        raise UnknownItem(f"no alert rule {rule_id!r}")
    conn.commit()


def remove_rule(conn: psycopg.Connection, rule_id: str) -> bool:
    """Delete a rule; a shipped rule is disabled instead (it would come back at the next
    start). Returns True when the rule was deleted."""
    row = conn.execute("SELECT builtin FROM alert_rules WHERE id = %s", (rule_id,)).fetchone()
    if row is None:
        raise UnknownItem(f"no alert rule {rule_id!r}")
    if row[0]:
        set_rule_enabled(conn, rule_id, False)
        return False
    conn.execute("DELETE FROM alert_rules WHERE id = %s", (rule_id,))
    conn.commit()
    return True


def rules_fingerprint(conn: psycopg.Connection) -> str:
    row = conn.execute(
        "SELECT coalesce(md5(string_agg(id || definition::text || enabled::text, ',' "
        "ORDER BY id)), '') FROM alert_rules"
    ).fetchone()
    return str(row[0]) if row else ""


@dataclass(frozen=True)
class AlertRow:
    id: str
    device_id: str
    rule_id: str
    status: str
    severity: str
    peak_severity: str
    occurrences: int
    first_seen: datetime
    last_seen: datetime
    detail: str
    assigned_to: str | None
    resolved_at: datetime | None

    def duration_s(self, now: datetime) -> float:
        """How long the alert has been (or was) open."""
        end = self.resolved_at if self.status == "resolved" and self.resolved_at else now
        return max(0.0, (end - self.first_seen).total_seconds())


_COLUMNS = (
    "id, device_id, rule_id, status, severity, peak_severity, occurrences, first_seen, "
    "last_seen, detail, assigned_to, resolved_at"
)


def list_alerts(
    conn: psycopg.Connection,
    *,
    status: str | None = None,
    device: str | None = None,
    severity: str | None = None,
    since: datetime | None = None,
    rule: str | None = None,
    limit: int = 100,
) -> list[AlertRow]:
    where: list[str] = []
    args: list[Any] = []
    if rule:
        where.append("rule_id = %s")
        args.append(rule)
    if status == "open":
        where.append("status <> 'resolved'")
    elif status:
        where.append("status = %s")
        args.append(status)
    if device:
        where.append("device_id = %s")
        args.append(device)
    if severity:  # this severity or worse
        worse = list(SEVERITIES[SEVERITIES.index(severity) :])
        where.append("severity = ANY(%s)")
        args.append(worse)
    if since:
        where.append("last_seen >= %s")
        args.append(since)
    sql = f"SELECT {_COLUMNS} FROM alerts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY last_seen DESC LIMIT %s"
    args.append(limit)
    return [AlertRow(*row) for row in conn.execute(sql, args).fetchall()]


def show_alert(conn: psycopg.Connection, alert_id: str) -> tuple[dict[str, Any], list[tuple]]:
    cur = conn.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,))
    row = cur.fetchone()
    if row is None:
        raise UnknownItem(f"no alert {alert_id!r}")
    names = [d.name for d in cur.description or ()]
    timeline = conn.execute(
        "SELECT at, transition, status, severity, by, note FROM alert_timeline "
        "WHERE alert_id = %s ORDER BY at, id",
        (alert_id,),
    ).fetchall()
    return dict(zip(names, row, strict=True)), timeline


_ALLOWED = {
    "ack": ("new",),
    "resolve": ("new", "acknowledged"),
    "assign": ("new", "acknowledged"),
}


def act(
    conn: psycopg.Connection,
    alert_id: str,
    action: str,
    by: str,
    note: str = "",
    to: str | None = None,
) -> str:
    """Acknowledge, resolve or assign an alert, with a timeline entry; returns its new status."""
    row = conn.execute(
        "SELECT status, severity FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)
    ).fetchone()
    if row is None:
        raise UnknownItem(f"no alert {alert_id!r}")
    status, severity = row
    if status not in _ALLOWED[action]:
        raise AlertActionError(f"alert {alert_id} is {status}: cannot {action} it")
    if action == "ack":
        new = "acknowledged"
        conn.execute(
            "UPDATE alerts SET status = %s, acknowledged_at = now(), acknowledged_by = %s, "
            "updated_at = now() WHERE id = %s",
            (new, by, alert_id),
        )
        transition = "acknowledged"
    elif action == "resolve":
        new = "resolved"
        conn.execute(
            "UPDATE alerts SET status = %s, resolved_at = now(), resolved_by = %s, "
            "updated_at = now() WHERE id = %s",
            (new, by, alert_id),
        )
        transition = "resolved"
    else:
        new = status
        conn.execute(
            "UPDATE alerts SET assigned_to = %s, updated_at = now() WHERE id = %s",
            (to, alert_id),
        )
        transition = "assigned"
        note = f"to {to}" + (f": {note}" if note else "")
    conn.execute(
        "INSERT INTO alert_timeline (alert_id, at, transition, status, severity, by, note) "
        "VALUES (%s, now(), %s, %s, %s, %s, %s)",
        (alert_id, transition, new, severity, by, note),
    )
    conn.commit()
    return new
