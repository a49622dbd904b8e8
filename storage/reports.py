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

from twin.maintenance.daily_report import DayFacts, device_report, fleet_report


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _by_device(rows: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        out.setdefault(row[0], []).append(row[1:])
    return out


def day_facts(conn: psycopg.Connection, day: date) -> DayFacts:
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
    return DayFacts(day, metrics, windows, anomalies, alerts, recs, kinds)


def generate_daily(
    conn: psycopg.Connection, day: date, now: datetime | None = None
) -> dict[str, Any]:
    """Generate and store the day's reports; returns the fleet report's content."""
    facts = day_facts(conn, day)
    devices = [device_report(facts, d) for d in sorted(facts.metrics)]
    fleet = fleet_report(facts, devices)
    rows = [(f"DAILY:{day.isoformat()}:{r['device_id']}", r["device_id"], r) for r in devices]
    rows.append((f"DAILY:{day.isoformat()}:fleet", None, fleet))
    generated = now or datetime.now(UTC)
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
