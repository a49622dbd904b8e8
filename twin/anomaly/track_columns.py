"""The metric tracks of many twins as columns: one row per (device, metric), one numpy array
per field of :class:`~twin.anomaly.state.Track`, plus the open episode of each metric layer.

This is the state the vectorised layers (:mod:`twin.anomaly.columns`) update a whole batch at
a time; a row converts to and from the scalar :class:`Track` so that a twin's detector state
still travels in its snapshot.
"""

from __future__ import annotations

import numpy as np

from twin.anomaly.state import Episode, Track

FLOAT_FIELDS = ("mean", "var", "last", "rmean", "rvar", "changed", "mx", "vx", "cxy", "rv",
                "up", "down", "res")  # fmt: skip
INT_FIELDS = ("n", "last_ts", "rn", "same", "level_run", "rate_run")
PLAN_FLOATS = ("low", "high")
"""The band inside which no threshold of the row's metric can be crossed."""
PLAN_FLAGS = ("watch", "has_spec", "special", "position", "is_driver", "rule_open")
"""What the device's profile says of the row's metric (set with its layout), and whether a
threshold episode of it is open."""
LAYERS = ("level", "rate", "drift", "flatline")
"""The metric layers whose open episode each row keeps (thresholds are rare: kept per twin)."""
EPISODE_FLOATS = ("score", "expected", "observed")
EPISODE_INTS = ("started", "hold", "kind", "severity")
KINDS = ("high", "low", "rising", "falling", "stuck")
SEVERITIES = ("warning", "critical")


class TrackColumns:
    """Grows by doubling; rows are never moved, so a row number is a stable handle."""

    def __init__(self, capacity: int = 1024) -> None:
        self.size = 0
        self._capacity = 0
        self.f: dict[str, np.ndarray] = {}
        self.i: dict[str, np.ndarray] = {}
        self.open: dict[str, np.ndarray] = {}
        self.ep_f: dict[str, np.ndarray] = {}
        self.ep_i: dict[str, np.ndarray] = {}
        self._grow(capacity)

    def _grow(self, capacity: int) -> None:
        def grown(old: np.ndarray | None, dtype: type) -> np.ndarray:
            new: np.ndarray = np.zeros(capacity, dtype=dtype)
            if old is not None:
                new[: self._capacity] = old
            return new

        for name in FLOAT_FIELDS:
            self.f[name] = grown(self.f.get(name), np.float64)
        for name in INT_FIELDS:
            self.i[name] = grown(self.i.get(name), np.int64)
        for name in PLAN_FLOATS:
            self.f[name] = grown(self.f.get(name), np.float64)
        for name in PLAN_FLAGS:
            self.i[name] = grown(self.i.get(name), np.int8)
        for layer in LAYERS:
            self.open[layer] = grown(self.open.get(layer), np.bool_)
            for name in EPISODE_FLOATS:
                key = f"{layer}.{name}"
                self.ep_f[key] = grown(self.ep_f.get(key), np.float64)
            for name in EPISODE_INTS:
                key = f"{layer}.{name}"
                self.ep_i[key] = grown(self.ep_i.get(key), np.int64)
        self._capacity = capacity

    def add(self) -> int:
        if self.size == self._capacity:
            self._grow(self._capacity * 2)
        row = self.size
        self.size += 1
        return row

    def load(self, row: int, track: Track) -> None:
        for name in FLOAT_FIELDS:
            self.f[name][row] = getattr(track, name)
        for name in INT_FIELDS:
            self.i[name][row] = getattr(track, name)

    def track(self, row: int) -> Track:
        values: dict[str, float | int] = {n: float(self.f[n][row]) for n in FLOAT_FIELDS}
        values.update({n: int(self.i[n][row]) for n in INT_FIELDS})
        return Track(**values)  # type: ignore[arg-type]

    def load_episode(self, row: int, layer: str, ep: Episode) -> None:
        self.open[layer][row] = True
        self.ep_f[f"{layer}.score"][row] = ep.score
        self.ep_f[f"{layer}.expected"][row] = np.nan if ep.expected is None else ep.expected
        self.ep_f[f"{layer}.observed"][row] = np.nan if ep.observed is None else ep.observed
        self.ep_i[f"{layer}.started"][row] = ep.started_ms
        self.ep_i[f"{layer}.hold"][row] = ep.hold
        self.ep_i[f"{layer}.kind"][row] = KINDS.index(ep.kind)
        self.ep_i[f"{layer}.severity"][row] = SEVERITIES.index(ep.severity)

    def episode(self, row: int, layer: str, detector: str, metric: str) -> Episode | None:
        if not self.open[layer][row]:
            return None
        expected = float(self.ep_f[f"{layer}.expected"][row])
        observed = float(self.ep_f[f"{layer}.observed"][row])
        return Episode(
            detector,
            KINDS[int(self.ep_i[f"{layer}.kind"][row])],
            metric,
            SEVERITIES[int(self.ep_i[f"{layer}.severity"][row])],
            float(self.ep_f[f"{layer}.score"][row]),
            int(self.ep_i[f"{layer}.started"][row]),
            None if np.isnan(expected) else expected,
            None if np.isnan(observed) else observed,
            int(self.ep_i[f"{layer}.hold"][row]),
        )
