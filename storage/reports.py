"""Daily maintenance reports: one per device that reported that day, and one for the fleet.

Built from what the engine already keeps: the hourly tier (metrics), the 15-minute windows
(uptime and efficiency), anomalies and alerts that started that day, and the open
recommendations. Stored as JSON in ``maintenance_reports`` under ``DAILY:{day}:{device}`` and
``DAILY:{day}:fleet``; generating a day again replaces its reports.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _by_device(rows: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        out.setdefault(row[0], []).append(row[1:])
    return out


def generate_daily(conn: psycopg.Connection, day: date) -> dict[str, Any]:
    """Generate and store the day's reports; returns the fleet report's content."""
    start, end = _day_bounds(day)
    span = {"a": start, "b": end}
    metrics = _by_device(conn.execute(
        "SELECT device_id, metric, sum(n), sum(sum) / sum(n), min(min), max(max) "
        "FROM telemetry_hourly WHERE bucket >= %(a)s AND bucket < %(b)s "
        "GROUP BY 1, 2 ORDER BY 1, 2", span,
    ).fetchall())  # fmt: skip
    windows = {
        d: (int(n), up, eff)
        for d, n, up, eff in conn.execute(
            "SELECT device_id, count(*), avg(uptime_pct), avg(efficiency_rating) "
            "FROM performance_metrics WHERE window_start >= %(a)s AND window_start < %(b)s "
            "GROUP BY 1", span,
        ).fetchall()
    }  # fmt: skip
    anomalies = _by_device(conn.execute(
        "SELECT device_id, detector, severity, count(*) FROM anomalies "
        "WHERE started_at >= %(a)s AND started_at < %(b)s GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        span,
    ).fetchall())  # fmt: skip
    alerts = _by_device(conn.execute(
        "SELECT device_id, rule_id, peak_severity, status, count(*) FROM alerts "
        "WHERE first_seen >= %(a)s AND first_seen < %(b)s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2",
        span,
    ).fetchall())  # fmt: skip
    recs = _by_device(conn.execute(
        "SELECT device_id, part, name, final_confidence, due, reorder FROM part_recommendations "
        "WHERE status = 'open' ORDER BY device_id, rank"
    ).fetchall())  # fmt: skip
    kinds: dict[str, str] = dict(conn.execute("SELECT device_id, kind FROM devices").fetchall())

    generated = datetime.now(UTC)
    fleet: dict[str, Any] = {
        "day": day.isoformat(),
        "devices_reporting": len(metrics),
        "readings": 0,
        "by_kind": {},
        "uptime_pct": None,
        "anomalies": {},
        "alerts": {},
        "recommendations_open": sum(len(v) for v in recs.values()),
        "reorders": sum(1 for v in recs.values() for r in v if r[4]),
        "attention": [],
    }
    uptimes: list[float] = []
    rows: list[tuple[str, str | None, dict[str, Any]]] = []
    for device_id in sorted(metrics):
        summary = {
            m: {"n": int(n), "mean": round(mean, 3), "min": lo, "max": hi}
            for m, n, mean, lo, hi in metrics[device_id]
        }
        readings = max((v["n"] for v in summary.values()), default=0)
        window = windows.get(device_id)
        device_anomalies = [
            {"detector": det, "severity": sev, "count": int(n)}
            for det, sev, n in anomalies.get(device_id, [])
        ]
        device_alerts = [
            {"rule": rule, "severity": sev, "status": status, "count": int(n)}
            for rule, sev, status, n in alerts.get(device_id, [])
        ]
        device_recs = [
            {"part": part, "name": name, "confidence": conf,
             "due": due.isoformat() if due else None, "reorder": reorder}
            for part, name, conf, due, reorder in recs.get(device_id, [])[:5]
        ]  # fmt: skip
        uptime = round(window[1], 1) if window and window[1] is not None else None
        if uptime is not None:
            uptimes.append(uptime)
        content: dict[str, Any] = {
            "day": day.isoformat(),
            "device_id": device_id,
            "kind": kinds.get(device_id, ""),
            "readings": readings,
            "metrics": summary,
            "uptime_pct": uptime,
            "efficiency_rating": round(window[2], 1) if window and window[2] is not None else None,
            "anomalies": device_anomalies,
            "alerts": device_alerts,
            "recommendations": device_recs,
        }
        rows.append((f"DAILY:{day.isoformat()}:{device_id}", device_id, content))
        fleet["readings"] += readings
        kind = content["kind"] or "unknown"
        fleet["by_kind"][kind] = fleet["by_kind"].get(kind, 0) + 1
        by_detector, by_severity = fleet["anomalies"], fleet["alerts"]
        for a in device_anomalies:
            by_detector[a["detector"]] = by_detector.get(a["detector"], 0) + a["count"]
        for a in device_alerts:
            by_severity[a["severity"]] = by_severity.get(a["severity"], 0) + a["count"]
        found = sum(a["count"] for a in device_anomalies)
        if device_alerts or found:
            fleet["attention"].append(
                {"device_id": device_id, "alerts": len(device_alerts), "anomalies": found}
            )
    fleet["uptime_pct"] = round(sum(uptimes) / len(uptimes), 1) if uptimes else None
    fleet["attention"] = sorted(
        fleet["attention"], key=lambda a: (-a["alerts"], -a["anomalies"], a["device_id"])
    )[:10]
    rows.append((f"DAILY:{day.isoformat()}:fleet", None, fleet))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO maintenance_reports (report_id, report_type, day, device_id, "
            "generated_at, content) VALUES (%s, 'DAILY', %s, %s, %s, %s) "
            "ON CONFLICT (report_id) DO UPDATE SET generated_at = EXCLUDED.generated_at, "
            "content = EXCLUDED.content",
            [(rid, day, device, generated, Jsonb(content)) for rid, device, content in rows],
        )
    conn.commit()
    return fleet


def load(conn: psycopg.Connection, day: date, device_id: str | None = None) -> dict[str, Any]:
    key = f"DAILY:{day.isoformat()}:{device_id or 'fleet'}"
    row = conn.execute(
        "SELECT content FROM maintenance_reports WHERE report_id = %s", (key,)
    ).fetchone()
    if row is None:
        raise LookupError(key)
    content: dict[str, Any] = row[0]
    return content
