"""Seasonal baselines: what a metric usually reads at this hour of the day and day of the week.

Plant historians, building sensors and cloud metrics follow the clock: a value that is normal
at noon is a fault at midnight, and a daily peak that does not come is an anomaly that no
distance from a flat baseline shows. Per metric of a device without a profile (a profile's
metrics are judged against its driver instead), a :class:`Season` learns online, from the
value's deviation from the level's baseline:

* 24 hour-of-day offsets, read with linear interpolation between the hours;
* 7 day-of-week offsets of what the hours leave;
* each offset a weighted running mean of what its hour (day) saw, then exponentially weighted
  with a memory of ``days`` days (``weeks`` weeks): a span of time, so a 1 s sensor and a
  5 min historian learn the same season from the same days (and from at most one value a
  minute);
* the deviations' mean power without the season, with the hours, and with both (over the last
  ``memory_ms``, again a span of time).

Each part is detected, not assumed. The level judges and learns ``x - offset`` with the hours
once they have been learnt for ``min_days`` days and take away at least ``1 - on_ratio`` of the
power (until they take away less than ``1 - off_ratio``); the days of the week join after three
weeks if they take away a fifth of what is left. Until then a part learns in the shadow and
changes nothing, so a metric without a season is judged exactly as without this layer.
Timestamps are the device's, in UTC; a fixed time zone shifts the hours, not the shape.
"""

from __future__ import annotations

import msgspec

from twin.anomaly.config import DetectorConfig

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
STEP_MS = 60_000
"""A season learns from at most one value a minute: its memories are days long, and a 1 s
sensor would otherwise pay for sixty values where one teaches as much."""
WEEK_MIN_DAYS = 21.0
"""Days before the days of the week may be used (each has been seen three times)."""
WEEK_ON, WEEK_OFF = 0.8, 0.9
"""The power left with the days of the week, against with the hours only, to use them and to
stop using them."""


class Season(msgspec.Struct, array_like=True, gc=False):
    """One metric's seasonal offsets and the evidence that they explain it."""

    since_ms: int
    hour: list[float] = msgspec.field(default_factory=lambda: [0.0] * 24)
    hour_w: list[float] = msgspec.field(default_factory=lambda: [0.0] * 24)
    dow: list[float] = msgspec.field(default_factory=lambda: [0.0] * 7)
    dow_w: list[float] = msgspec.field(default_factory=lambda: [0.0] * 7)
    level: float = 0.0
    """The season's own baseline: the value with the season taken out, learnt apart from the
    level's (which follows the raw value until the season is used), so that the offsets are
    learnt the same before and after."""
    flat: float = 0.0
    """The deviations' mean power from the level's baseline alone ..."""
    daily: float = 0.0
    """... with the hours of the day ..."""
    weekly: float = 0.0
    """... and with the days of the week too."""
    n: int = 0
    on: bool = False
    week_on: bool = False
    last_ms: int = 0
    """When it last learnt."""


def _clock(ts_ms: int) -> tuple[int, int, float, int]:
    """The hour bins either side of the time, the weight of the later one, the day of week
    (Monday 0; 1970-01-01 was a Thursday)."""
    u = (ts_ms % DAY_MS) / HOUR_MS
    b0 = int(u)
    return b0, (b0 + 1) % 24, u - b0, (ts_ms // DAY_MS + 3) % 7


def copied(se: Season) -> Season:
    return msgspec.structs.replace(se, hour=list(se.hour), hour_w=list(se.hour_w),
                                   dow=list(se.dow), dow_w=list(se.dow_w))  # fmt: skip


class Seasonal:
    def __init__(
        self,
        *,
        days: float,
        min_days: float,
        on_ratio: float,
        off_ratio: float,
        weeks: float = 3.0,
        memory_ms: float = 8 * HOUR_MS,
    ) -> None:
        self.days, self.weeks, self.min_days = days, weeks, min_days
        self.on_ratio, self.off_ratio = on_ratio, off_ratio
        self.memory_ms = memory_ms
        self.on = min_days > 0

    @classmethod
    def from_config(cls, cfg: DetectorConfig) -> Seasonal:
        return cls(days=cfg.season_days, min_days=cfg.season_min_days, on_ratio=cfg.season_on,
                   off_ratio=cfg.season_off)  # fmt: skip

    @staticmethod
    def _hours(se: Season, b0: int, b1: int, f: float) -> float:
        return (1.0 - f) * se.hour[b0] + f * se.hour[b1]

    def offset(self, se: Season, ts_ms: int) -> float:
        """What the level subtracts from the value: the parts of the season in use."""
        if not se.on:
            return 0.0
        b0, b1, f, d = _clock(ts_ms)
        hours = self._hours(se, b0, b1, f)
        return hours + se.dow[d] if se.week_on else hours

    def learn(self, se: Season, ts_ms: int, x: float, r: float, interval_ms: float) -> bool:
        """``x``: the value; ``r``: its deviation from the level's baseline (before that
        learns); ``interval_ms``: the device's usual interval (how many readings an hour
        brings). True when the season has just come into use: the level's baseline, spread and
        tail, learnt without it, then start again from the season's (the caller's part)."""
        if se.n and ts_ms - se.last_ms < STEP_MS:
            return False
        se.last_ms = ts_ms
        interval_ms = max(interval_ms, STEP_MS)
        was = se.on
        b0, b1, f, d = _clock(ts_ms)
        hours = self._hours(se, b0, b1, f)
        daily = x - se.level - hours
        weekly = daily - se.dow[d]
        a = 1.0 if se.n == 0 else min(1.0, interval_ms / self.memory_ms)
        se.flat += a * (r * r - se.flat)
        se.daily += a * (daily * daily - se.daily)
        se.weekly += a * (weekly * weekly - se.weekly)
        se.n += 1
        per_hour = HOUR_MS / interval_ms
        if se.n == 1:  # the level's baseline, then slow from the start: a level that moved
            se.level = x - r  # with the day would leave each hour learnt against another
        else:
            se.level += (weekly if se.week_on else daily) / max(1.0, self.days * 24 * per_hour)
        cap = max(1.0, self.days * per_hour)
        target = x - se.level - (se.dow[d] if se.week_on else 0.0)
        for b, w in ((b0, 1.0 - f), (b1, f)):  # each hour: a mean of what was near it,
            if w > 0:  # weighted by how near (fitting the interpolation itself zig-zags)
                se.hour_w[b] += w
                se.hour[b] += w / min(se.hour_w[b], cap) * (target - se.hour[b])
        cap = max(1.0, self.weeks * 24 * per_hour)
        se.dow_w[d] += 1.0
        err = x - se.level - self._hours(se, b0, b1, f) - se.dow[d]
        se.dow[d] += err / min(se.dow_w[d], cap)
        self._judge(se, (ts_ms - se.since_ms) / DAY_MS)
        return se.on and not was

    def _judge(self, se: Season, days: float) -> None:
        if not se.on:
            se.on = days >= self.min_days and se.daily < self.on_ratio * se.flat
        elif se.daily > self.off_ratio * se.flat:
            se.on = se.week_on = False
        if se.on and not se.week_on:
            se.week_on = days >= WEEK_MIN_DAYS and se.weekly < WEEK_ON * se.daily
        elif se.week_on:
            se.week_on = se.weekly <= WEEK_OFF * se.daily
