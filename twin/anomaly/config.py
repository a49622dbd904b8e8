"""Detector hyperparameters: one frozen configuration, named by a hash of its content.

Thresholds are in robust units: a metric's deviation from its learned baseline divided by its
learned spread (``z``), for values and for rates of change. A detection opens when ``z`` stays
above ``*_hi`` for ``*_persist`` readings in a row, or at once above ``*_instant``; it stays
open while ``z`` is above ``*_lo`` and for ``hold`` readings after. The level's ``z`` is
calibrated against the metric's own tail (``tail_*``, :mod:`twin.anomaly.tail`), so a threshold
means the same rarity on every metric. Baselines hold back from readings that raise something
(for at most ``adapt`` in a row), so a lasting fault keeps being reported until it has plainly
become the new normal.
"""

from __future__ import annotations

import hashlib

import msgspec


class DetectorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str = "fleet"
    warmup_readings: int = 120
    """Per device and metric: readings that only learn (scores are computed, nothing raised)."""
    alpha: float = 0.01
    """Weight of a new reading in the exponentially weighted baseline after warm-up."""
    rate_alpha: float = 0.002
    """The same for rates of change, slower: wear and leaks must not become the usual rate."""
    rel_floor: float = 0.002
    """The spread never counts as less than this share of the baseline's magnitude ..."""
    abs_floor: float = 1e-6
    """... nor less than this (sensors that report a constant do not divide by zero)."""
    level_hi: float = 4.0
    level_lo: float = 3.0
    level_instant: float = 5.0
    level_persist: int = 3
    rate_hi: float = 5.0
    rate_lo: float = 3.5
    rate_instant: float = 6.0
    rate_persist: int = 2
    hold: int = 20
    """Readings back to normal before an anomaly closes: a condition that flickers around its
    threshold is one anomaly, not a new one every few readings."""
    tail_alpha: float = 0.001
    """How fast a metric's tail is learnt, at the slowest (0: deviations are not calibrated)."""
    tail_prior: int = 300
    """Readings the Gaussian tail counts for before a metric's own is learnt."""
    shift_lambda: float = 0.1
    """Weight of a new deviation in the smoothed one (0: no shift layer)."""
    shift_hi: float = 8.0
    shift_lo: float = 5.0
    """A shift opens when the smoothed deviation passes ``shift_hi`` of its own spreads and
    ends below ``shift_lo``."""
    shift_alpha: float = 0.002
    """Weight of a new reading in the smoothed deviation's spread after warm-up."""
    shift_learn: float = 3.0
    """Baselines do not learn from a reading whose smoothed deviation is past this."""
    adapt: int = 1000
    """Readings in a row that baselines hold back from learning (an anomaly open, a shift
    building up) before they learn again: a lasting change becomes the new normal, and its
    anomaly ends, instead of being reported for ever."""
    adapt_s: float = 86_400.0
    """... or held back this long at the device's usual interval, whichever comes first: a
    5 min historian's step is its new normal after a day, not after three and a half."""
    season_days: float = 5.0
    """Memory of an hour-of-day offset, in days (of a day-of-week offset: three weeks)."""
    season_min_days: float = 2.0
    """Days a metric's season is learnt before it may be used (0: no seasonal baselines)."""
    season_on: float = 0.5
    season_off: float = 0.7
    """The season is used once the deviations' power with it is below ``season_on`` of the
    power without it, and until it is above ``season_off``."""
    relation_hi: float = 5.0
    relation_lo: float = 3.5
    relation_persist: int = 3
    relation_learn: float = 3.0
    relation_alpha: float = 0.001
    relation_warmup: int = 300
    """The relation layer (the metrics a profile names in ``relations``) opens when a
    reading's ``T^2`` is as rare as a deviation of ``relation_hi`` spreads for
    ``relation_persist`` readings in a row, stays open while it is as rare as ``relation_lo``,
    and learns only from readings no rarer than ``relation_learn``, at ``relation_alpha``
    after ``relation_warmup`` readings of exact moments."""
    drift_k: float = 0.5
    """CUSUM slack, in spreads: deviations smaller than this never add up."""
    drift_h: float = 25.0
    """CUSUM decision level: a drift is reported once the sum passes it."""
    level_drift: bool = False
    """CUSUM on levels too (rates always have it). Off: slow thermal swings look like drift."""
    flat_readings: int = 20
    """A metric that normally changes at almost every reading and then repeats one value this
    many times is reported as a stuck sensor."""
    flat_change_share: float = 0.8
    jump_kmh: float = 400.0
    """Implied speed between two positions above which a GPS jump is reported."""
    jump_min_km: float = 2.0
    dropout_factor: float = 10.0
    """A device silent for this many of its usual intervals has dropped out ..."""
    dropout_min_s: float = 30.0
    """... and at least this long."""
    warmup_quiet: bool = True
    """Raise nothing during warm-up (scores are still computed)."""

    @property
    def version(self) -> str:
        """``{name}-{hash}``: changes whenever any hyperparameter changes."""
        digest = hashlib.sha256(msgspec.json.encode(self)).hexdigest()[:10]
        return f"{self.name}-{digest}"


FLEET = DetectorConfig()
"""The engine's default for vehicles and machines reporting every few seconds."""

SKAB = DetectorConfig(
    name="skab",
    warmup_readings=400,
    alpha=0.005,
    rel_floor=0.0005,
    level_hi=5.5,
    level_lo=2.5,
    level_instant=8.0,
    level_persist=3,
    hold=2,
    shift_hi=6.5,
    shift_lo=4.0,
    shift_alpha=0.005,
    rate_hi=8.0,
    rate_lo=5.0,
    rate_instant=16.0,
)
"""For the SKAB protocol: the first 400 rows of each file learn, every later row is judged.
Chosen once for all files; see the README's evaluation section for how."""
