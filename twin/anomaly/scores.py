"""Anomaly scores on one scale for every layer, metric and device.

The level, rate and shift layers judge a deviation ``z`` in Gaussian-equivalent spreads (after
:mod:`~twin.anomaly.tail` calibration), so ``z`` stands for a tail probability: the two-sided
chance ``p`` that a normal reading of that metric deviates at least as far. The score is that
probability on a readable scale: with ``L = -log10(p)`` and ``L_ALARM`` the same for a
deviation of ``ALARM_Z`` spreads (one in 1.7 million),

    score = L / (L + L_ALARM),    p = 10 ** (-L_ALARM * score / (1 - score))

0 at the baseline, 0.5 at the alarm probability, towards 1 as ``p`` goes to 0, and never
saturating, so the worst point of an episode stays the worst. One threshold therefore means one
probability everywhere: 0.25 is about one in 120, 0.33 one in 1,300, 0.5 one in 1.7 million,
0.6 one in 2.3 billion, 0.75 one in 5·10^18.

Layers whose statistic has no distribution behind it score ``value / (value + threshold)``,
0.5 at their threshold (drift sums against ``drift_h``, GPS speed against ``jump_kmh``);
limits, stuck sensors and silence score fixed values past the alarm level.
"""

from __future__ import annotations

import math

ALARM_Z = 5.0
"""The Gaussian-equivalent deviation that scores 0.5 (the fleet's level threshold)."""
_SQRT_HALF = math.sqrt(0.5)
_LN10 = math.log(10.0)


def log_tail(z: float) -> float:
    """``-log10`` of the two-sided Gaussian tail probability beyond ``z`` spreads."""
    if z < 30.0:
        return -math.log10(math.erfc(z * _SQRT_HALF))
    x = z * _SQRT_HALF  # erfc underflows: its asymptote, exact to 1e-3 here
    return (x * x + math.log(x * math.sqrt(math.pi))) / _LN10


L_ALARM = log_tail(ALARM_Z)


def deviation_score(z: float) -> float:
    """The score of a deviation of ``z`` Gaussian-equivalent spreads."""
    if not z > 0:
        return 0.0
    low = log_tail(z)
    return low / (low + L_ALARM)


def probability(score: float) -> float:
    """The tail probability a deviation score stands for (the inverse of the scale)."""
    if score <= 0:
        return 1.0
    if score >= 1:
        return 0.0
    return float(10.0 ** (-L_ALARM * score / (1.0 - score)))


def ratio_score(value: float, threshold: float) -> float:
    """0 at nothing, 0.5 at the layer's threshold, towards 1 far beyond it."""
    return value / (value + threshold) if value > 0 else 0.0
