"""Single-metric labelled series through the detectors, scored two ways: per row (as SKAB
scores) and by windows (``simulators.windows``, as the Numenta benchmark scores).

Each series is one device seen from its first row, its one metric named ``value``, with no
profile (the detectors watch it as any metric of an unknown device). A row's verdict is 1 while
any anomaly is open after it; a detection is the row where one opens. The window scores are also
counted the benchmark's own way, every row whose score reaches a threshold a detection. Rows in
the probationary period are not scored. The detectors never see the labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from simulators.evaluation import Counts
from simulators.synthetic import Series
from simulators.windows import PROFILES, CorpusScore, onsets, score_series, windows
from twin.anomaly.config import FLEET, DetectorConfig
from twin.anomaly.detectors import AnomalyDetectors, DetectorState


@dataclass
class SeriesRun:
    series: Series
    verdicts: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    learn: int | None = None
    """Rows in the probationary period, when a protocol fixes them (SKAB: 400)."""
    spans: list[tuple[int, int]] | None = None
    """The scoring windows, when the corpus gives them (otherwise made from the labels)."""


def run_series(series: Series, config: DetectorConfig = FLEET) -> SeriesRun:
    detectors = AnomalyDetectors(config)
    state = DetectorState()
    run = SeriesRun(series)
    for ts, value in zip(series.ts_ms, series.values, strict=True):
        obs = detectors.observe(state, series.name, None, ts, {"value": value})
        run.verdicts.append(int(obs.flagged))
        run.scores.append(obs.score)
    return run


@dataclass
class GroupResult:
    """A family of series (or all of them): both protocols, and false alarms per 1,000 rows
    outside every window (the rows where nothing is wrong)."""

    name: str
    counts: Counts = field(default_factory=Counts)
    windows: dict[str, CorpusScore] = field(default_factory=dict)
    clean_rows: int = 0
    false_alarms: int = 0
    scored: dict[str, CorpusScore] = field(default_factory=dict)
    """The window scores with every row whose score reaches the threshold a detection (the
    benchmark's own counting of a detector's scores), beside ``windows`` (onsets)."""

    @property
    def false_per_1000(self) -> float:
        return 1000.0 * self.false_alarms / self.clean_rows if self.clean_rows else 0.0


def _add(
    group: GroupResult, run: SeriesRun, window_fraction: float, probation: float, threshold: float
) -> None:
    labels = run.series.labels
    start = run.learn if run.learn is not None else int(probation * len(labels))
    spans = run.spans if run.spans is not None else windows(labels, window_fraction)
    inside = [False] * len(labels)
    for lo, hi in spans:
        inside[lo : hi + 1] = [True] * (hi - lo + 1)
    for i in range(start, len(labels)):
        v, y = run.verdicts[i], labels[i]
        group.counts.tp += v and y
        group.counts.fp += v and not y
        group.counts.fn += y and not v
        group.counts.tn += not v and not y
        group.clean_rows += not inside[i]
    found = onsets(run.verdicts)
    group.false_alarms += sum(1 for i in found if i >= start and not inside[i])
    share = start / len(labels) if labels else 0.0
    above = [i for i, v in enumerate(run.scores) if v >= threshold]
    for profile in PROFILES:
        scored = score_series(labels, found, profile, window_fraction, share, spans)
        group.windows.setdefault(profile.name, CorpusScore(profile)).add(scored)
        scored = score_series(labels, above, profile, window_fraction, share, spans)
        group.scored.setdefault(profile.name, CorpusScore(profile)).add(scored)


def evaluate_series(
    runs: Iterable[SeriesRun],
    window_fraction: float = 0.1,
    probation: float = 0.15,
    threshold: float = 0.5,
) -> tuple[GroupResult, dict[str, GroupResult]]:
    """The whole set, and each family apart; ``threshold``: the reading score that counts as
    a detection in :attr:`GroupResult.scored`."""
    total = GroupResult("all")
    families: dict[str, GroupResult] = {}
    for run in runs:
        family = families.setdefault(run.series.family, GroupResult(run.series.family))
        _add(family, run, window_fraction, probation, threshold)
        _add(total, run, window_fraction, probation, threshold)
    return total, families
