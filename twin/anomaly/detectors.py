"""Online anomaly detectors that live inside a twin.

Layers, cheapest first, all fed one reading at a time in event time:

* rules: a value beyond the profile's warning / critical threshold;
* level: the value's distance from the device's own baseline (exponentially weighted mean and
  spread per metric), in units of that spread;
* rate: the same for the rate of change per second (leaks, fast wear, runaway temperatures);
* flatline: a metric that usually changes at every reading repeats one value (stuck sensor);
* position: consecutive GPS positions that imply an impossible speed (GPS jump);
* dropout: a device silent for many of its usual intervals (checked against a clock by
  ``check_silence``, since a silent device sends nothing to react to).

Each reading is scored before anything learns from it, and baselines learn only from readings
that raise nothing, so a fault that lasts is reported for as long as it lasts. During a warm-up
per metric the detectors learn and score but raise nothing. All state is small plain data in
``DetectorState``, which travels inside the twin's snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

from twin.anomaly.config import FLEET, DetectorConfig
from twin.anomaly.records import Anomaly, Detector, Severity
from twin.profiles import METRIC_CATALOG, DeviceProfile, MetricSpec

EARTH_KM = 6371.0


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
    up: float = 0.0
    down: float = 0.0
    """CUSUM of the standardised deviation above and below the baseline (slow drifts)."""
    res: float = 0.0
    """The smallest change seen: the sensor's resolution, below which nothing is significant."""
    """Against the profile's driver metric x: its mean and variance, the covariance with this
    metric, and the variance of this metric's residual around the line through them."""


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


class Observation(msgspec.Struct, gc=False):
    """What one reading did: anomaly episodes opened, updated or closed; the reading's verdict."""

    events: list[Anomaly]
    flagged: bool
    score: float


def _score(z: float, hi: float) -> float:
    """0 at the baseline, 0.5 at the threshold, towards 1 far beyond it."""
    return z / (z + hi) if z > 0 else 0.0


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


_Plan = tuple[str, MetricSpec | None, float, float]
_UNKNOWN: _Plan = ("all", None, -math.inf, math.inf)
"""A metric no profile or catalogue knows: watched as a condition, no thresholds."""
_POSITION = ("lat", "lon", "heading_deg")
_COUNTERS = ("odometer_km",)
"""Metrics whose level only ever grows: judged by their rate alone."""


class AnomalyDetectors:
    """The detector layers with one configuration; state lives in each twin."""

    def __init__(self, config: DetectorConfig = FLEET) -> None:
        self.config = config
        self.version = config.version
        self._plans: dict[str, dict[str, _Plan]] = {}

    # -- per reading ---------------------------------------------------------------------

    def observe(
        self,
        st: DetectorState,
        device_id: str,
        profile: DeviceProfile | None,
        ts_ms: int,
        values: Mapping[str, float],
    ) -> Observation:
        events: list[Anomaly] = []
        peak = 0.0
        if st.last_ts and ts_ms > st.last_ts:
            gap = ts_ms - st.last_ts
            st.interval_ms = gap if st.interval_ms <= 0 else 0.9 * st.interval_ms + 0.1 * gap
        silent = st.open.get("dropout:")
        if silent is not None and ts_ms > st.last_ts:
            self._close(st, "dropout:", device_id, ts_ms, events)
        st.last_ts = max(st.last_ts, ts_ms)
        st.readings += 1
        tracks = st.tracks
        was = None
        la, lo = tracks.get("lat"), tracks.get("lon")
        if la is not None and lo is not None and la.n and ts_ms > la.last_ts:
            was = (la.last, lo.last, la.last_ts)
        driver = profile.driver if profile is not None else None
        dx = values.get(driver) if driver is not None else None
        steady = True  # the operating point held still: rates of change mean something
        if dx is not None:
            dtr = tracks.get(driver)  # type: ignore[arg-type]
            if dtr is not None and dtr.n:
                steady = abs(dx - dtr.last) <= max(5.0, 0.1 * abs(dtr.mean))
        plan = self._plan(profile)
        at_rest = profile is not None and dx is not None and dx <= profile.running_load_pct
        for metric, x in values.items():
            tr = tracks.get(metric)
            if tr is None:
                tr = tracks[metric] = Track()
            elif ts_ms <= tr.last_ts:
                continue  # late or repeated: the baseline moves forward in event time only
            watch, spec, low, high = plan.get(metric, _UNKNOWN)
            if spec is not None and (x <= low or x >= high or ("rule:" + metric) in st.open):
                self._rule(st, device_id, spec, metric, x, ts_ms, events,
                           at_rest and metric != driver)  # fmt: skip
            if watch == "rules":  # operating state: thresholds only
                tr.n += 1
                tr.last, tr.last_ts = x, ts_ms
                continue
            px = dx if metric != driver else None
            score = self._metric(st, tr, device_id, metric, x, px, watch, steady, ts_ms, events)
            if score > peak:
                peak = score
        if was is not None and "lat" in values and "lon" in values:
            self._position(st, device_id, was, values["lat"], values["lon"], ts_ms, events)
        flagged = bool(st.open)
        for ep in st.open.values():
            peak = max(peak, ep.score)
        return Observation(events, flagged, min(1.0, peak))

    def _plan(self, profile: DeviceProfile | None) -> dict[str, _Plan]:
        """Per metric of a profile: which detectors watch it, its thresholds if any, and the
        band inside which no threshold can be crossed (checked before anything else)."""
        name = profile.name if profile is not None else ""
        plan = self._plans.get(name)
        if plan is None:
            plan = {}
            names = set(METRIC_CATALOG) | set(profile.metrics if profile is not None else ())
            for metric in names:
                spec = profile.spec(metric) if profile is not None else None
                if spec is None:
                    continue
                lows = [v for v in (spec.warn_low, spec.crit_low) if v is not None]
                highs = [v for v in (spec.warn_high, spec.crit_high) if v is not None]
                plan[metric] = (
                    spec.watch,
                    spec if lows or highs else None,
                    max(lows) if lows else -math.inf,
                    min(highs) if highs else math.inf,
                )
            self._plans[name] = plan
        return plan

    def _metric(
        self,
        st: DetectorState,
        tr: Track,
        device_id: str,
        metric: str,
        x: float,
        dx: float | None,
        watch: str,
        steady: bool,
        ts_ms: int,
        events: list[Anomaly],
    ) -> float:
        cfg = self.config
        warm = tr.n >= cfg.warmup_readings
        quiet = cfg.warmup_quiet and not warm
        peak = 0.0
        # level, against the baseline at the current operating point when there is a driver
        level_key = "level:" + metric
        floor = max(cfg.abs_floor, cfg.rel_floor * abs(tr.mean), tr.res)
        expected = tr.mean
        if dx is not None and tr.vx > 0:
            expected = tr.mean + tr.cxy / tr.vx * (dx - tr.mx)
            sd = math.sqrt(tr.rv) + floor
        else:
            sd = math.sqrt(tr.var) + floor
        z = (x - expected) / sd if tr.n else 0.0
        az = abs(z)
        level_open = level_key in st.open
        judged = (
            warm
            and steady
            and watch == "all"
            and metric not in _POSITION
            and metric not in _COUNTERS
        )
        if judged:
            peak = _score(az, cfg.level_hi)
            if level_open:
                if az > cfg.level_lo:
                    self._extend(st, level_key, _score(az, cfg.level_hi), expected, x, az)
                else:
                    self._release(st, level_key, device_id, ts_ms, events)
            else:
                tr.level_run = tr.level_run + 1 if az > cfg.level_hi else 0
                if az > cfg.level_instant or tr.level_run >= cfg.level_persist:
                    kind = "high" if z > 0 else "low"
                    sev = Severity.CRITICAL if az > 2 * cfg.level_hi else Severity.WARNING
                    self._open(st, level_key, Detector.LEVEL, kind, metric, sev,
                               _score(az, cfg.level_hi), ts_ms, expected, x, device_id,
                               events, quiet)  # fmt: skip
        if judged and cfg.level_drift:
            self._drift(st, tr, device_id, metric, z, ts_ms, events, quiet, x, expected)
        # rate of change per second
        rate_key = "rate:" + metric
        if tr.n:
            step = abs(x - tr.last)
            if step > 0 and (tr.res == 0 or step < tr.res):
                tr.res = step
            dt = (ts_ms - tr.last_ts) / 1000.0
            if dt > 0 and (steady or watch != "all"):
                r = (x - tr.last) / dt
                floor = max(cfg.abs_floor, cfg.rel_floor * abs(tr.rmean), tr.res / dt)
                rsd = math.sqrt(tr.rvar) + floor
                rz = (r - tr.rmean) / rsd if tr.rn else 0.0
                outlier = tr.rn >= cfg.warmup_readings and abs(rz) > cfg.rate_hi
                if watch == "falling":
                    rz = min(rz, 0.0)  # rising (a refill, new pads) is normal, not usual
                arz = abs(rz)
                rate_open = rate_key in st.open
                if tr.rn >= cfg.warmup_readings and metric not in _POSITION:
                    if rate_open:
                        if arz > cfg.rate_lo:
                            self._extend(st, rate_key, _score(arz, cfg.rate_hi), tr.rmean, r, arz)
                        else:
                            self._release(st, rate_key, device_id, ts_ms, events)
                    else:
                        tr.rate_run = tr.rate_run + 1 if arz > cfg.rate_hi else 0
                        if arz > cfg.rate_instant or tr.rate_run >= cfg.rate_persist:
                            kind = "rising" if rz > 0 else "falling"
                            sev = Severity.CRITICAL if arz > 2 * cfg.rate_hi else Severity.WARNING
                            self._open(st, rate_key, Detector.RATE, kind, metric, sev,
                                       _score(arz, cfg.rate_hi), ts_ms, tr.rmean, r, device_id,
                                       events, quiet)  # fmt: skip
                if watch != "all" and tr.rn >= cfg.warmup_readings:
                    self._drift(st, tr, device_id, metric, rz, ts_ms, events, quiet, r, tr.rmean)
                suspect = outlier or max(tr.up, tr.down) > cfg.drift_h / 2  # or a drift building
                if rate_key not in st.open and ("drift:" + metric) not in st.open and not suspect:
                    self._learn_rate(tr, r, cfg)
        # stuck sensor
        flat_key = "flatline:" + metric
        if tr.n:
            same = x == tr.last
            tr.same = tr.same + 1 if same else 0
            if tr.same < cfg.flat_readings:  # how often it changes, learnt while not stuck
                tr.changed += ((0.0 if same else 1.0) - tr.changed) / min(tr.n + 1, 200)
            if flat_key in st.open:
                if not same:
                    self._close(st, flat_key, device_id, ts_ms, events)
            elif (
                warm
                and watch == "all"
                and dx != 0  # a stopped machine reads zero everywhere, and rightly so
                and tr.same >= cfg.flat_readings
                and tr.changed >= cfg.flat_change_share
            ):
                self._open(st, flat_key, Detector.FLATLINE, "stuck", metric, Severity.WARNING,
                           0.75, ts_ms, None, x, device_id, events, quiet)  # fmt: skip
        # learn from what raised nothing
        if (
            level_key not in st.open
            and flat_key not in st.open
            and (watch != "all" or ("drift:" + metric) not in st.open)
        ):
            self._learn_level(tr, x, dx, expected, cfg)
        tr.last, tr.last_ts = x, ts_ms
        return peak

    def _drift(
        self,
        st: DetectorState,
        tr: Track,
        device_id: str,
        metric: str,
        z: float,
        ts_ms: int,
        events: list[Anomaly],
        quiet: bool,
        observed: float,
        expected: float,
    ) -> None:
        """Two-sided CUSUM of the standardised deviation: small shifts that add up."""
        cfg = self.config
        k = cfg.drift_k
        tr.up = max(0.0, tr.up + z - k)
        tr.down = max(0.0, tr.down - z - k)
        key = "drift:" + metric
        worst = max(tr.up, tr.down)
        if key in st.open:
            if worst == 0.0:
                self._close(st, key, device_id, ts_ms, events)
            return
        if worst > cfg.drift_h:
            kind = "rising" if tr.up >= tr.down else "falling"
            self._open(st, key, Detector.DRIFT, kind, metric, Severity.WARNING,
                       _score(worst, cfg.drift_h), ts_ms, expected, observed, device_id,
                       events, quiet)  # fmt: skip

    @staticmethod
    def _learn_level(
        tr: Track, x: float, dx: float | None, expected: float, cfg: DetectorConfig
    ) -> None:
        tr.n += 1
        # exact running moments while warming up, exponentially weighted afterwards
        a = 1.0 / tr.n if tr.n <= cfg.warmup_readings else cfg.alpha
        d = x - tr.mean
        resid = x - expected
        tr.mean += a * d
        tr.var = (1 - a) * (tr.var + a * d * d)
        if dx is not None:
            e = dx - tr.mx
            tr.mx += a * e
            tr.vx = (1 - a) * (tr.vx + a * e * e)
            tr.cxy = (1 - a) * (tr.cxy + a * e * d)
            tr.rv = (1 - a) * (tr.rv + a * resid * resid)

    @staticmethod
    def _learn_rate(tr: Track, r: float, cfg: DetectorConfig) -> None:
        tr.rn += 1
        a = 1.0 / tr.rn if tr.rn <= cfg.warmup_readings else cfg.rate_alpha
        d = r - tr.rmean
        tr.rmean += a * d
        tr.rvar = (1 - a) * (tr.rvar + a * d * d)

    def _rule(
        self,
        st: DetectorState,
        device_id: str,
        spec: MetricSpec,
        metric: str,
        x: float,
        ts_ms: int,
        events: list[Anomaly],
        at_rest: bool = False,
    ) -> None:
        """Thresholds, from the first reading; low limits do not apply while a machine stands
        still."""
        key = "rule:" + metric
        verdict: tuple[str, str, float] | None = None
        if spec.crit_high is not None and x >= spec.crit_high:
            verdict = ("high", Severity.CRITICAL, spec.crit_high)
        elif spec.crit_low is not None and x <= spec.crit_low and not at_rest:
            verdict = ("low", Severity.CRITICAL, spec.crit_low)
        elif spec.warn_high is not None and x >= spec.warn_high:
            verdict = ("high", Severity.WARNING, spec.warn_high)
        elif spec.warn_low is not None and x <= spec.warn_low and not at_rest:
            verdict = ("low", Severity.WARNING, spec.warn_low)
        ep = st.open.get(key)
        if verdict is None:
            if ep is not None:
                self._close(st, key, device_id, ts_ms, events)
            return
        kind, sev, limit = verdict
        score = 0.9 if sev == Severity.CRITICAL else 0.6
        if ep is None:
            self._open(st, key, Detector.RULE, kind, metric, sev, score, ts_ms, limit, x,
                       device_id, events, quiet=False)  # fmt: skip
        elif sev == Severity.CRITICAL and ep.severity != Severity.CRITICAL:
            ep.severity, ep.score, ep.expected, ep.observed = sev, score, limit, x
            events.append(self._anomaly(device_id, ep, None))  # escalated

    def _position(
        self,
        st: DetectorState,
        device_id: str,
        was: tuple[float, float, int],
        lat: float,
        lon: float,
        ts_ms: int,
        events: list[Anomaly],
    ) -> None:
        cfg = self.config
        key = "position:"
        if key not in st.open and abs(lat - was[0]) + abs(lon - was[1]) < cfg.jump_min_km / 111.0:
            return  # moved less than the smallest jump in any direction: nothing to check
        km = _haversine_km(was[0], was[1], lat, lon)
        hours = max(ts_ms - was[2], 1) / 3_600_000
        kmh = km / hours
        if km > cfg.jump_min_km and kmh > cfg.jump_kmh:
            if key not in st.open:
                quiet = cfg.warmup_quiet and st.readings <= min(cfg.warmup_readings, 20)
                self._open(st, key, Detector.POSITION, "jump", "lat", Severity.WARNING,
                           _score(kmh, cfg.jump_kmh), ts_ms, cfg.jump_kmh, kmh, device_id,
                           events, quiet)  # fmt: skip
        elif key in st.open:
            self._close(st, key, device_id, ts_ms, events)

    # -- silence -------------------------------------------------------------------------

    def silence_limit_ms(self, st: DetectorState) -> int | None:
        """How long this device may be silent; None while its usual interval is unknown."""
        cfg = self.config
        if not st.last_ts or st.interval_ms <= 0 or "dropout:" in st.open:
            return None
        if st.readings < min(cfg.warmup_readings, 20):
            return None
        return round(max(cfg.dropout_factor * st.interval_ms, cfg.dropout_min_s * 1000))

    def check_silence(self, st: DetectorState, device_id: str, now_ms: int) -> list[Anomaly]:
        """A dropout anomaly once the device has been silent far longer than it usually is."""
        limit = self.silence_limit_ms(st)
        if limit is None or now_ms - st.last_ts <= limit:
            return []
        events: list[Anomaly] = []
        self._open(st, "dropout:", Detector.DROPOUT, "silent", "", Severity.WARNING, 0.8,
                   st.last_ts, st.interval_ms / 1000, (now_ms - st.last_ts) / 1000, device_id,
                   events, quiet=False)  # fmt: skip
        return events

    # -- episodes ------------------------------------------------------------------------

    def _anomaly(self, device_id: str, ep: Episode, ended_ms: int | None) -> Anomaly:
        return Anomaly(
            device_id=device_id,
            detector=ep.detector,
            kind=ep.kind,
            metric=ep.metric,
            severity=ep.severity,
            score=round(ep.score, 4),
            started_ms=ep.started_ms,
            ended_ms=ended_ms,
            expected=None if ep.expected is None else round(ep.expected, 6),
            observed=None if ep.observed is None else round(ep.observed, 6),
            model_version=self.version,
        )

    def _open(
        self,
        st: DetectorState,
        key: str,
        detector: str,
        kind: str,
        metric: str,
        severity: str,
        score: float,
        ts_ms: int,
        expected: float | None,
        observed: float | None,
        device_id: str,
        events: list[Anomaly],
        quiet: bool,
    ) -> None:
        if quiet:
            return
        ep = Episode(detector, kind, metric, str(severity), score, ts_ms, expected, observed,
                     self.config.hold)  # fmt: skip
        st.open[key] = ep
        st.raised += 1
        events.append(self._anomaly(device_id, ep, None))

    def _extend(
        self, st: DetectorState, key: str, score: float, expected: float, observed: float, z: float
    ) -> None:
        ep = st.open[key]
        ep.hold = self.config.hold
        if score > ep.score:
            ep.score, ep.expected, ep.observed = score, expected, observed
            hi = self.config.level_hi if ep.detector == Detector.LEVEL else self.config.rate_hi
            if z > 2 * hi:
                ep.severity = Severity.CRITICAL

    def _release(
        self, st: DetectorState, key: str, device_id: str, ts_ms: int, events: list[Anomaly]
    ) -> None:
        """The condition cleared: close after ``hold`` further clear readings."""
        ep = st.open[key]
        if ep.hold > 0:
            ep.hold -= 1
            return
        self._close(st, key, device_id, ts_ms, events)

    def _close(
        self, st: DetectorState, key: str, device_id: str, ts_ms: int, events: list[Anomaly]
    ) -> None:
        ep = st.open.pop(key)
        events.append(self._anomaly(device_id, ep, ts_ms))

    def health(self, st: DetectorState) -> int:
        """100 with nothing open; lower the worse the worst open anomaly is."""
        if not st.open:
            return 100
        worst = max(ep.score for ep in st.open.values())
        critical = any(ep.severity == Severity.CRITICAL for ep in st.open.values())
        return max(0, round(100 * (1 - worst) - (20 if critical else 0)))
