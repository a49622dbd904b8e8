"""Read queries over the stores: what the engine has written (demo summary, load reports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from storage import partitions
from storage.database import connect
from storage.live_keys import LiveKeys


@dataclass
class StoreSummary:
    devices_by_kind: dict[str, int] = field(default_factory=dict)
    telemetry_rows: int = 0
    partitions: int = 0
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    snapshots: int = 0
    events: int = 0
    live_twins: int = 0
    positioned: int = 0
    latest_rows: list[tuple[str, str, str]] = field(default_factory=list)
    anomalies_by_detector: dict[str, int] = field(default_factory=dict)
    alerts_by_rule: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Rule → (open, resolved)."""
    notifications_by_status: dict[str, int] = field(default_factory=dict)
    latest_alerts: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(device, rule, severity, detail) of the newest alerts."""
    recommendations_open: int = 0
    recommended_devices: int = 0
    recommendations_reorder: int = 0
    hourly_rows: int = 0
    performance_windows: int = 0
    daily_report: str = ""
    """The newest fleet report in a line."""
    top_recommendations: list[tuple[Any, ...]] = field(default_factory=list)
    """(device, part, name, confidence, due) of the most urgent open recommendations."""

    @property
    def devices(self) -> int:
        return sum(self.devices_by_kind.values())

    @property
    def dead_letters(self) -> int:
        return sum(self.dead_letters_by_reason.values())


_NUMBERS = {  # StoreSummary field: a query of one number
    "telemetry_rows": "SELECT count(*) FROM telemetry",
    "snapshots": "SELECT count(*) FROM twin_snapshots",
    "events": "SELECT count(*) FROM device_events",
    "hourly_rows": "SELECT count(*) FROM telemetry_hourly",
    "performance_windows": "SELECT count(*) FROM performance_metrics",
}
_COUNTS = {  # StoreSummary field: a query of (key, count) pairs
    "devices_by_kind": "SELECT kind, count(*) FROM devices GROUP BY kind ORDER BY kind",
    "dead_letters_by_reason": (
        "SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY reason"
    ),
    "anomalies_by_detector": (
        "SELECT detector, count(*) FROM anomalies GROUP BY detector ORDER BY 2 DESC"
    ),
    "notifications_by_status": (
        "SELECT status, count(*) FROM notification_log GROUP BY status ORDER BY status"
    ),
}
_ROWS = {  # StoreSummary field: a query of rows
    "latest_alerts": (
        "SELECT device_id, rule_id, peak_severity, detail FROM alerts "
        "ORDER BY created_at DESC LIMIT 5"
    ),
    "top_recommendations": (
        "SELECT device_id, part, name, final_confidence, due FROM part_recommendations "
        "WHERE status = 'open' ORDER BY final_confidence DESC, due NULLS LAST LIMIT 5"
    ),
}
_ALERTS_BY_RULE = (
    "SELECT rule_id, count(*) FILTER (WHERE status <> 'resolved'), "
    "count(*) FILTER (WHERE status = 'resolved') FROM alerts "
    "GROUP BY rule_id ORDER BY count(*) DESC"
)
_OPEN_RECOMMENDATIONS = (
    "SELECT count(*), count(DISTINCT device_id), count(*) FILTER (WHERE reorder) "
    "FROM part_recommendations WHERE status = 'open'"
)
_NEWEST_REPORT = (
    "SELECT day, (SELECT count(*) FROM maintenance_reports m WHERE m.day = r.day), "
    "content FROM maintenance_reports r WHERE device_id IS NULL ORDER BY day DESC LIMIT 1"
)
_LATEST_ROWS = 'SELECT device_id, ts, "values"::text FROM telemetry ORDER BY ts DESC LIMIT 3'


def summarize(database_url: str, redis_url: str | None, redis_prefix: str = "") -> StoreSummary:
    s = StoreSummary()
    with connect(database_url) as conn:
        for name, sql in _NUMBERS.items():
            row = conn.execute(sql).fetchone()
            setattr(s, name, int(row[0]) if row else 0)
        for name, sql in _COUNTS.items():
            setattr(s, name, dict(conn.execute(sql).fetchall()))
        for name, sql in _ROWS.items():
            setattr(s, name, conn.execute(sql).fetchall())
        s.partitions = len(partitions.existing_days(conn))
        s.alerts_by_rule = {
            rule: (int(open_), int(resolved))
            for rule, open_, resolved in conn.execute(_ALERTS_BY_RULE).fetchall()
        }
        row = conn.execute(_OPEN_RECOMMENDATIONS).fetchone()
        if row is not None:
            s.recommendations_open, s.recommended_devices, s.recommendations_reorder = row
        s.daily_report = _report_line(conn.execute(_NEWEST_REPORT).fetchone())
        s.latest_rows = [
            (d, ts.isoformat(timespec="milliseconds"), str(v))
            for d, ts, v in conn.execute(_LATEST_ROWS).fetchall()
        ]
    if redis_url:
        s.live_twins, s.positioned = _live_counts(redis_url, LiveKeys(redis_prefix))
    return s


def _report_line(report: tuple[Any, ...] | None) -> str:
    if report is None:
        return ""
    day, count, fleet = report
    return (
        f"{count} for {day} (fleet: {fleet['devices_reporting']} devices, uptime "
        f"{fleet['uptime_pct']} %, {fleet['recommendations_open']} open "
        "recommendations; twin report daily)"
    )


def _live_counts(redis_url: str, keys: LiveKeys) -> tuple[int, int]:
    """Twin hashes in Redis, and positioned devices."""
    client = redis.Redis.from_url(redis_url)
    try:
        twins = sum(
            1
            for key in client.scan_iter(match=keys.twin_pattern, count=1000)
            if keys.device_of(key.decode()) is not None
        )
        return twins, int(client.zcard(keys.geo))
    finally:
        client.close()


@dataclass
class Delivery:
    """What PostgreSQL holds of a set of devices' readings within a time window."""

    rows: int = 0
    distinct_readings: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    """Device timestamp → row written: p50, p95, p99, max (milliseconds)."""


def delivery(
    database_url: str,
    device_prefix: str,
    start_ms: int,
    end_ms: int,
    latency_from_ms: int | None = None,
) -> Delivery:
    """Rows, distinct (device, ts, seq) and latency of devices whose id starts with a prefix.

    Latency counts only readings from ``latency_from_ms`` on (e.g. after a warm-up).
    """
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    since = datetime.fromtimestamp((latency_from_ms or start_ms) / 1000, UTC)
    pattern = device_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, ts, seq)), "
            "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP "
            "(ORDER BY extract(epoch FROM ingested_at - ts)) FILTER (WHERE ts >= %s), "
            "max(extract(epoch FROM ingested_at - ts)) FILTER (WHERE ts >= %s) "
            "FROM telemetry WHERE device_id LIKE %s AND ts >= %s AND ts <= %s",
            (since, since, pattern, start, end),
        ).fetchone()
    assert row is not None
    rows, distinct, pcts, worst = row
    latency: dict[str, float] = {}
    if pcts is not None and worst is not None:
        latency = {
            "p50": float(pcts[0]) * 1000,
            "p95": float(pcts[1]) * 1000,
            "p99": float(pcts[2]) * 1000,
            "max": float(worst) * 1000,
        }
    return Delivery(rows=int(rows), distinct_readings=int(distinct), latency_ms=latency)


class LastSeen:
    """``last_seen_ms`` (the newest reading's device timestamp) of many twins, one round trip
    per read: what a load test watches to time device → Redis."""

    def __init__(self, redis_url: str, device_ids: list[str], prefix: str = "") -> None:
        self._client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self._keys = [LiveKeys(prefix).twin(d) for d in device_ids]

    def read(self) -> list[bytes | None] | None:
        """One value per device (None: no hash yet); None when Redis did not answer."""
        pipe = self._client.pipeline(transaction=False)
        for key in self._keys:
            pipe.hget(key, "last_seen_ms")
        try:
            return list(pipe.execute())
        except redis.RedisError:
            return None

    def close(self) -> None:
        self._client.close()


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}
