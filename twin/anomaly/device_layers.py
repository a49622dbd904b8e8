"""The layers that judge a reading or a device as a whole: the profile's thresholds, GPS
jumps between positions, and silence (dropout)."""

from __future__ import annotations

import math

from twin.anomaly.config import DetectorConfig
from twin.anomaly.episodes import Episodes
from twin.anomaly.records import Detector, Severity
from twin.anomaly.scores import ratio_score
from twin.anomaly.state import DetectorState
from twin.profiles import MetricSpec

EARTH_KM = 6371.0
DROPOUT_KEY = "dropout:"
POSITION_KEY = "position:"


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


class Thresholds:
    """A value beyond the profile's warning / critical limits, from the first reading; low
    limits do not apply while a machine stands still."""

    def judge(
        self, spec: MetricSpec, metric: str, x: float, ts_ms: int, eps: Episodes, at_rest: bool
    ) -> None:
        key = "rule:" + metric
        verdict = self._verdict(spec, x, at_rest)
        ep = eps.active.get(key)
        if verdict is None:
            if ep is not None:
                eps.close(key, ts_ms)
            return
        kind, sev, limit = verdict
        value = 0.9 if sev == Severity.CRITICAL else 0.6
        if ep is None:
            eps.open(key, Detector.RULE, kind, metric, sev, value, ts_ms, limit, x, quiet=False)
        elif sev == Severity.CRITICAL and ep.severity != Severity.CRITICAL:
            eps.escalate(key, sev, value, limit, x)

    @staticmethod
    def _verdict(spec: MetricSpec, x: float, at_rest: bool) -> tuple[str, str, float] | None:
        if spec.crit_high is not None and x >= spec.crit_high:
            return ("high", Severity.CRITICAL, spec.crit_high)
        if spec.crit_low is not None and x <= spec.crit_low and not at_rest:
            return ("low", Severity.CRITICAL, spec.crit_low)
        if spec.warn_high is not None and x >= spec.warn_high:
            return ("high", Severity.WARNING, spec.warn_high)
        if spec.warn_low is not None and x <= spec.warn_low and not at_rest:
            return ("low", Severity.WARNING, spec.warn_low)
        return None


class Position:
    """Consecutive GPS positions that imply an impossible speed: a GPS jump."""

    def __init__(self, *, jump_kmh: float, jump_min_km: float, quiet_readings: int) -> None:
        self.jump_kmh = jump_kmh
        self.jump_min_km = jump_min_km
        self.quiet_readings = quiet_readings
        """Readings of a device during which a jump is learnt from, not raised (0: none)."""

    @classmethod
    def from_config(cls, cfg: DetectorConfig) -> Position:
        quiet = min(cfg.warmup_readings, 20) if cfg.warmup_quiet else 0
        return cls(jump_kmh=cfg.jump_kmh, jump_min_km=cfg.jump_min_km, quiet_readings=quiet)

    def judge(
        self,
        st: DetectorState,
        was: tuple[float, float, int],
        lat: float,
        lon: float,
        ts_ms: int,
        eps: Episodes,
    ) -> None:
        key = POSITION_KEY
        near = abs(lat - was[0]) + abs(lon - was[1]) < self.jump_min_km / 111.0
        if key not in eps.active and near:
            return  # moved less than the smallest jump in any direction: nothing to check
        km = haversine_km(was[0], was[1], lat, lon)
        kmh = km / (max(ts_ms - was[2], 1) / 3_600_000)
        if km > self.jump_min_km and kmh > self.jump_kmh:
            if key not in eps.active:
                quiet = st.readings <= self.quiet_readings
                value = ratio_score(kmh, self.jump_kmh)
                eps.open(key, Detector.POSITION, "jump", "lat", Severity.WARNING, value, ts_ms,
                         self.jump_kmh, kmh, quiet)  # fmt: skip
        elif key in eps.active:
            eps.close(key, ts_ms)


class Dropout:
    """A device silent for many of its usual intervals; judged against a clock, since a silent
    device sends nothing to react to."""

    def __init__(self, *, factor: float, min_s: float, known_after: int) -> None:
        self.factor = factor
        self.min_s = min_s
        self.known_after = known_after
        """Readings before the usual interval is trusted."""

    @classmethod
    def from_config(cls, cfg: DetectorConfig) -> Dropout:
        return cls(factor=cfg.dropout_factor, min_s=cfg.dropout_min_s,
                   known_after=min(cfg.warmup_readings, 20))  # fmt: skip

    def limit_ms(self, st: DetectorState) -> int | None:
        """How long this device may be silent; None while its usual interval is unknown."""
        if not st.last_ts or st.interval_ms <= 0 or DROPOUT_KEY in st.open:
            return None
        if st.readings < self.known_after:
            return None
        return round(max(self.factor * st.interval_ms, self.min_s * 1000))

    def check(self, st: DetectorState, now_ms: int, eps: Episodes) -> None:
        limit = self.limit_ms(st)
        if limit is None or now_ms - st.last_ts <= limit:
            return
        eps.open(DROPOUT_KEY, Detector.DROPOUT, "silent", "", Severity.WARNING, 0.8,
                 st.last_ts, st.interval_ms / 1000, (now_ms - st.last_ts) / 1000,
                 quiet=False)  # fmt: skip

    @staticmethod
    def observe(st: DetectorState, ts_ms: int, eps: Episodes) -> None:
        """A reading: learn the usual interval, and end a dropout the device came back from."""
        if st.last_ts and ts_ms > st.last_ts:
            gap = ts_ms - st.last_ts
            st.interval_ms = gap if st.interval_ms <= 0 else 0.9 * st.interval_ms + 0.1 * gap
        if DROPOUT_KEY in st.open and ts_ms > st.last_ts:
            eps.close(DROPOUT_KEY, ts_ms)
