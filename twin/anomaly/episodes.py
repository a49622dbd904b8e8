"""Anomaly episodes of one twin while one reading is judged: opened, extended, released after
a hold, closed; each change becomes an :class:`~twin.anomaly.records.Anomaly` event."""

from __future__ import annotations

from twin.anomaly.records import Anomaly, Explained, Severity
from twin.anomaly.state import DetectorState, Episode


class Episodes:
    """``critical_z``: per detector, the deviation past which an extended episode turns
    critical (detectors not named use ``"*"``)."""

    def __init__(
        self,
        st: DetectorState,
        device_id: str,
        *,
        hold: int,
        version: str,
        critical_z: dict[str, float],
    ) -> None:
        self.st = st
        self.active = st.open
        """The open episodes by key (``key in eps.active``: a plain dict lookup)."""
        self.device_id = device_id
        self.events: list[Anomaly] = []
        self._hold = hold
        self._version = version
        self._critical_z = critical_z
        self.opened = 0.0
        """The highest score of the episodes this reading opened (what it newly shows)."""

    def __contains__(self, key: str) -> bool:
        return key in self.st.open

    def get(self, key: str) -> Episode | None:
        return self.st.open.get(key)

    def anomaly(self, ep: Episode, ended_ms: int | None) -> Anomaly:
        return Anomaly(
            device_id=self.device_id,
            detector=ep.detector,
            kind=ep.kind,
            metric=ep.metric,
            severity=ep.severity,
            score=round(ep.score, 4),
            started_ms=ep.started_ms,
            ended_ms=ended_ms,
            expected=None if ep.expected is None else round(ep.expected, 6),
            observed=None if ep.observed is None else round(ep.observed, 6),
            model_version=self._version,
            explanation=() if ep.explained is None else _explanation(ep),
        )

    def open(
        self,
        key: str,
        detector: str,
        kind: str,
        metric: str,
        severity: str,
        value: float,
        ts_ms: int,
        expected: float | None,
        observed: float | None,
        quiet: bool,
        explained: list[float] | None = None,
    ) -> None:
        """``value``: the episode's score; ``quiet``: warming up, so nothing is raised;
        ``explained``: a relation's expected and observed pairs, one per metric it names."""
        if quiet:
            return
        ep = Episode(detector, kind, metric, str(severity), value, ts_ms, expected, observed,
                     self._hold, explained)  # fmt: skip
        self.st.open[key] = ep
        self.st.raised += 1
        self.opened = max(self.opened, value)
        self.events.append(self.anomaly(ep, None))

    def extend(
        self, key: str, value: float, expected: float, observed: float, z: float,
        explained: list[float] | None = None,
    ) -> None:  # fmt: skip
        ep = self.st.open[key]
        ep.hold = self._hold
        if value > ep.score:
            ep.score, ep.expected, ep.observed = value, expected, observed
            if explained is not None:
                ep.explained = explained
            if z > self._critical_z.get(ep.detector, self._critical_z["*"]):
                ep.severity = Severity.CRITICAL

    def release(self, key: str, ts_ms: int) -> None:
        """The condition cleared: close after ``hold`` further clear readings."""
        ep = self.st.open[key]
        if ep.hold > 0:
            ep.hold -= 1
            return
        self.close(key, ts_ms)

    def close(self, key: str, ts_ms: int) -> None:
        ep = self.st.open.pop(key)
        self.events.append(self.anomaly(ep, ts_ms))

    def escalate(self, key: str, severity: str, value: float, expected: float, x: float) -> None:
        ep = self.st.open[key]
        ep.severity, ep.score, ep.expected, ep.observed = severity, value, expected, x
        self.events.append(self.anomaly(ep, None))


def _explanation(ep: Episode) -> tuple[Explained, ...]:
    pairs = ep.explained or []
    return tuple(
        Explained(metric, round(pairs[2 * i], 6), round(pairs[2 * i + 1], 6))
        for i, metric in enumerate(ep.metric.split("+")[: len(pairs) // 2])
    )
