"""A corpus in the Numenta Anomaly Benchmark's layout, read as labelled single-metric series.

The layout: ``data/<category>/<name>.csv`` with a ``timestamp,value`` header and timestamps
such as ``2014-04-01 00:05:00`` (UTC), and ``labels/combined_windows.json`` mapping
``<category>/<name>.csv`` to its scoring windows, each a pair of timestamps. The windows are
the benchmark's own (not made from point labels), and so is the probationary period: the first
15 % of a file, at most 750 rows.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from simulators.synthetic import Series
from twin.errors import ConfigurationError

WINDOWS_FILE = Path("labels") / "combined_windows.json"


@dataclass(frozen=True)
class CorpusFile:
    series: Series
    """Labels are 1 inside a window (the benchmark labels windows, not rows)."""
    spans: list[tuple[int, int]]
    probation: int


def probation_rows(n: int) -> int:
    """The benchmark's probationary period of a file of ``n`` rows."""
    return int(min(math.floor(0.15 * n), 0.15 * 5000))


def _ms(text: str) -> int:
    at = datetime.fromisoformat(text.strip())
    return int(at.replace(tzinfo=at.tzinfo or UTC).timestamp() * 1000)


def _read(path: Path, key: str) -> tuple[list[int], list[float]]:
    ts: list[int] = []
    values: list[float] = []
    with path.open(newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
            raise ConfigurationError(f"{key}: expected a 'timestamp,value' header")
        for line, row in enumerate(rows, start=2):
            try:
                ts.append(_ms(row[0]))
                values.append(float(row[1]))
            except (IndexError, ValueError) as e:
                raise ConfigurationError(f"{key} line {line}: not a timestamp and a value") from e
    return ts, values


def _spans(ts: list[int], windows: list[list[str]]) -> list[tuple[int, int]]:
    spans = []
    for pair in windows:
        lo, hi = _ms(pair[0]), _ms(pair[1])
        inside = [i for i, t in enumerate(ts) if lo <= t <= hi]
        if inside:
            spans.append((inside[0], inside[-1]))
    return sorted(spans)


def read_corpus(root: Path) -> list[CorpusFile]:
    """Every file the windows file names, in its order; a missing file or a malformed row is a
    :class:`~twin.errors.ConfigurationError` naming it."""
    labels = root / WINDOWS_FILE
    if not labels.is_file():
        raise ConfigurationError(f"{root}: no {WINDOWS_FILE} (not a benchmark corpus)")
    try:
        listed = json.loads(labels.read_text())
    except ValueError as e:
        raise ConfigurationError(f"{labels}: not JSON ({e})") from e
    out = []
    for key in sorted(listed):
        path = root / "data" / key
        if not path.is_file():
            raise ConfigurationError(f"{key}: named in {WINDOWS_FILE} but not in {root / 'data'}")
        ts, values = _read(path, key)
        spans = _spans(ts, listed[key])
        marks = [0] * len(ts)
        for lo, hi in spans:
            marks[lo : hi + 1] = [1] * (hi - lo + 1)
        cadence = (ts[-1] - ts[0]) / 1000 / max(1, len(ts) - 1) if ts else 0.0
        category = key.split("/")[0] if "/" in key else "corpus"
        series = Series(key, category, cadence, ts, values, marks)
        out.append(CorpusFile(series, spans, probation_rows(len(ts))))
    return out
