"""Labelled synthetic series, one family per way real signals behave and fail, made from a seed.

Each family makes one single-metric series with its normal behaviour and one or two labelled
anomalies (the label marks the anomalous rows; scoring puts a window around each onset):

=============== ======== ===================================================================
family          cadence  normal behaviour / what is labelled
=============== ======== ===================================================================
seasonal        5 min    daily and weekly cycles with noise / a spike, and a day whose peak
                         does not come (the values stay at the mean: only the season says so)
trending        1 min    a steady trend with noise / a spike against the trend
spiky           1 s      heavy-tailed noise whose single spikes are normal / a sustained
                         burst at three times the level
level_shift     1 min    noise around a level / a step to a new level that stays
variance_change 1 min    noise / the noise grows fivefold and stays so
stuck           1 s      a changing signal / the sensor repeats one value for 60 readings
drifting        1 min    noise around a level / a slow drift away, six spreads in 300 rows
missing         5 min    daily cycle with hours-long gaps in the data (not anomalies) / a spike
=============== ======== ===================================================================

The first 15 % of every series is clean, so that a detector can learn before it is judged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

DAY_S = 86_400
START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: device time, not the clock


@dataclass
class Series:
    name: str
    family: str
    cadence_s: float
    ts_ms: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


def _series(name: str, family: str, cadence_s: float, x: np.ndarray, marks: np.ndarray) -> Series:
    ts = [START_MS + int(i * cadence_s * 1000) for i in range(len(x))]
    return Series(name, family, cadence_s, ts, [float(v) for v in x], [int(m) for m in marks])


def _onset(rng: np.random.Generator, n: int, room: int = 0) -> int:
    """Somewhere after the clean first 15 % (plus a little), leaving ``room`` rows after it."""
    return int(rng.integers(int(0.2 * n), max(int(0.2 * n) + 1, n - room - 1)))


def seasonal(rng: np.random.Generator, n: int = 4_032) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n) * 300.0
    x = 50 + 20 * np.sin(2 * math.pi * t / DAY_S) + 5 * np.sin(2 * math.pi * t / (7 * DAY_S))
    x += rng.normal(0, 2, n)
    marks = np.zeros(n, dtype=int)
    spike = _onset(rng, n // 2)
    x[spike] += 30
    marks[spike] = 1
    day = int(rng.integers(n // 288 // 2 + 1, n // 288 - 1))  # a day in the second half
    peak = day * 288 + 72  # six in the morning to noon, when the cycle is high
    x[peak : peak + 72] = 50 + rng.normal(0, 2, 72)
    marks[peak : peak + 72] = 1
    return x, marks


def trending(rng: np.random.Generator, n: int = 4_000) -> tuple[np.ndarray, np.ndarray]:
    x = 10 + 0.01 * np.arange(n) + rng.normal(0, 1, n)
    marks = np.zeros(n, dtype=int)
    at = _onset(rng, n)
    x[at] += float(rng.choice([-1, 1])) * 8
    marks[at] = 1
    return x, marks


def spiky(rng: np.random.Generator, n: int = 4_000) -> tuple[np.ndarray, np.ndarray]:
    x = 100 + 5 * rng.standard_t(2, n).clip(-40, 40)
    marks = np.zeros(n, dtype=int)
    at = _onset(rng, n, 30)
    x[at : at + 30] = 300 + rng.normal(0, 5, 30)
    marks[at : at + 30] = 1
    return x, marks


def level_shift(rng: np.random.Generator, n: int = 4_000) -> tuple[np.ndarray, np.ndarray]:
    x = 20 + rng.normal(0, 1, n)
    marks = np.zeros(n, dtype=int)
    at = _onset(rng, n, 200)
    x[at:] += float(rng.choice([-1, 1])) * 5
    marks[at : at + 5] = 1
    return x, marks


def variance_change(rng: np.random.Generator, n: int = 4_000) -> tuple[np.ndarray, np.ndarray]:
    x = 20 + rng.normal(0, 1, n)
    marks = np.zeros(n, dtype=int)
    at = _onset(rng, n, 200)
    x[at:] = 20 + rng.normal(0, 5, n - at)
    marks[at : at + 20] = 1
    return x, marks


def stuck(rng: np.random.Generator, n: int = 4_000) -> tuple[np.ndarray, np.ndarray]:
    x = 60 + 3 * np.sin(np.arange(n) / 40) + rng.normal(0, 0.5, n)
    marks = np.zeros(n, dtype=int)
    at = _onset(rng, n, 60)
    x[at : at + 60] = x[at - 1]
    marks[at : at + 60] = 1
    return x, marks


def drifting(rng: np.random.Generator, n: int = 4_000) -> tuple[np.ndarray, np.ndarray]:
    x = 40 + rng.normal(0, 1, n)
    marks = np.zeros(n, dtype=int)
    at = _onset(rng, n, 300)
    x[at : at + 300] += np.linspace(0, 6, 300)
    x[at + 300 :] += 6
    marks[at : at + 300] = 1
    return x, marks


def missing(rng: np.random.Generator, n: int = 4_032) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n) * 300.0
    x = 30 + 10 * np.sin(2 * math.pi * t / DAY_S) + rng.normal(0, 1, n)
    marks = np.zeros(n, dtype=int)
    at = _onset(rng, n)
    x[at] += 15
    marks[at] = 1
    return x, marks


FAMILIES: dict[str, tuple[float, Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]]]
FAMILIES = {
    "seasonal": (300.0, seasonal),
    "trending": (60.0, trending),
    "spiky": (1.0, spiky),
    "level_shift": (60.0, level_shift),
    "variance_change": (60.0, variance_change),
    "stuck": (1.0, stuck),
    "drifting": (60.0, drifting),
    "missing": (300.0, missing),
}


def _gaps(rng: np.random.Generator, s: Series) -> Series:
    """Take out three spans of 2 to 6 hours, away from the labelled rows."""
    keep = np.ones(len(s.values), dtype=bool)
    labelled = np.array(s.labels, dtype=bool)
    for _ in range(3):
        length = int(rng.integers(24, 73))
        at = int(rng.integers(int(0.2 * len(keep)), len(keep) - length))
        if not labelled[max(0, at - 12) : at + length + 12].any():
            keep[at : at + length] = False
    idx = np.flatnonzero(keep)
    return Series(
        s.name, s.family, s.cadence_s,
        [s.ts_ms[i] for i in idx], [s.values[i] for i in idx], [s.labels[i] for i in idx],
    )  # fmt: skip


def suite(seed: int, per_family: int = 3) -> list[Series]:
    """``per_family`` series of every family; the same seed makes the same suite."""
    out: list[Series] = []
    for family, (cadence, make) in FAMILIES.items():
        for k in range(per_family):
            rng = np.random.default_rng([seed, len(out), k])
            x, marks = make(rng)
            s = _series(f"{family}-{k}", family, cadence, x, marks)
            out.append(_gaps(rng, s) if family == "missing" else s)
    return out
