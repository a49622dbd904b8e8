"""The shift layer: small lasting changes of a metric's level, told apart from spikes."""

from __future__ import annotations

import math

from twin.anomaly.config import DetectorConfig
from twin.anomaly.episodes import Episodes
from twin.anomaly.layers import Sample
from twin.anomaly.records import Detector, Severity
from twin.anomaly.scores import ALARM_Z, deviation_score
from twin.anomaly.state import Track


class Shift:
    """The deviation from the level's baseline, exponentially smoothed, against its own learnt
    spread: a lasting shift of a fraction of the noise stands out of the smoothed deviation
    within a few readings, where single values hide it. One episode from the shift's onset
    for as long as it lasts (a change point, not a run of spikes). While the metric's level
    anomaly is open, that anomaly reports the reading and the smoothing starts again from
    each reading's deviation, so no shift follows on its heels when it ends.

    Nothing learns from a reading whose smoothed deviation is past ``learn_limit``, so a shift
    building up is not absorbed into the baseline before it is reported (for at most the
    configuration's ``adapt`` readings in a row: then a shift that has become the new normal
    is learnt, and ends).

    Metrics judged at an operating point (against a profile's driver) are smoothed but not
    judged: the residual around the driver's line carries thermal lag and load history, and
    on the simulated fleet judging it raised tens of false anomalies per device-day."""

    def __init__(
        self, *, lam: float, hi: float, lo: float, learn_limit: float, alpha: float,
        warmup: int, abs_floor: float, rel_floor: float,
    ) -> None:  # fmt: skip
        self.lam, self.hi, self.lo = lam, hi, lo
        self.learn_limit = learn_limit
        self.alpha, self.warmup = alpha, warmup
        self.abs_floor, self.rel_floor = abs_floor, rel_floor
        self.shrink = math.sqrt(lam / (2 - lam)) if lam > 0 else 0.0
        """How much smoothing narrows white noise: the noise floor's share that applies."""
        self.scale = ALARM_Z / hi if hi > 0 else 0.0
        """Smoothed deviations are not calibrated: at ``hi`` they score as the alarm does."""

    @classmethod
    def from_config(cls, cfg: DetectorConfig) -> Shift:
        return cls(lam=cfg.shift_lambda, hi=cfg.shift_hi, lo=cfg.shift_lo,
                   learn_limit=cfg.shift_learn, alpha=cfg.shift_alpha,
                   warmup=cfg.warmup_readings, abs_floor=cfg.abs_floor,
                   rel_floor=cfg.rel_floor)  # fmt: skip

    def score(self, tr: Track, s: Sample, eps: Episodes) -> float:
        if self.lam <= 0 or not tr.n:
            return 0.0
        d = s.x - s.expected
        if s.level_key in eps.active:  # the level reports it: start again from here after
            tr.ew = d
        else:
            tr.ew += self.lam * (d - tr.ew)
        if not s.judged or s.dx is not None:
            return 0.0
        floor = max(self.abs_floor, self.rel_floor * abs(tr.mean), tr.res) * self.shrink
        ez = tr.ew / (math.sqrt(tr.ewv) + floor)
        aez = abs(ez)
        key = s.shift_key
        is_open = key in eps.active
        s.shift_suspect = aez > self.learn_limit or is_open
        value = deviation_score(aez * self.scale)
        if is_open:  # reported already: nothing new unless it clears
            if aez > self.lo:
                eps.extend(key, value, s.expected, s.expected + tr.ew, aez)
            else:
                eps.release(key, s.ts_ms)
            return 0.0
        if s.level_key in eps.active:
            return 0.0  # the level reports it: not twice
        if aez > self.hi:
            kind = "high" if ez > 0 else "low"
            eps.open(key, Detector.SHIFT, kind, s.metric, Severity.WARNING, value, s.ts_ms,
                     s.expected, s.expected + tr.ew, s.quiet)  # fmt: skip
        return value

    def learn(self, tr: Track, s: Sample, eps: Episodes) -> None:
        if self.lam <= 0 or s.held_back or tr.n <= 1:
            return  # the level did not learn from it, or this was the metric's first reading
        n = tr.n  # counting this reading, as the level has just done
        a = 1.0 / n if n <= self.warmup else self.alpha
        tr.ewv = (1 - a) * (tr.ewv + a * tr.ew * tr.ew) if n > 2 else tr.ew * tr.ew
