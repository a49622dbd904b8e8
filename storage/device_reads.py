"""The device registry as people look into it: filtered pages, one device, fleet counts.

Pages are cursor-based on the device id (the registry's key), so a page costs an index range
scan however deep into the fleet it is, and devices added meanwhile never shift a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from twin.alerts.rules import SEVERITIES


@dataclass(frozen=True)
class DeviceFilter:
    kind: str | None = None
    profile: str | None = None
    group: str | None = None
    """The device attribute ``group`` (as notification routes use it)."""
    search: str | None = None
    """A part of the device id, or of its model or VIN attribute (case-insensitive)."""


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    kind: str
    profile: str
    attributes: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    open_alerts: int
    worst_severity: str | None


_ROW = (
    "SELECT d.device_id, d.kind, d.profile, d.attributes, d.first_seen, "
    "greatest(d.last_seen, s.last_seen), "
    "(SELECT count(*) FROM alerts a WHERE a.device_id = d.device_id "
    "AND a.status <> 'resolved'), "
    "(SELECT a.severity FROM alerts a WHERE a.device_id = d.device_id "
    "AND a.status <> 'resolved' ORDER BY array_position(%(order)s::text[], a.severity) DESC "
    "LIMIT 1) "
    "FROM devices d LEFT JOIN twin_snapshots s USING (device_id)"
)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def page(
    conn: psycopg.Connection, where: DeviceFilter, after: str | None, limit: int
) -> list[DeviceRow]:
    """Up to ``limit`` devices after the device id ``after``, in id order."""
    clauses, args = [], {"order": list(SEVERITIES), "limit": limit}
    if after is not None:
        clauses.append("d.device_id > %(after)s")
        args["after"] = after
    if where.kind:
        clauses.append("d.kind = %(kind)s")
        args["kind"] = where.kind
    if where.profile:
        clauses.append("d.profile = %(profile)s")
        args["profile"] = where.profile
    if where.group:
        clauses.append("d.attributes->>'group' = %(group)s")
        args["group"] = where.group
    if where.search:
        clauses.append(
            "(d.device_id ILIKE %(like)s OR d.attributes->>'model' ILIKE %(like)s "
            "OR d.attributes->>'vin' ILIKE %(like)s)"
        )
        args["like"] = _like(where.search)
    sql = _ROW + (" WHERE " + " AND ".join(clauses) if clauses else "")
    sql += " ORDER BY d.device_id LIMIT %(limit)s"
    return [DeviceRow(*row) for row in conn.execute(sql, args).fetchall()]


def one(conn: psycopg.Connection, device_id: str) -> DeviceRow | None:
    row = conn.execute(
        _ROW + " WHERE d.device_id = %(id)s", {"order": list(SEVERITIES), "id": device_id}
    ).fetchone()
    return DeviceRow(*row) if row is not None else None


def snapshot(conn: psycopg.Connection, device_id: str) -> tuple[datetime, str] | None:
    """The twin's newest stored snapshot: when it was taken, and its encoded state."""
    row = conn.execute(
        "SELECT taken_at, state::text FROM twin_snapshots WHERE device_id = %s", (device_id,)
    ).fetchone()
    return (row[0], row[1]) if row is not None else None


@dataclass(frozen=True)
class FleetCounts:
    devices: int
    by_kind: dict[str, int]
    by_profile: dict[str, int]
    open_alerts_by_severity: dict[str, int]
    devices_with_open_alerts: int
    open_anomalies: int
    open_recommendations: int


def fleet_counts(conn: psycopg.Connection) -> FleetCounts:
    by_kind: dict[str, int] = dict(
        conn.execute("SELECT kind, count(*) FROM devices GROUP BY 1").fetchall()
    )
    by_profile: dict[str, int] = dict(
        conn.execute("SELECT profile, count(*) FROM devices GROUP BY 1").fetchall()
    )
    severities: dict[str, int] = dict(
        conn.execute(
            "SELECT severity, count(*) FROM alerts WHERE status <> 'resolved' GROUP BY 1"
        ).fetchall()
    )
    row = conn.execute(
        "SELECT (SELECT count(DISTINCT device_id) FROM alerts WHERE status <> 'resolved'), "
        "(SELECT count(*) FROM anomalies WHERE ended_at IS NULL), "
        "(SELECT count(*) FROM part_recommendations WHERE status = 'open')"
    ).fetchone()
    assert row is not None
    return FleetCounts(
        devices=sum(by_kind.values()),
        by_kind=by_kind,
        by_profile=by_profile,
        open_alerts_by_severity={s: int(severities.get(s, 0)) for s in SEVERITIES},
        devices_with_open_alerts=int(row[0]),
        open_anomalies=int(row[1]),
        open_recommendations=int(row[2]),
    )


@dataclass(frozen=True)
class AnomalyRow:
    device_id: str
    detector: str
    metric: str
    started_at: datetime
    ended_at: datetime | None
    kind: str
    severity: str
    score: float
    expected: float | None
    observed: float | None
    explanation: list[dict[str, Any]] | None = None
    """A relation anomaly's metrics, each ``{"metric", "expected", "observed"}``."""


def anomalies(
    conn: psycopg.Connection,
    *,
    device: str | None = None,
    open_only: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[AnomalyRow]:
    """Anomaly episodes, newest first (an episode overlapping ``[since, until)`` counts)."""
    clauses: list[str] = []
    args: list[object] = []
    if device:
        clauses.append("device_id = %s")
        args.append(device)
    if open_only:
        clauses.append("ended_at IS NULL")
    if since:
        clauses.append("(ended_at IS NULL OR ended_at >= %s)")
        args.append(since)
    if until:
        clauses.append("started_at < %s")
        args.append(until)
    sql = (
        "SELECT device_id, detector, metric, started_at, ended_at, kind, severity, score, "
        "expected, observed, explanation FROM anomalies"
        + (" WHERE " + " AND ".join(clauses) if clauses else "")
        + " ORDER BY started_at DESC LIMIT %s"
    )
    return [AnomalyRow(*row) for row in conn.execute(sql, (*args, limit)).fetchall()]
