"""What rolling up one hour costs as the fleet grows (prints figures): the hourly tier and the
15-minute windows for every device, from the raw rows, as the engine does it when an hour
ends. Each device sent a 6-metric reading every 10 s for the hour (360 readings)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from storage import partitions, rollups
from storage.database import migrate, psycopg_url
from tests.conftest import fresh_database

pytestmark = pytest.mark.bench
HOUR = datetime(2026, 11, 20, 10, tzinfo=UTC)


@pytest.mark.parametrize("devices", [1_000, 5_000])
def test_one_hour_rolled_up(pg_admin_url: str, devices: int):
    with fresh_database(pg_admin_url) as url:
        migrate(url)
        with psycopg.connect(psycopg_url(url)) as conn:
            partitions.ensure(conn, [HOUR.date()])
            started = time.perf_counter()
            conn.execute(
                """
                INSERT INTO telemetry (device_id, ts, seq, "values", received_at)
                SELECT 'dev-' || d, %(hour)s + make_interval(secs => k * 10), k,
                       jsonb_build_object(
                         'temperature_c', 60 + (d %% 20) + random() * 5,
                         'vibration_mm_s', 2 + random(), 'load_pct', 40 + random() * 40,
                         'pressure_bar', 6 + random(), 'rpm', 1450 + random() * 30,
                         'power_kw', 11 + random() * 3),
                       %(hour)s + make_interval(secs => k * 10)
                FROM generate_series(1, %(devices)s) AS d, generate_series(0, 359) AS k
                """,
                {"hour": HOUR, "devices": devices},
            )
            conn.commit()
            loaded = time.perf_counter() - started
        with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
            conn.execute("ANALYZE telemetry")
        with psycopg.connect(psycopg_url(url)) as conn:
            started = time.perf_counter()
            rollups.roll_hours(conn, HOUR, HOUR + timedelta(hours=1), 15)
            conn.commit()
            took = time.perf_counter() - started
            hourly = conn.execute("SELECT count(*) FROM telemetry_hourly").fetchone()
            windows = conn.execute("SELECT count(*) FROM performance_metrics").fetchone()
        rows = devices * 360
        assert hourly == (devices * 6,) and windows == (devices * 4,)
        print(
            f"\n[bench rollup] {devices} devices, {rows} raw rows in the hour (loaded in "
            f"{loaded:.1f}s): hourly tier and windows in {took:.2f}s = {rows / took:,.0f} raw "
            f"rows/s, {took / devices * 1000:.2f} ms per device-hour"
        )
