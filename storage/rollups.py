"""Downsampled telemetry and windowed performance metrics, computed from the raw rows.

Exact by construction, cheap in the ingest path:

* An hour is rolled up (``telemetry_hourly`` per device and metric, and its four 15-minute
  ``performance_metrics`` windows) from the raw telemetry once it has ended and ``GRACE_MS``
  has passed; ``rollup_state`` remembers how far that has got.
* A reading that arrives for an hour that has already ended (late, replayed, backfilled) makes
  its writer mark that device and hour in ``rollup_dirty`` in the same transaction; the mark
  gets the hour recomputed from the raw rows. Late readings therefore correct their windows, and
  redeliveries (stored once) can never be counted twice.
* ``telemetry_daily`` is the sum of a day's hours, computed when the day has ended, and again
  for a device whose closed day got late readings.

Means, minima, maxima, sums and counts per metric; the daily mean is the hourly sums over the
hourly counts, equal to the mean over the raw readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from twin import defaults

WINDOW_MINUTES = (5, 10, 15, 20, 30, 60)
"""Window lengths that tile an hour, so an hour's recompute covers whole windows."""
RUNNING = (
    "(coalesce((values->>'load_pct')::float8, 0) > 5 OR coalesce((values->>'rpm')::float8, 0) > 0"
    " OR coalesce((values->>'speed_kmh')::float8, 0) > 0)"
)
"""A reading of a device at work: a machine under load, an engine turning, a vehicle moving."""


MARK_LATE = (
    "INSERT INTO rollup_dirty (device_id, bucket) "
    "SELECT DISTINCT * FROM unnest(%s::text[], %s::timestamptz[]) ON CONFLICT DO NOTHING"
)

_RANGE = "SELECT device_id, ts, values FROM telemetry WHERE ts >= %(a)s AND ts < %(b)s"
_PAIRS = (
    "SELECT t.device_id, t.ts, t.values FROM unnest(%(devices)s::text[], "
    "%(hours)s::timestamptz[]) AS d(device_id, bucket) JOIN telemetry t "
    "ON t.device_id = d.device_id AND t.ts >= d.bucket AND t.ts < d.bucket + interval '1 hour'"
)

_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"

_METRIC_WINDOWS = (
    "CREATE TEMP TABLE rollup_metric_windows AS "
    f"SELECT device_id, date_bin(%(window)s::interval, ts, {_ORIGIN}) AS ws, kv.key, "
    "count(*) AS n, sum(kv.value::float8) AS sum, min(kv.value::float8) AS lo, "
    "max(kv.value::float8) AS hi "
    "FROM ({src}) AS src, jsonb_each_text(src.values) AS kv GROUP BY 1, 2, 3"
)
"""Every metric's count, sum, min and max per device and window: the one pass that expands
the readings' JSON. The hourly tier and the windows' ``metrics`` are both made from it, as
the windows tile the hour. (CREATE TABLE AS may run in parallel; INSERT ... SELECT may not.)"""

_HOURLY = (
    "INSERT INTO telemetry_hourly (device_id, bucket, metric, n, mean, min, max, sum) "
    "SELECT device_id, date_trunc('hour', ws, 'UTC'), key, sum(n), sum(sum) / sum(n), "
    "min(lo), max(hi), sum(sum) FROM rollup_metric_windows GROUP BY 1, 2, 3 "
    "ON CONFLICT (device_id, bucket, metric) DO UPDATE SET n = EXCLUDED.n, "
    "mean = EXCLUDED.mean, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum"
)

_WINDOWS = (
    "WITH src AS ({src}), w AS ("
    f"SELECT device_id, date_bin(%(window)s::interval, ts, {_ORIGIN}) AS ws, "
    "count(*) AS readings, avg((values->>'load_pct')::float8) AS load, "
    "avg(coalesce((values->>'temperature_c')::float8, (values->>'coolant_temp_c')::float8)) "
    "AS temp, avg((values->>'vibration_mm_s')::float8) AS vib, "
    f"100.0 * count(*) FILTER (WHERE {RUNNING}) / count(*) AS up "
    "FROM src GROUP BY 1, 2), "
    "mj AS (SELECT device_id, ws, jsonb_object_agg(key, jsonb_build_object("
    "'mean', round((sum / n)::numeric, 4), 'min', lo, 'max', hi)) AS metrics "
    "FROM rollup_metric_windows GROUP BY 1, 2) "
    "INSERT INTO performance_metrics (device_id, window_start, window_end, readings, "
    "average_load, average_temperature, average_vibration, uptime_pct, anomaly_count, "
    "efficiency_rating, metrics) "
    "SELECT w.device_id, w.ws, w.ws + %(window)s::interval, w.readings, w.load, w.temp, w.vib, "
    "w.up, a.n, w.up * greatest(0, 1 - 0.1 * a.n), mj.metrics FROM w "
    "JOIN mj ON mj.device_id = w.device_id AND mj.ws = w.ws CROSS JOIN LATERAL ("
    "SELECT count(*) AS n FROM anomalies an WHERE an.device_id = w.device_id "
    "AND an.started_at >= w.ws AND an.started_at < w.ws + %(window)s::interval) AS a "
    "ON CONFLICT (device_id, window_start) DO UPDATE SET readings = EXCLUDED.readings, "
    "average_load = EXCLUDED.average_load, average_temperature = EXCLUDED.average_temperature, "
    "average_vibration = EXCLUDED.average_vibration, uptime_pct = EXCLUDED.uptime_pct, "
    "anomaly_count = EXCLUDED.anomaly_count, efficiency_rating = EXCLUDED.efficiency_rating, "
    "metrics = EXCLUDED.metrics, updated_at = now()"
)
"""Per window: every metric's mean, min and max (``metrics``), the key averages as columns,
uptime (the share of the window's readings that show the device at work) and efficiency (that
uptime, less a tenth for every anomaly that started in the window)."""

_DAILY = (
    "INSERT INTO telemetry_daily (device_id, bucket, metric, n, mean, min, max, sum) "
    "SELECT device_id, date_trunc('day', bucket, 'UTC'), metric, sum(n), sum(sum) / sum(n), "
    "min(min), max(max), sum(sum) FROM telemetry_hourly "
    "WHERE bucket >= %(a)s AND bucket < %(b)s {devices} GROUP BY 1, 2, 3 "
    "ON CONFLICT (device_id, bucket, metric) DO UPDATE SET n = EXCLUDED.n, "
    "mean = EXCLUDED.mean, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum"
)


def roll_hours(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    window_minutes: int = defaults.WINDOW_MINUTES,
) -> None:
    """Every device's hours in [start, end): hourly tier and performance windows."""
    _roll(conn, _RANGE, {"a": start, "b": end}, window_minutes)


def roll_pairs(
    conn: psycopg.Connection,
    pairs: Sequence[tuple[str, datetime]],
    window_minutes: int = defaults.WINDOW_MINUTES,
) -> None:
    """Some devices' hours again (late readings)."""
    if not pairs:
        return
    args: dict[str, Any] = {"devices": [d for d, _ in pairs], "hours": [h for _, h in pairs]}
    _roll(conn, _PAIRS, args, window_minutes)


def _roll(conn: psycopg.Connection, src: str, args: dict[str, Any], window_minutes: int) -> None:
    args = {**args, "window": f"{window_minutes} minutes"}
    conn.execute("DROP TABLE IF EXISTS rollup_metric_windows")  # left by an autocommit failure
    conn.execute(_METRIC_WINDOWS.format(src=src), args)
    conn.execute(_HOURLY)
    conn.execute(_WINDOWS.format(src=src), args)
    conn.execute("DROP TABLE rollup_metric_windows")


def roll_days(
    conn: psycopg.Connection, start: datetime, end: datetime, devices: Sequence[str] = ()
) -> None:
    """Daily tier for the days in [start, end), of every device or of ``devices``."""
    args: dict[str, Any] = {"a": start, "b": end}
    where = ""
    if devices:
        where = "AND device_id = ANY(%(devices)s)"
        args["devices"] = list(devices)
    conn.execute(_DAILY.format(devices=where), args)


def watermark(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute("SELECT done_until FROM rollup_state WHERE name = 'hourly'").fetchone()
    return row[0] if row else None


def set_watermark(conn: psycopg.Connection, until: datetime) -> None:
    conn.execute(
        "INSERT INTO rollup_state (name, done_until) VALUES ('hourly', %s) "
        "ON CONFLICT (name) DO UPDATE SET done_until = EXCLUDED.done_until",
        (until,),
    )


def claim_marks(conn: psycopg.Connection, limit: int = 5000) -> list[tuple[str, datetime]]:
    """Take late-reading marks (in the caller's transaction: they come back if it fails)."""
    rows = conn.execute(
        "DELETE FROM rollup_dirty WHERE (device_id, bucket) IN (SELECT device_id, bucket "
        "FROM rollup_dirty LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING device_id, bucket",
        (limit,),
    ).fetchall()
    return [(d, b) for d, b in rows]


def prune(conn: psycopg.Connection, hourly_days: int, daily_days: int) -> int:
    """Drop hourly tiers and windows older than ``hourly_days``, daily older than
    ``daily_days`` (0: keep forever). In the caller's transaction; returns rows deleted."""
    deleted = 0
    if hourly_days > 0:
        for table, column in (
            ("telemetry_hourly", "bucket"),
            ("performance_metrics", "window_start"),
        ):
            deleted += conn.execute(
                f"DELETE FROM {table} WHERE {column} < now() - make_interval(days => %s)",
                (hourly_days,),
            ).rowcount
    if daily_days > 0:
        deleted += conn.execute(
            "DELETE FROM telemetry_daily WHERE bucket < now() - make_interval(days => %s)",
            (daily_days,),
        ).rowcount
    return max(deleted, 0)


def lock(conn: psycopg.Connection) -> None:
    """One rollup writer at a time, for the rest of this transaction (engines share the work)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('twin-rollups'))")
