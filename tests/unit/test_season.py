"""Seasonal baselines: learnt from the clock of the readings, used only where they explain the
metric, the same from a 1-minute and a 5-minute cadence."""

from __future__ import annotations

import math
import random

import msgspec
import pytest

from twin.anomaly.config import FLEET
from twin.anomaly.detectors import AnomalyDetectors, DetectorState
from twin.anomaly.season import DAY_MS, HOUR_MS, Season, Seasonal

MONDAY = 1_735_516_800_000  # 2024-12-30T00:00:00Z, a Monday


def _learn(
    days: float, cadence_s: int, value, seasonal: Seasonal | None = None, seed: int = 5
) -> Season:
    """A season learnt from ``value(ts_ms) + noise``, a level's baseline at zero."""
    rng = random.Random(seed)
    layer = seasonal or Seasonal.from_config(FLEET)
    se = Season(MONDAY)
    step = cadence_s * 1000
    for k in range(int(days * DAY_MS / step)):
        ts = MONDAY + k * step
        x = value(ts) + rng.gauss(0, 1)
        layer.learn(se, ts, x, x, step)
    return se


def _daily(ts: int) -> float:
    return 10 * math.sin(2 * math.pi * (ts % DAY_MS) / DAY_MS)


def test_noise_has_no_season() -> None:
    se = _learn(10, 300, lambda ts: 0.0)
    assert not se.on and not se.week_on
    assert Seasonal.from_config(FLEET).offset(se, MONDAY + 5 * HOUR_MS) == 0.0


def test_a_daily_cycle_is_used_after_two_days_and_read_between_the_hours() -> None:
    layer = Seasonal.from_config(FLEET)
    early = _learn(1.9, 300, _daily)
    assert not early.on  # seen for less than two days
    se = _learn(6, 300, _daily)
    assert se.on and not se.week_on
    for minute in range(0, 24 * 60, 37):
        ts = MONDAY + minute * 60_000
        assert se.level + layer.offset(se, ts) == pytest.approx(_daily(ts), abs=0.5), minute


def test_the_same_days_teach_the_same_season_at_any_cadence() -> None:
    layer = Seasonal.from_config(FLEET)
    slow, fast = _learn(6, 300, _daily), _learn(6, 60, _daily)
    assert slow.on and fast.on
    for hour in range(24):
        ts = MONDAY + hour * HOUR_MS
        for se in (slow, fast):
            assert se.level + layer.offset(se, ts) == pytest.approx(_daily(ts), abs=0.5), hour


def test_weekends_join_after_three_weeks() -> None:
    def week(ts: int) -> float:
        weekend = (ts // DAY_MS + 3) % 7 >= 5
        return _daily(ts) + (-8.0 if weekend else 0.0)

    layer = Seasonal.from_config(FLEET)
    assert not _learn(20, 300, week).week_on
    se = _learn(28, 300, week)
    assert se.on and se.week_on
    saturday, tuesday = MONDAY + 26 * DAY_MS + 3 * HOUR_MS, MONDAY + 22 * DAY_MS + 3 * HOUR_MS
    assert layer.offset(se, tuesday) - layer.offset(se, saturday) == pytest.approx(8.0, abs=1.5)


def _historian(missing_day: int, days: int = 8) -> list[tuple[int, float]]:
    rng = random.Random(9)
    out = []
    for k in range(days * 288):
        ts = MONDAY + k * 300_000
        x = 50 + _daily(ts) + rng.gauss(0, 1)
        if k // 288 == missing_day and 48 <= k % 288 < 120:  # 4 to 10 in the morning
            x = 50 + rng.gauss(0, 1)
        out.append((ts, x))
    return out


@pytest.mark.parametrize("seasons", [True, False])
def test_a_peak_that_does_not_come_is_found_only_with_the_season(seasons: bool) -> None:
    config = FLEET if seasons else msgspec.structs.replace(FLEET, season_min_days=0.0)
    det, st = AnomalyDetectors(config), DetectorState()
    opened = []
    for ts, x in _historian(missing_day=6):
        for a in det.observe(st, "plant", None, ts, {"temp": x}).events:
            if a.ended_ms is None and a.started_ms == ts and a.detector == "level":
                opened.append((ts - MONDAY) // 300_000)
    morning = 6 * 288 + 48
    found = [k for k in opened if morning <= k < morning + 72]
    assert bool(found) == seasons, opened
    assert (not seasons) or [k for k in opened if k < 6 * 288] == []  # no false ones before
    assert ("temp" in (st.seasons or {})) == seasons
