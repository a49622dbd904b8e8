"""Online anomaly detectors that live inside a twin.

Layers, cheapest first, all fed one reading at a time in event time (each a small class
behind the contract in :mod:`twin.anomaly.layers`):

* thresholds: a value beyond the profile's warning / critical limit;
* level: the value's distance from the device's own baseline (exponentially weighted mean and
  spread per metric), in units of that spread, calibrated against the metric's own tail; for
  devices without a profile, plus the metric's season once it has one (hour of day, day of
  week: :mod:`twin.anomaly.season`);
* shift: the deviation from the baseline, smoothed, against its own spread: a lasting shift
  of a fraction of the noise, reported once from its onset (a change point, not spikes);
* drift: small deviations of the level or the rate that keep adding up (CUSUM);
* rate: the same for the rate of change per second (leaks, fast wear, runaway temperatures);
* flatline: a metric that usually changes at every reading repeats one value (stuck sensor);
* relation: the metrics a profile names in ``relations`` together, against their learnt
  covariance (:mod:`twin.anomaly.relation`);
* position: consecutive GPS positions that imply an impossible speed (GPS jump);
* dropout: a device silent for many of its usual intervals (checked against a clock by
  ``check_silence``, since a silent device sends nothing to react to).

Each reading is scored before anything learns from it, and baselines hold back from readings
that raise something, so a fault that lasts is reported for as long as it lasts (up to the
configuration's ``adapt`` readings, after which it is the new normal). During a warm-up
per metric the detectors learn and score but raise nothing. All state is small plain data in
:class:`~twin.anomaly.state.DetectorState`, which travels inside the twin's snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

from twin.anomaly.config import FLEET, DetectorConfig
from twin.anomaly.device_layers import Dropout, Position, Thresholds
from twin.anomaly.episodes import Episodes
from twin.anomaly.flatline import Flatline
from twin.anomaly.layers import Drift, Level, Rate, Sample
from twin.anomaly.records import Anomaly, Detector, Severity
from twin.anomaly.relation import Relations
from twin.anomaly.season import Season, Seasonal
from twin.anomaly.shift import Shift
from twin.anomaly.state import DetectorState, Episode, Track
from twin.anomaly.tail import GAUSS_EXCESS, GAUSS_SHARE
from twin.profiles import METRIC_CATALOG, DeviceProfile, MetricSpec

__all__ = ["AnomalyDetectors", "DetectorState", "Episode", "Observation", "Track"]


class Observation(msgspec.Struct, gc=False):
    """What one reading did: anomaly episodes opened, updated or closed; the reading's verdict.

    ``flagged``: an anomaly of the device is open after it. ``score``: how surprising what the
    reading newly shows is (:mod:`~twin.anomaly.scores`): its deviations where nothing reports
    them yet, and the episodes it opened; an anomaly that is open already adds nothing, so a
    change that lasts scores high at its onset, not on every reading after it.
    """

    events: list[Anomaly]
    flagged: bool
    score: float


_Plan = tuple[str, MetricSpec | None, float, float]
_UNKNOWN: _Plan = ("all", None, -math.inf, math.inf)
"""A metric no profile or catalogue knows: watched as a condition, no thresholds."""


class AnomalyDetectors:
    """The detector layers with one configuration; state lives in each twin."""

    def __init__(self, config: DetectorConfig = FLEET) -> None:
        self.config = config
        self.version = config.version
        self._plans: dict[str, dict[str, _Plan]] = {}
        self.thresholds = Thresholds()
        self.level = Level.from_config(config)
        self.drift = Drift.from_config(config)
        self.rate = Rate.from_config(config)
        self.shift = Shift.from_config(config)
        self.season = Seasonal.from_config(config)
        self.relations = Relations.from_config(config)
        self.flatline = Flatline.from_config(config)
        self.position = Position.from_config(config)
        self.dropout = Dropout.from_config(config)
        self.critical_z = {
            Detector.LEVEL.value: 2 * config.level_hi,
            Detector.SHIFT.value: 2 * config.shift_hi,
            "*": 2 * config.rate_hi,
            Detector.RELATION.value: self.relations.critical_at,  # compared with -log10 p
        }
        """Per detector, the deviation past which an extended episode turns critical."""

    def _episodes(self, st: DetectorState, device_id: str) -> Episodes:
        return Episodes(st, device_id, hold=self.config.hold, version=self.version,
                        critical_z=self.critical_z)  # fmt: skip

    # -- per reading ---------------------------------------------------------------------

    def observe(
        self,
        st: DetectorState,
        device_id: str,
        profile: DeviceProfile | None,
        ts_ms: int,
        values: Mapping[str, float],
    ) -> Observation:
        eps = self._episodes(st, device_id)
        self.dropout.observe(st, ts_ms, eps)
        st.last_ts = max(st.last_ts, ts_ms)
        st.readings += 1
        was = _last_position(st.tracks, ts_ms)
        driver = profile.driver if profile is not None else None
        dx = values.get(driver) if driver is not None else None
        steady = _steady(st.tracks, driver, dx)
        plan = self.plan(profile)
        at_rest = profile is not None and dx is not None and dx <= profile.running_load_pct
        peak = 0.0
        related = dict.fromkeys(profile.relations) if profile and profile.relations else None
        for metric, x in values.items():
            tr = st.tracks.get(metric)
            if tr is None:
                tr = st.tracks[metric] = Track()
            elif ts_ms <= tr.last_ts:
                continue  # late or repeated: the baseline moves forward in event time only
            if related is not None and metric in related:
                related[metric] = x
            watch, spec, low, high = plan.get(metric, _UNKNOWN)
            if spec is not None and (x <= low or x >= high or ("rule:" + metric) in st.open):
                self.thresholds.judge(spec, metric, x, ts_ms, eps, at_rest and metric != driver)
            if watch == "rules":  # operating state: thresholds only
                tr.n += 1
                tr.last, tr.last_ts = x, ts_ms
                continue
            px = dx if metric != driver else None
            s = Sample(metric, x, px, watch, steady, ts_ms, tr.n >= self.config.warmup_readings,
                       self._quiet(tr), at_rest and px is not None)  # fmt: skip
            s.interval_ms = st.interval_ms
            season = st.seasons.get(metric) if profile is None and st.seasons else None
            if season is not None:
                s.off = self.season.offset(season, ts_ms)
            peak = max(peak, self._metric(tr, s, eps))
            if profile is None and self.season.on and s.judged:
                self._season(st, season, tr, s)
        if related is not None and all(v is not None for v in related.values()):
            peak = max(peak, self.relate(st, eps, ts_ms, related, profile, dx))  # type: ignore[arg-type]
        if was is not None and "lat" in values and "lon" in values:
            self.position.judge(st, was, values["lat"], values["lon"], ts_ms, eps)
        return Observation(eps.events, bool(st.open), max(peak, eps.opened))

    def relate(
        self,
        st: DetectorState,
        eps: Episodes,
        ts_ms: int,
        related: Mapping[str, float],
        profile: DeviceProfile,
        dx: float | None,
    ) -> float:
        """The relation layer over a reading that carries every metric of the relation (none
        of them late); ``dx``: the profile's driver in the reading. A machine at rest has no
        relation to judge: its reading is neither judged nor learnt from."""
        if dx is not None and dx <= profile.running_load_pct:
            return 0.0
        rel = st.relation
        if rel is None or rel.metrics != tuple(related):
            rel = st.relation = self.relations.start(tuple(related))
        x = [float(v) for v in related.values()]
        driver = profile.driver
        given = rel.metrics.index(driver) if driver in related else -1
        return self.relations.judge(rel, eps, ts_ms, x, given)

    def _season(self, st: DetectorState, season: Season | None, tr: Track, s: Sample) -> None:
        """A season learns from every judged value until it is used (the level holds back
        from the swings it is there to explain), then from those the baselines learn from."""
        if season is None:
            if st.seasons is None:
                st.seasons = {}
            season = st.seasons[s.metric] = Season(s.ts_ms)
        elif season.on and s.held_back:
            return
        r = s.x - s.expected + s.off
        if self.season.learn(season, s.ts_ms, s.x, r, st.interval_ms):
            tr.mean, tr.var = season.level, season.daily
            tr.tail_r, tr.tail_m = GAUSS_SHARE, GAUSS_EXCESS

    def _quiet(self, tr: Track) -> bool:
        return self.config.warmup_quiet and tr.n < self.config.warmup_readings

    def _metric(self, tr: Track, s: Sample, eps: Episodes) -> float:
        """One metric through the layers: every layer scores, then those that learn do."""
        peak = self.level.score(tr, s, eps)
        peak = max(peak, self.shift.score(tr, s, eps))
        self.drift.score(tr, s, eps)  # the level's deviations, when configured
        self.rate.score(tr, s, eps)
        self.drift.score(tr, s, eps)  # the rate's, for metrics watched for a trend
        self.flatline.score(tr, s, eps)
        self.rate.learn(tr, s, eps)
        self.level.learn(tr, s, eps)
        self.shift.learn(tr, s, eps)  # after the level, whose decision to learn it follows
        tr.last, tr.last_ts = s.x, s.ts_ms
        return peak

    def plan(self, profile: DeviceProfile | None) -> dict[str, _Plan]:
        """Per metric of a profile: which detectors watch it, its thresholds if any, and the
        band inside which no threshold can be crossed (checked before anything else)."""
        name = profile.name if profile is not None else ""
        plan = self._plans.get(name)
        if plan is None:
            plan = self._plans[name] = _make_plan(profile)
        return plan

    # -- silence -------------------------------------------------------------------------

    def silence_limit_ms(self, st: DetectorState) -> int | None:
        """How long this device may be silent; None while its usual interval is unknown."""
        return self.dropout.limit_ms(st)

    def check_silence(self, st: DetectorState, device_id: str, now_ms: int) -> list[Anomaly]:
        """A dropout anomaly once the device has been silent far longer than it usually is."""
        eps = self._episodes(st, device_id)
        self.dropout.check(st, now_ms, eps)
        return eps.events

    def health(self, st: DetectorState) -> int:
        """100 with nothing open; lower the worse the worst open anomaly is."""
        if not st.open:
            return 100
        worst = max(ep.score for ep in st.open.values())
        critical = any(ep.severity == Severity.CRITICAL for ep in st.open.values())
        return max(0, round(100 * (1 - worst) - (20 if critical else 0)))


def _last_position(tracks: dict[str, Track], ts_ms: int) -> tuple[float, float, int] | None:
    la, lo = tracks.get("lat"), tracks.get("lon")
    if la is not None and lo is not None and la.n and ts_ms > la.last_ts:
        return (la.last, lo.last, la.last_ts)
    return None


def _steady(tracks: dict[str, Track], driver: str | None, dx: float | None) -> bool:
    """The operating point held still: rates of change mean something."""
    if driver is None or dx is None:
        return True
    dtr = tracks.get(driver)
    if dtr is None or not dtr.n:
        return True
    return abs(dx - dtr.last) <= max(5.0, 0.1 * abs(dtr.mean))


def _make_plan(profile: DeviceProfile | None) -> dict[str, _Plan]:
    plan: dict[str, _Plan] = {}
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
    return plan
