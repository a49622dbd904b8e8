"""What the detectors report."""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Detector(StrEnum):
    """Which detector raised an anomaly (the ``detector`` column)."""

    RULE = "rule"  # beyond a profile's warning / critical threshold
    LEVEL = "level"  # a value far from the device's learned baseline
    RATE = "rate"  # a rate of change far from the device's usual rate
    SHIFT = "shift"  # the smoothed value moved away from its baseline and stays there
    RELATION = "relation"  # metrics each normal, the relation between them not
    DRIFT = "drift"  # small deviations that keep adding up (CUSUM): wear, slow leaks
    FLATLINE = "flatline"  # a sensor stuck on one value
    POSITION = "position"  # a GPS position that jumped faster than anything drives
    DROPOUT = "dropout"  # a device silent far longer than its usual interval


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class Explained(msgspec.Struct, frozen=True, gc=False):
    """One metric of a relation anomaly: what the others say it should read, and what it read."""

    metric: str
    expected: float
    observed: float


class Anomaly(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One anomaly episode: opened at ``started_ms``; ``ended_ms`` once it has cleared.

    ``kind`` says what looks wrong (``high``, ``low``, ``rising``, ``falling``, ``stuck``,
    ``jump``, ``silent``, ``relation``); ``metric`` the metric that drove it (a relation's
    metrics joined by ``+``, the strongest first), with the ``expected``
    (baseline or threshold) and ``observed`` values at the worst point so far; a relation's
    ``explanation`` gives them for each metric it names. Identity is
    (device, detector, metric, started_ms): a replayed reading reopens the same episode.
    """

    device_id: str
    detector: str
    kind: str
    metric: str
    severity: str
    score: float
    started_ms: int
    ended_ms: int | None = None
    expected: float | None = None
    observed: float | None = None
    model_version: str = ""
    explanation: tuple[Explained, ...] = ()
