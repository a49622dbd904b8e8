"""Rolls telemetry up into hourly and daily tiers and 15-minute performance windows.

A thread of ``twin run`` (or ``twin rollup`` once, for a backfill): every 30 s it rolls up the
hours that have ended (``storage.rollups``), then the hours that got late readings, then the
days that have ended, each with its daily maintenance reports (``storage.reports``). Several
engines may run it: an advisory lock keeps them from rolling up the same hour together.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from flows.runtime.rounds import RoundThread
from storage import reports, rollups
from twin import defaults
from twin.rollup_schedule import GRACE_MS

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
GRACE = timedelta(milliseconds=GRACE_MS)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0)


@dataclass
class RollupResult:
    hours: int = 0
    late_hours: int = 0
    days: int = 0


def run_once(
    conn: psycopg.Connection,
    now: datetime | None = None,
    window_minutes: int = defaults.WINDOW_MINUTES,
) -> RollupResult:
    """Roll up what is due at ``now``; one transaction per hour, so progress is kept."""
    now = now or datetime.now(UTC)
    done = RollupResult()
    rollups.lock(conn)
    mark = rollups.watermark(conn)
    if mark is None:  # first run: from the current hour on (older data: twin rollup --since)
        rollups.set_watermark(conn, floor_hour(now - GRACE))
        conn.commit()
        return done
    while mark + HOUR + GRACE <= now:
        rollups.roll_hours(conn, mark, mark + HOUR, window_minutes)
        mark += HOUR
        if mark == floor_day(mark):  # a day has ended: its tier and its reports
            rollups.roll_days(conn, mark - DAY, mark)
            reports.generate_daily(conn, (mark - DAY).date())
            done.days += 1
        rollups.set_watermark(conn, mark)
        conn.commit()
        rollups.lock(conn)
        done.hours += 1
    while True:
        pairs = rollups.claim_marks(conn)
        if not pairs:
            break
        rollups.roll_pairs(conn, pairs, window_minutes)
        closed: dict[datetime, set[str]] = {}
        for device, hour in pairs:
            day = floor_day(hour)
            if day + DAY <= mark:  # days still open are rolled up when they end
                closed.setdefault(day, set()).add(device)
        for day, devices in closed.items():
            rollups.roll_days(conn, day, day + DAY, sorted(devices))
        conn.commit()
        rollups.lock(conn)
        done.late_hours += len(pairs)
    conn.commit()
    return done


def backfill(
    conn: psycopg.Connection,
    since: datetime,
    until: datetime,
    window_minutes: int = defaults.WINDOW_MINUTES,
) -> RollupResult:
    """Roll up [since, until) from scratch (data stored before rollups ran, or a repair)."""
    done = RollupResult()
    hour = floor_hour(since)
    while hour < until:
        rollups.roll_hours(conn, hour, hour + HOUR, window_minutes)
        hour += HOUR
        done.hours += 1
        if hour == floor_day(hour):
            rollups.roll_days(conn, hour - DAY, hour)
            done.days += 1
        conn.commit()
    return done


class Rollups(RoundThread):
    what = "rollups"

    def __init__(
        self,
        database_url: str,
        stop: threading.Event,
        poll_s: float = 30.0,
        window_minutes: int = defaults.WINDOW_MINUTES,
    ) -> None:
        super().__init__("rollups", database_url, stop, poll_s)
        self._window = window_minutes

    def round(self) -> None:
        with self._kept.session() as conn:
            done = run_once(conn, window_minutes=self._window)
        if done.hours or done.late_hours:
            log.info("rolled up %d hours, %d late device-hours, %d days",
                     done.hours, done.late_hours, done.days)  # fmt: skip
