"""The detector layers that judge one metric of one reading.

The contract, in the spirit of river's ``anomaly`` base: a layer is built from its
hyperparameters and holds no device state; :meth:`score` judges the reading against the state
in the metric's :class:`~twin.anomaly.state.Track` (raising, extending or releasing episodes)
*before* :meth:`learn` lets the state learn from it, and learning skips what raised something,
so a fault that lasts is reported for as long as it lasts. What one layer works out for a
reading and another needs travels in the :class:`Sample`.
"""

from __future__ import annotations

import math
from typing import Protocol

from twin.anomaly.config import DetectorConfig
from twin.anomaly.episodes import Episodes
from twin.anomaly.records import Detector, Severity
from twin.anomaly.scores import deviation_score, ratio_score
from twin.anomaly.state import Track
from twin.anomaly.tail import Tail

POSITION = ("lat", "lon", "heading_deg")
COUNTERS = ("odometer_km",)
"""Metrics whose level only ever grows: judged by their rate alone."""


_LAYERS = ("level", "rate", "drift", "flatline", "shift")
_KEYS: dict[str, tuple[str, ...]] = {}
"""Metric → its episode keys; bounded by the metric names the parser lets through."""


class Sample:
    """One metric of one reading, as the layers see it."""

    __slots__ = (
        "drift_key",
        "dx",
        "expected",
        "feed",
        "flat_key",
        "held_back",
        "interval_ms",
        "judged",
        "level_key",
        "metric",
        "off",
        "quiet",
        "rate",
        "rate_key",
        "rate_suspect",
        "resting",
        "shift_key",
        "shift_suspect",
        "steady",
        "ts_ms",
        "warm",
        "watch",
        "x",
    )  # fmt: skip

    def __init__(
        self,
        metric: str,
        x: float,
        dx: float | None,
        watch: str,
        steady: bool,
        ts_ms: int,
        warm: bool,
        quiet: bool,
        resting: bool = False,
    ) -> None:
        self.metric = metric
        self.x = x
        self.dx = dx
        """The driver metric's value in the same reading (None: no driver, or this is it)."""
        self.watch = watch
        """"all", "falling", "rising" or "rules": what the profile watches for."""
        self.steady = steady
        """The operating point held still: rates of change mean something."""
        self.ts_ms = ts_ms
        self.warm = warm
        self.quiet = quiet
        self.resting = resting
        """The machine stands still (its driver at or below the profile's running load): its
        baselines learn what it reads at rest, but their spreads only widen then, since a
        spread learnt from hours of zeros would make normal noise look like a fault once it
        starts again."""
        keys = _KEYS.get(metric)
        if keys is None:
            keys = _KEYS[metric] = tuple(f"{layer}:{metric}" for layer in _LAYERS)
        self.level_key, self.rate_key, self.drift_key, self.flat_key, self.shift_key = keys
        """The metric's episode keys, one per layer (made once per metric name)."""
        self.expected = 0.0
        self.off = 0.0
        self.interval_ms = 0.0
        """The device's usual interval."""
        """The metric's seasonal offset at this time, once its season is in use."""
        self.judged = False
        self.feed: tuple[float, float, float] | None = None
        """(deviation, observed, expected) for the drift layer, set by level or rate."""
        self.rate: float | None = None
        self.rate_suspect = False
        self.shift_suspect = False
        """The shift layer asks the baselines not to learn from this reading."""
        self.held_back = False
        """The baselines did not learn from this reading (:meth:`Level.hold_back`)."""


class MetricLayer(Protocol):
    def score(self, tr: Track, s: Sample, eps: Episodes) -> float:
        """Judge the reading (before anything learns from it); its score in 0..1."""

    def learn(self, tr: Track, s: Sample, eps: Episodes) -> None:
        """Learn from the reading, unless what it raised says not to."""


class _Deviation:
    """What level and rate share: a deviation from an exponentially weighted baseline, in
    spreads, opens an episode past ``hi`` for ``persist`` values (or past ``instant`` at once)
    and stays open while above ``lo``; the spread never falls below the noise floor."""

    def __init__(
        self,
        *,
        hi: float,
        lo: float,
        instant: float,
        persist: int,
        alpha: float,
        warmup: int,
        abs_floor: float,
        rel_floor: float,
    ) -> None:
        self.hi, self.lo, self.instant, self.persist = hi, lo, instant, persist
        self.alpha, self.warmup = alpha, warmup
        self.abs_floor, self.rel_floor = abs_floor, rel_floor


class Level(_Deviation):
    """The value's distance from the metric's own baseline (exponentially weighted mean and
    spread), at the current operating point when the profile names a driver metric."""

    def __init__(
        self,
        *,
        hi: float,
        lo: float,
        instant: float,
        persist: int,
        alpha: float,
        warmup: int,
        abs_floor: float,
        rel_floor: float,
        drift: bool,
        adapt: int,
        adapt_ms: float,
        tail: Tail,
    ) -> None:
        super().__init__(hi=hi, lo=lo, instant=instant, persist=persist, alpha=alpha,
                         warmup=warmup, abs_floor=abs_floor, rel_floor=rel_floor)  # fmt: skip
        self.drift = drift
        """Feed the level's deviations to the drift layer."""
        self.adapt = adapt
        self.adapt_ms = adapt_ms
        self.tail = tail

    @classmethod
    def from_config(cls, cfg: DetectorConfig) -> Level:
        return cls(
            hi=cfg.level_hi,
            lo=cfg.level_lo,
            instant=cfg.level_instant,
            persist=cfg.level_persist,
            alpha=cfg.alpha,
            warmup=cfg.warmup_readings,
            abs_floor=cfg.abs_floor,
            rel_floor=cfg.rel_floor,
            drift=cfg.level_drift,
            adapt=cfg.adapt,
            adapt_ms=cfg.adapt_s * 1000.0,
            tail=Tail.from_config(cfg),
        )

    def score(self, tr: Track, s: Sample, eps: Episodes) -> float:
        floor = max(self.abs_floor, self.rel_floor * abs(tr.mean), tr.res)
        expected = tr.mean + s.off
        if s.dx is not None and tr.vx > 0:
            expected = tr.mean + tr.cxy / tr.vx * (s.dx - tr.mx)
            sd = math.sqrt(tr.rv) + floor
        else:
            sd = math.sqrt(tr.var) + floor
        s.expected = expected
        z = (s.x - expected) / sd if tr.n else 0.0
        s.judged = (
            s.warm
            and s.steady
            and s.watch == "all"
            and s.metric not in POSITION
            and s.metric not in COUNTERS
        )
        if not s.judged:
            return 0.0
        if self.drift:
            s.feed = (z, s.x, expected)
        key = s.level_key
        az = self.tail.level(tr, abs(z), learn=key not in eps.active)
        if key in eps.active:  # reported already: nothing new unless it clears
            if az > self.lo:
                eps.extend(key, deviation_score(az), expected, s.x, az)
            else:
                eps.release(key, s.ts_ms)
            return 0.0
        tr.level_run = tr.level_run + 1 if az > self.hi else 0
        value = deviation_score(az)
        if az > self.instant or tr.level_run >= self.persist:
            kind = "high" if z > 0 else "low"
            sev = Severity.CRITICAL if az > 2 * self.hi else Severity.WARNING
            eps.open(key, Detector.LEVEL, kind, s.metric, sev, value, s.ts_ms, expected, s.x,
                     s.quiet)  # fmt: skip
        return value

    def hold_back(self, tr: Track, s: Sample, eps: Episodes) -> bool:
        """Whether the baselines skip this reading: one of the metric's anomalies is open or a
        shift is building up, for at most ``adapt`` readings in a row (or ``adapt_ms`` at the
        device's usual interval)."""
        if not (
            s.level_key in eps.active
            or s.flat_key in eps.active
            or s.shift_suspect
            or (s.watch == "all" and s.drift_key in eps.active)
        ):
            tr.held = 0
            return False
        tr.held += 1
        return tr.held <= self.adapt and tr.held * s.interval_ms <= self.adapt_ms

    def learn(self, tr: Track, s: Sample, eps: Episodes) -> None:
        s.held_back = self.hold_back(tr, s, eps)
        if s.held_back:
            return
        tr.n += 1
        # exact running moments while warming up, exponentially weighted afterwards
        a = 1.0 / tr.n if tr.n <= self.warmup else self.alpha
        d = s.x - s.off - tr.mean
        resid = s.x - s.expected
        tr.mean += a * d
        var = (1 - a) * (tr.var + a * d * d)
        tr.var = max(var, tr.var) if s.resting else var
        if s.dx is not None:
            e = s.dx - tr.mx
            tr.mx += a * e
            tr.vx = (1 - a) * (tr.vx + a * e * e)
            tr.cxy = (1 - a) * (tr.cxy + a * e * d)
            rv = (1 - a) * (tr.rv + a * resid * resid)
            tr.rv = max(rv, tr.rv) if s.resting else rv


class Rate(_Deviation):
    """The rate of change per second against its own baseline: leaks, fast wear, runaway
    temperatures. Metrics watched for a falling (or rising) trend feed it to the drift layer."""

    def __init__(
        self,
        *,
        hi: float,
        lo: float,
        instant: float,
        persist: int,
        alpha: float,
        warmup: int,
        abs_floor: float,
        rel_floor: float,
        drift_h: float,
        tail: Tail,
    ) -> None:
        super().__init__(hi=hi, lo=lo, instant=instant, persist=persist, alpha=alpha,
                         warmup=warmup, abs_floor=abs_floor, rel_floor=rel_floor)  # fmt: skip
        self.tail = tail
        """The rate's deviations are calibrated against the rate's own tail."""
        self.drift_h = drift_h
        """A drift half-way to being reported already keeps the rate from learning."""

    @classmethod
    def from_config(cls, cfg: DetectorConfig) -> Rate:
        return cls(
            hi=cfg.rate_hi,
            lo=cfg.rate_lo,
            instant=cfg.rate_instant,
            persist=cfg.rate_persist,
            alpha=cfg.rate_alpha,
            warmup=cfg.warmup_readings,
            abs_floor=cfg.abs_floor,
            rel_floor=cfg.rel_floor,
            drift_h=cfg.drift_h,
            tail=Tail.from_config(cfg),
        )

    def score(self, tr: Track, s: Sample, eps: Episodes) -> float:
        s.feed = None
        if not tr.n:
            return 0.0
        step = abs(s.x - tr.last)
        if step > 0 and (tr.res == 0 or step < tr.res):
            tr.res = step
        dt = (s.ts_ms - tr.last_ts) / 1000.0
        if dt <= 0 or not (s.steady or s.watch != "all"):
            return 0.0
        r = (s.x - tr.last) / dt
        floor = max(self.abs_floor, self.rel_floor * abs(tr.rmean), tr.res / dt)
        rz = (r - tr.rmean) / (math.sqrt(tr.rvar) + floor) if tr.rn else 0.0
        ready = tr.rn >= self.warmup
        s.rate, s.rate_suspect = r, ready and abs(rz) > self.hi
        if s.watch == "falling":
            rz = min(rz, 0.0)  # rising (a refill, new pads) is normal, not usual
        if ready and s.metric not in POSITION:
            self._judge(tr, s, eps, r, rz)
        if s.watch != "all" and ready:
            s.feed = (rz, r, tr.rmean)
        return 0.0

    def _judge(self, tr: Track, s: Sample, eps: Episodes, r: float, rz: float) -> None:
        key = s.rate_key
        arz = self.tail.rate(tr, abs(rz), learn=key not in eps.active)
        if key in eps.active:
            if arz > self.lo:
                eps.extend(key, deviation_score(arz), tr.rmean, r, arz)
            else:
                eps.release(key, s.ts_ms)
            return
        tr.rate_run = tr.rate_run + 1 if arz > self.hi else 0
        if arz > self.instant or tr.rate_run >= self.persist:
            kind = "rising" if rz > 0 else "falling"
            sev = Severity.CRITICAL if arz > 2 * self.hi else Severity.WARNING
            eps.open(key, Detector.RATE, kind, s.metric, sev, deviation_score(arz), s.ts_ms,
                     tr.rmean, r, s.quiet)  # fmt: skip

    def learn(self, tr: Track, s: Sample, eps: Episodes) -> None:
        if s.rate is None:
            return
        suspect = s.rate_suspect or max(tr.up, tr.down) > self.drift_h / 2  # a drift building
        if s.rate_key in eps.active or s.drift_key in eps.active or suspect:
            return
        tr.rn += 1
        a = 1.0 / tr.rn if tr.rn <= self.warmup else self.alpha
        d = s.rate - tr.rmean
        tr.rmean += a * d
        tr.rvar = (1 - a) * (tr.rvar + a * d * d)


class Drift:
    """Two-sided CUSUM of a standardised deviation (the level's or the rate's): small shifts
    that add up, such as wear and slow leaks."""

    def __init__(self, *, k: float, h: float) -> None:
        self.k = k
        """Slack, in spreads: deviations smaller than this never add up."""
        self.h = h
        """Decision level: a drift is reported once the sum passes it."""

    @classmethod
    def from_config(cls, cfg: DetectorConfig) -> Drift:
        return cls(k=cfg.drift_k, h=cfg.drift_h)

    def score(self, tr: Track, s: Sample, eps: Episodes) -> float:
        if s.feed is None:
            return 0.0
        z, observed, expected = s.feed
        tr.up = max(0.0, tr.up + z - self.k)
        tr.down = max(0.0, tr.down - z - self.k)
        key = s.drift_key
        worst = max(tr.up, tr.down)
        if key in eps.active:
            if worst == 0.0:
                eps.close(key, s.ts_ms)
        elif worst > self.h:
            kind = "rising" if tr.up >= tr.down else "falling"
            eps.open(key, Detector.DRIFT, kind, s.metric, Severity.WARNING,
                     ratio_score(worst, self.h), s.ts_ms, expected, observed, s.quiet)  # fmt: skip
        return 0.0

    def learn(self, tr: Track, s: Sample, eps: Episodes) -> None:
        """The sums are the state: :meth:`score` has updated them."""
