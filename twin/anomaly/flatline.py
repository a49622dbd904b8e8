"""The flatline layer: a sensor stuck on one value."""

from __future__ import annotations

from twin.anomaly.config import DetectorConfig
from twin.anomaly.episodes import Episodes
from twin.anomaly.layers import Sample
from twin.anomaly.records import Detector, Severity
from twin.anomaly.state import Track


class Flatline:
    """A metric that usually changes at every reading repeats one value: a stuck sensor.

    How often the metric changes is learnt from the reading before it is judged (while not
    stuck), so a sensor that was always this still is never called stuck."""

    def __init__(self, *, readings: int, change_share: float) -> None:
        self.readings = readings
        self.change_share = change_share

    @classmethod
    def from_config(cls, cfg: DetectorConfig) -> Flatline:
        return cls(readings=cfg.flat_readings, change_share=cfg.flat_change_share)

    def score(self, tr: Track, s: Sample, eps: Episodes) -> float:
        if not tr.n:
            return 0.0
        same = s.x == tr.last
        tr.same = tr.same + 1 if same else 0
        if tr.same < self.readings:
            tr.changed += ((0.0 if same else 1.0) - tr.changed) / min(tr.n + 1, 200)
        key = s.flat_key
        if key in eps.active:
            if not same:
                eps.close(key, s.ts_ms)
        elif (
            s.warm
            and s.watch == "all"
            and s.dx != 0  # a stopped machine reads zero everywhere, and rightly so
            and tr.same >= self.readings
            and tr.changed >= self.change_share
        ):
            eps.open(key, Detector.FLATLINE, "stuck", s.metric, Severity.WARNING, 0.75,
                     s.ts_ms, None, s.x, s.quiet)  # fmt: skip
        return 0.0

    def learn(self, tr: Track, s: Sample, eps: Episodes) -> None:
        """Learnt in :meth:`score` (see the class docstring)."""
