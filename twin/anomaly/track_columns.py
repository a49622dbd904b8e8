"""The metric tracks of many twins as columns: one row per (device, metric), one numpy array
per field of :class:`~twin.anomaly.state.Track`, a flag per metric layer for an open episode,
and the few open episodes themselves beside the columns.

This is the state the vectorised layers (:mod:`twin.anomaly.columns`) update a whole batch at
a time; a row converts to and from the scalar :class:`Track` so that a twin's detector state
still travels in its snapshot.
"""

from __future__ import annotations

import msgspec
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
"""The metric layers whose open episode each row flags (thresholds are rare: kept per twin)."""


class TrackColumns:
    """Grows by doubling; rows are never moved, so a row number is a stable handle."""

    def __init__(self, capacity: int = 1024) -> None:
        self.size = 0
        self._capacity = 0
        self.f: dict[str, np.ndarray] = {}
        self.i: dict[str, np.ndarray] = {}
        self.open: dict[str, np.ndarray] = {}
        self.episodes: dict[tuple[str, int], Episode] = {}
        """(layer, row) → the open episode: few at any time, so kept apart from the columns."""
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
        self.episodes[(layer, row)] = msgspec.structs.replace(ep)

    def episode(self, row: int, layer: str) -> Episode | None:
        return self.episodes.get((layer, row))

    def drop_episode(self, row: int, layer: str) -> Episode:
        self.open[layer][row] = False
        return self.episodes.pop((layer, row))
