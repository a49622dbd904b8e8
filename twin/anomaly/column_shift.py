"""The shift layer of :mod:`twin.anomaly.shift`, vectorised over a round of values."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from twin.anomaly.column_events import RoundEvents
from twin.anomaly.records import Severity
from twin.anomaly.scores import deviation_score
from twin.anomaly.shift import Shift
from twin.anomaly.track_columns import TrackColumns, counted


class ShiftRound(Protocol):
    rows: np.ndarray
    x: np.ndarray
    has_dx: np.ndarray
    reading: np.ndarray


class VectorShift:
    """Hyperparameters from the scalar layer, state in the :class:`TrackColumns`."""

    def __init__(self, layer: Shift, tracks: TrackColumns, hold: int) -> None:
        self.layer = layer
        self.tracks = tracks
        self.hold = hold

    def score(
        self,
        rnd: ShiftRound,
        n: np.ndarray,
        judged: np.ndarray,
        expected: np.ndarray,
        events: RoundEvents,
        peaks: np.ndarray,
    ) -> np.ndarray:
        """Smooth every value's deviation and judge the judged ones; returns which values ask
        the baselines not to learn from them."""
        sh, cols = self.layer, self.tracks
        rows = rnd.rows
        suspect = np.zeros(len(rows), dtype=np.bool_)
        if sh.lam <= 0:
            return suspect
        f = cols.f
        active = n > 0
        ew = f["ew"][rows]
        d = rnd.x - expected
        reported = cols.open["level"][rows]  # the level's anomaly says so: start from here
        ew = np.where(active, np.where(reported, d, ew + sh.lam * (d - ew)), ew)
        f["ew"][rows] = ew
        j = active & judged & ~rnd.has_dx
        if not j.any():
            return suspect
        floor = np.maximum(np.maximum(sh.abs_floor, sh.rel_floor * np.abs(f["mean"][rows])),
                           f["res"][rows]) * sh.shrink  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):
            ez = np.where(j, ew / (np.sqrt(f["ewv"][rows]) + floor), 0.0)
        aez = np.abs(ez)
        is_open = cols.open["shift"][rows]
        suspect = j & ((aez > sh.learn_limit) | is_open)
        new = j & ~is_open & ~reported
        np.maximum.at(peaks, rnd.reading[new], aez[new] * sh.scale)
        for k in np.flatnonzero(j & is_open & (aez > sh.lo)):
            ep = cols.episodes[("shift", int(rows[k]))]
            ep.hold = self.hold
            value = deviation_score(float(aez[k]) * sh.scale)
            if value > ep.score:
                ep.score = value
                ep.expected, ep.observed = float(expected[k]), float(expected[k] + ew[k])
                if aez[k] > 2 * sh.hi:
                    ep.severity = Severity.CRITICAL
        for k in np.flatnonzero(j & is_open & ~(aez > sh.lo)):
            ep = cols.episodes[("shift", int(rows[k]))]
            if ep.hold > 0:
                ep.hold -= 1
            else:
                events.close("shift", int(k))
        for k in np.flatnonzero(new & (aez > sh.hi)):
            kind = "high" if ez[k] > 0 else "low"
            observed = float(expected[k] + ew[k])
            value = deviation_score(float(aez[k]) * sh.scale)
            events.open("shift", int(k), kind, Severity.WARNING, value,
                        float(expected[k]), observed)  # fmt: skip
        return suspect

    def learn(self, rows: np.ndarray, n: np.ndarray) -> None:
        """The spread of the smoothed deviation learns (``n``: the rows' counts before the
        level learns from this round)."""
        sh, f = self.layer, self.tracks.f
        if sh.lam <= 0:
            return
        keep = n > 0
        rows, n1 = rows[keep], counted(n[keep])
        ew, ewv = f["ew"][rows], f["ewv"][rows]
        a = np.where(n1 <= sh.warmup, 1.0 / n1, sh.alpha)
        f["ewv"][rows] = np.where(n1 > 2, (1 - a) * (ewv + a * ew * ew), ew * ew)
