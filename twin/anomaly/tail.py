"""Calibration: a deviation as the deviation a well-behaved metric would need to be as rare.

A metric's deviations (in spreads) have a tail of their own: heavy for traffic, spiky loads and
quantised sensors, light for a steady temperature. Per metric, the share of judged readings
beyond ``z0`` spreads and their mean excess over it are learnt online (an exponential tail,
as in peaks-over-threshold); a deviation ``z`` past ``z0`` is then as rare as
``share * exp(-(z - z0) / excess)``. :meth:`Tail.calibrated` returns the deviation a metric
with a Gaussian tail would need to be that rare, never more than ``z`` itself, so that one
threshold means the same on every metric: spikes that are a heavy-tailed metric's normal stop
raising anomalies, and nothing becomes more sensitive than it was.
"""

from __future__ import annotations

import math

import numpy as np

from twin.anomaly.config import DetectorConfig
from twin.anomaly.state import Track

GAUSS_SHARE = 0.0027
"""The share of a Gaussian's values beyond 3 spreads ..."""
GAUSS_EXCESS = 0.283
"""... and their mean excess over it (the defaults of every track)."""
LEVEL_TAIL = ("tail_r", "tail_m")
RATE_TAIL = ("rtail_r", "rtail_m")
"""The track columns of the level's tail and of the rate's."""


class Tail:
    def __init__(self, *, z0: float, alpha: float, prior: int, warmup: int) -> None:
        self.z0 = z0
        self.alpha = alpha
        """The slowest the learnt share moves (a weight per reading)."""
        self.prior = prior
        """Readings the Gaussian defaults count for when the learning starts."""
        self.warmup = warmup
        self.on = alpha > 0

    @classmethod
    def from_config(cls, cfg: DetectorConfig) -> Tail:
        return cls(z0=3.0, alpha=cfg.tail_alpha, prior=cfg.tail_prior,
                   warmup=cfg.warmup_readings)  # fmt: skip

    def level(self, tr: Track, az: float, *, learn: bool) -> float:
        """``az`` calibrated against the level's tail, which then learns from it (``learn``:
        not while an anomaly of this metric is open, so a lasting fault counts once)."""
        if not self.on:
            return az
        out, r, m = self._step(tr.tail_r, tr.tail_m, az, tr.n, learn)
        tr.tail_r, tr.tail_m = r, m
        return out

    def rate(self, tr: Track, az: float, *, learn: bool) -> float:
        """The same for the rate's deviation, against the rate's own tail."""
        if not self.on:
            return az
        out, r, m = self._step(tr.rtail_r, tr.rtail_m, az, tr.rn, learn)
        tr.rtail_r, tr.rtail_m = r, m
        return out

    def _calibrated(self, az: float, r: float, m: float) -> float:
        """The one arithmetic of both paths (the vectorised one calls it per exceedance)."""
        if az <= self.z0:
            return az
        rarity = (az - self.z0) / m + math.log(GAUSS_SHARE / r)
        return max(self.z0, min(az, self.z0 + GAUSS_EXCESS * rarity))

    def _step(
        self, r: float, m: float, az: float, n: int, learn: bool
    ) -> tuple[float, float, float]:
        out = self._calibrated(az, r, m)
        if learn:
            a = max(self.alpha, 1.0 / (self.prior + max(0, n - self.warmup)))
            beyond = az > self.z0
            r += a * ((1.0 if beyond else 0.0) - r)
            if beyond:
                m += max(0.05, 10 * a) * (az - self.z0 - m)
        return out, r, m

    def columns(
        self,
        f: dict[str, np.ndarray],
        fields: tuple[str, str],
        rows: np.ndarray,
        az: np.ndarray,
        n: np.ndarray,
        judged: np.ndarray,
        learn: np.ndarray,
    ) -> np.ndarray:
        """:meth:`level` or :meth:`rate` over a round's values: ``f`` the float columns,
        ``fields`` :data:`LEVEL_TAIL` or :data:`RATE_TAIL`, ``n`` the layer's counts."""
        if not self.on:
            return az
        r, m = f[fields[0]][rows], f[fields[1]][rows]
        beyond = judged & (az > self.z0)
        out = az.copy()
        for k in np.flatnonzero(beyond).tolist():  # rare
            out[k] = self._calibrated(float(az[k]), float(r[k]), float(m[k]))
        a = np.maximum(self.alpha, 1.0 / (self.prior + np.maximum(0, n - self.warmup)))
        f[fields[0]][rows] = np.where(learn, r + a * (np.where(beyond, 1.0, 0.0) - r), r)
        step = np.maximum(0.05, 10 * a)
        f[fields[1]][rows] = np.where(learn & beyond, m + step * (az - self.z0 - m), m)
        return out
