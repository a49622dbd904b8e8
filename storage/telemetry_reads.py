"""A device's telemetry over a time range, from the tier that fits: raw rows, hourly or daily.

Raw rows come straight from the partitioned ``telemetry`` table (its primary key starts with
the device id, so a device's range is an index range scan); the tiers hold per metric and
bucket the count, mean, minimum and maximum. Every read is bounded: at most ``limit`` points,
with the time to continue from when the range holds more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

TIERS = {"raw": "telemetry", "1h": "telemetry_hourly", "1d": "telemetry_daily"}
STEP = {"raw": timedelta(0), "1h": timedelta(hours=1), "1d": timedelta(days=1)}


@dataclass
class Series:
    step: str
    points: list[dict[str, Any]] = field(default_factory=list)
    """Raw: ``{ts, seq, values}``; tiers: ``{ts, values (mean), min, max, n}``."""
    next_from: datetime | None = None
    """Where to continue when the range held more than the limit."""


def read(
    conn: psycopg.Connection,
    device_id: str,
    start: datetime,
    end: datetime,
    step: str,
    metrics: Sequence[str],
    limit: int,
) -> Series:
    """Points of ``[start, end)``, oldest first; only ``metrics`` when given."""
    if step == "raw":
        return _raw(conn, device_id, start, end, metrics, limit)
    return _tier(conn, TIERS[step], step, device_id, start, end, metrics, limit)


def _raw(
    conn: psycopg.Connection,
    device_id: str,
    start: datetime,
    end: datetime,
    metrics: Sequence[str],
    limit: int,
) -> Series:
    rows = conn.execute(
        'SELECT ts, seq, "values" FROM telemetry WHERE device_id = %s AND ts >= %s AND ts < %s '
        "ORDER BY ts, seq LIMIT %s",
        (device_id, start, end, limit + 1),
    ).fetchall()
    series = Series("raw")
    if len(rows) > limit:
        series.next_from = rows[limit][0]
        rows = rows[:limit]
        while rows and rows[-1][0] == series.next_from:  # a time's readings stay together
            rows.pop()
    wanted = set(metrics)
    for ts, seq, values in rows:
        if wanted:
            values = {k: v for k, v in values.items() if k in wanted}
            if not values:
                continue
        series.points.append({"ts": ts, "seq": None if seq == -1 else seq, "values": values})
    return series


def _tier(
    conn: psycopg.Connection,
    table: str,
    step: str,
    device_id: str,
    start: datetime,
    end: datetime,
    metrics: Sequence[str],
    limit: int,
) -> Series:
    """One point per bucket; ``limit`` counts buckets."""
    sql = (
        f"SELECT bucket, metric, n, mean, min, max FROM {table} WHERE device_id = %(d)s "
        "AND bucket >= %(a)s AND bucket < %(b)s "
        + ("AND metric = ANY(%(m)s) " if metrics else "")
        + "AND bucket IN (SELECT DISTINCT bucket FROM "
        + table
        + " WHERE device_id = %(d)s AND bucket >= %(a)s AND bucket < %(b)s "
        "ORDER BY bucket LIMIT %(n)s) ORDER BY bucket, metric"
    )
    rows = conn.execute(
        sql, {"d": device_id, "a": start, "b": end, "m": list(metrics), "n": limit + 1}
    ).fetchall()
    series = Series(step)
    by_bucket: dict[datetime, dict[str, Any]] = {}
    for bucket, metric, n, mean, low, high in rows:
        point = by_bucket.get(bucket)
        if point is None:
            point = by_bucket[bucket] = {"ts": bucket, "values": {}, "min": {}, "max": {}, "n": {}}
        point["values"][metric] = mean
        point["min"][metric], point["max"][metric], point["n"][metric] = low, high, n
    points = list(by_bucket.values())
    if len(points) > limit:
        series.next_from = points[limit]["ts"]
        points = points[:limit]
    series.points = points
    return series
