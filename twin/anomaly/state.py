"""The detectors' state: small plain data per device and metric, which travels inside the
twin's snapshot. The detector layers hold none of it (only their hyperparameters)."""

from __future__ import annotations

import msgspec


class Track(msgspec.Struct, array_like=True, gc=False):
    """Per metric: baseline and spread of the value and of its rate, and stuck-sensor counts."""

    n: int = 0
    mean: float = 0.0
    var: float = 0.0
    last: float = 0.0
    last_ts: int = 0
    rn: int = 0
    rmean: float = 0.0
    rvar: float = 0.0
    same: int = 0
    changed: float = 0.0
    level_run: int = 0
    rate_run: int = 0
    mx: float = 0.0
    vx: float = 0.0
    cxy: float = 0.0
    rv: float = 0.0
    """Against the profile's driver metric x: its mean and variance, the covariance with this
    metric, and the variance of this metric's residual around the line through them."""
    up: float = 0.0
    down: float = 0.0
    """CUSUM of the standardised deviation above and below the baseline (slow drifts)."""
    res: float = 0.0
    """The smallest change seen: the sensor's resolution, below which nothing is significant."""


class Episode(msgspec.Struct, array_like=True, gc=False):
    """An open anomaly: what raised it, when, and its worst point so far."""

    detector: str
    kind: str
    metric: str
    severity: str
    score: float
    started_ms: int
    expected: float | None
    observed: float | None
    hold: int = 0


class DetectorState(msgspec.Struct, kw_only=True, gc=False):
    tracks: dict[str, Track] = msgspec.field(default_factory=dict)
    open: dict[str, Episode] = msgspec.field(default_factory=dict)
    last_ts: int = 0
    interval_ms: float = 0.0
    readings: int = 0
    raised: int = 0
