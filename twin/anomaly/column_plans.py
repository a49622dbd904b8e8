"""What a device's profile says of each metric of its readings, as the plan columns of its
tracks take it (:data:`~twin.anomaly.track_columns.PLAN_FLAGS`): worked out once per profile
and set of metrics, then written into a twin's rows with one assignment per column."""

from __future__ import annotations

import numpy as np

from twin.anomaly.column_layers import WATCH
from twin.anomaly.detectors import AnomalyDetectors
from twin.anomaly.layers import COUNTERS, POSITION
from twin.profiles import DeviceProfile

PLAN_CACHE = 4096
"""How many (profile, set of metrics) plans are kept ready (a fleet has a handful)."""


class Plans:
    def __init__(self, scalar: AnomalyDetectors) -> None:
        self.scalar = scalar
        self._plans: dict[tuple[str, tuple[str, ...]], dict[str, np.ndarray]] = {}

    def of(self, profile: DeviceProfile | None, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The plan columns' values for a reading's metrics, in their order."""
        key = (profile.name if profile is not None else "", keys)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        if len(self._plans) >= PLAN_CACHE:
            self._plans.clear()  # devices that keep sending new sets of metrics
        said = self.scalar.plan(profile)
        driver = profile.driver if profile is not None else None
        rule = [said.get(m, ("all", None, -np.inf, np.inf)) for m in keys]
        plan = self._plans[key] = {
            "watch": np.array([WATCH[w] for w, _, _, _ in rule], dtype=np.int8),
            "has_spec": np.array([spec is not None for _, spec, _, _ in rule], dtype=np.int8),
            "low": np.array([low for _, _, low, _ in rule], dtype=np.float64),
            "high": np.array([high for _, _, _, high in rule], dtype=np.float64),
            "special": np.array([m in POSITION or m in COUNTERS for m in keys], dtype=np.int8),
            "position": np.array([m in POSITION for m in keys], dtype=np.int8),
            "is_driver": np.array([m == driver for m in keys], dtype=np.int8),
        }
        return plan
