"""The transitions of the vectorised layers: an episode opening or closing on one track row
becomes an :class:`~twin.anomaly.records.Anomaly` event of its reading."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from twin.anomaly.episodes import Episodes
from twin.anomaly.records import Detector
from twin.anomaly.state import Episode
from twin.anomaly.track_columns import TrackColumns

DETECTOR = {"level": Detector.LEVEL, "rate": Detector.RATE, "drift": Detector.DRIFT,
            "flatline": Detector.FLATLINE, "shift": Detector.SHIFT}  # fmt: skip


class Values(Protocol):
    rows: np.ndarray
    ts: np.ndarray
    reading: np.ndarray


class RoundEvents:
    """Opens and closes the metric layers' episodes of one round, as events of its readings."""

    def __init__(
        self,
        tracks: TrackColumns,
        hold: int,
        rnd: Values,
        where: Callable[[int], tuple[Episodes, dict[str, tuple[str, int]]]],
        metric_of: Callable[[int], str],
    ) -> None:
        """``where(slot)``: the episodes and the open metric episodes of the round's reading
        ``slot``; ``metric_of(row)``: the metric of a track row."""
        self.tracks = tracks
        self.hold = hold
        self.rnd = rnd
        self.rows = np.asarray(rnd.rows, dtype=np.int64)
        self.ts = np.asarray(rnd.ts, dtype=np.int64)
        self.quiet = np.zeros(len(rnd.rows), dtype=np.bool_)
        self._where_slot = where
        self._metric_of = metric_of

    def _where(self, k: int) -> tuple[Episodes, dict[str, tuple[str, int]], str]:
        eps, metric_open = self._where_slot(self.rnd.reading[k])
        return eps, metric_open, self._metric_of(int(self.rows[k]))

    def open(
        self,
        layer: str,
        k: int,
        kind: str,
        severity: str,
        value: float,
        expected: float | None,
        observed: float | None,
    ) -> None:
        if self.quiet[k]:
            return
        cols = self.tracks
        row = int(self.rows[k])
        eps, metric_open, metric = self._where(k)
        ep = Episode(DETECTOR[layer], kind, metric, severity, value, int(self.ts[k]), expected,
                     observed, self.hold)  # fmt: skip
        cols.open[layer][row] = True
        cols.episodes[(layer, row)] = ep
        metric_open[f"{layer}:{metric}"] = (layer, row)
        eps.st.raised += 1
        eps.opened = max(eps.opened, value)
        eps.events.append(eps.anomaly(ep, None))

    def close(self, layer: str, k: int) -> None:
        row = int(self.rows[k])
        eps, metric_open, metric = self._where(k)
        ep = self.tracks.drop_episode(row, layer)
        del metric_open[f"{layer}:{metric}"]
        eps.events.append(eps.anomaly(ep, int(self.ts[k])))
