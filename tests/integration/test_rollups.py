"""Hourly and daily tiers and 15-minute windows: equal to SQL over the raw rows, whatever the
order, lateness or duplication of the input."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from flows.jobs.rollups import backfill, floor_hour, run_once
from storage import partitions, reports, rollups
from storage.database import connect, migrate, psycopg_url
from storage.maintenance import maintain
from storage.pg_writer import PgWriter
from tests.conftest import ROOT, fresh_database
from tests.integration.helpers import q
from twin.records import Reading, TwinOutput


@pytest.fixture
def now() -> datetime:
    """The tests' clock: half past the hour before this one, read when the test runs. Every
    hour a test writes to has ended half an hour or more before (the writer marks late readings
    by the real clock), whatever the minute it runs at."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(minutes=30)


@pytest.fixture
def db(pg_admin_url: str) -> Iterator[str]:
    with fresh_database(pg_admin_url) as url:
        migrate(url)
        yield url


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def write(url: str, device: str, readings: list[tuple[datetime, dict[str, float]]], seq0: int = 0):
    rows = [Reading(device, ms(t), v, ms(t), seq=seq0 + i) for i, (t, v) in enumerate(readings)]
    out = TwinOutput(device_id=device, readings=rows, dead_letters=[], events=[], live=None)
    PgWriter(url).write([out])


RAW_HOURLY = (
    "SELECT device_id, date_trunc('hour', ts, 'UTC'), kv.key, count(*), "
    "round(avg(kv.value::float8)::numeric, 9), min(kv.value::float8), max(kv.value::float8), "
    "round(sum(kv.value::float8)::numeric, 9) FROM telemetry, jsonb_each_text(values) kv "
    "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
TIER = (
    "SELECT device_id, bucket, metric, n, round(mean::numeric, 9), min, max, "
    "round(sum::numeric, 9) FROM {} ORDER BY 1, 2, 3"
)


def hourly_matches_raw(url: str) -> None:
    assert q(url, TIER.format("telemetry_hourly")) == q(url, RAW_HOURLY)


def test_late_out_of_order_and_repeated_readings_correct_their_hours(db: str, now: datetime):
    rng = random.Random(3)
    base = floor_hour(now) - timedelta(hours=4)

    def value() -> dict[str, float]:
        return {"temperature_c": round(rng.uniform(40, 90), 2), "load_pct": rng.uniform(0, 100)}

    readings = [(base + timedelta(seconds=rng.uniform(0, 3 * 3600)), value()) for _ in range(300)]
    rng.shuffle(readings)
    write(db, "pump-1", readings[:200])
    write(db, "pump-1", readings[:50])  # redelivered: stored once, must not count twice
    with connect(db) as conn:
        rollups.set_watermark(conn, floor_hour(now))  # the hours are past: only marks roll them
        conn.commit()
        first = run_once(conn, now)
    assert first.late_hours == 3 and first.hours == 0
    hourly_matches_raw(db)
    write(db, "pump-1", readings[200:], seq0=200)  # the rest arrives even later
    with connect(db) as conn:
        run_once(conn, now)
    hourly_matches_raw(db)
    assert (
        sum(n for (n,) in q(db, "SELECT n FROM telemetry_hourly WHERE metric = 'load_pct'")) == 300
    )
    assert q(db, "SELECT count(*) FROM rollup_dirty") == [(0,)]


def test_hours_that_end_are_rolled_up_from_the_raw_rows(db: str, now: datetime):
    start = floor_hour(now) - timedelta(hours=3)
    with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
        partitions.ensure(conn, {start.date(), (start + timedelta(hours=3)).date()})
        conn.execute(  # rows that came in on time (no late marks): the watermark covers them
            "INSERT INTO telemetry (device_id, ts, seq, values, received_at) "
            "SELECT 'car-1', %s + make_interval(secs => g * 30), g, "
            "jsonb_build_object('speed_kmh', g %% 90, 'rpm', 1000 + g), now() "
            "FROM generate_series(0, 359) g",
            (start,),
        )
    with connect(db) as conn:
        rollups.set_watermark(conn, start)
        conn.commit()
        done = run_once(conn, now)
        assert done.hours == 3 and run_once(conn, now).hours == 0  # nothing twice
    hourly_matches_raw(db)
    assert q(db, "SELECT done_until FROM rollup_state") == [(floor_hour(now),)]


def test_days_equal_the_raw_rows_once_they_end(db: str, now: datetime):
    day = (floor_hour(now) - timedelta(days=2)).replace(hour=0)
    readings = [(day + timedelta(minutes=7 * i), {"vibration_mm_s": float(i % 13)})
                for i in range(200)]  # fmt: skip
    write(db, "conv-1", readings)
    with connect(db) as conn:
        rollups.set_watermark(conn, floor_hour(now))
        conn.commit()
        run_once(conn, now)
    raw = q(db, "SELECT count(*), round(avg((values->>'vibration_mm_s')::float8)::numeric, 9), "
            "min((values->>'vibration_mm_s')::float8), max((values->>'vibration_mm_s')::float8) "
            "FROM telemetry WHERE ts >= %s AND ts < %s", day, day + timedelta(days=1))  # fmt: skip
    daily = q(db, "SELECT n, round(mean::numeric, 9), min, max FROM telemetry_daily "
              "WHERE device_id = 'conv-1' AND bucket = %s", day)  # fmt: skip
    assert daily == raw and daily[0][0] > 0


def test_fifteen_minute_windows_count_uptime_averages_and_anomalies(db: str, now: datetime):
    window = floor_hour(now) - timedelta(hours=2) + timedelta(minutes=15)
    readings = [
        (window + timedelta(minutes=9), {"load_pct": 0.0, "temperature_c": 30.0}),
        (window + timedelta(minutes=1), {"load_pct": 60.0, "temperature_c": 70.0}),
        (window + timedelta(minutes=14), {"load_pct": 80.0, "temperature_c": 80.0}),
        (window + timedelta(minutes=5), {"load_pct": 40.0, "temperature_c": 60.0}),
    ]  # out of order on purpose
    write(db, "pump-2", readings)
    with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO anomalies (device_id, detector, metric, started_at, kind, severity, "
            "score, model_version) VALUES ('pump-2', 'level', 'temperature_c', %s, 'high', "
            "'warning', 0.7, 'x')",
            (window + timedelta(minutes=14),),
        )
    with connect(db) as conn:
        rollups.set_watermark(conn, floor_hour(now))
        conn.commit()
        run_once(conn, now)
    rows = q(db, "SELECT window_end - window_start, readings, average_load, average_temperature, "
             "uptime_pct, anomaly_count, efficiency_rating FROM performance_metrics "
             "WHERE device_id = 'pump-2' AND window_start = %s", window)  # fmt: skip
    assert rows == [(timedelta(minutes=15), 4, 45.0, 60.0, 75.0, 1, 67.5)]
    (metrics,) = q(db, "SELECT metrics FROM performance_metrics WHERE device_id = 'pump-2'")[0]
    assert metrics == {
        "load_pct": {"mean": 45.0, "min": 0.0, "max": 80.0},
        "temperature_c": {"mean": 60.0, "min": 30.0, "max": 80.0},
    }


def test_window_length_is_configurable(db: str, now: datetime):
    hour = floor_hour(now) - timedelta(hours=2)
    write(db, "pump-3", [(hour + timedelta(minutes=m), {"load_pct": 50.0}) for m in (1, 16, 29)])
    with connect(db) as conn:
        backfill(conn, hour, hour + timedelta(hours=1), window_minutes=30)
    rows = q(db, "SELECT window_start, window_end - window_start, readings FROM "
             "performance_metrics WHERE device_id = 'pump-3'")  # fmt: skip
    assert rows == [(hour, timedelta(minutes=30), 3)]


def test_backfill_and_retention(db: str, now: datetime):
    start = floor_hour(now) - timedelta(hours=5)
    write(
        db,
        "old-1",
        [(start + timedelta(minutes=20 * i), {"power_kw": float(i)}) for i in range(12)],
    )
    with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
        conn.execute("DELETE FROM telemetry_hourly")
        conn.execute("DELETE FROM rollup_dirty")
    with connect(db) as conn:
        done = backfill(conn, start, floor_hour(now))
    assert done.hours == 5
    hourly_matches_raw(db)
    with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
        conn.execute("UPDATE telemetry_hourly SET bucket = bucket - interval '400 days'")
    report = maintain(db, ahead_days=1, retention_days=30, hourly_retention_days=365)
    assert report.rollups_pruned >= 4
    assert q(db, "SELECT count(*) FROM telemetry_hourly") == [(0,)]


def test_daily_report_per_device_and_fleet(db: str, now: datetime):
    day = (floor_hour(now) - timedelta(days=1)).replace(hour=0)
    write(db, "pump-9", [(day + timedelta(minutes=10 * i), {"load_pct": 50.0 + i % 3,
                          "temperature_c": 60.0}) for i in range(36)])  # fmt: skip
    write(db, "car-9", [(day + timedelta(hours=2, minutes=i), {"speed_kmh": 0.0})
                        for i in range(10)])  # fmt: skip
    with psycopg.connect(psycopg_url(db), autocommit=True) as conn:
        conn.execute("UPDATE devices SET kind = 'machine' WHERE device_id = 'pump-9'")
        conn.execute(
            "INSERT INTO anomalies (device_id, detector, metric, started_at, kind, severity, "
            "score, model_version) VALUES ('pump-9', 'level', 'temperature_c', %s, 'high', "
            "'warning', 0.7, 'x')",
            (day + timedelta(hours=3),),
        )
        conn.execute(
            "INSERT INTO alerts (id, device_id, rule_id, rule_type, status, severity, "
            "peak_severity, first_seen, last_seen) VALUES ('a1', 'pump-9', "
            "'machine-overheating', 'threshold', 'new', 'major', 'major', %s, %s)",
            (day + timedelta(hours=4), day + timedelta(hours=5)),
        )
    with connect(db) as conn:
        rollups.set_watermark(conn, floor_hour(now))
        conn.commit()
        run_once(conn, now)  # the day has ended: its tier and (here, by hand) its reports
        fleet = reports.generate_daily(conn, day.date())
        pump = reports.load(conn, day.date(), "pump-9")
        car = reports.load(conn, day.date(), "car-9")
    assert pump["readings"] == 36 and pump["metrics"]["load_pct"]["n"] == 36
    assert pump["metrics"]["load_pct"]["mean"] == 51.0 and pump["uptime_pct"] == 100.0
    assert pump["anomalies"] == [{"detector": "level", "severity": "warning", "count": 1}]
    assert pump["alerts"] == [{"rule": "machine-overheating", "severity": "major",
                               "status": "new", "count": 1}]  # fmt: skip
    assert car["uptime_pct"] == 0.0  # parked all the time it reported
    assert fleet["devices_reporting"] == 2 and fleet["readings"] == 46
    assert fleet["attention"][0]["device_id"] == "pump-9"
    assert q(db, "SELECT count(*) FROM maintenance_reports WHERE day = %s", day.date()) == [(3,)]


def test_report_command(db: str, now: datetime):
    day = (floor_hour(now) - timedelta(days=1)).replace(hour=0)
    write(db, "pump-8", [(day + timedelta(minutes=30 * i), {"load_pct": 40.0}) for i in range(4)])
    env = {"TWIN_DATABASE_URL": db, "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "flows.cli", "report", "daily", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)

    fleet = run("--date", day.date().isoformat())
    assert fleet.returncode == 0, fleet.stderr
    assert f"Fleet daily report {day.date()}: 1 devices reporting" in fleet.stdout
    device = run("--date", day.date().isoformat(), "--device", "pump-8")
    assert "pump-8" in device.stdout and "load_pct" in device.stdout
    missing = run("--date", day.date().isoformat(), "--device", "nobody")
    assert missing.returncode == 2 and "no report for nobody on" in missing.stderr
    bad = run("--date", "22/11/2026")
    assert bad.returncode == 2 and "use YYYY-MM-DD" in bad.stderr
