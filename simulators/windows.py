"""Window-based scoring of anomaly detections, as the Numenta Anomaly Benchmark scores them.

Each labelled anomaly gets a window centred on its onset, ``window_fraction`` of the series
divided by the number of anomalies long (and reaching at least to the end of the labelled
rows); windows that overlap are merged. A *detection* is a row where the detector raises an
alarm (here: where an anomaly episode opens, so a level change that stays flagged for hours is
one detection, as an operator sees it). Then, with a profile's weights:

* the first detection inside a window earns ``tp * s(y)``, ``y`` its place relative to the
  window's end in window lengths (-1 at the start, 0 at the end), so an early detection earns
  nearly ``tp`` and one at the very end nothing; later detections in the same window count
  for nothing;
* a window without a detection costs ``fn``;
* a detection outside every window costs ``fp * -s(y)``, ``y`` its distance past the end of
  the window before it in that window's lengths (a detection just after a window costs little,
  one far from any costs the full ``fp``; one before every window costs the full ``fp``).

``s(y) = 2 / (1 + exp(5 y)) - 1`` (the benchmark's scaled sigmoid). Detections in the
probationary period (the first ``probation`` of each series, where a detector is still
learning) are ignored. Raw scores are
summed over all series and normalised once: 0 is what detecting nothing scores, 100 what a
detector scores that alarms at the first row of every window and nowhere else. Scores below
0 are worse than staying silent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float = 1.0
    fp: float = 0.11
    fn: float = 1.0


PROFILES = (
    Profile("standard"),
    Profile("reward_low_fp", fp=0.22),
    Profile("reward_low_fn", fn=2.0),
)
"""The benchmark's three application profiles."""


def sigma(y: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def label_ranges(labels: Sequence[int]) -> list[tuple[int, int]]:
    """Runs of labelled rows as ``(first, last)`` row indexes."""
    out: list[tuple[int, int]] = []
    start = None
    for i, label in enumerate(labels):
        if label and start is None:
            start = i
        elif not label and start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(labels) - 1))
    return out


def windows(labels: Sequence[int], window_fraction: float = 0.1) -> list[tuple[int, int]]:
    """Scoring windows ``(first, last)`` of one series, merged where they overlap."""
    ranges = label_ranges(labels)
    if not ranges:
        return []
    half = max(1, round(window_fraction * len(labels) / len(ranges) / 2))
    spans = sorted(
        (max(0, first - half), min(len(labels) - 1, max(first + half, last)))
        for first, last in ranges
    )
    merged = [spans[0]]
    for lo, hi in spans[1:]:
        if lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def onsets(verdicts: Sequence[int]) -> list[int]:
    """Rows where an alarm starts (the verdict goes from 0 to 1)."""
    return [i for i, v in enumerate(verdicts) if v and (i == 0 or not verdicts[i - 1])]


@dataclass
class SeriesScore:
    """One series under one profile."""

    raw: float = 0.0
    null: float = 0.0
    perfect: float = 0.0
    detected: int = 0
    missed: int = 0
    false_alarms: int = 0


def score_series(
    labels: Sequence[int],
    detections: Iterable[int],
    profile: Profile,
    window_fraction: float = 0.1,
    probation: float = 0.15,
    spans: Sequence[tuple[int, int]] | None = None,
) -> SeriesScore:
    """``spans``: the windows when a corpus gives them (the benchmark's own label files);
    otherwise they are made from the labels."""
    if spans is None:
        spans = windows(labels, window_fraction)
    start = int(probation * len(labels) + 1e-9)  # a share made from a row count gives it back
    result = SeriesScore()
    result.null = -profile.fn * len(spans)
    result.perfect = profile.tp * sigma(-1.0) * len(spans)
    hit = [False] * len(spans)
    k = 0  # the first window not ending before the detection
    for i in sorted(d for d in detections if d >= start):
        while k < len(spans) and spans[k][1] < i:
            k += 1
        if k < len(spans) and spans[k][0] <= i:
            lo, hi = spans[k]
            if not hit[k]:
                hit[k] = True
                result.raw += profile.tp * sigma(-(hi - i + 1) / (hi - lo + 1))
                result.detected += 1
            continue
        result.false_alarms += 1
        if k == 0:
            result.raw -= profile.fp
        else:
            lo, hi = spans[k - 1]
            result.raw += profile.fp * sigma((i - hi) / (hi - lo + 1))
    result.missed = hit.count(False)
    result.raw -= profile.fn * result.missed
    return result


@dataclass
class CorpusScore:
    """Series summed under one profile, normalised once."""

    profile: Profile
    series: list[SeriesScore] = field(default_factory=list)

    def add(self, one: SeriesScore) -> None:
        self.series.append(one)

    @property
    def normalised(self) -> float:
        raw = sum(s.raw for s in self.series)
        null = sum(s.null for s in self.series)
        perfect = sum(s.perfect for s in self.series)
        return 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0

    @property
    def detected(self) -> int:
        return sum(s.detected for s in self.series)

    @property
    def missed(self) -> int:
        return sum(s.missed for s in self.series)

    @property
    def false_alarms(self) -> int:
        return sum(s.false_alarms for s in self.series)
